"""Decision rules as plain functions: signals, portfolio score, rebalance within risk limits."""

from __future__ import annotations

import math

import pytest

from omniwatch.trading.portfolio import (
    AssetInput,
    RiskLimits,
    annual_vol,
    limit_breaches,
    rebalance,
    score_portfolio,
)
from omniwatch.trading.signals import decide_signal

LIMITS = RiskLimits(target_annual_vol=0.4, max_weight_per_asset=0.5, max_gross_leverage=1.0,
                    max_net_exposure=1.0, min_trade_weight=0.01)


@pytest.mark.parametrize(("pred", "threshold", "direction", "strength"), [
    (30.0, 10.0, 1, 2 / 3), (-20.0, 10.0, -1, 0.5), (10.0, 10.0, 0, 0.0), (5.0, 10.0, 0, 0.0),
    (float("nan"), 10.0, 0, 0.0), (1e-6, 0.0, 1, 1.0), (0.0, 0.0, 0, 0.0)])
def test_a_signal_needs_the_forecast_beyond_its_threshold(pred, threshold, direction, strength):
    d = decide_signal(pred, threshold)
    assert (d.direction, d.threshold_bps) == (direction, threshold)
    assert math.isclose(d.strength, strength, abs_tol=1e-12)


def test_annual_vol_of_hourly_returns():
    assert math.isclose(annual_vol(0.01), 0.01 * math.sqrt(8760))
    assert annual_vol(None) is None and annual_vol(0.0) is None and annual_vol(float("nan")) is None


def test_portfolio_score_adds_weighted_forecasts_and_names_breaches():
    vols = {"BTC": 0.5, "ETH": 0.7}
    s = score_portfolio({"BTC": 0.6, "ETH": -0.6}, {"BTC": 10.0, "ETH": -5.0}, vols, LIMITS)
    assert math.isclose(s.expected_return_bps, 9.0) and s.contributions_bps == {"BTC": 6.0, "ETH": 3.0}
    assert (s.gross_exposure, s.net_exposure) == (1.2, 0.0)
    assert math.isclose(s.vol_annual_upper, 0.72)
    assert s.breaches == ["max_weight_per_asset:BTC", "max_weight_per_asset:ETH", "max_gross_leverage",
                          "target_annual_vol"]
    assert limit_breaches({"BTC": 0.1}, {"BTC": None}, LIMITS) == ["unknown_volatility"]


def test_rebalance_scales_by_volatility_and_keeps_every_limit():
    assets = [AssetInput("BTC", 40.0, 10.0, 0.5), AssetInput("ETH", -40.0, 10.0, 1.0),
              AssetInput("SOL", 5.0, 10.0, 0.8), AssetInput("XRP", 40.0, 10.0, None)]
    d = rebalance(assets, LIMITS, current={})
    # Two active assets with a known vol share the 0.4 budget: 0.2 / vol each.
    assert math.isclose(d.raw_weights["BTC"], 0.4) and math.isclose(d.raw_weights["ETH"], -0.2)
    assert d.weights["SOL"] == 0.0 and d.weights["XRP"] == 0.0 and d.directions["XRP"] == 1
    assert not limit_breaches(d.weights, {a.target: a.vol_annual for a in assets}, LIMITS)
    assert d.binding == []


def test_rebalance_caps_bind_in_order_and_small_trades_are_skipped():
    tight = RiskLimits(target_annual_vol=2.0, max_weight_per_asset=0.5, max_gross_leverage=0.8,
                       max_net_exposure=0.3, min_trade_weight=0.05)
    assets = [AssetInput("BTC", 40.0, 10.0, 0.5), AssetInput("ETH", 40.0, 10.0, 0.5)]
    d = rebalance(assets, tight, current={})
    assert d.binding == ["max_weight_per_asset:BTC", "max_weight_per_asset:ETH", "max_gross_leverage",
                         "max_net_exposure"]
    assert math.isclose(sum(d.weights.values()), 0.3) and max(abs(w) for w in d.weights.values()) <= 0.5
    near = rebalance(assets, tight, current={"BTC": 0.14, "ETH": 0.16})
    assert near.weights == {"BTC": 0.14, "ETH": 0.16} and near.trades == {"BTC": 0.0, "ETH": 0.0}
