"""Horizon sizing: tranches, the no-trade band, and what it does to turnover against the sign rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omniwatch.ml.metrics import HOURS_PER_YEAR, evaluate_strategy, summarize
from omniwatch.trading.sizing import SizingRule, apply_band, position_rule, sized_positions, target_weight

UNIT = dict(target_annual_vol=None, band=0.0)


def test_a_forecast_builds_its_position_over_its_horizon_and_unwinds_after():
    rule = SizingRule(4, **UNIT)
    pos = sized_positions([10, 0, 0, 0, 0, 0], None, rule)
    # One +1 tranche held 4 hours: a quarter of the book for hours 0..3, flat from hour 4.
    assert pos.tolist() == [0.25, 0.25, 0.25, 0.25, 0.0, 0.0]
    steady = sized_positions([10] * 6, None, rule)
    assert steady.tolist() == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_threshold_and_unknown_volatility_open_flat_tranches():
    rule = SizingRule(1, threshold_bps=20, band=0.0, target_annual_vol=0.4, max_weight=1.0)
    hourly = 0.4 / math.sqrt(HOURS_PER_YEAR)  # exactly the target: weight 1
    assert rule.tranche(25, hourly) == pytest.approx(1.0)
    assert rule.tranche(-25, hourly * 2) == pytest.approx(-0.5)
    assert rule.tranche(20, hourly) == 0.0          # at the threshold: no view
    assert rule.tranche(25, None) == 0.0            # unknown volatility: no position
    assert rule.tranche(float("nan"), hourly) == 0.0
    assert rule.tranche(25, hourly / 10) == pytest.approx(1.0)  # capped at max_weight


def test_band_holds_small_moves_but_always_closes_a_flat_target():
    assert apply_band(0.52, 0.50, 0.05) == 0.50
    assert apply_band(0.60, 0.50, 0.05) == 0.60
    assert apply_band(0.0, 0.03, 0.05) == 0.0
    assert apply_band(float("nan"), 0.3, 0.05) == 0.3


def test_target_weight_matches_the_vector_path():
    rule = SizingRule(3, **UNIT)
    forecasts = [5.0, -5.0, 5.0, 5.0, float("nan")]
    vector = sized_positions(forecasts, None, rule)
    streamed = [target_weight([(f, None) for f in forecasts[: i + 1]], rule) for i in range(len(forecasts))]
    np.testing.assert_allclose(vector, streamed)


def _noisy_frame(n: int = 24 * 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    ret = rng.normal(0, 0.006, n)
    # A 24 h forecast: noisy, with some skill on the next day's drift, flipping sign often.
    drift = pd.Series(ret).rolling(24).sum().shift(-24).fillna(0).to_numpy()
    pred = 0.3 * drift + rng.normal(0, 0.01, n)
    return pd.DataFrame({"as_of_ts": ts, "symbol": "BTC", "horizon": 24, "prediction": pred,
                         "realized": drift, "next_hour_return": ret, "vol": 0.006})


def test_horizon_sizing_cuts_turnover_of_a_24h_forecast():
    frame = _noisy_frame()
    sign = evaluate_strategy(frame, fee_bps=5, slippage_bps=5).loc["BTC"]
    sized = evaluate_strategy(frame, fee_bps=5, slippage_bps=5, sizing=position_rule(SizingRule(24))).loc["BTC"]
    assert sized["turnover_annual"] < sign["turnover_annual"] / 5
    assert sized["fees"] < sign["fees"] / 5


def test_summarize_adds_the_sized_row_beside_the_sign_rule():
    table = summarize(_noisy_frame(24 * 10), null_shifts=0, sizing=lambda h: position_rule(SizingRule(h)))
    assert set(table["strategy"]) == {"model", "model_sized", "zero", "always_long", "always_short"}
    sized = table[(table["strategy"] == "model_sized") & (table["symbol"] == "pooled")].iloc[0]
    model = table[(table["strategy"] == "model") & (table["symbol"] == "pooled")].iloc[0]
    assert sized["rank_ic_mean"] == pytest.approx(model["rank_ic_mean"])  # same forecasts
    assert sized["turnover"] != model["turnover"]
