"""Persisting orders, lifecycle, fills and positions: idempotent, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from omniwatch.trading import store
from omniwatch.trading.orders import FillReport, OrderStatus, VenueReport, apply_report, new_order, transition
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
S = OrderStatus


def _count(url: str, table) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_same_client_order_id_twice_returns_the_stored_order(warehouse_url, make_request):
    request = make_request(client_order_id="dup-1")
    first = store.create_order(warehouse_url, new_order(request, "paper", "paper", T0))
    again = store.create_order(warehouse_url, new_order(request, "paper", "paper", T0 + timedelta(seconds=5)))
    assert again.order_id == first.order_id and again.created_at == T0
    assert _count(warehouse_url, tables.orders_sim) == 1
    assert store.get_order(warehouse_url, first.order_id) == first
    assert store.get_order_by_client_id(warehouse_url, "dup-1") == first


def test_unknown_ids_of_any_format_read_as_none(warehouse_url):
    assert store.get_order(warehouse_url, "not-a-uuid") is None
    assert store.get_order(warehouse_url, "00000000-0000-0000-0000-000000000000") is None


def test_transitions_and_fills_round_trip_and_fills_are_written_once(warehouse_url, make_request):
    order = store.create_order(warehouse_url, new_order(make_request(qty=2.0), "paper", "paper", T0,
                                                        model_version="7"))
    order = transition(order, S.SUBMITTED, T0, "sent")
    f1 = FillReport("vf-1", T0 + timedelta(seconds=1), 0.5, 101.0, 0.0303, "taker")
    order = apply_report(order, VenueReport("v-1", S.PARTIALLY_FILLED, (f1,), "", reference_price=100.0),
                         T0 + timedelta(seconds=1))
    saved = store.save_order(warehouse_url, order)
    assert saved == order
    assert store.save_order(warehouse_url, order) == order        # a repeated save changes nothing
    f2 = FillReport("vf-2", T0 + timedelta(seconds=2), 1.5, 102.0, 0.0918, "taker")
    order = apply_report(order, VenueReport("v-1", S.FILLED, (f1, f2), ""), T0 + timedelta(seconds=2))
    saved = store.save_order(warehouse_url, order)

    assert saved.status == S.FILLED and saved.venue_order_id == "v-1" and saved.model_version == "7"
    assert [e.to for e in saved.lifecycle] == [S.INITIALIZED, S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED]
    assert _count(warehouse_url, tables.fills) == 2
    o, f, p = tables.orders_sim, tables.fills, tables.positions_snapshots
    with get_engine(warehouse_url).connect() as conn:
        row = conn.execute(select(o).where(o.c.order_id == order.order_id)).mappings().one()
        slips = dict(conn.execute(select(f.c.venue_fill_id, f.c.slippage_bps)).all())
        snaps = conn.execute(select(p).order_by(p.c.as_of_ts)).mappings().all()
    assert row["filled_qty"] == pytest.approx(2.0) and row["adapter"] == "paper"
    assert row["avg_fill_price"] == pytest.approx((0.5 * 101 + 1.5 * 102) / 2)
    assert row["fee"] == pytest.approx(0.1221) and len(row["lifecycle"]) == 4
    assert slips == {"vf-1": pytest.approx(100.0), "vf-2": pytest.approx(200.0)}
    # one snapshot after each fill: 0.5 @ 101, then 2 @ 101.75; slippage cost 0.5 * 1 + 1.5 * 2 = 3.5
    assert [(s["qty"], s["reason"]) for s in snaps] == [(0.5, "fill"), (2.0, "fill")]
    assert snaps[1]["avg_price"] == pytest.approx(101.75) and snaps[1]["fees"] == pytest.approx(0.1221)
    assert snaps[1]["slippage_cost"] == pytest.approx(3.5)
    assert snaps[1]["unrealized_pnl"] == pytest.approx(2 * (102 - 101.75))


def test_a_save_that_rewrites_the_stored_history_is_refused(warehouse_url, make_request):
    order = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
    store.save_order(warehouse_url, transition(order, S.SUBMITTED, T0, "sent"))
    with pytest.raises(store.StaleOrder):
        store.save_order(warehouse_url, transition(order, S.DENIED, T0, "risk"))
    assert store.get_order(warehouse_url, order.order_id).status == S.SUBMITTED


def test_only_a_unit_of_work_that_created_the_order_may_skip_reading_it_back(warehouse_url, make_request):
    """``save_order(created=...)`` trusts the caller's copy only inside the unit of work that
    created the order (nobody else can see it yet); elsewhere the stored order is read, so a stale
    copy is still refused, and a fill already stored is never written twice."""
    from omniwatch.warehouse.engine import unit_of_work

    order = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
    store.save_order(warehouse_url, transition(order, S.SUBMITTED, T0, "sent"))
    with pytest.raises(store.StaleOrder):   # outside a unit: ``created`` is not trusted
        store.save_order(warehouse_url, transition(order, S.DENIED, T0, "risk"), created=order)
    fill = VenueReport("v", S.FILLED, (FillReport("x", T0, 1.0, 100.0, 0.0, "taker"),), "")
    with unit_of_work(warehouse_url):
        fresh = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
        sent = transition(fresh, S.SUBMITTED, T0, "sent")
        saved = store.save_order(warehouse_url, apply_report(sent, fill, T0), created=fresh)
    assert saved.status == S.FILLED
    assert store.get_order(warehouse_url, fresh.order_id) == saved
    again = store.save_order(warehouse_url, saved)          # a retry of the same save writes nothing new
    assert len(store.get_order(warehouse_url, again.order_id).fills) == 1


def test_funding_is_recorded_once_per_funding_time(warehouse_url, make_request):
    order = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
    order = transition(order, S.SUBMITTED, T0, "")
    store.save_order(warehouse_url, apply_report(
        order, VenueReport("v", S.FILLED, (FillReport("x", T0, 1.0, 100.0, 0.0, "taker"),), ""), T0))
    payment = {"track": "liquid", "strategy_id": "s1", "symbol": "BTC", "funding_time": T0 + timedelta(hours=4),
               "venue": "binance", "funding_rate": 1e-4, "mark_price": 100.0, "position_qty": 1.0, "amount": 0.01}
    assert store.record_funding(warehouse_url, [payment]) == 1
    assert store.record_funding(warehouse_url, [payment]) == 0
    assert _count(warehouse_url, tables.funding_payments) == 1
    p = tables.positions_snapshots
    with get_engine(warehouse_url).connect() as conn:
        last = conn.execute(select(p).order_by(p.c.as_of_ts.desc()).limit(1)).mappings().one()
    assert last["reason"] == "funding" and last["funding"] == pytest.approx(0.01)
    assert store.mark_positions(warehouse_url, "liquid", "s1", {"BTC": 103.0}, T0 + timedelta(hours=5)) == 1


def test_open_orders_lists_what_a_venue_may_still_move(warehouse_url, make_request):
    resting = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
    store.save_order(warehouse_url, transition(resting, S.SUBMITTED, T0, ""))
    denied = store.create_order(warehouse_url, new_order(make_request(), "paper", "paper", T0))
    store.save_order(warehouse_url, transition(denied, S.DENIED, T0, "risk"))
    assert [o.order_id for o in store.open_orders(warehouse_url, adapter="paper")] == [resting.order_id]
