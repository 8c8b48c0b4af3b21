"""The audit chain of one execution decision, and executed PnL attribution.

**Chain** (``execution/audit/{decision_id}``): decision -> signal -> prediction (model version,
lineage) -> feature snapshot -> order (with its ``lifecycle``) -> fills -> the position after the
order's last fill -> PnL (the position's realised and marked PnL now, and the order's own
contribution).

**Attribution** (``metrics/pnl-attribution``): executed PnL split by symbol, by model version and
by cost component. Every fill contributes ``sign * qty * (mark - price) - fee`` to the PnL now
(realised and marked PnL of a position are exactly the sum of its fills' contributions at the
mark), so the split is additive and sums to the ledger's total. The components, per fill with
reference price ``ref`` (the price the order was decided at):

* ``gross`` = ``sign * qty * (mark - ref)``: what the decision earned at the decision price;
* ``slippage`` = ``sign * qty * (price - ref)``: what the fill cost against it (adverse positive);
* ``fees``; ``funding`` (payments of ``funding_payments``; by model version, each payment goes to
  the version of the newest fill of that symbol before it, the version steering the position);
* ``net = gross - slippage - fees - funding``.

This differs from ``tasks/pnl-attribution``, which replays a model over stored snapshots (a
backtest: hypothetical positions, the cost model's fees and slippage); this one reads what was
executed (real fills, their fees, their slippage against the decision price, funding paid).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from omniwatch.jsonsafe import json_safe
from omniwatch.trading import ledger, store
from omniwatch.trading.orders import Order
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

COMPONENTS = ("gross", "slippage", "fees", "funding", "net")


def _row(conn: Connection, table: Table, *where: Any) -> dict[str, Any] | None:
    row = conn.execute(select(table).where(*where)).mappings().first()
    return dict(row) if row is not None else None


def audit_chain(url: str, decision_id: str, now: datetime) -> dict[str, Any] | None:
    """The whole chain of ``decision_id`` (None when no such decision is stored)."""
    d, s, p, f = tables.execution_decisions, tables.signal_candidates, tables.predictions_v2, tables.feature_snapshots
    with get_engine(url).connect() as conn:
        decision = _row(conn, d, d.c.decision_id == decision_id)
        if decision is None:
            return None
        signal = _row(conn, s, s.c.signal_id == decision["signal_id"]) if decision["signal_id"] else None
        prediction = (_row(conn, p, p.c.prediction_id == decision["prediction_id"])
                      if decision["prediction_id"] else None)
        snapshot = None
        snapshot_id = decision["snapshot_id"] or (prediction or {}).get("snapshot_id")
        if snapshot_id is not None:
            snapshot = _row(conn, f, f.c.id == snapshot_id)
            if snapshot is not None:
                snapshot.pop("features", None), snapshot.pop("labels", None), snapshot.pop("feature_mask", None)
        fills = [dict(r) for r in conn.execute(select(tables.fills).where(
            tables.fills.c.order_id == decision["order_id"]).order_by(*ledger.FILL_ORDER)).mappings()] \
            if decision["order_id"] else []
    order = store.get_order(url, decision["order_id"]) if decision["order_id"] else None
    position = pnl = None
    symbol, track, strategy = decision["symbol"], decision["track"], decision["strategy_id"]
    mark = ledger.latest_closes(url, [symbol], now).get(symbol)
    after = (_position_after(url, track, strategy, symbol, decision["order_id"], fills[-1]["ts"], fills[-1]["price"])
             if fills else None)
    current = ledger.positions(url, track, strategy).get(symbol, ledger.Position(symbol))
    if fills or order is not None:
        position = {"after_order": after, "now": _position_view(current, mark)}
        own = sum((1 if x["side"] == "buy" else -1) * x["qty"] * ((mark or x["price"]) - x["price"]) - x["fee"]
                  for x in fills)
        pnl = {"mark_price": mark, "as_of": now, "position_realized": current.realized_pnl,
               "position_unrealized": current.unrealized(mark) if mark is not None else None,
               "position_fees": current.fees, "position_funding": current.funding,
               "position_net": current.equity(mark) if mark is not None or abs(current.qty) <= ledger.EPS else None,
               "order_contribution": own}
    chain: dict[str, Any] = json_safe({
        "decision": decision, "signal": signal, "prediction": prediction, "feature_snapshot": snapshot,
        "model": {"name": (prediction or {}).get("model_name"), "version": decision["model_version"]},
        "order": order_view(order) if order is not None else None, "fills": fills, "position": position, "pnl": pnl,
    })
    return chain


def _position_after(url: str, track: str, strategy: str, symbol: str, order_id: str, ts: datetime,
                    mark: float) -> dict[str, Any] | None:
    """The position right after the order's last fill, marked at that fill's price (as the fill's
    ``positions_snapshots`` row is, but without the later orders filled at the same instant)."""
    with get_engine(url).connect() as conn:
        pos = ledger.position_after_order(conn, track, strategy, symbol, order_id)
    if pos is None:
        return None
    return {"track": track, "strategy_id": strategy, "order_id": order_id, "as_of_ts": ts,
            **_position_view(pos, mark)}


def _position_view(pos: ledger.Position, mark: float | None) -> dict[str, Any]:
    return {"symbol": pos.symbol, "qty": pos.qty, "avg_price": pos.avg_price, "realized_pnl": pos.realized_pnl,
            "fees": pos.fees, "funding": pos.funding, "slippage_cost": pos.slippage_cost, "mark_price": mark,
            "unrealized_pnl": pos.unrealized(mark) if mark is not None else None}


def order_view(order: Order) -> dict[str, Any]:
    r = order.request
    view: dict[str, Any] = json_safe({
        "order_id": order.order_id, "client_order_id": r.client_order_id, "status": order.status.value,
        "adapter": order.adapter, "venue": order.venue, "venue_order_id": order.venue_order_id,
        "track": r.track, "strategy_id": r.strategy_id, "symbol": r.symbol, "side": r.side, "qty": r.qty,
        "order_type": r.order_type, "limit_price": r.limit_price, "time_in_force": r.time_in_force,
        "max_slippage_bps": r.max_slippage_bps, "signal_id": r.signal_id, "decision_id": r.decision_id,
        "model_version": order.model_version, "snapshot_id": order.snapshot_id,
        "reference_price": order.reference_price, "filled_qty": order.filled_qty,
        "avg_fill_price": order.avg_fill_price, "fee": order.fee, "created_at": order.created_at,
        "updated_at": order.updated_at, "lifecycle": [e.as_json() for e in order.lifecycle],
        "fills": [{"venue_fill_id": f.venue_fill_id, "ts": f.ts, "qty": f.qty, "price": f.price, "fee": f.fee,
                   "liquidity": f.liquidity} for f in order.fills],
    })
    return view


def _zero() -> dict[str, float]:
    return dict.fromkeys(COMPONENTS, 0.0)


def pnl_attribution(url: str, now: datetime, track: str | None = None, strategy_id: str | None = None
                    ) -> dict[str, Any]:
    """Executed PnL at the newest closes available at ``now``, split by symbol, model version and
    component (see the module docstring); fills and funding after ``now`` are left out."""
    fl, o, fp = tables.fills, tables.orders_sim, tables.funding_payments
    fq = (select(fl.c.symbol, fl.c.side, fl.c.qty, fl.c.price, fl.c.fee, fl.c.ts, o.c.reference_price,
                 o.c.model_version).select_from(fl.join(o, o.c.order_id == fl.c.order_id)).where(fl.c.ts <= now))
    pq = select(fp.c.symbol, fp.c.amount, fp.c.funding_time).where(fp.c.funding_time <= now)
    for col_f, col_p, value in ((fl.c.track, fp.c.track, track), (fl.c.strategy_id, fp.c.strategy_id, strategy_id)):
        if value is not None:
            fq, pq = fq.where(col_f == value), pq.where(col_p == value)
    with get_engine(url).connect() as conn:
        fills = [dict(r) for r in conn.execute(fq.order_by(*ledger.FILL_ORDER)).mappings()]
        payments = [dict(r) for r in conn.execute(pq.order_by(fp.c.funding_time)).mappings()]
    marks = ledger.latest_closes(url, {f["symbol"] for f in fills}, now)
    by_symbol: dict[str, dict[str, float]] = defaultdict(_zero)
    by_version: dict[str, dict[str, float]] = defaultdict(_zero)
    unmarked = sorted({f["symbol"] for f in fills} - set(marks))
    for f in fills:
        sign = 1.0 if f["side"] == "buy" else -1.0
        mark = marks.get(f["symbol"], f["price"])
        ref = f["reference_price"] or f["price"]
        parts = {"gross": sign * f["qty"] * (mark - ref), "slippage": sign * f["qty"] * (f["price"] - ref),
                 "fees": f["fee"], "funding": 0.0}
        version = f["model_version"] or "manual"
        for target in (by_symbol[f["symbol"]], by_version[version]):
            for k, v in parts.items():
                target[k] += v
    for pay in payments:
        before = [f for f in fills if f["symbol"] == pay["symbol"] and f["ts"] <= pay["funding_time"]]
        version = (before[-1]["model_version"] or "manual") if before else "manual"
        by_symbol[pay["symbol"]]["funding"] += pay["amount"]
        by_version[version]["funding"] += pay["amount"]
    total = _zero()
    for group in (by_symbol, by_version):
        for parts in group.values():
            parts["net"] = parts["gross"] - parts["slippage"] - parts["fees"] - parts["funding"]
    for parts in by_symbol.values():
        for k in COMPONENTS:
            total[k] += parts[k]
    return {"as_of": now.isoformat(), "track": track, "strategy_id": strategy_id, "marks": marks,
            "unmarked_symbols": unmarked, "fills": len(fills), "funding_payments": len(payments),
            "total": total, "by_symbol": dict(sorted(by_symbol.items())),
            "by_model_version": dict(sorted(by_version.items()))}
