"""Orders, their lifecycle, fills and positions in the warehouse (SQLite and PostgreSQL).

Writes are idempotent where a retry can repeat them: an order by ``client_order_id`` (the same
key twice returns the stored order, never a second one), a fill by ``(order_id, venue_fill_id)``,
a funding payment by position and funding time, a position snapshot by its time. A save checks
that the stored lifecycle is a prefix of the new one, in the same transaction, so two writers
racing on one order cannot rewrite each other's history (:class:`StaleOrder`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, Update, bindparam, select

from omniwatch.trading import ledger
from omniwatch.trading.orders import (
    FillReport,
    LifecycleEvent,
    Order,
    OrderError,
    OrderRequest,
    OrderStatus,
    merge_fills,
)
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import in_unit, reading, transaction
from omniwatch.warehouse.upsert import insert_new, upsert_rows

FILL_NAMESPACE = uuid.UUID("5b0f4a52-3d0e-4a53-9f57-2f1f3c1b6e0a")


class StaleOrder(OrderError):
    """The stored lifecycle is not a prefix of the one being saved: another writer moved it."""


def fill_id(order_id: str, venue_fill_id: str) -> str:
    """Deterministic, so a repeated save of one fill names the same row."""
    return str(uuid.uuid5(FILL_NAMESPACE, f"{order_id}/{venue_fill_id}"))


def slippage_bps(side: str, price: float, reference: float | None) -> float | None:
    """Signed slippage of a fill against the reference price, adverse positive."""
    if not reference:
        return None
    return (1 if side == "buy" else -1) * (price / reference - 1.0) * 1e4


def _order_row(order: Order) -> dict[str, Any]:
    r = order.request
    return {
        "order_id": order.order_id, "client_order_id": r.client_order_id, "signal_id": r.signal_id,
        "decision_id": r.decision_id, "track": r.track, "strategy_id": r.strategy_id, "symbol": r.symbol,
        "side": r.side, "qty": r.qty, "limit_price": r.limit_price, "order_type": r.order_type,
        "adapter": order.adapter, "venue": order.venue, "venue_order_id": order.venue_order_id,
        "time_in_force": r.time_in_force, "max_slippage_bps": r.max_slippage_bps,
        "reference_price": order.reference_price, "status": order.status.value,
        "filled_qty": order.filled_qty, "avg_fill_price": order.avg_fill_price, "fee": order.fee,
        "lifecycle": [e.as_json() for e in order.lifecycle], "model_version": order.model_version,
        "snapshot_id": order.snapshot_id, "created_at": order.created_at, "updated_at": order.updated_at,
    }


def _from_row(row: Any, fills: Iterable[Any]) -> Order:
    request = OrderRequest(
        client_order_id=row["client_order_id"], track=row["track"], strategy_id=row["strategy_id"],
        symbol=row["symbol"], side=row["side"], qty=row["qty"], order_type=row["order_type"],
        limit_price=row["limit_price"], time_in_force=row["time_in_force"],
        max_slippage_bps=row["max_slippage_bps"], signal_id=row["signal_id"], decision_id=row["decision_id"])
    return Order(
        order_id=row["order_id"], request=request, adapter=row["adapter"], venue=row["venue"],
        status=OrderStatus(row["status"]),
        lifecycle=tuple(LifecycleEvent.from_json(e) for e in row["lifecycle"] or []),
        fills=tuple(FillReport(f["venue_fill_id"], f["ts"], f["qty"], f["price"], f["fee"], f["liquidity"])
                    for f in fills),
        venue_order_id=row["venue_order_id"], reference_price=row["reference_price"],
        model_version=row["model_version"], snapshot_id=row["snapshot_id"], created_at=row["created_at"])


@cache
def _order_query(by: tuple[str, ...], lock: bool) -> Select[Any]:
    """An order by the columns ``by`` (bound by their names), built once (orders are read for every
    order the execution path sends; building the statement cost more than running it)."""
    o = tables.orders_sim
    query = select(o).where(*(o.c[c] == bindparam(c) for c in by))
    return query.with_for_update() if lock else query


@cache
def _fills_query() -> Select[Any]:
    f = tables.fills
    return select(f).where(f.c.order_id == bindparam("order_id")).order_by(f.c.ts, f.c.venue_fill_id)


@cache
def _progress_update() -> Update:
    """The columns a save moves (bound by their names), of the order ``where_order_id``."""
    o = tables.orders_sim
    return o.update().where(o.c.order_id == bindparam("where_order_id"))


_PROGRESS = ("status", "filled_qty", "avg_fill_price", "fee", "lifecycle", "venue_order_id", "reference_price",
             "updated_at")


def _read(conn: Connection, by: dict[str, str], lock: bool = False) -> Order | None:
    row = conn.execute(_order_query(tuple(by), lock), by).mappings().first()
    if row is None:
        return None
    fills = conn.execute(_fills_query(), {"order_id": row["order_id"]}).mappings().all()
    return _from_row(row, fills)


def get_order(url: str, order_id: str) -> Order | None:
    """The stored order with its fills, or None for an unknown id (of any format)."""
    with reading(url) as conn:
        return _read(conn, {"order_id": str(order_id)})


def get_order_by_client_id(url: str, client_order_id: str) -> Order | None:
    with reading(url) as conn:
        return _read(conn, {"client_order_id": client_order_id})


def get_order_by_venue_id(url: str, venue: str, venue_order_id: str) -> Order | None:
    with reading(url) as conn:
        return _read(conn, {"venue": venue, "venue_order_id": venue_order_id})


def open_orders(url: str, adapter: str | None = None) -> list[Order]:
    """Orders a venue may still move (submitted, accepted, partially filled), oldest first:
    what a poller re-checks with ``get``."""
    o = tables.orders_sim
    query = select(o.c.order_id).where(o.c.status.in_(["submitted", "accepted", "partially_filled"]))
    if adapter is not None:
        query = query.where(o.c.adapter == adapter)
    with reading(url) as conn:
        ids = [r.order_id for r in conn.execute(query.order_by(o.c.created_at, o.c.order_id))]
        found = [_read(conn, {"order_id": i}) for i in ids]
    return [x for x in found if x is not None]


def create_order(url: str, order: Order) -> Order:
    """Insert ``order``; if its ``client_order_id`` is already stored, return that order instead
    (the caller compares ``order_id`` to know which happened)."""
    o = tables.orders_sim
    stored: Order | None
    with transaction(url) as conn:
        if insert_new(conn, o, _order_row(order), key=["client_order_id"]):
            stored = order  # as written: no need to read it back
        else:
            stored = _read(conn, {"client_order_id": order.request.client_order_id})
        if order.fills:
            _write_fills(conn, stored or order, order.fills)
    if stored is None:  # pragma: no cover - the row was just written or already there
        raise RuntimeError(f"order {order.order_id} vanished after insert")
    return stored


def save_order(url: str, order: Order, *, created: Order | None = None) -> Order:
    """Persist ``order``'s transitions and fills (new fills also append position snapshots) and
    return it as stored. Raises :class:`StaleOrder` if another writer moved it meanwhile.
    ``created``: the order as :func:`create_order` stored it in the enclosing unit of work; no other
    transaction can see or move it before the unit commits, so it is not read back (outside a
    unit it is ignored and the stored order is read, locked, as always)."""
    with transaction(url) as conn:
        stored = (created if created is not None and created.order_id == order.order_id and in_unit(url)
                  else _read(conn, {"order_id": order.order_id}, lock=True))
        if stored is None:
            raise LookupError(f"order {order.order_id} is not stored; create_order it first")
        if order.lifecycle[: len(stored.lifecycle)] != stored.lifecycle:
            raise StaleOrder(f"order {order.order_id}: the stored lifecycle is not a prefix of the new one")
        row = _order_row(order)
        conn.execute(_progress_update(), {**{k: row[k] for k in _PROGRESS}, "where_order_id": order.order_id})
        known = {f.venue_fill_id for f in stored.fills}
        # New by construction: the stored fills were read under the order's row lock (or the order
        # is the unit's own), so a plain insert; a duplicate would be a bug, and fails loudly.
        _write_fills(conn, order, tuple(f for f in order.fills if f.venue_fill_id not in known), new=True)
    # As stored: the row now holds ``order``'s fields, and its fills are the stored ones (a prefix of
    # the lifecycle's) plus the new ones just written, in the order a read returns them.
    fills = merge_fills(stored.fills, order.fills)
    return replace(order, fills=tuple(sorted(fills, key=lambda f: (f.ts, f.venue_fill_id))),
                   created_at=stored.created_at)


def _write_fills(conn: Connection, order: Order, fills: tuple[FillReport, ...], new: bool = False) -> None:
    """Store ``fills`` of ``order`` (idempotent by venue fill id; ``new``: known not to be stored,
    a plain insert, which SQLAlchemy compiles once) and snapshot the position after each instant."""
    if not fills:
        return
    r = order.request
    stored_at = datetime.now(UTC)  # to the microsecond: the ledger's order of fills at one instant
    rows = [{"fill_id": fill_id(order.order_id, f.venue_fill_id), "order_id": order.order_id,
             "venue_fill_id": f.venue_fill_id, "track": r.track, "strategy_id": r.strategy_id,
             "symbol": r.symbol, "side": r.side, "qty": f.qty, "price": f.price, "fee": f.fee,
             "liquidity": f.liquidity, "slippage_bps": slippage_bps(r.side, f.price, order.reference_price),
             "ts": f.ts, "created_at": stored_at} for f in fills]
    if new:
        conn.execute(tables.fills.insert(), rows)
    else:
        upsert_rows(conn, tables.fills, rows, key=["order_id", "venue_fill_id"], update=[])
    marks = {f.ts: f.price for f in sorted(fills, key=lambda f: f.ts)}
    for ts, price in sorted(marks.items()):
        snapshot(conn, r.track, r.strategy_id, r.symbol, ts, "fill", price)


def snapshot(conn: Connection, track: str, strategy_id: str, symbol: str, as_of: datetime, reason: str,
             mark: float | None) -> ledger.Position:
    """Upsert the position of ``symbol`` as of ``as_of`` (every event up to and including it),
    marked at ``mark``; returns it."""
    book, _ = ledger.replay(ledger.read_events(conn, track, strategy_id, until=as_of, symbols=[symbol]))
    pos = book.get(symbol, ledger.Position(symbol))
    row = {"track": track, "strategy_id": strategy_id, "symbol": symbol, "as_of_ts": as_of, "qty": pos.qty,
           "avg_price": pos.avg_price, "mark_price": mark,
           "unrealized_pnl": pos.unrealized(mark) if mark is not None else 0.0,
           "realized_pnl": pos.realized_pnl, "fees": pos.fees, "funding": pos.funding,
           "slippage_cost": pos.slippage_cost, "reason": reason}
    upsert_rows(conn, tables.positions_snapshots, [row], key=["track", "strategy_id", "symbol", "as_of_ts"])
    return pos


def record_funding(url: str, payments: Iterable[dict[str, Any]]) -> int:
    """Store funding payments (rows of ``funding_payments`` without id/created_at) and snapshot each
    position after its payment; a payment already stored for that funding time is left as it is.
    Returns how many were new."""
    p = tables.funding_payments
    payments = list(payments)
    new = 0
    if not payments:  # nothing to charge (every run asks): no transaction at all
        return 0
    with transaction(url) as conn:
        for pay in payments:
            key = ["track", "strategy_id", "symbol", "funding_time"]
            if conn.execute(select(p.c.id).where(*(p.c[k] == pay[k] for k in key))).first() is None:
                upsert_rows(conn, p, [pay], key=key, update=[])
                new += 1
                snapshot(conn, pay["track"], pay["strategy_id"], pay["symbol"], pay["funding_time"], "funding",
                         pay["mark_price"])
    return new


def mark_positions(url: str, track: str, strategy_id: str, marks: Mapping[str, float], as_of: datetime) -> int:
    """Append a ``mark`` snapshot of every open position at ``marks``; returns how many."""
    written = 0
    with transaction(url) as conn:
        book, _ = ledger.replay(ledger.read_events(conn, track, strategy_id, until=as_of))
        for symbol, pos in sorted(book.items()):
            if abs(pos.qty) > ledger.EPS and symbol in marks:
                snapshot(conn, track, strategy_id, symbol, as_of, "mark", marks[symbol])
                written += 1
    return written
