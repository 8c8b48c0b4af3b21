"""Slippage drift on execution: the notional-weighted slippage of real fills and the share of orders
the ``max_slippage_bps`` cap stopped, from plain frames and from orders the paper venue filled in a
migrated warehouse (SQLite and PostgreSQL).

Book at 11:59 (mid 100.0): bid 99.9 x 100; asks 100.1 x 1 (10 bps), 100.3 x 1 (30 bps), 101 x 5.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from omniwatch.modelops.drift import ExecutionEvidence, build_reference, cap_stopped, evaluate_drift
from omniwatch.modelops.records import Outcome, Window
from omniwatch.modelops.thresholds import DriftThresholds
from omniwatch.operations.drift import execution_evidence
from omniwatch.trading import store
from omniwatch.trading.orders import OrderRequest, OrderStatus, apply_report, new_order, transition
from omniwatch.trading.paper import PaperAdapter
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(3)
TRAIN = pd.DataFrame({"a": RNG.normal(0, 1, 2000), "b": RNG.normal(0, 1, 2000)})
REF = build_reference(TRAIN, pd.Series(RNG.normal(0, 1, 2000)))
FEATS = pd.DataFrame({"a": RNG.normal(0, 1, 300), "b": RNG.normal(0, 1, 300)})
FORECASTS = pd.Series(RNG.normal(0, 1, 300))
# Defaults but for the counts: 4 orders decide (the defaults ask 20 of each).
T = DriftThresholds().model_copy(update={"min_orders": 4, "min_capped_orders": 4})


def rule(execution: ExecutionEvidence | None, t: DriftThresholds = T):
    return evaluate_drift(REF, FEATS, FORECASTS, execution, t, model_name="m", version="1",
                          window=Window(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1)))


def cap_reason(cap: float = 25.0) -> list[dict[str, str]]:
    return [{"ts": T0.isoformat(), "from": "initialized", "to": "submitted", "reason": "sent to paper"},
            {"ts": T0.isoformat(), "from": "submitted", "to": "rejected",
             "reason": f"max_slippage_bps {cap} reached at book reference 100"}]


def evidence(fills: list[tuple[str, str, float, float, float]],
             orders: list[tuple[str, str, float | None, float, list[dict[str, str]]]]) -> ExecutionEvidence:
    """fills: (order_id, status, qty, price, slippage_bps); orders: (id, status, cap, filled_qty, lifecycle)."""
    empty = ExecutionEvidence.empty()
    f = pd.DataFrame(fills, columns=empty.fills.columns) if fills else empty.fills
    o = pd.DataFrame(orders, columns=empty.orders.columns) if orders else empty.orders
    return ExecutionEvidence(fills=f, orders=o)


# --- (a) the rule on plain frames --------------------------------------------------------------


def test_without_fills_or_orders_both_figures_are_inconclusive_and_the_decision_is_not_drift():
    for ex in (None, ExecutionEvidence.empty()):
        d = rule(ex)
        assert d.metrics["slippage"]["status"] == "inconclusive" and d.metrics["slippage"]["mean_bps"] is None
        assert d.metrics["slippage_cap"] == {"reject_rate": None, "stopped": 0, "rejected": 0, "cut": 0, "n": 0,
                                             "status": "inconclusive"}
        assert d.outcome == Outcome.no_drift and "slippage inconclusive, cap stops inconclusive" in d.reason


def test_slippage_is_weighted_by_fill_notional_and_counts_orders_not_fills():
    # Order a: a small fill at 2 bps; order b: a book walk of two fills, 1 x 100 at 10 bps and
    # 9 x 100 at 30 bps. Weighted: (2*100 + 10*100 + 30*900) / 1100 = 25.6; the plain mean is 14.
    fills = [("a", "filled", 1.0, 100.0, 2.0), ("b", "filled", 1.0, 100.0, 10.0), ("b", "filled", 9.0, 100.0, 30.0)]
    t = T.model_copy(update={"min_orders": 2})
    s = rule(evidence(fills, []), t).metrics["slippage"]
    assert s["mean_bps"] == pytest.approx((200 + 1000 + 27000) / 1100)
    assert s["unweighted_mean_bps"] == pytest.approx(14.0)
    assert (s["n"], s["fills"], s["notional"], s["status"]) == (2, 3, 1100.0, "drift")
    # One order of fills is below min_orders (2): inconclusive whatever the value.
    assert rule(evidence(fills[1:], []), t).metrics["slippage"]["status"] == "inconclusive"


def test_only_fills_of_filled_or_partially_filled_orders_count():
    fills = [(f"o{i}", "filled", 1.0, 100.0, 8.0) for i in range(3)] + [
        ("p", "partially_filled", 1.0, 100.0, 8.0), ("c", "canceled", 50.0, 100.0, 500.0),
        ("x", "filled", 1.0, 100.0, float("nan"))]
    s = rule(evidence(fills, [])).metrics["slippage"]
    assert (s["mean_bps"], s["n"], s["fills"], s["status"]) == (8.0, 4, 4, "stable")


def test_cap_stops_count_rejected_and_cut_orders_and_flag_drift_while_filled_slippage_looks_fine():
    fills = [(f"f{i}", "filled", 1.0, 100.0, 3.0) for i in range(8)] + [("cut", "canceled", 0.5, 100.0, 10.0)]
    cut_life = [*cap_reason()[:1], {"ts": T0.isoformat(), "from": "submitted", "to": "canceled",
                                    "reason": "0.5 of 1 filled; max_slippage_bps 25.0 reached at bar reference 100"}]
    orders = [(f"f{i}", "filled", 25.0, 1.0, cap_reason()[:1]) for i in range(8)] + [
        ("r1", "rejected", 25.0, 0.0, cap_reason()), ("r2", "rejected", 25.0, 0.0, cap_reason()),
        ("cut", "canceled", 25.0, 0.5, cut_life)]
    d = rule(evidence(fills, orders))
    assert d.metrics["slippage"]["status"] == "stable" and d.metrics["slippage"]["mean_bps"] == 3.0
    assert d.metrics["slippage_cap"] == {"reject_rate": pytest.approx(3 / 11), "stopped": 3, "rejected": 2,
                                         "cut": 1, "n": 11, "status": "drift"}
    assert d.outcome == Outcome.drift
    assert "max_slippage_bps stopped 3 of 11 capped orders (27% > 10%; 2 rejected, 1 cut)" in d.reason
    # At the threshold it is stable: 1 of 10 = 10%.
    at = rule(evidence(fills, [*orders[:8], ("f8", "filled", 25.0, 1.0, []), orders[8]]))
    assert at.metrics["slippage_cap"]["reject_rate"] == pytest.approx(0.1)
    assert at.metrics["slippage_cap"]["status"] == "stable" and at.outcome == Outcome.no_drift


def test_the_cap_rate_leaves_out_uncapped_denied_and_unanswered_orders_and_other_rejections():
    other = [{"ts": T0.isoformat(), "from": "submitted", "to": "rejected", "reason": "INSUFFICIENT_FUND"}]
    denied = [{"ts": T0.isoformat(), "from": "initialized", "to": "denied",
               "reason": "kill_switch_triggered:liquid:s1 (max_slippage_bps irrelevant)"}]
    orders = [("ok1", "filled", 25.0, 1.0, []), ("ok2", "filled", 25.0, 1.0, []),
              ("ins", "rejected", 25.0, 0.0, other), ("cap", "rejected", 25.0, 0.0, cap_reason()),
              ("nocap", "rejected", None, 0.0, cap_reason()), ("den", "denied", 25.0, 0.0, denied),
              ("sub", "submitted", 25.0, 0.0, []), ("init", "initialized", 25.0, 0.0, [])]
    c = rule(evidence([], orders)).metrics["slippage_cap"]
    assert (c["n"], c["stopped"], c["status"]) == (4, 1, "drift")
    assert not cap_stopped("denied", denied) and not cap_stopped("filled", cap_reason())
    assert cap_stopped("expired", cap_reason()) and not cap_stopped("rejected", None)


def test_cap_reject_rate_threshold_and_minimum_come_from_settings(monkeypatch):
    from omniwatch.settings import Settings

    monkeypatch.setenv("OMNIWATCH_DRIFT__CAP_REJECT_RATE", "0.5")
    monkeypatch.setenv("OMNIWATCH_DRIFT__MIN_CAPPED_ORDERS", "3")
    t = Settings().drift
    assert (t.cap_reject_rate, t.min_capped_orders) == (0.5, 3)
    assert (DriftThresholds().cap_reject_rate, DriftThresholds().min_capped_orders) == (0.1, 20)
    orders = [("a", "filled", 25.0, 1.0, []), ("b", "rejected", 25.0, 0.0, cap_reason()),
              ("c", "rejected", 25.0, 0.0, cap_reason())]
    assert rule(evidence([], orders), t).metrics["slippage_cap"]["status"] == "drift"  # 2/3 > 0.5
    assert rule(evidence([], orders[:2]), t).metrics["slippage_cap"]["status"] == "inconclusive"  # 2 < 3


# --- (f) the reader on a migrated warehouse, orders filled by the paper venue ------------------


def put_book(url: str) -> None:
    levels = [("bid", 0, 99.9, 100.0), ("ask", 0, 100.1, 1.0), ("ask", 1, 100.3, 1.0), ("ask", 2, 101.0, 5.0)]
    ts = T0 - timedelta(minutes=1)
    with get_engine(url).begin() as conn:
        conn.execute(tables.orderbook_l2.insert(), [
            {"symbol": "BTC", "venue": "test", "venue_symbol": "BTC-USD", "quote": "USD", "event_time": ts,
             "available_time": ts, "side": side, "level": i, "price": p, "size": s, "source": "test"}
            for side, i, p, s in levels])


def place(url: str, key: str, qty: float, cap: float | None, at: datetime = T0) -> OrderStatus:
    """A market IOC buy through the paper venue, stored as the executor stores it (no risk step)."""
    request = OrderRequest(client_order_id=key, track="liquid", strategy_id="s1", symbol="BTC", side="buy",
                           qty=qty, order_type="market", limit_price=None, time_in_force="IOC",
                           max_slippage_bps=cap)
    adapter = PaperAdapter(url)
    order = store.create_order(url, new_order(request, adapter.name, adapter.venue, at))
    order = store.save_order(url, transition(order, OrderStatus.SUBMITTED, at, "sent to paper"))
    return store.save_order(url, apply_report(order, adapter.submit(request, at), at)).status


def from_warehouse(url: str) -> ExecutionEvidence:
    return execution_evidence(url, T0 - timedelta(hours=1), T0 + timedelta(hours=1))


@pytest.fixture
def booked(warehouse_url):
    put_book(warehouse_url)
    return warehouse_url


def test_warehouse_without_orders_is_inconclusive(booked):
    ex = from_warehouse(booked)
    assert ex.fills.empty and ex.orders.empty
    d = rule(ex)
    assert d.metrics["slippage"]["status"] == "inconclusive" == d.metrics["slippage_cap"]["status"]


def test_warehouse_fills_within_the_assumed_cost_pass(booked):
    for i in range(4):
        assert place(booked, f"ok{i}", 1.0, 25.0) == OrderStatus.FILLED  # 100.1: 10 bps
    d = rule(from_warehouse(booked))
    assert d.metrics["slippage"]["mean_bps"] == pytest.approx(10.0)
    assert (d.metrics["slippage"]["n"], d.metrics["slippage"]["status"]) == (4, "stable")
    assert d.metrics["slippage_cap"]["reject_rate"] == 0.0 and d.metrics["slippage_cap"]["status"] == "stable"
    assert d.outcome == Outcome.no_drift


def test_warehouse_fills_past_the_assumed_cost_drift_by_slippage(booked):
    for i in range(4):  # uncapped 2 BTC: 1 at 100.1 (10 bps) and 1 at 100.3 (30 bps), 20 bps by notional
        assert place(booked, f"walk{i}", 2.0, None) == OrderStatus.FILLED
    place(booked, "late", 2.0, None, at=T0 + timedelta(hours=2))  # outside the window (its book is stale too)
    d = rule(from_warehouse(booked))
    s = d.metrics["slippage"]
    assert s["mean_bps"] == pytest.approx((10 * 100.1 + 30 * 100.3) / (100.1 + 100.3))
    assert (s["n"], s["fills"], s["status"]) == (4, 8, "drift")
    assert d.metrics["slippage_cap"]["status"] == "inconclusive"  # no capped order
    assert d.outcome == Outcome.drift and "notional-weighted slippage 20.0 bps over 4 filled orders" in d.reason


def test_warehouse_cap_stops_drift_by_reject_rate_while_filled_slippage_passes(booked):
    for i in range(4):
        assert place(booked, f"ok{i}", 1.0, 25.0) == OrderStatus.FILLED
    assert place(booked, "cut", 2.0, 25.0) == OrderStatus.CANCELED      # 1 at 100.1, 100.3 is past the cap
    assert place(booked, "rej", 1.0, 5.0) == OrderStatus.REJECTED       # 100.1 is past 5 bps
    ex = from_warehouse(booked)
    assert len(ex.orders) == 6 and len(ex.fills) == 5
    d = rule(ex)
    assert d.metrics["slippage"]["status"] == "stable" and d.metrics["slippage"]["n"] == 4  # the cut one is out
    assert d.metrics["slippage_cap"] == {"reject_rate": pytest.approx(2 / 6), "stopped": 2, "rejected": 1, "cut": 1,
                                         "n": 6, "status": "drift"}
    assert d.outcome == Outcome.drift and "max_slippage_bps stopped 2 of 6" in d.reason
