"""The paper books between executions: the ``paper_books`` asset charges funding and marks open
positions every hour (run by its automation condition, tick by tick), idempotently."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from sqlalchemy import func, select

from omniwatch.assets.trading import paper_books
from omniwatch.resources.modelops import ModelOpsResource
from omniwatch.trading import ledger, store
from omniwatch.trading.orders import OrderStatus as S
from omniwatch.trading.orders import apply_report, new_order, transition
from omniwatch.trading.paper import PaperAdapter
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import T0


def _buy(url, make_request, strategy: str, when) -> None:
    order = store.create_order(url, new_order(make_request(strategy_id=strategy, qty=2.0), "paper", "paper", when))
    order = transition(order, S.SUBMITTED, when, "sent")
    store.save_order(url, apply_report(order, PaperAdapter(url).submit(order.request, when), when))


def _funding(url, rows) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(tables.funding_rates.insert(), [
            {"symbol": "BTC", "venue": "binance", "venue_symbol": "BTCUSDT", "event_time": ts, "available_time": ts,
             "funding_rate": rate, "mark_price": mark, "source": "test"} for ts, rate, mark in rows])


def _materialize(url: str, clock) -> dg.MaterializeResult:
    ops = ModelOpsResource(tracking_uri="unused", artifact_root="unused", database_url=url, clock=clock.isoformat())
    result = dg.materialize([paper_books], resources={"modelops": ops})
    assert result.success
    return result.asset_materializations_for_node("paper_books")[0]


def _count(url, table) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_paper_books_charge_funding_and_mark_open_positions_once_per_hour(warehouse_url, make_request, put_bars):
    put_bars(warehouse_url, "BTC", [(T0 - timedelta(hours=1), 99, 101, 98, 100.0, 400.0)])
    _buy(warehouse_url, make_request, "carry", T0)     # long 2 BTC at the bar price (no book: bar model)
    entry = ledger.positions(warehouse_url, "liquid", "carry")["BTC"]
    put_bars(warehouse_url, "BTC", [(T0 + timedelta(hours=k), 100, 112, 99, 100.0 + 5 * k, 400.0) for k in (1, 2, 3)])
    _funding(warehouse_url, [(T0 - timedelta(hours=8), 5e-4, 90.0),        # before the position: not charged
                             (T0 + timedelta(hours=2), 1e-4, 108.0),
                             (T0 + timedelta(hours=10), 1e-4, 120.0)])      # not known at the clock
    clock = T0 + timedelta(hours=3, minutes=5)

    first = _materialize(warehouse_url, clock)
    meta = {k: v.value for k, v in first.metadata.items()}
    assert (meta["strategies"], meta["funding_payments"], meta["positions_marked"]) == (1, 1, 1)
    pos = ledger.positions(warehouse_url, "liquid", "carry")["BTC"]
    assert pos.funding == pytest.approx(2.0 * 108.0 * 1e-4)  # qty * mark * rate, a long pays
    # Point in time: at 03:05 the newest close known is the 02:00 bar's (110; the 03:00 bar closes
    # at 04:00). The mark snapshot holds it, and the book its net PnL after fees and funding.
    s = tables.positions_snapshots
    with get_engine(warehouse_url).connect() as conn:
        mark = conn.execute(select(s).where(s.c.reason == "mark")).mappings().one()
    assert mark["as_of_ts"] == clock and mark["mark_price"] == 110.0
    assert mark["unrealized_pnl"] == pytest.approx(2.0 * (110.0 - entry.avg_price))
    assert meta["books"][0]["net_pnl_usd"] == pytest.approx(
        2.0 * (110.0 - entry.avg_price) - entry.fees - 2.0 * 108.0 * 1e-4)

    # Re-running the same hour (a retried run) adds nothing.
    rows = (_count(warehouse_url, tables.funding_payments), _count(warehouse_url, s))
    again = _materialize(warehouse_url, clock)
    assert again.metadata["funding_payments"].value == 0
    assert (_count(warehouse_url, tables.funding_payments), _count(warehouse_url, s)) == rows


def test_paper_books_run_hourly_by_automation_after_the_hours_bars():
    """Live mode: the automation condition requests the asset once per hour, after the cron tick
    (nothing upstream materialized here: on_cron waits for its parents' updates, so a hand-made
    upstream materialization stands in for the hourly data run)."""
    ops = ModelOpsResource(tracking_uri="unused", artifact_root="unused", database_url="sqlite://")
    defs = dg.Definitions(assets=[paper_books, dg.AssetSpec("market_bars"), dg.AssetSpec("funding_rates")],
                          resources={"modelops": ops})
    instance = dg.DagsterInstance.ephemeral()
    tick = T0.replace(minute=6)
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=T0 - timedelta(minutes=10))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor, evaluation_time=tick)
    assert first.total_requested == 0   # 12:05 passed, but the hour's bars are not in yet
    for key in ("market_bars", "funding_rates"):
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                               evaluation_time=tick + timedelta(minutes=1))
    assert second.total_requested == 1
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor,
                                              evaluation_time=tick + timedelta(minutes=2))
    assert third.total_requested == 0   # once per hour


def test_the_hourly_update_waits_for_a_strategy_being_decided(warehouse_url, make_request, put_bars):
    """An execution run decides on the strategy's book read once: the hourly update (funding, marks)
    must not write into that strategy while another process holds its lock, and goes on after."""
    import threading

    from omniwatch.trading.book import update_paper_books
    from omniwatch.trading.locks import strategy_lock

    put_bars(warehouse_url, "BTC", [(T0 - timedelta(hours=1), 99, 101, 98, 100.0, 400.0)])
    _buy(warehouse_url, make_request, "held", T0)
    put_bars(warehouse_url, "BTC", [(T0, 100, 112, 99, 104.0, 400.0)])
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def decide():
        with strategy_lock(warehouse_url, "liquid", "held"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=decide)
    holder.start()
    assert held.wait(10)
    updater = threading.Thread(target=lambda: (update_paper_books(warehouse_url, T0 + timedelta(hours=1, minutes=5)),
                                               done.set()))
    updater.start()
    try:
        assert not done.wait(0.5)                               # waiting for the strategy's lock
        assert _count(warehouse_url, tables.positions_snapshots) == 1   # only the buy's own snapshot
    finally:
        release.set()
        holder.join()
    assert done.wait(30)
    updater.join()
    assert _count(warehouse_url, tables.positions_snapshots) == 2   # the mark, once the lock was free
