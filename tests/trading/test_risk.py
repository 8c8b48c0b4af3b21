"""The risk rules on hand-built inputs: each limit and breaker passes, blocks, and at its boundary
passes; the trading states allow what they say (HALTED nothing, REDUCING reductions only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from omniwatch.trading.risk import (
    BreakerState,
    KillSwitch,
    LimitOverrides,
    ModelStanding,
    RiskContext,
    RiskLimits,
    RiskSettings,
    TradingState,
    check_order,
    consecutive_losses,
    daily_loss_limit,
    is_reducing,
)

# Capital 10,000; per symbol 5,000 USD or 0.5 of capital; gross 10,000 USD or 1.0.
LIMITS = RiskLimits(target_annual_vol=0.4, max_weight_per_asset=0.5, max_gross_leverage=1.0, max_net_exposure=1.0,
                    min_trade_weight=0.01, capital_usd=10_000.0, max_order_notional_usd=4_000.0,
                    max_position_notional_usd=5_000.0, max_gross_exposure_usd=10_000.0,
                    daily_loss_limit_fraction=0.02, daily_loss_limit_usd=None, max_consecutive_losses=3)
FLAT = RiskContext(positions={}, marks={}, day_pnl=0.0)
CLEAR = BreakerState()
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _check(make_request, ctx=FLAT, state=CLEAR, limits=LIMITS, price=100.0, **order):
    return check_order(make_request(**order), price, ctx, limits, state)


def test_a_plain_order_inside_every_limit_is_allowed(make_request):
    d = _check(make_request, qty=10)
    assert d.allowed and d.state == TradingState.ACTIVE and d.violations == [] and d.notional == 1000.0


@pytest.mark.parametrize(("qty", "allowed"), [(39.0, True), (40.0, True), (40.5, False)])
def test_max_order_notional_blocks_above_and_passes_at_the_limit(make_request, qty, allowed):
    d = _check(make_request, qty=qty)
    assert d.allowed is allowed
    if not allowed:
        (v,) = d.violations
        assert (v.code, v.value, v.threshold) == ("max_order_notional", 4050.0, 4000.0)


def test_max_position_notional_counts_the_position_after_the_order(make_request):
    ctx = RiskContext(positions={"BTC": 20.0}, marks={"BTC": 100.0}, day_pnl=0.0)
    assert _check(make_request, ctx, qty=30).allowed                      # 5,000 USD exactly: passes
    d = _check(make_request, ctx, qty=31)
    assert {v.code for v in d.violations} == {"max_position_notional", "max_weight_per_asset"}
    v = next(v for v in d.violations if v.code == "max_position_notional")
    assert v.value == pytest.approx(5100.0) and v.threshold == 5000.0 and v.detail["before"] == 2000.0


def test_gross_and_net_limits_sum_over_symbols_at_their_marks(make_request):
    ctx = RiskContext(positions={"ETH": 40.0, "SOL": -10.0}, marks={"ETH": 100.0, "SOL": 200.0}, day_pnl=0.0)
    # gross before 6,000; buying 40 BTC at 100 makes 10,000 (passes), 41 makes 10,100
    wide = replace(LIMITS, max_order_notional_usd=1e9, max_position_notional_usd=1e9, max_weight_per_asset=10.0)
    assert _check(make_request, ctx, limits=wide, qty=40).allowed
    d = _check(make_request, ctx, limits=wide, qty=41)
    assert {v.code for v in d.violations} == {"max_gross_exposure", "max_gross_leverage"}
    net = replace(wide, max_net_exposure=0.3)   # net before 2,000 = 0.2 of capital
    assert _check(make_request, ctx, limits=net, qty=10).allowed      # 3,000 = 0.3: the boundary passes
    assert [v.code for v in _check(make_request, ctx, limits=net, qty=11).violations] == ["max_net_exposure"]


def test_an_order_that_brings_an_over_limit_book_back_is_allowed(make_request):
    ctx = RiskContext(positions={"BTC": 80.0}, marks={"BTC": 100.0}, day_pnl=0.0)   # 8,000 > 5,000 per symbol
    assert _check(make_request, ctx, side="sell", qty=20).allowed
    assert not _check(make_request, ctx, side="buy", qty=1).allowed


def test_a_missing_mark_of_an_open_position_is_an_error_not_a_zero(make_request):
    ctx = RiskContext(positions={"ETH": 1.0}, marks={}, day_pnl=0.0)
    with pytest.raises(ValueError, match="no mark for the open position"):
        _check(make_request, ctx)
    with pytest.raises(ValueError, match="price must be a positive number"):
        _check(make_request, price=float("nan"))


def test_daily_loss_limit_is_the_fraction_of_capital_or_the_smaller_usd_cap():
    assert daily_loss_limit(LIMITS) == 200.0
    assert daily_loss_limit(replace(LIMITS, daily_loss_limit_usd=150.0)) == 150.0
    assert daily_loss_limit(replace(LIMITS, daily_loss_limit_usd=500.0)) == 200.0


@pytest.mark.parametrize(("day_pnl", "state"), [(50.0, "ACTIVE"), (-200.0, "ACTIVE"), (-200.01, "REDUCING")])
def test_daily_loss_breaker_trips_past_the_limit(make_request, day_pnl, state):
    d = _check(make_request, RiskContext(positions={}, marks={}, day_pnl=day_pnl), qty=1)
    assert d.state == state and d.allowed is (state == "ACTIVE")
    if state == "REDUCING":
        (v,) = d.violations
        assert (v.code, v.value, v.threshold) == ("daily_loss_exceeded", pytest.approx(200.01), 200.0)
        assert v.detail["day_pnl"] == -200.01 and v.detail["capital_usd"] == 10_000.0


def test_a_tripped_daily_loss_holds_even_when_marks_recover(make_request):
    d = _check(make_request, FLAT, BreakerState(daily_loss_tripped=True), qty=1)
    assert d.state == TradingState.REDUCING and d.codes == ["daily_loss_exceeded"]


def test_consecutive_losses_count_the_trailing_run_only():
    assert consecutive_losses([]) == 0
    assert consecutive_losses([-1.0, -2.0, 5.0, -1.0, -1.0]) == 2
    assert consecutive_losses([-1.0, 0.0]) == 0        # break-even is not a loss: it ends the run


@pytest.mark.parametrize(("pnls", "blocked"), [
    ((-1.0, -1.0), False), ((-1.0, -1.0, -1.0), True), ((-1.0, -1.0, -1.0, 2.0), False), ((3.0, -1, -1, -1), True)])
def test_consecutive_loss_breaker_trips_at_n_and_a_win_resets_it(make_request, pnls, blocked):
    d = _check(make_request, RiskContext(positions={}, marks={}, day_pnl=0.0, closed_trade_pnls=pnls), qty=1)
    assert (not d.allowed) is blocked
    if blocked:
        (v,) = d.violations
        assert (v.code, v.value, v.threshold, d.state) == ("consecutive_loss_exceeded", 3.0, 3.0, "REDUCING")


def test_reducing_allows_only_orders_that_shrink_the_position_without_flipping(make_request):
    ctx = RiskContext(positions={"BTC": 5.0, "ETH": -2.0}, marks={"BTC": 100.0, "ETH": 100.0}, day_pnl=-500.0)
    assert _check(make_request, ctx, side="sell", qty=5).allowed                 # to flat
    assert _check(make_request, ctx, side="sell", qty=2).reducing
    assert _check(make_request, ctx, symbol="ETH", side="buy", qty=1).allowed    # a short bought back
    for order in ({"side": "buy", "qty": 1}, {"side": "sell", "qty": 6}, {"symbol": "SOL", "side": "sell", "qty": 1}):
        d = _check(make_request, ctx, **order)
        assert not d.allowed and d.state == "REDUCING" and d.codes == ["daily_loss_exceeded"], order
    assert is_reducing(5.0, "sell", 5.0) and not is_reducing(0.0, "sell", 1.0) and not is_reducing(-1.0, "sell", 1)


def test_halted_refuses_every_order_even_a_reduction(make_request):
    switch = KillSwitch("liquid", "s1", True, "alice", NOW, "fat finger")
    ctx = RiskContext(positions={"BTC": 5.0}, marks={"BTC": 100.0}, day_pnl=0.0)
    d = _check(make_request, ctx, BreakerState(kill_switches=(switch,)), side="sell", qty=1)
    assert not d.allowed and d.state == TradingState.HALTED and d.reducing
    (v,) = d.violations
    assert v.code == "kill_switch_triggered:liquid:s1" and (v.track, v.strategy_id) == ("liquid", "s1")
    assert v.detail["triggered_by"] == "alice" and "fat finger" in v.message


def test_a_track_wide_switch_halts_every_strategy_and_names_itself(make_request):
    state = BreakerState(kill_switches=(KillSwitch("liquid", "*", True, "ops", NOW, "venue down"),))
    d = _check(make_request, FLAT, state, strategy_id="other")
    assert d.state == "HALTED" and d.codes == ["kill_switch_triggered:liquid:*"]
    assert d.violations[0].strategy_id == "*" and d.violations[0].detail["order_strategy_id"] == "other"
    other_track = BreakerState(kill_switches=(KillSwitch("vc", "*", True, "ops", NOW, "x"),))
    assert _check(make_request, FLAT, other_track).allowed


def test_every_violation_is_listed_kill_switch_first(make_request):
    state = BreakerState(kill_switches=(KillSwitch("liquid", "s1", True, "a", NOW, "r"),), daily_loss_tripped=True)
    ctx = RiskContext(positions={}, marks={}, day_pnl=0.0, closed_trade_pnls=(-1.0, -1.0, -1.0))
    d = _check(make_request, ctx, state, qty=100)
    assert d.codes[:3] == ["kill_switch_triggered:liquid:s1", "daily_loss_exceeded", "consecutive_loss_exceeded"]
    assert "max_order_notional" in d.codes and d.state == "HALTED"


def test_limits_per_track_and_strategy_override_the_defaults_in_order():
    settings = RiskSettings(LIMITS, {"liquid:*": LimitOverrides(capital_usd=50_000.0, max_consecutive_losses=4),
                                     "liquid:s1": LimitOverrides(max_consecutive_losses=2)})
    s1, s2 = settings.limits_for("liquid", "s1"), settings.limits_for("liquid", "s2")
    assert (s1.capital_usd, s1.max_consecutive_losses) == (50_000.0, 2)
    assert (s2.capital_usd, s2.max_consecutive_losses) == (50_000.0, 4)
    assert settings.limits_for("vc", "s1") == LIMITS
    assert settings.sources("liquid", "s1") == ["defaults", "liquid:*", "liquid:s1"]
    with pytest.raises(ValueError, match="Extra inputs"):
        LimitOverrides.model_validate({"max_order_notional": 1.0})


def test_serving_settings_read_the_limits_and_overrides_from_the_environment(monkeypatch):
    from omniwatch.serving.settings import ServingSettings

    monkeypatch.setenv("OMNIWATCH_CAPITAL_USD", "20000")
    monkeypatch.setenv("OMNIWATCH_MAX_WEIGHT_PER_ASSET", "0.25")
    monkeypatch.setenv("OMNIWATCH_RISK_LIMITS", '{"liquid:s1": {"max_order_notional_usd": 1000}}')
    risk = ServingSettings().risk_settings()
    assert risk.defaults.capital_usd == 20_000.0 and risk.defaults.max_weight_per_asset == 0.25
    assert risk.limits_for("liquid", "s1").max_order_notional_usd == 1000.0
    assert risk.limits_for("liquid", "s2").max_order_notional_usd == RiskLimits.max_order_notional_usd
    monkeypatch.setenv("OMNIWATCH_RISK_LIMITS", '{"liquid": {"capital_usd": 1}}')
    with pytest.raises(ValueError, match="track:strategy_id"):
        ServingSettings()


UNVALIDATED = ModelStanding("omniwatch-liquid", "3", "24h", False, "24h: net Sharpe -1.9 not above always_long +0.6")
VALIDATED = ModelStanding("omniwatch-liquid", "4", "24h", True, "24h: beats both")


def test_a_live_order_from_a_model_without_demonstrated_skill_is_refused(make_request):
    order = make_request(qty=10)
    d = check_order(order, 100.0, FLAT, LIMITS, CLEAR, adapter="coinbase_live", model=UNVALIDATED)
    (v,) = d.violations
    assert not d.allowed and v.code == "model_not_validated" and v.rule == "model_not_validated"
    assert v.detail["model_version"] == "3" and v.detail["horizon"] == "24h" and "Sharpe" in v.detail["skill_reason"]
    assert d.state == TradingState.ACTIVE  # not a trading state: orders it does not judge go on
    # Even an order that reduces a live position: the model's forecast is no evidence for it.
    long = RiskContext(positions={"BTC": 20.0}, marks={"BTC": 100.0}, day_pnl=0.0)
    reduce = make_request(side="sell", qty=5)
    assert check_order(reduce, 100.0, long, LIMITS, CLEAR, adapter="coinbase_live", model=UNVALIDATED).codes == [
        "model_not_validated"]


def test_paper_orders_validated_models_and_model_less_orders_are_not_judged_by_skill(make_request):
    order = make_request(qty=10)
    assert check_order(order, 100.0, FLAT, LIMITS, CLEAR, adapter="paper", model=UNVALIDATED).allowed
    assert check_order(order, 100.0, FLAT, LIMITS, CLEAR, adapter="coinbase_live", model=VALIDATED).allowed
    assert check_order(order, 100.0, FLAT, LIMITS, CLEAR, adapter="coinbase_live", model=None).allowed
