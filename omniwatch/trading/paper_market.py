"""Point-in-time market data for the paper venue: L2 books, bars, funding rates.

Every reader takes the time it answers for and uses only rows with ``available_time`` at or
before it, so a paper fill never sees data it could not have had. Ties are broken by venue name,
so the same rows always give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

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


# The reads of the paper venue's every order, built once with bound parameters (building them
# anew for each order cost more than SQLite running them).
@cache
def _book_levels_query() -> Select[Any]:
    t = tables.orderbook_l2
    return (select(t.c.side, t.c.level, t.c.price, t.c.size)
            .where(t.c.symbol == bindparam("symbol"), t.c.venue == bindparam("venue"),
                   t.c.event_time == bindparam("event_time"))
            .order_by(t.c.side, t.c.level))


@cache
def _latest_book_query() -> Select[Any]:
    t = tables.orderbook_l2
    return (select(t.c.venue, t.c.event_time, t.c.available_time)
            .where(t.c.symbol == bindparam("symbol"), t.c.available_time <= bindparam("now"),
                   t.c.available_time >= bindparam("oldest"))
            .order_by(t.c.available_time.desc(), t.c.event_time.desc(), t.c.venue).limit(1))


def _book_at(conn: Connection, symbol: str, venue: str, event_time: datetime, available: datetime) -> Book:
    rows = conn.execute(_book_levels_query(), {"symbol": symbol, "venue": venue, "event_time": event_time}).all()
    bids = sorted(((r.price, r.size) for r in rows if r.side == "bid" and r.size > 0), key=lambda lv: -lv[0])
    asks = sorted(((r.price, r.size) for r in rows if r.side == "ask" and r.size > 0), key=lambda lv: lv[0])
    return Book(available, tuple(bids), tuple(asks))


def latest_book(conn: Connection, symbol: str, now: datetime, oldest: datetime) -> Book | None:
    """The newest book available at ``now`` and not older than ``oldest``; None if there is none
    or its side lists are both empty."""
    row = conn.execute(_latest_book_query(), {"symbol": symbol, "now": now, "oldest": oldest}).first()
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


@cache
def _bars_query(shape: str) -> Select[Any]:
    """A symbol's bars of one interval (``symbol``, ``interval``), of one of the readers' shapes."""
    b = tables.market_bars
    query = select(b.c.available_time, b.c.low, b.c.high, b.c.close, b.c.volume, b.c.venue).where(
        b.c.symbol == bindparam("symbol"), b.c.interval == bindparam("interval"))
    if shape == "latest":
        return (query.where(b.c.available_time <= bindparam("now"), b.c.available_time >= bindparam("oldest"))
                .order_by(b.c.available_time.desc(), b.c.venue).limit(1))
    if shape == "between":
        return (query.where(b.c.event_time >= bindparam("after"), b.c.available_time <= bindparam("until"))
                .order_by(b.c.available_time, b.c.venue))
    if shape == "newest":
        return (query.where(b.c.available_time <= bindparam("now"))
                .order_by(b.c.available_time.desc(), b.c.venue).limit(bindparam("bars")))
    raise ValueError(shape)


def latest_bar(conn: Connection, symbol: str, interval: str, now: datetime, oldest: datetime) -> Bar | None:
    row = conn.execute(_bars_query("latest"), {"symbol": symbol, "interval": interval, "now": now,
                                               "oldest": oldest}).first()
    return Bar(row.available_time, row.low, row.high, row.close) if row is not None else None


def bars_between(conn: Connection, symbol: str, interval: str, after: datetime, until: datetime) -> list[Bar]:
    """Bars that opened at or after ``after`` and closed by ``until``, oldest first (one per close
    time). A bar already running at ``after`` is left out: its range may predate ``after``."""
    rows = conn.execute(_bars_query("between"), {"symbol": symbol, "interval": interval, "after": after,
                                                 "until": until}).all()
    seen: dict[datetime, Bar] = {}
    for r in rows:
        seen.setdefault(r.available_time, Bar(r.available_time, r.low, r.high, r.close))
    return list(seen.values())


def hourly_dollar_volume(conn: Connection, symbol: str, interval: str, now: datetime, bars: int) -> float:
    """Mean ``close * volume`` of the last ``bars`` bars available at ``now`` (hourly bars: dollars
    per hour); 0.0 when none are stored."""
    rows = conn.execute(_bars_query("newest"), {"symbol": symbol, "interval": interval, "now": now,
                                                "bars": bars}).all()
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
