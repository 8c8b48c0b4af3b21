"""From forecast to orders: sizing at the forecast's horizon, the risk check, the adapter, and the
decision that ties them together.

One target of ``execution/run`` goes through :func:`plan_target` (pure) and :class:`Executor`:

1. **Sizing.** The forecasts of the last ``H`` hours of the signal's model version (one per hour,
   ``predictions_v2``; an hour without one is a flat tranche) give the symbol's target weight with
   :func:`omniwatch.trading.sizing.target_weight`, the same code the backtest sizes with. The book
   holds the symbols with equal shares (weight = per-symbol target / N, as the backtest's pool is
   the mean over N symbols), capped at ``max_weight_per_asset``. The no-trade band is applied in
   per-symbol units, exactly as in the backtest: inside it the target is ``hold`` and nothing is sent.
2. **Order.** The weight change at the newest close available now becomes a market IOC order with
   the configured ``max_slippage_bps``; its ``client_order_id`` is derived from the strategy and
   the signal, so running the same signal twice returns the stored order instead of trading again.
3. **Risk** (``RiskGuard.check``) before anything is sent: a refused order is stored ``denied`` with
   the violation codes, and a ``risk_events`` row is written by the guard.
4. **Adapter** (paper or Coinbase live): the order moves ``initialized -> submitted`` and then as the
   venue reports; fills, the position and its PnL follow in the store (``omniwatch.trading.store``).

Every target's outcome is an ``execution_decisions`` row (append only), whose id the audit chain
(``execution/audit/{decision_id}``) starts from.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, select, union_all

from omniwatch.trading import store
from omniwatch.trading.orders import (
    ExecutionAdapter,
    Order,
    OrderRequest,
    OrderStatus,
    VenueUnavailable,
    apply_report,
    new_order,
    transition,
)
from omniwatch.trading.risk import ModelStanding, RiskDecision
from omniwatch.trading.risk_store import RiskGuard, StrategyBook
from omniwatch.trading.sizing import SizingRule, apply_band, horizon_hours, target_weight
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import reading, transaction, unit_of_work

ORDER_NAMESPACE = uuid.UUID("0c5f7f0e-2b61-4d0c-8d1a-6a3f1e9b7c21")
MIN_ORDER_QTY = 1e-8  # below a satoshi: nothing to send


@dataclass(frozen=True)
class ForecastHour:
    as_of_ts: datetime
    forecast_bps: float
    hourly_vol: float | None
    prediction_id: str


@dataclass(frozen=True)
class Plan:
    """What sizing decided for one symbol (weights are fractions of capital)."""

    symbol: str
    horizon: str
    price: float
    capital: float
    n_symbols: int
    target_weight: float      # what the forecasts ask for (capped)
    held_weight: float        # what the position is now
    new_weight: float         # after the no-trade band
    side: str | None          # None: hold
    qty: float
    reason: str
    forecasts: list[dict[str, Any]] = field(default_factory=list)


def hour_of(ts: datetime) -> datetime:
    """The UTC hour ``ts`` falls in (an aware time; plain datetime arithmetic, no pandas per row)."""
    if ts.tzinfo is None:
        raise ValueError(f"{ts.isoformat()} has no time zone")
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@cache
def _forecast_query() -> Select[Any]:
    """:func:`forecast_history`'s read, built once with bound parameters (it runs for every target
    of every run: building it anew each time cost more than the query).

    An hour scored many times (every prediction request stores a row) is read as one row: the
    newest (latest ``created_at``, then the largest id), found by a grouped search that migration
    0015's index answers without reading the table or sorting, whatever the number of rows; the
    ``prefer``red prediction (the signal's own; NULL: none) comes along by its key, and
    :func:`forecast_history` puts it in its hour's place. At most H + 1 rows are read."""
    p, f = tables.predictions_v2, tables.feature_snapshots
    w = p.alias("w")

    def sizable(t: Any) -> tuple[Any, ...]:  # the version's forecasts of the target's hours, on stored snapshots
        return (t.c.target == bindparam("target"), t.c.model_name == bindparam("model_name"),
                t.c.model_version == bindparam("model_version"),
                t.c.error.is_(None), t.c.snapshot_id.is_not(None),  # not failed, not a client's what-if features
                t.c.as_of_ts > bindparam("after", type_=p.c.as_of_ts.type),
                t.c.as_of_ts <= bindparam("until", type_=p.c.as_of_ts.type))

    newest = (select(p.c.as_of_ts, func.max(p.c.created_at).label("created_at"))
              .where(*sizable(p)).group_by(p.c.as_of_ts).subquery("newest"))
    winners = (select(func.max(w.c.prediction_id))
               .select_from(w.join(newest, and_(w.c.as_of_ts == newest.c.as_of_ts,
                                                w.c.created_at == newest.c.created_at)))
               .where(*sizable(w)).group_by(w.c.as_of_ts))
    preferred = select(w.c.prediction_id).where(
        w.c.prediction_id == bindparam("prefer", type_=p.c.prediction_id.type), *sizable(w))
    return (select(p.c.prediction_id, p.c.as_of_ts, p.c.horizon_predictions, f.c.features)
            .select_from(p.outerjoin(f, f.c.id == p.c.snapshot_id))
            .where(p.c.prediction_id.in_(union_all(winners, preferred).scalar_subquery()))
            .order_by(p.c.as_of_ts))


def forecast_history(url: str, target: str, model_version: str, horizon: str, as_of: datetime,
                     model_name: str = "omniwatch-liquid", prefer: str | None = None) -> list[ForecastHour]:
    """The version's forecasts of ``horizon`` for the ``H`` hours ending at ``as_of`` (newest row
    per hour; ``prefer``: that prediction for its hour), with each snapshot's 24 h volatility.
    Failed scorings and predictions made on a client's own features (``predict/liquid`` with
    ``features``: no snapshot, any ``as_of``) are left out: only the stored snapshots' forecasts
    size real positions."""
    h = horizon_hours(horizon)
    params = {"target": target, "model_name": model_name, "model_version": model_version, "prefer": prefer,
              "after": as_of - timedelta(hours=h), "until": as_of}
    with reading(url) as conn:
        rows = conn.execute(_forecast_query(), params).all()
    # One row per as_of: the preferred one where it is, else the newest (the only other row there).
    chosen = {row.as_of_ts: row for row in rows if row.prediction_id != prefer}
    chosen |= {row.as_of_ts: row for row in rows if row.prediction_id == prefer}
    newest: dict[datetime, ForecastHour] = {}
    for ts_key in sorted(chosen):
        row = chosen[ts_key]
        value = (row.horizon_predictions or {}).get(f"pred_{horizon}")  # the stored keys: pred_1h, ...
        if value is None:
            continue
        vol = (row.features or {}).get("vol_24h")
        ts = hour_of(row.as_of_ts)
        newest[ts] = ForecastHour(ts, float(value), float(vol) if vol is not None else None, row.prediction_id)
    return [newest[k] for k in sorted(newest)]


def hourly_window(history: list[ForecastHour], as_of: datetime, hours: int) -> list[tuple[float, float | None]]:
    """The ``hours`` hourly slots ending at ``as_of``, oldest first; an hour without a forecast is flat."""
    end = hour_of(as_of)
    by_hour = {hour_of(x.as_of_ts): x for x in history}
    slots = []
    for k in range(hours - 1, -1, -1):
        hit = by_hour.get(end - timedelta(hours=k))
        slots.append((hit.forecast_bps, hit.hourly_vol) if hit else (math.nan, None))
    return slots


def plan_target(symbol: str, horizon: str, history: list[ForecastHour], as_of: datetime, rule: SizingRule, *,
                price: float, capital: float, n_symbols: int, held_qty: float, max_weight: float) -> Plan:
    """Sizing of one symbol: target from the horizon's tranches, band in per-symbol units (as the
    backtest), then the order that moves the position there."""
    unit_target = target_weight(hourly_window(history, as_of, rule.horizon_hours), rule)
    held_w = held_qty * price / capital
    unit_new = apply_band(unit_target, held_w * n_symbols, rule.band)
    def cap(w: float) -> float:
        return max(-max_weight, min(max_weight, w))

    target_w, new_w = cap(unit_target / n_symbols), cap(unit_new / n_symbols)
    qty = abs(new_w - held_w) * capital / price
    used = [asdict(x) | {"as_of_ts": x.as_of_ts.isoformat()} for x in history]
    if qty < MIN_ORDER_QTY or new_w == held_w:
        why = (f"inside the no-trade band ({rule.band} per symbol): target {target_w:+.4f}, held {held_w:+.4f}"
               if abs(target_w - held_w) > 1e-12 else f"at target {target_w:+.4f}")
        return Plan(symbol, horizon, price, capital, n_symbols, target_w, held_w, held_w, None, 0.0, why, used)
    side = "buy" if new_w > held_w else "sell"
    return Plan(symbol, horizon, price, capital, n_symbols, target_w, held_w, new_w, side, qty,
                f"move {held_w:+.4f} -> {new_w:+.4f} of capital ({len(history)} forecast hour(s) of {horizon})",
                used)


def order_key(url: str, strategy_id: str, symbol: str, key: str) -> tuple[str, Order | None]:
    """The idempotency key of (strategy, symbol, signal or request key) and the order stored under
    it (None: the key is free). A key whose order risk denied is free again (a denial traded
    nothing): the next attempt gets ``-r1``, ``-r2``, ... so the same signal can execute once the
    block is lifted, but never twice."""
    base = f"ow-{uuid.uuid5(ORDER_NAMESPACE, f'{strategy_id}|{symbol}|{key}')}"
    attempt = 0
    while True:
        candidate = base if attempt == 0 else f"{base}-r{attempt}"
        existing = store.get_order_by_client_id(url, candidate)
        if existing is None or existing.status != OrderStatus.DENIED:
            return candidate, existing
        attempt += 1


def in_warehouse(venue: ExecutionAdapter | None) -> bool:
    """Whether ``venue`` keeps its state in the warehouse (see ``ExecutionAdapter``)."""
    return bool(getattr(venue, "in_warehouse", False))


class RiskRefused(Exception):
    """Risk refused an order before anything was sent; ``order`` is stored ``denied``."""

    def __init__(self, decision: RiskDecision, order: Order):
        super().__init__("; ".join(decision.codes))
        self.decision, self.order = decision, order


class Executor:
    """Places orders through one of ``adapters`` after the risk guard, and stores everything."""

    def __init__(self, url: str, guard: RiskGuard, adapters: Mapping[str, ExecutionAdapter]):
        self.url, self.guard, self.adapters = url, guard, dict(adapters)

    def check(self, request: OrderRequest, price: float, now: datetime, *, adapter: str = "paper",
              model: ModelStanding | None = None, book: StrategyBook | None = None) -> RiskDecision:
        return self.guard.check(request, price, now, adapter=adapter, model=model, book=book)

    def deny(self, request: OrderRequest, adapter: str, decision: RiskDecision, now: datetime, *,
             model_version: str | None = None, snapshot_id: int | None = None) -> Order:
        """Store ``request`` as ``denied`` with the violation codes (idempotent by client_order_id)."""
        venue = self.adapters[adapter].venue if adapter in self.adapters else adapter
        order = transition(new_order(request, adapter, venue, now, model_version=model_version,
                                     snapshot_id=snapshot_id), OrderStatus.DENIED, now, "; ".join(decision.codes))
        return store.create_order(self.url, order)  # the stored one when the key was taken meanwhile

    def submit(self, request: OrderRequest, adapter: str, price: float, now: datetime, *,
               model_version: str | None = None, snapshot_id: int | None = None,
               decision: RiskDecision | None = None, key_is_new: bool = False,
               model: ModelStanding | None = None, book: StrategyBook | None = None) -> Order:
        """Risk check (unless ``decision`` is the check already made), then the venue. Returns the
        stored order (the existing one for a repeated ``client_order_id``; ``key_is_new``: the
        caller has just looked the key up and found none). ``model``: the version whose forecast
        placed the order, with its skill verdict (None: no model did). ``book``: the strategy's
        figures held by the caller (decided on, and given the order's fills). Raises
        :class:`RiskRefused` (order stored denied) or ``VenueUnavailable`` (order stays submitted)."""
        if not key_is_new:
            existing = store.get_order_by_client_id(self.url, request.client_order_id)
            if existing is not None:
                return existing
        venue = self.adapters[adapter]
        if decision is None and book is not None:
            book.reload_controls()  # a kill switch triggered since the run began stops this order
        decision = decision or self.check(request, price, now, adapter=adapter, model=model, book=book)
        if not decision.allowed:
            raise RiskRefused(decision, self.deny(request, adapter, decision, now, model_version=model_version,
                                                  snapshot_id=snapshot_id))
        # Stored as submitted (initialized -> submitted, both in its lifecycle) before the venue
        # hears of it: a crash after this leaves an order that refresh reconciles, never a lost one.
        # A venue in the warehouse (paper) answers inside the same transaction: all or nothing.
        order = transition(new_order(request, venue.name, venue.venue, now, model_version=model_version,
                                     snapshot_id=snapshot_id), OrderStatus.SUBMITTED, now, f"sent to {venue.name}")
        with unit_of_work(self.url) if in_warehouse(venue) else nullcontext():
            stored = store.create_order(self.url, order)
            if stored.order_id != order.order_id:  # a concurrent request with the same key won
                return stored
            report = venue.submit(request, now)  # VenueUnavailable propagates: the order stays submitted
            saved = store.save_order(self.url, apply_report(stored, report, now), created=stored)
        if book is not None:
            book.add_fills(saved)
        return saved

    def _reconcile(self, order: Order, now: datetime) -> Order:
        """An order a timeout left ``submitted`` with no venue id: the venue may have taken it. Send
        the same request again: both venues key on ``client_order_id`` and answer with the order
        they already hold (or take it now), so this never places a second one."""
        report = self.adapters[order.adapter].submit(order.request, now)
        return store.save_order(self.url, apply_report(order, report, now))

    def refresh(self, order: Order, now: datetime) -> Order:
        """Ask the venue about an open order (a resting GTC, or one left ``submitted`` by a timeout)."""
        if order.is_terminal or order.adapter not in self.adapters:
            return order
        if order.venue_order_id is None:
            return self._reconcile(order, now)
        report = self.adapters[order.adapter].get(order.venue_order_id, now)
        return store.save_order(self.url, apply_report(order, report, now))

    def cancel(self, order: Order, now: datetime) -> Order:
        """Cancel an open order (allowed in every trading state: it takes risk off). One with no
        venue id is reconciled first: canceling it only locally could lose a fill the venue made."""
        if order.is_terminal:
            return order
        if order.venue_order_id is None:
            order = self._reconcile(order, now)
            if order.is_terminal or order.venue_order_id is None:
                return order
        report = self.adapters[order.adapter].cancel(order.venue_order_id, now)
        return store.save_order(self.url, apply_report(order, report, now))


def record_decision(url: str, row: dict[str, Any]) -> str:
    """Append one ``execution_decisions`` row; returns its id."""
    decision_id = str(row.get("decision_id") or uuid.uuid4())
    with transaction(url) as conn:
        conn.execute(tables.execution_decisions.insert(), {**row, "decision_id": decision_id})  # compiled once
    return decision_id


__all__ = ["Executor", "ForecastHour", "Plan", "RiskRefused", "VenueUnavailable",
           "forecast_history", "hourly_window", "in_warehouse", "order_key", "plan_target", "record_decision"]
