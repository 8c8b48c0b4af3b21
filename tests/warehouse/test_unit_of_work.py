"""A unit of work makes the writes of a block one transaction, on SQLite and PostgreSQL: the store's
``transaction``/``reading`` join it, nothing is visible outside before it commits, and an error
undoes all of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from omniwatch.trading import store
from omniwatch.trading.execution import Executor
from omniwatch.trading.orders import OrderRequest, OrderStatus
from omniwatch.trading.paper import PaperAdapter
from omniwatch.trading.risk import RiskLimits, RiskSettings
from omniwatch.trading.risk_store import RiskGuard
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine, reading, transaction, unit_of_work

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _controls(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.risk_controls)).scalar_one())


def _control(conn, actor: str) -> None:
    conn.execute(tables.risk_controls.insert().values(track="liquid", strategy_id="s", control="kill_switch",
                                                      action="trigger", actor=actor, reason="", detail={}, as_of=T0))


def test_writes_inside_a_unit_commit_together_and_are_seen_inside_only(warehouse_url):
    with unit_of_work(warehouse_url) as unit:
        with transaction(warehouse_url) as conn:
            assert conn is unit
            _control(conn, "a")
        with unit_of_work(warehouse_url) as inner, transaction(warehouse_url) as conn:   # nested: the same one
            assert inner is unit and conn is unit
            _control(conn, "b")
        with reading(warehouse_url) as conn:
            assert conn is unit
            assert conn.execute(select(func.count()).select_from(tables.risk_controls)).scalar_one() == 2
        if get_engine(warehouse_url).dialect.name == "postgresql":  # SQLite's reader would wait for the lock
            assert _controls(warehouse_url) == 0
    assert _controls(warehouse_url) == 2
    with transaction(warehouse_url) as conn:      # outside a unit: its own transaction
        assert conn is not unit
        _control(conn, "c")
    assert _controls(warehouse_url) == 3


def test_an_error_inside_a_unit_undoes_every_write_of_it(warehouse_url):
    with pytest.raises(RuntimeError, match="boom"), unit_of_work(warehouse_url):
        with transaction(warehouse_url) as conn:
            _control(conn, "a")
        with transaction(warehouse_url) as conn:
            _control(conn, "b")
        raise RuntimeError("boom")
    assert _controls(warehouse_url) == 0


class BrokenBook(PaperAdapter):
    """The paper venue failing after it has recorded the order (a bug, a full disk)."""

    def _replay(self, *args, **kwargs):
        raise OSError("disk full")


def test_a_paper_order_and_its_venue_record_are_all_or_nothing(warehouse_url):
    """The paper venue keeps its records in the warehouse: an order, the venue's record and the
    fills commit as one; a failure in between leaves no half-sent order behind."""
    guard = RiskGuard(warehouse_url, RiskSettings(RiskLimits(0.4, 0.5, 1.0, 1.0, 0.01)))
    executor = Executor(warehouse_url, guard, {"paper": BrokenBook(warehouse_url)})
    request = OrderRequest(client_order_id="c-1", track="liquid", strategy_id="s", symbol="BTC", side="buy", qty=0.1,
                           order_type="market", limit_price=None, time_in_force="IOC", max_slippage_bps=None)
    with pytest.raises(OSError, match="disk full"):
        executor.submit(request, "paper", 100.0, T0)
    assert store.get_order_by_client_id(warehouse_url, "c-1") is None
    with get_engine(warehouse_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.paper_orders)).scalar_one() == 0
    executor.adapters["paper"] = PaperAdapter(warehouse_url)     # repaired: the same key goes through
    order = executor.submit(request, "paper", 100.0, T0)
    assert order.status == OrderStatus.REJECTED  # no bar or book of BTC here: the venue says so
    assert store.get_order_by_client_id(warehouse_url, "c-1").status == OrderStatus.REJECTED
