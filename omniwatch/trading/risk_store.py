"""The risk guard: persisted kill switches and breakers, the ledger's figures, and the audit.

``RiskGuard.check`` is what execution calls before an order leaves: it reads the switches and
breaker marks from ``risk_controls``, the positions, day PnL and closed trades from the ledger,
decides with :func:`omniwatch.trading.risk.check_order` and appends one ``risk_events`` row per
violation of a refused order (code, and in ``detail`` the metric, the threshold and the order).
Everything lives in the warehouse, so a restarted process, or another one, decides the same.

``risk_controls`` is append only; a control's state is its latest row:

- ``kill_switch``: ``trigger`` / ``reset`` rows, keyed (the API key's name is the actor);
- ``daily_loss``: a ``trip`` row (actor ``system``) the first time a check sees the day's loss
  past the limit; it holds REDUCING for that UTC day of the decision clock, even if marks recover;
- ``consecutive_loss``: keyed ``reset`` rows; each remembers the close time of the newest round
  trip at the reset, and only trades closed after it count (a clock-independent cut, so a reset
  made on the wall clock works in a replay too).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from omniwatch.jsonsafe import json_safe
from omniwatch.trading import ledger
from omniwatch.trading.orders import Order, OrderRequest
from omniwatch.trading.risk import (
    ALL_STRATEGIES,
    EPS,
    BreakerState,
    KillSwitch,
    ModelStanding,
    RiskContext,
    RiskDecision,
    RiskLimits,
    RiskSettings,
    TradingState,
    check_order,
    consecutive_losses,
    daily_loss_exceeded,
    daily_loss_limit,
    trading_state,
)
from omniwatch.trading.store import slippage_bps
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import reading, transaction

SYSTEM_ACTOR = "system"
KILL_SWITCH, DAILY_LOSS, CONSECUTIVE_LOSS = "kill_switch", "daily_loss", "consecutive_loss"
TRIGGER, RESET, TRIP = "trigger", "reset", "trip"


@dataclass(frozen=True)
class BreakerStatus:
    """Where one strategy stands: its state, what drives it, and the figures behind the breakers."""

    track: str
    strategy_id: str
    state: TradingState
    as_of: datetime
    kill_switches: tuple[KillSwitch, ...]
    day_pnl: float
    daily_loss_limit_usd: float
    daily_loss_tripped: bool
    consecutive_losses: int
    max_consecutive_losses: int
    consecutive_reset_at: datetime | None
    consecutive_reset_by: str | None


@dataclass(frozen=True)
class Figures:
    context: RiskContext
    breakers: BreakerState
    reset: dict[str, Any] | None


@dataclass
class StrategyBook:
    """One strategy's ledger events, risk controls and marks, read once (:meth:`RiskGuard.book`) by
    a caller that holds the strategy's lock (``omniwatch.trading.locks``: every writer of its fills
    and funding holds it), so nothing else moves its ledger meanwhile. A run decides each of its
    orders on it and adds the fills it makes (:meth:`add_fills`) instead of reading the ledger
    again; the figures are those a fresh read would give (tested). The controls (kill switches,
    resets), whose writers do not hold the lock, are read again before each order is sent
    (:meth:`reload_controls`)."""

    guard: RiskGuard
    track: str
    strategy_id: str
    now: datetime
    events: list[ledger.LedgerEvent]
    controls: list[dict[str, Any]]
    closes: dict[str, float]            # newest close available at ``now``, by symbol read
    start_marks: dict[str, float]       # the positions open at the day's start, priced then
    _added: set[tuple[str, str]] = field(default_factory=set)

    def reload_controls(self) -> None:
        """Read the strategy's controls again. Their writers (a keyed kill switch trigger, from any
        process) do not take the strategy's lock: an order is checked against the switches as
        they are when it is sent, not as they were when its run began."""
        with reading(self.guard.url) as conn:
            self.controls = RiskGuard._controls(conn, self.track, self.strategy_id)

    def positions(self) -> dict[str, ledger.Position]:
        book, _ = ledger.replay(self.events)
        return book

    def add_fills(self, order: Order) -> None:
        """The order's fills not yet in the book (each once, by venue fill id), as the ledger reads
        them back from ``fills``."""
        r = order.request
        new = [f for f in order.fills if (order.order_id, f.venue_fill_id) not in self._added]
        for f in new:
            self._added.add((order.order_id, f.venue_fill_id))
            bps = slippage_bps(r.side, f.price, order.reference_price)
            self.events.append(ledger.LedgerFill(f.ts, r.symbol, r.side, f.qty, f.price, f.fee,
                                                 ledger.slippage_cost(r.side, f.qty, f.price, bps)))

    def figures(self, prices: Mapping[str, float]) -> Figures:
        """What a decision reads: positions, marks (the newest close now, the entry price without a
        bar; ``prices`` value their own symbols' exposure only), the day's PnL, the closed trades
        since the last consecutive-loss reset, the kill switches and the day's loss trip."""
        book, closed = ledger.replay(self.events)
        held = {s: p.qty for s, p in book.items() if abs(p.qty) > EPS}
        unread = [s for s in held if s not in self.closes]
        if unread:  # a symbol this book's reads did not price (opened by a fill added since)
            self.closes.update(ledger.latest_closes(self.guard.url, unread, self.now))
        # The day's PnL marks at the newest close available at ``now`` (the entry price without a
        # bar), never at the order's price: a limit price far from the market must not trip the
        # daily loss. The order's price values its own symbol's exposure only.
        marks = {s: p.avg_price for s, p in book.items() if s in held and p.avg_price is not None}
        marks.update({s: self.closes[s] for s in held if s in self.closes})
        start, end = _day(self.now)
        pnl = ledger.day_pnl_of([e for e in self.events if e.ts < end], start.date(), self.start_marks,
                                {s: marks[s] for s in held})
        marks.update(prices)
        controls, strategy_id = self.controls, self.strategy_id
        resets = [r for r in controls if r["strategy_id"] == strategy_id and r["control"] == CONSECUTIVE_LOSS]
        reset = resets[-1] if resets else None
        cut = datetime.fromisoformat(reset["detail"]["last_trade_at"]) if reset and reset["detail"].get(
            "last_trade_at") else None
        trades = [t.pnl for t in closed if cut is None or t.closed_at > cut]
        context = RiskContext(positions=held, marks=marks, day_pnl=pnl, closed_trade_pnls=tuple(trades))
        switches = [RiskGuard._switch(self.track, s, [r for r in controls if r["strategy_id"] == s
                                                      and r["control"] == KILL_SWITCH])
                    for s in dict.fromkeys((strategy_id, ALL_STRATEGIES))]
        tripped = any(r["strategy_id"] == strategy_id and r["control"] == DAILY_LOSS and r["action"] == TRIP
                      and start <= r["as_of"] < end for r in controls)
        breakers = BreakerState(kill_switches=tuple(k for k in switches if k.triggered), daily_loss_tripped=tripped)
        return Figures(context, breakers, reset)


TRADED_MODEL = "omniwatch-liquid"  # the model whose forecasts place orders (execution/run)


def model_standing(url: str, model_name: str, version: str, horizon: str) -> ModelStanding:
    """The skill verdict of ``model_name`` v``version`` at ``horizon`` from its registry row
    (``omniwatch.modelops.skill``); a version the warehouse does not know has demonstrated
    nothing (``registered`` False). A database error propagates: it must never read as either
    verdict."""
    from omniwatch.modelops.skill import skill_of

    r = tables.model_registry.c
    with reading(url) as conn:
        row = conn.execute(select(r.metrics).where(r.model_name == model_name, r.version == str(version))).first()
    if row is None:
        return ModelStanding(model_name, str(version), horizon, False, f"v{version} is not in the model registry",
                             registered=False)
    verdict = skill_of(row.metrics).at(horizon)
    return ModelStanding(model_name, str(version), horizon, verdict.demonstrated, verdict.reason)


@cache
def _controls_query() -> Select[Any]:
    """The ``risk_controls`` rows of a track's scopes, oldest first (built once: read before every
    order sent)."""
    c = tables.risk_controls.c
    return (select(tables.risk_controls).where(c.track == bindparam("track"),
                                               c.strategy_id.in_(bindparam("scopes", expanding=True)))
            .order_by(c.id))


def _day(now: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    return start, start + timedelta(days=1)


class RiskGuard:
    """Risk decisions for orders, over one warehouse (thread-safe: it keeps no state of its own)."""

    def __init__(self, url: str, settings: RiskSettings):
        self.url, self.settings = url, settings

    def limits(self, track: str, strategy_id: str) -> RiskLimits:
        return self.settings.limits_for(track, strategy_id)

    # ------------------------------------------------------------------ decisions
    def check(self, order: OrderRequest, price: float, now: datetime, *, record: bool = True,
              adapter: str = "paper", model: ModelStanding | None = None,
              book: StrategyBook | None = None) -> RiskDecision:
        """The decision for ``order`` at ``price`` and the decision clock ``now``, sent through
        ``adapter`` for the forecast of ``model`` (None: no model placed it). With ``record``
        (execution), a refusal appends its ``risk_events`` rows and a newly passed daily-loss limit
        its trip; without it (``risk/check``, a what-if) nothing is written. ``book``: the
        strategy's figures read once by a caller holding its lock (a run's orders), else read now."""
        limits = self.limits(order.track, order.strategy_id)
        if book is None:
            book = self.book(order.track, order.strategy_id, now)
        elif (book.track, book.strategy_id, book.now) != (order.track, order.strategy_id, now):
            raise ValueError(f"the book of {book.track}:{book.strategy_id} at {book.now.isoformat()} cannot decide "
                             f"an order of {order.track}:{order.strategy_id} at {now.isoformat()}")
        figures = book.figures({order.symbol: price})
        decision = check_order(order, price, figures.context, limits, figures.breakers, adapter=adapter, model=model)
        if record:
            trip = self._record(order, decision, figures, limits, now)
            if trip is not None:
                book.controls.append(trip)
        return decision

    def book(self, track: str, strategy_id: str, now: datetime,
             closes: Mapping[str, float] | None = None) -> StrategyBook:
        """Everything a decision reads, on one connection: the strategy's ledger events (once: its
        positions, closed trades and day PnL all come from them), its controls, the marks of its
        open positions now and at the day's start. ``closes``: the newest closes at ``now`` the
        caller has read already (execution/run prices its targets with them)."""
        with reading(self.url) as conn:
            events = ledger.read_events(conn, track, strategy_id)
            controls = self._controls(conn, track, strategy_id)
            book, _ = ledger.replay(events)
            known = dict(closes or {})
            held = [s for s, p in book.items() if abs(p.qty) > EPS and s not in known]
            known.update(ledger.read_latest_closes(conn, held, now))
            start_marks = ledger.read_day_start_marks(conn, events, now.astimezone(UTC).date())
        return StrategyBook(self, track, strategy_id, now, events, controls, known, start_marks)

    def _figures(self, track: str, strategy_id: str, now: datetime, prices: dict[str, float]) -> Figures:
        return self.book(track, strategy_id, now).figures(prices)

    @staticmethod
    def _controls(conn: Connection, track: str, strategy_id: str) -> list[dict[str, Any]]:
        """The ``risk_controls`` rows of the strategy and of its track-wide scope, oldest first."""
        return [dict(r) for r in conn.execute(_controls_query(), {"track": track,
                                                                  "scopes": sorted({strategy_id, ALL_STRATEGIES})})
                .mappings()]

    def _record(self, order: OrderRequest, decision: RiskDecision, figures: Figures, limits: RiskLimits,
                now: datetime) -> dict[str, Any] | None:
        """Append the refusal's ``risk_events`` and a newly passed daily-loss limit's trip; returns the
        trip's ``risk_controls`` row, if one was written."""
        trip = not figures.breakers.daily_loss_tripped and daily_loss_exceeded(figures.context.day_pnl, limits)
        trip_row = None
        block = str(uuid.uuid4())
        order_detail = {"client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side,
                        "qty": order.qty, "price": decision.price, "notional": decision.notional,
                        "order_type": order.order_type, "signal_id": order.signal_id,
                        "decision_id": order.decision_id}
        with transaction(self.url) as conn:
            if trip:
                trip_row = dict(
                    track=order.track, strategy_id=order.strategy_id, control=DAILY_LOSS, action=TRIP,
                    actor=SYSTEM_ACTOR, reason=f"day PnL {figures.context.day_pnl:.2f} USD passed the "
                                               f"{daily_loss_limit(limits):.2f} USD limit",
                    detail=json_safe({"day": now.astimezone(UTC).date(), "day_pnl": figures.context.day_pnl,
                                      "limit_usd": daily_loss_limit(limits)}),
                    as_of=now)
                conn.execute(tables.risk_controls.insert().values(trip_row))
            if decision.allowed:
                return trip_row
            conn.execute(tables.risk_events.insert(), [dict(
                track=order.track, strategy_id=order.strategy_id, code=v.code,
                detail=json_safe({"block_id": block, "as_of": now, "rule": v.rule, "scope": v.strategy_id,
                                  "message": v.message, "value": v.value, "threshold": v.threshold, **v.detail,
                                  "state": decision.state, "order": order_detail}))
                for v in decision.violations])
        return trip_row

    def status(self, track: str, strategy_id: str, now: datetime) -> BreakerStatus:
        """The strategy's state now, with every figure behind it (nothing written)."""
        limits = self.limits(track, strategy_id)
        figures = self._figures(track, strategy_id, now, {})
        ctx, breakers = figures.context, figures.breakers
        daily = breakers.daily_loss_tripped or daily_loss_exceeded(ctx.day_pnl, limits)
        losses = consecutive_losses(ctx.closed_trade_pnls)
        reset = figures.reset
        return BreakerStatus(
            track, strategy_id,
            trading_state(bool(breakers.kill_switches), daily, losses >= limits.max_consecutive_losses), now,
            breakers.kill_switches, ctx.day_pnl, daily_loss_limit(limits), daily, losses,
            limits.max_consecutive_losses, reset["as_of"] if reset else None, reset["actor"] if reset else None)

    # ------------------------------------------------------------------ controls
    def _append(self, track: str, strategy_id: str, control: str, action: str, actor: str, reason: str,
                now: datetime, detail: dict[str, Any] | None = None) -> None:
        with transaction(self.url) as conn:
            conn.execute(tables.risk_controls.insert().values(
                track=track, strategy_id=strategy_id, control=control, action=action, actor=actor,
                reason=reason, detail=json_safe(detail or {}), as_of=now))

    def trigger_kill_switch(self, track: str, strategy_id: str, actor: str, reason: str, now: datetime) -> KillSwitch:
        """Halt ``track:strategy_id`` (``*``: every strategy of the track); audited, even if already on."""
        self._append(track, strategy_id, KILL_SWITCH, TRIGGER, actor, reason, now)
        return self.kill_switch(track, strategy_id)

    def reset_kill_switch(self, track: str, strategy_id: str, actor: str, reason: str, now: datetime) -> KillSwitch:
        """Release the switch (a track-wide one does not release a strategy's own); audited."""
        self._append(track, strategy_id, KILL_SWITCH, RESET, actor, reason, now)
        return self.kill_switch(track, strategy_id)

    def kill_switch(self, track: str, strategy_id: str) -> KillSwitch:
        return self._switch(track, strategy_id, self._rows(track, strategy_id))

    def kill_switches(self, track: str | None = None) -> list[KillSwitch]:
        """Every switch ever set (triggered or reset), in track and strategy order."""
        rows = self._rows(track)
        keys = sorted({(r["track"], r["strategy_id"]) for r in rows})
        return [self._switch(t, s, [r for r in rows if (r["track"], r["strategy_id"]) == (t, s)]) for t, s in keys]

    def _rows(self, track: str | None, strategy_id: str | None = None) -> list[dict[str, Any]]:
        c = tables.risk_controls.c
        query = select(tables.risk_controls).where(c.control == KILL_SWITCH)
        if track is not None:
            query = query.where(c.track == track)
        if strategy_id is not None:
            query = query.where(c.strategy_id == strategy_id)
        with reading(self.url) as conn:
            return [dict(r) for r in conn.execute(query.order_by(c.id)).mappings()]

    @staticmethod
    def _switch(track: str, strategy_id: str, rows: list[dict[str, Any]]) -> KillSwitch:
        triggers = [r for r in rows if r["action"] == TRIGGER]
        resets = [r for r in rows if r["action"] == RESET]
        on = bool(rows) and rows[-1]["action"] == TRIGGER
        last_trigger = triggers[-1] if triggers else None
        last_reset = resets[-1] if resets else None
        return KillSwitch(
            track=track, strategy_id=strategy_id, triggered=on,
            triggered_by=last_trigger["actor"] if last_trigger else None,
            triggered_at=last_trigger["created_at"] if last_trigger else None,
            reason=(last_trigger or {}).get("reason") if on else (last_reset or last_trigger or {}).get("reason"),
            reset_by=last_reset["actor"] if last_reset else None,
            reset_at=last_reset["created_at"] if last_reset else None)

    def reset_consecutive_losses(self, track: str, strategy_id: str, actor: str, reason: str,
                                 now: datetime) -> BreakerStatus:
        """Keyed reset of the consecutive-loss breaker: trades closed so far stop counting."""
        trades = ledger.closed_trade_pnls(self.url, track, strategy_id)
        before = self.status(track, strategy_id, now)
        self._append(track, strategy_id, CONSECUTIVE_LOSS, RESET, actor, reason, now,
                     {"last_trade_at": trades[-1][0] if trades else None,
                      "consecutive_losses_before": before.consecutive_losses})
        return self.status(track, strategy_id, now)

    def events(self, track: str, strategy_id: str) -> list[dict[str, Any]]:
        """The ``risk_events`` rows of a strategy, oldest first (what its blocks wrote)."""
        e = tables.risk_events.c
        query = select(tables.risk_events).where(e.track == track, e.strategy_id == strategy_id)
        with reading(self.url) as conn:
            return [dict(r) for r in conn.execute(query.order_by(e.id)).mappings()]
