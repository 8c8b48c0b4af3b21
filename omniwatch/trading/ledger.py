"""The ledger: fills and funding payments -> positions -> PnL, as pure functions over rows, plus
thin warehouse readers for the figures the risk guard and execution ask for.

Conventions (also in the README):
- a position is signed base quantity; its ``avg_price`` is the volume-weighted entry price of
  the open quantity (unchanged by reductions, reset by a flip to the flipping fill's price);
- realised PnL is price PnL only (``closed qty * (exit - avg_price) * sign``); slippage is already
  in the fill price, so ``slippage_cost`` is kept for attribution and never subtracted again;
- ``net`` = realised - fees - funding (funding paid is positive); marked PnL adds
  ``qty * (mark - avg_price)``;
- a round trip (closed trade) runs from a flat position to the next flat or sign flip; its PnL is
  its realised price PnL minus its fees and funding. A flipping fill's fee is split between the
  trade it closes and the one it opens in proportion to quantity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import reading

EPS = 1e-12


@dataclass(frozen=True)
class LedgerFill:
    ts: datetime
    symbol: str
    side: str           # buy | sell
    qty: float          # > 0
    price: float
    fee: float = 0.0
    slippage_cost: float = 0.0   # quote currency, adverse positive


@dataclass(frozen=True)
class FundingPayment:
    ts: datetime
    symbol: str
    amount: float       # quote currency the position paid (negative when it received)


LedgerEvent = LedgerFill | FundingPayment


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: float = 0.0
    avg_price: float | None = None
    realized_pnl: float = 0.0    # cumulative price PnL of closed quantity
    fees: float = 0.0            # cumulative
    funding: float = 0.0         # cumulative paid
    slippage_cost: float = 0.0   # cumulative, informational (already in fill prices)
    trade_pnl: float = 0.0       # net PnL of the open round trip so far (realised part only)
    trade_opened_at: datetime | None = None
    as_of: datetime | None = None

    @property
    def net_realized(self) -> float:
        return self.realized_pnl - self.fees - self.funding

    def unrealized(self, mark: float) -> float:
        return self.qty * (mark - self.avg_price) if self.qty and self.avg_price is not None else 0.0

    def equity(self, mark: float | None) -> float:
        """Net realised plus marked PnL; a flat position needs no mark."""
        if abs(self.qty) <= EPS:
            return self.net_realized
        if mark is None:
            raise ValueError(f"no mark for the open {self.symbol} position")
        return self.net_realized + self.unrealized(mark)


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    opened_at: datetime
    closed_at: datetime
    pnl: float


def _order(events: Iterable[LedgerEvent]) -> list[LedgerEvent]:
    # Fills before funding at the same instant: funding is charged on the position held then.
    return sorted(events, key=lambda e: (e.ts, 1 if isinstance(e, FundingPayment) else 0))


def apply_fill(pos: Position, fill: LedgerFill) -> tuple[Position, ClosedTrade | None]:
    """The position after one fill, and the round trip it closed, if any."""
    signed = fill.qty if fill.side == "buy" else -fill.qty
    old = pos.qty
    base = replace(pos, fees=pos.fees + fill.fee, slippage_cost=pos.slippage_cost + fill.slippage_cost,
                   as_of=fill.ts)
    if abs(old) <= EPS or (old > 0) == (signed > 0):   # open or add
        new_qty = old + signed
        cost = abs(old) * (pos.avg_price or 0.0) + fill.qty * fill.price
        avg = fill.price if abs(old) <= EPS else cost / abs(new_qty)
        opened = fill.ts if abs(old) <= EPS else pos.trade_opened_at
        return replace(base, qty=new_qty, avg_price=avg, trade_pnl=pos.trade_pnl - fill.fee,
                       trade_opened_at=opened), None
    closed_qty = min(abs(old), fill.qty)
    realized = closed_qty * (fill.price - (pos.avg_price or 0.0)) * (1 if old > 0 else -1)
    close_fee = fill.fee * closed_qty / fill.qty
    trade_pnl = pos.trade_pnl + realized - close_fee
    new_qty = old + signed
    base = replace(base, realized_pnl=pos.realized_pnl + realized)
    if abs(new_qty) <= EPS * max(1.0, abs(old)):                      # back to flat
        trade = ClosedTrade(fill.symbol, pos.trade_opened_at or fill.ts, fill.ts, trade_pnl)
        return replace(base, qty=0.0, avg_price=None, trade_pnl=0.0, trade_opened_at=None), trade
    if (new_qty > 0) == (old > 0):                                     # partial reduce
        return replace(base, qty=new_qty, trade_pnl=trade_pnl), None
    trade = ClosedTrade(fill.symbol, pos.trade_opened_at or fill.ts, fill.ts, trade_pnl)   # flip
    return replace(base, qty=new_qty, avg_price=fill.price, trade_pnl=-(fill.fee - close_fee),
                   trade_opened_at=fill.ts), trade


def apply_funding(pos: Position, payment: FundingPayment) -> Position:
    return replace(pos, funding=pos.funding + payment.amount, trade_pnl=pos.trade_pnl - payment.amount,
                   as_of=payment.ts)


def replay(events: Iterable[LedgerEvent]) -> tuple[dict[str, Position], list[ClosedTrade]]:
    """Positions by symbol and the closed round trips (in time order) after ``events``."""
    book: dict[str, Position] = {}
    trades: list[ClosedTrade] = []
    for event in _order(events):
        pos = book.get(event.symbol, Position(event.symbol))
        if isinstance(event, FundingPayment):
            book[event.symbol] = apply_funding(pos, event)
            continue
        book[event.symbol], trade = apply_fill(pos, event)
        if trade is not None:
            trades.append(trade)
    return book, trades


def equity(book: Mapping[str, Position], marks: Mapping[str, float]) -> float:
    return math.fsum(p.equity(marks.get(s)) for s, p in book.items())


def day_pnl_of(events: Iterable[LedgerEvent], day: date, start_marks: Mapping[str, float],
               end_marks: Mapping[str, float]) -> float:
    """PnL of the UTC calendar ``day``: equity after the day's events at ``end_marks`` minus equity
    at 00:00 at ``start_marks``. That is the realised PnL of the day's fills, after their fees, plus
    the day's funding, plus the change of the open positions' marked PnL since midnight."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    ordered = _order(events)
    before, _ = replay(e for e in ordered if e.ts < start)
    after, _ = replay(e for e in ordered if e.ts < end)
    return equity(after, end_marks) - equity(before, start_marks)


# ----------------------------------------------------------------------------- warehouse readers
def load_events(url: str, track: str, strategy_id: str, until: datetime | None = None) -> list[LedgerEvent]:
    """Fills and funding payments of one strategy up to ``until`` (inclusive), oldest first."""
    with reading(url) as conn:
        return read_events(conn, track, strategy_id, until)


# The ledger's order of fills: time, then the order they were stored in (``created_at``, stamped
# with microseconds when a fill is written), so two orders filled at one instant (every order of a
# replayed hour shares its clock) are applied as they were executed.
FILL_ORDER = (tables.fills.c.ts, tables.fills.c.created_at, tables.fills.c.fill_id)


def position_after_order(conn: Connection, track: str, strategy_id: str, symbol: str,
                         order_id: str) -> Position | None:
    """The symbol's position right after ``order_id``'s last fill: every fill up to and including
    it in ledger order, funding charged before that instant (None when the order has no fill).
    Not the position as of the fill's time, which holds later orders filled at the same instant."""
    f, p = tables.fills, tables.funding_payments
    rows = conn.execute(select(f.c.order_id, f.c.ts, f.c.symbol, f.c.side, f.c.qty, f.c.price, f.c.fee,
                               f.c.slippage_bps).where(f.c.track == track, f.c.strategy_id == strategy_id,
                                                       f.c.symbol == symbol).order_by(*FILL_ORDER)).all()
    last = max((i for i, r in enumerate(rows) if r.order_id == order_id), default=None)
    if last is None:
        return None
    at = rows[last].ts
    events: list[LedgerEvent] = [
        LedgerFill(r.ts, r.symbol, r.side, r.qty, r.price, r.fee, slippage_cost(r.side, r.qty, r.price, r.slippage_bps))
        for r in rows[:last + 1]]
    events += [FundingPayment(r.funding_time, r.symbol, r.amount) for r in conn.execute(
        select(p.c.funding_time, p.c.symbol, p.c.amount).where(
            p.c.track == track, p.c.strategy_id == strategy_id, p.c.symbol == symbol, p.c.funding_time < at)
        .order_by(p.c.funding_time))]
    book, _ = replay(events)
    return book.get(symbol, Position(symbol))


def read_events(conn: Connection, track: str, strategy_id: str, until: datetime | None = None,
                symbols: Iterable[str] | None = None) -> list[LedgerEvent]:
    """:func:`load_events` on an open connection (so a writer sees its own uncommitted fills)."""
    fq, pq = _events_queries(until is not None, symbols is not None)
    params: dict[str, Any] = {"track": track, "strategy_id": strategy_id}
    if until is not None:
        params["until"] = until
    if symbols is not None:
        params["symbols"] = sorted(set(symbols))
    events: list[LedgerEvent] = [
        LedgerFill(r.ts, r.symbol, r.side, r.qty, r.price, r.fee, slippage_cost(r.side, r.qty, r.price, r.slippage_bps))
        for r in conn.execute(fq, params)]
    events += [FundingPayment(r.funding_time, r.symbol, r.amount) for r in conn.execute(pq, params)]
    return _order(events)


@cache
def _events_queries(until: bool, symbols: bool) -> tuple[Select[Any], Select[Any]]:
    """The fills and funding reads of :func:`read_events` (``until``, ``symbols``: bounded by those
    parameters), built once per shape with bound parameters: the execution path reads them for
    every order, and building them anew cost more than running them."""
    f, p = tables.fills, tables.funding_payments
    fq = select(f.c.ts, f.c.symbol, f.c.side, f.c.qty, f.c.price, f.c.fee, f.c.slippage_bps).where(
        f.c.track == bindparam("track"), f.c.strategy_id == bindparam("strategy_id"))
    pq = select(p.c.funding_time, p.c.symbol, p.c.amount).where(
        p.c.track == bindparam("track"), p.c.strategy_id == bindparam("strategy_id"))
    if until:
        fq = fq.where(f.c.ts <= bindparam("until"))
        pq = pq.where(p.c.funding_time <= bindparam("until"))
    if symbols:
        fq = fq.where(f.c.symbol.in_(bindparam("symbols", expanding=True)))
        pq = pq.where(p.c.symbol.in_(bindparam("symbols", expanding=True)))
    return fq.order_by(*FILL_ORDER), pq.order_by(p.c.funding_time)


def slippage_cost(side: str, qty: float, price: float, slippage_bps: float | None) -> float:
    """Quote currency lost to slippage (adverse positive): the fill's quantity at the order's
    reference price times the slippage, the reference recovered from the price and its bps."""
    if slippage_bps is None:
        return 0.0
    sign = 1 if side == "buy" else -1
    reference = price / (1 + sign * slippage_bps / 1e4)
    return qty * reference * slippage_bps / 1e4


def latest_closes(url: str, symbols: Iterable[str], at: datetime) -> dict[str, float]:
    """The close of each symbol's newest bar available at ``at`` (point in time)."""
    with reading(url) as conn:
        return read_latest_closes(conn, symbols, at)


def read_latest_closes(conn: Connection, symbols: Iterable[str], at: datetime) -> dict[str, float]:
    """:func:`latest_closes` on an open connection."""
    out: dict[str, float] = {}
    for symbol in sorted(set(symbols)):
        close = _latest_close(conn, symbol, at)
        if close is not None:
            out[symbol] = close
    return out


def _latest_close(conn: Connection, symbol: str, at: datetime) -> float | None:
    row = conn.execute(_latest_close_query(), {"symbol": symbol, "at": at}).first()
    return float(row.close) if row is not None else None


@cache
def _latest_close_query() -> Select[Any]:
    b = tables.market_bars
    return (select(b.c.close).where(b.c.symbol == bindparam("symbol"), b.c.available_time <= bindparam("at"))
            .order_by(b.c.available_time.desc(), b.c.event_time.desc()).limit(1))


def positions(url: str, track: str, strategy_id: str) -> dict[str, Position]:
    """Every symbol the strategy has traded -> its position now (flat ones included, qty 0)."""
    book, _ = replay(load_events(url, track, strategy_id))
    return book


def closed_trade_pnls(url: str, track: str, strategy_id: str) -> list[tuple[datetime, float]]:
    """Each round trip (position back to 0 or flipped) as (close time, PnL after costs), oldest first."""
    _, trades = replay(load_events(url, track, strategy_id))
    return [(t.closed_at, t.pnl) for t in trades]


def day_pnl(url: str, track: str, strategy_id: str, day: date, marks: dict[str, float]) -> float:
    """The UTC calendar day's PnL after costs (see :func:`day_pnl_of`). ``marks`` price the
    positions open at the end of the window (now, for today); positions open at midnight are
    priced at the newest bar close available then (their entry price when no bar is stored). A
    symbol open at the end without a mark is priced at its newest close available then (now, or the
    day's end for a past day); with none, ValueError names it."""
    with reading(url) as conn:
        return read_day_pnl(conn, read_events(conn, track, strategy_id), day, marks)


def read_day_pnl(conn: Connection, events: Iterable[LedgerEvent], day: date, marks: dict[str, float]) -> float:
    """:func:`day_pnl` over ``events`` (the strategy's, any span: those after the day are left
    out) on an open connection, which prices the marks that ``marks`` lacks."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    events = [e for e in events if e.ts < end]
    start_marks = read_day_start_marks(conn, events, day)
    after, _ = replay(events)
    missing = [s for s, p in after.items() if abs(p.qty) > EPS and s not in marks]
    end_marks = {**read_latest_closes(conn, missing, min(datetime.now(UTC), end)), **marks}
    return day_pnl_of(events, day, start_marks, end_marks)


def read_day_start_marks(conn: Connection, events: Iterable[LedgerEvent], day: date) -> dict[str, float]:
    """The prices of the positions open at 00:00 UTC of ``day`` (after ``events`` before it): the
    newest bar close available then, else the entry price. They do not change with what happens
    during the day, so a caller deciding several times in one day reads them once."""
    start = datetime.combine(day, time(), UTC)
    before, _ = replay(e for e in events if e.ts < start)
    open_before = [s for s, p in before.items() if abs(p.qty) > EPS]
    marks = {s: before[s].avg_price or 0.0 for s in open_before}
    marks.update(read_latest_closes(conn, open_before, start))
    return marks
