"""Point-in-time market data for the paper venue: L2 books, bars, funding rates.

Every reader takes the time it answers for and uses only rows with ``available_time`` at or
before it, so a paper fill never sees data it could not have had. Ties are broken by venue name,
so the same rows always give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, lambda_stmt, select
from sqlalchemy.sql.lambdas import StatementLambdaElement

from omniwatch.warehouse import tables

Level = tuple[float, float]   # (price, size)


@dataclass(frozen=True)
class Book:
    ts: datetime                  # when it became available
    bids: tuple[Level, ...]       # best (highest) first
    asks: tuple[Level, ...]       # best (lowest) first

    @property
    def mid(self) -> float | None:
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2
        if self.bids or self.asks:
            return (self.bids or self.asks)[0][0]
        return None

    def opposite(self, side: str) -> tuple[Level, ...]:
        """The levels an order of ``side`` takes from, best first."""
        return self.asks if side == "buy" else self.bids


@dataclass(frozen=True)
class Bar:
    ts: datetime                  # available_time (the bar's close)
    low: float
    high: float
    close: float


def _book_at(conn: Connection, symbol: str, venue: str, event_time: datetime, available: datetime) -> Book:
    t = tables.orderbook_l2
    rows = conn.execute(lambda_stmt(lambda: select(t.c.side, t.c.level, t.c.price, t.c.size).where(
        t.c.symbol == symbol, t.c.venue == venue, t.c.event_time == event_time).order_by(t.c.side, t.c.level))).all()
    bids = sorted(((r.price, r.size) for r in rows if r.side == "bid" and r.size > 0), key=lambda lv: -lv[0])
    asks = sorted(((r.price, r.size) for r in rows if r.side == "ask" and r.size > 0), key=lambda lv: lv[0])
    return Book(available, tuple(bids), tuple(asks))


def latest_book(conn: Connection, symbol: str, now: datetime, oldest: datetime) -> Book | None:
    """The newest book available at ``now`` and not older than ``oldest``; None if there is none
    or its side lists are both empty."""
    t = tables.orderbook_l2
    row = conn.execute(lambda_stmt(lambda: select(t.c.venue, t.c.event_time, t.c.available_time).where(
        t.c.symbol == symbol, t.c.available_time <= now, t.c.available_time >= oldest)
        .order_by(t.c.available_time.desc(), t.c.event_time.desc(), t.c.venue).limit(1))).first()
    if row is None:
        return None
    book = _book_at(conn, symbol, row.venue, row.event_time, row.available_time)
    return book if book.mid is not None else None


def books_between(conn: Connection, symbol: str, after: datetime, until: datetime) -> list[Book]:
    """Every book that became available in ``(after, until]``, oldest first."""
    t = tables.orderbook_l2
    heads = conn.execute(select(t.c.venue, t.c.event_time, func.max(t.c.available_time).label("available")).where(
        t.c.symbol == symbol, t.c.available_time > after, t.c.available_time <= until)
        .group_by(t.c.venue, t.c.event_time)).all()
    heads = sorted(heads, key=lambda h: (h.available, h.event_time, h.venue))
    return [_book_at(conn, symbol, h.venue, h.event_time, h.available) for h in heads]


def _bars(symbol: str, interval: str) -> StatementLambdaElement:
    """A symbol's bars of one interval (a lambda statement: built once, its values bound)."""
    b = tables.market_bars
    return lambda_stmt(lambda: select(b.c.available_time, b.c.low, b.c.high, b.c.close, b.c.volume, b.c.venue)
                       .where(b.c.symbol == symbol, b.c.interval == interval))


def latest_bar(conn: Connection, symbol: str, interval: str, now: datetime, oldest: datetime) -> Bar | None:
    b = tables.market_bars
    row = conn.execute(_bars(symbol, interval) + (
        lambda s: s.where(b.c.available_time <= now, b.c.available_time >= oldest)
        .order_by(b.c.available_time.desc(), b.c.venue).limit(1))).first()
    return Bar(row.available_time, row.low, row.high, row.close) if row is not None else None


def bars_between(conn: Connection, symbol: str, interval: str, after: datetime, until: datetime) -> list[Bar]:
    """Bars that opened at or after ``after`` and closed by ``until``, oldest first (one per close
    time). A bar already running at ``after`` is left out: its range may predate ``after``."""
    b = tables.market_bars
    rows = conn.execute(_bars(symbol, interval) + (
        lambda s: s.where(b.c.event_time >= after, b.c.available_time <= until)
        .order_by(b.c.available_time, b.c.venue))).all()
    seen: dict[datetime, Bar] = {}
    for r in rows:
        seen.setdefault(r.available_time, Bar(r.available_time, r.low, r.high, r.close))
    return list(seen.values())


def hourly_dollar_volume(conn: Connection, symbol: str, interval: str, now: datetime, bars: int) -> float:
    """Mean ``close * volume`` of the last ``bars`` bars available at ``now`` (hourly bars: dollars
    per hour); 0.0 when none are stored."""
    b = tables.market_bars
    rows = conn.execute(_bars(symbol, interval) + (
        lambda s: s.where(b.c.available_time <= now).order_by(b.c.available_time.desc(), b.c.venue).limit(bars))).all()
    return sum(r.close * r.volume for r in rows) / len(rows) if rows else 0.0


def funding_between(conn: Connection, symbol: str, after: datetime | None, until: datetime,
                    venue: str | None) -> list[tuple[datetime, str, float, float | None]]:
    """Funding settlements ``(time, venue, rate, mark)`` in ``(after, until]`` known at ``until``, one
    per settlement time (of ``venue``, or the first venue by name), oldest first."""
    f = tables.funding_rates
    query = select(f.c.event_time, f.c.venue, f.c.funding_rate, f.c.mark_price).where(
        f.c.symbol == symbol, f.c.event_time <= until, f.c.available_time <= until)
    if after is not None:
        query = query.where(f.c.event_time > after)
    if venue is not None:
        query = query.where(f.c.venue == venue)
    out: dict[datetime, tuple[datetime, str, float, float | None]] = {}
    for r in conn.execute(query.order_by(f.c.event_time, f.c.venue)):
        out.setdefault(r.event_time, (r.event_time, r.venue, r.funding_rate, r.mark_price))
    return list(out.values())
