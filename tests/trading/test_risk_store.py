"""The risk guard over a real warehouse (SQLite and PostgreSQL) and real fills: switches and
breakers persist across guards and processes, every refusal is a ``risk_events`` row, and every
trigger or reset is an audit row naming who acted."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from omniwatch.trading import store
from omniwatch.trading.orders import FillReport, OrderStatus, VenueReport, apply_report, new_order, transition
from omniwatch.trading.risk import RiskLimits, RiskSettings, TradingState
from omniwatch.trading.risk_store import RiskGuard
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2024, 6, 1, tzinfo=UTC)
# Capital 10,000: daily loss limit 200 USD, 3 losing round trips in a row trip the breaker.
LIMITS = RiskLimits(target_annual_vol=0.4, max_weight_per_asset=0.5, max_gross_leverage=1.0, max_net_exposure=1.0,
                    min_trade_weight=0.01, capital_usd=10_000.0, max_order_notional_usd=4_000.0,
                    max_position_notional_usd=5_000.0, max_gross_exposure_usd=10_000.0,
                    daily_loss_limit_fraction=0.02, max_consecutive_losses=3)
SETTINGS = RiskSettings(LIMITS)


def _fill(url, make_request, when, side, qty, price, symbol="BTC", strategy_id="s1"):
    """An order executed in full at ``price`` (no fee), stored as the execution path stores it."""
    order = new_order(make_request(side=side, qty=qty, symbol=symbol, strategy_id=strategy_id), "paper", "paper",
                      when)
    order = transition(store.create_order(url, order), OrderStatus.SUBMITTED, when, "sent")
    report = VenueReport(f"v-{order.request.client_order_id}", OrderStatus.FILLED,
                         (FillReport("f1", when, qty, price, 0.0, "taker"),), "", reference_price=price)
    store.save_order(url, apply_report(order, report, when))


def _controls(url):
    c = tables.risk_controls.c
    with get_engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.risk_controls).order_by(c.id)).mappings()]


def _events(url):
    with get_engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.risk_events).order_by(tables.risk_events.c.id)).mappings()]


def test_a_refusal_is_a_risk_events_row_per_violation_with_metric_and_threshold(warehouse_url, make_request):
    guard = RiskGuard(warehouse_url, SETTINGS)
    assert guard.check(make_request(qty=10), 100.0, T0).allowed
    assert _events(warehouse_url) == []                       # an allowed order writes nothing
    assert not guard.check(make_request(qty=50), 100.0, T0, record=False).allowed
    assert _events(warehouse_url) == []                       # a what-if writes nothing
    d = guard.check(make_request(qty=60, client_order_id="big-1"), 100.0, T0)
    assert d.codes == ["max_order_notional", "max_position_notional", "max_weight_per_asset"]
    rows = _events(warehouse_url)
    assert [r["code"] for r in rows] == d.codes
    first = rows[0]
    assert (first["track"], first["strategy_id"]) == ("liquid", "s1")
    assert first["detail"]["value"] == 6000.0 and first["detail"]["threshold"] == 4000.0
    assert first["detail"]["order"]["client_order_id"] == "big-1" and first["detail"]["state"] == "ACTIVE"
    assert len({r["detail"]["block_id"] for r in rows}) == 1  # one block, three rows


def test_a_kill_switch_survives_a_restart_and_its_audit_names_who_acted(warehouse_url, make_request):
    RiskGuard(warehouse_url, SETTINGS).trigger_kill_switch("liquid", "s1", "alice", "fills far from the book", T0)
    guard = RiskGuard(warehouse_url, SETTINGS)     # a new guard reads only the warehouse
    d = guard.check(make_request(), 100.0, T0)
    assert d.state == TradingState.HALTED and d.codes == ["kill_switch_triggered:liquid:s1"]
    assert _events(warehouse_url)[0]["code"] == "kill_switch_triggered:liquid:s1"
    assert guard.check(make_request(strategy_id="s2"), 100.0, T0).allowed

    # a new process decides the same
    script = ("import json, sys; from datetime import datetime; from omniwatch.trading.orders import OrderRequest; "
              "from omniwatch.trading.risk import RiskLimits, RiskSettings; "
              "from omniwatch.trading.risk_store import RiskGuard; "
              "g = RiskGuard(sys.argv[1], RiskSettings(RiskLimits(0.4, 0.5, 1.0, 1.0, 0.01))); "
              "o = OrderRequest('p-1', 'liquid', 's1', 'BTC', 'buy', 1.0, 'market', None, 'IOC', None); "
              "d = g.check(o, 100.0, datetime.fromisoformat(sys.argv[2]), record=False); "
              "print(json.dumps({'state': d.state, 'codes': d.codes}))")
    out = subprocess.run([sys.executable, "-c", script, warehouse_url, T0.isoformat()], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"state": "HALTED",
                                                                "codes": ["kill_switch_triggered:liquid:s1"]}

    switch = guard.reset_kill_switch("liquid", "s1", "bob", "investigated: venue glitch", T0 + timedelta(hours=1))
    assert not switch.triggered and (switch.triggered_by, switch.reset_by) == ("alice", "bob")
    assert guard.check(make_request(), 100.0, T0).allowed
    audit = _controls(warehouse_url)
    assert [(r["control"], r["action"], r["actor"]) for r in audit] == [
        ("kill_switch", "trigger", "alice"), ("kill_switch", "reset", "bob")]
    assert audit[0]["reason"] == "fills far from the book" and audit[0]["created_at"] is not None


def test_a_track_wide_switch_halts_every_strategy_until_it_is_reset(warehouse_url, make_request):
    guard = RiskGuard(warehouse_url, SETTINGS)
    guard.trigger_kill_switch("liquid", "*", "ops", "venue incident", T0)
    guard.trigger_kill_switch("liquid", "s1", "ops", "own reason", T0)
    assert guard.check(make_request(strategy_id="s9"), 100.0, T0).codes == ["kill_switch_triggered:liquid:*"]
    assert set(guard.check(make_request(), 100.0, T0).codes) == {"kill_switch_triggered:liquid:s1",
                                                                  "kill_switch_triggered:liquid:*"}
    guard.reset_kill_switch("liquid", "*", "ops", "incident over", T0)
    assert guard.check(make_request(strategy_id="s9"), 100.0, T0).allowed
    assert guard.check(make_request(), 100.0, T0).state == "HALTED"        # its own switch is still on
    assert [(k.strategy_id, k.triggered) for k in guard.kill_switches("liquid")] == [("*", False), ("s1", True)]


def test_daily_loss_trips_reducing_for_the_rest_of_the_utc_day(warehouse_url, make_request, put_bars):
    def close_at(available, close):   # a bar of the hour before ``available``
        put_bars(warehouse_url, "BTC", [(available - timedelta(hours=1), close, close, close, close, 1)])

    _fill(warehouse_url, make_request, MIDNIGHT - timedelta(hours=5), "buy", 10, 100.0)
    close_at(MIDNIGHT, 100.0)
    close_at(T0, 80.01)
    guard = RiskGuard(warehouse_url, SETTINGS)
    assert guard.check(make_request(qty=1), 80.0, T0).allowed                # -199.9: inside the 200 limit
    # the day is marked at the stored closes, not at an order's (limit) price
    assert guard.check(make_request(qty=1, order_type="limit", limit_price=50.0), 50.0, T0).allowed
    assert _controls(warehouse_url) == []
    close_at(T0 + timedelta(minutes=30), 75.0)                               # -250 USD
    d = guard.check(make_request(qty=1), 75.0, T0 + timedelta(minutes=30))
    assert d.state == TradingState.REDUCING and d.codes == ["daily_loss_exceeded"]
    assert d.violations[0].value == pytest.approx(250.0) and d.violations[0].threshold == 200.0
    assert guard.check(make_request(side="sell", qty=4), 75.0, T0 + timedelta(minutes=30)).allowed  # reductions
    trip = _controls(warehouse_url)
    assert [(r["control"], r["action"], r["actor"]) for r in trip] == [("daily_loss", "trip", "system")]

    close_at(T0 + timedelta(hours=2), 99.0)
    later = RiskGuard(warehouse_url, SETTINGS)                               # recovered, restarted: still held
    d = later.check(make_request(qty=1), 99.0, T0 + timedelta(hours=2))
    assert d.state == "REDUCING" and d.violations[0].detail["latched"] is True
    assert later.status("liquid", "s1", T0 + timedelta(hours=2)).daily_loss_tripped
    assert later.check(make_request(qty=1), 99.0, MIDNIGHT + timedelta(days=1, hours=1)).allowed   # next UTC day
    assert len(_controls(warehouse_url)) == 1


def test_consecutive_losses_trip_reducing_until_a_keyed_reset_or_a_win(warehouse_url, make_request):
    for i in range(3):
        _fill(warehouse_url, make_request, T0 + timedelta(hours=2 * i), "buy", 1, 100.0)
        _fill(warehouse_url, make_request, T0 + timedelta(hours=2 * i + 1), "sell", 1, 99.0)
    guard = RiskGuard(warehouse_url, SETTINGS)
    now = T0 + timedelta(hours=8)
    d = guard.check(make_request(), 100.0, now)
    assert d.state == "REDUCING" and d.codes == ["consecutive_loss_exceeded"] and d.violations[0].value == 3
    assert guard.status("liquid", "s1", now).consecutive_losses == 3

    status = guard.reset_consecutive_losses("liquid", "s1", "carol", "reviewed the three losses", now)
    assert status.state == TradingState.ACTIVE and status.consecutive_losses == 0
    assert status.consecutive_reset_by == "carol"
    assert RiskGuard(warehouse_url, SETTINGS).check(make_request(), 100.0, now).allowed   # persisted
    row = _controls(warehouse_url)[-1]
    assert (row["control"], row["action"], row["actor"]) == ("consecutive_loss", "reset", "carol")
    assert row["detail"]["consecutive_losses_before"] == 3

    for i in range(3):   # three new losses trip it again; then a win ends the run
        _fill(warehouse_url, make_request, now + timedelta(hours=2 * i + 1), "buy", 1, 100.0)
        _fill(warehouse_url, make_request, now + timedelta(hours=2 * i + 2), "sell", 1, 99.0)
    later = now + timedelta(hours=10)
    assert guard.status("liquid", "s1", later).state == "REDUCING"
    _fill(warehouse_url, make_request, later, "buy", 1, 100.0)
    _fill(warehouse_url, make_request, later + timedelta(hours=1), "sell", 1, 101.0)
    assert guard.status("liquid", "s1", later + timedelta(hours=2)).state == "ACTIVE"


def test_positions_are_marked_at_the_newest_bar_for_exposure(warehouse_url, make_request, put_bars):
    _fill(warehouse_url, make_request, T0 - timedelta(hours=3), "buy", 30, 100.0, symbol="ETH")
    put_bars(warehouse_url, "ETH", [(T0 - timedelta(hours=2), 150, 150, 150, 150.0, 1)])
    guard = RiskGuard(warehouse_url, SETTINGS)
    # ETH 30 at 150 = 4,500 (not 3,000 at entry): BTC 35 at 160 = 5,600 is over the 5,000 per symbol
    # and gross 10,100 is over 10,000 (the order notional cap is lifted here)
    wide = RiskGuard(warehouse_url, RiskSettings(replace(LIMITS, max_order_notional_usd=1e9)))
    d = wide.check(make_request(qty=35), 160.0, T0)
    assert {"max_gross_exposure", "max_position_notional"} <= set(d.codes)
    assert guard.check(make_request(qty=25), 160.0, T0).allowed


def _executed(url, request, when, price, reference, fee):
    """``request`` executed in full at ``price`` against ``reference`` (slippage) with ``fee``; the stored order."""
    order = transition(store.create_order(url, new_order(request, "paper", "paper", when)), OrderStatus.SUBMITTED,
                       when, "sent")
    report = VenueReport(f"v-{request.client_order_id}", OrderStatus.FILLED,
                         (FillReport("f1", when, request.qty, price, fee, "taker"),), "", reference_price=reference)
    return store.save_order(url, apply_report(order, report, when))


def test_a_book_read_once_and_given_the_runs_fills_decides_as_a_fresh_read_would(warehouse_url, make_request,
                                                                                 put_bars):
    """execution/run reads the strategy's book once and adds its own fills to it; every figure a
    decision reads (positions, marks, day PnL, closed trades, the loss trip) must equal a new read."""
    url = warehouse_url
    put_bars(url, "BTC", [(MIDNIGHT - timedelta(hours=2), 100, 100, 100, 100.0, 1),
                          (T0 - timedelta(hours=1), 90, 90, 90, 90.0, 1)])
    put_bars(url, "ETH", [(T0 - timedelta(hours=1), 50, 50, 50, 50.0, 1)])
    _fill(url, make_request, MIDNIGHT - timedelta(hours=3), "buy", 10, 100.0)    # open at the day's start
    _fill(url, make_request, MIDNIGHT + timedelta(hours=1), "sell", 4, 98.0)     # partly closed today
    guard = RiskGuard(url, SETTINGS)
    book = guard.book("liquid", "s1", T0)
    assert "ETH" not in book.closes          # nothing held: the book did not price it
    # The run's fills: a new symbol (priced when it is first held), a BTC sale closing the round
    # trip at a loss past the day's limit (fees and slippage against the decision price).
    for request, price, reference in [(make_request(symbol="ETH", qty=20), 51.0, 50.5),
                                      (make_request(side="sell", qty=6), 60.0, 61.0)]:
        order = _executed(url, request, T0, price, reference, fee=0.6)
        book.add_fills(order)
        book.add_fills(order)                # the same fills again: counted once
        assert book.figures({"BTC": 90.0}) == guard.book("liquid", "s1", T0).figures({"BTC": 90.0})
    figures = book.figures({})
    assert figures.context.positions == {"ETH": 20.0} and figures.context.marks["ETH"] == 50.0
    assert figures.context.day_pnl < -200.0 and len(figures.context.closed_trade_pnls) == 1
    # The trip a check on the book writes is in the book too: the next decision on it is REDUCING.
    d = guard.check(make_request(symbol="ETH", qty=1), 50.0, T0, book=book)
    assert d.codes == ["daily_loss_exceeded"] and [r["action"] for r in _controls(url)] == ["trip"]
    assert book.figures({}) == guard.book("liquid", "s1", T0).figures({})
    assert book.figures({}).breakers.daily_loss_tripped
    with pytest.raises(ValueError, match="cannot decide"):   # a book decides its own strategy and instant only
        guard.check(make_request(strategy_id="s2"), 50.0, T0, book=book)
