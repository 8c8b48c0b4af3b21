"""Where a tailer has read a table up to, so each row is published once.

Rows are written by several processes (the API, Dagster runs), and a transaction may commit after
a later one: on PostgreSQL an ``id`` is drawn, and ``now()`` read, when the transaction starts,
not when it commits. Both cursors therefore look back ``lookback_s`` seconds and remember what
they published there:

- :class:`IdCursor` (``events``, ``risk_events``: an autoincrement ``id``) reads the rows after
  the largest id seen, through the primary key. An id skipped on the way (a transaction still
  open, or rolled back, or an upsert that drew an id and updated instead) is a *gap*, re-read for
  ``lookback_s`` seconds and then given up.
- :class:`TimeCursor` (``signal_candidates``: a UUID key) reads the rows whose ``created_at`` is
  at most ``lookback_s`` before the newest seen, and skips the keys it has published.

A cursor starts at the table's present end: a stream carries rows written after it started
(tailers stop reading while a topic has no connection, and start again at the end).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, func, or_, select

PAGE = 1000  # rows per query of an IdCursor
MAX_PAGES = 20  # per read: a larger backlog continues at the next poll
MAX_GAPS = 64  # the oldest gap is given up first


@dataclass(frozen=True)
class Gap:
    low: int
    high: int
    until: float  # monotonic time it is given up at


class IdCursor:
    def __init__(self, query: Select[Any], id_column: ColumnElement[int], lookback_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.query, self.id, self.lookback_s, self.clock = query, id_column, lookback_s, clock
        self.ready = False
        self.last = 0
        self.gaps: list[Gap] = []
        self.filled: set[int] = set()  # ids published from inside gaps

    def reset(self) -> None:
        self.ready, self.gaps, self.filled = False, [], set()

    def start(self, conn: Connection) -> None:
        self.last = conn.execute(select(func.max(self.id))).scalar() or 0
        self.gaps, self.filled, self.ready = [], set(), True

    def read(self, conn: Connection) -> list[Row[Any]]:
        """The rows not published yet, in id order within each page."""
        now = self.clock()
        self.gaps = [g for g in self.gaps if g.until > now]
        self.filled = {i for i in self.filled if any(g.low <= i <= g.high for g in self.gaps)}
        out: list[Row[Any]] = []
        after: int | None = None
        for _ in range(MAX_PAGES):
            query = self.query.where(or_(self.id > self.last, *(self.id.between(g.low, g.high) for g in self.gaps)))
            if after is not None:
                query = query.where(self.id > after)
            rows = conn.execute(query.order_by(self.id).limit(PAGE)).all()
            for row in rows:
                ident = row._mapping[self.id]
                if ident > self.last:
                    if ident > self.last + 1:
                        self.gaps.append(Gap(self.last + 1, ident - 1, now + self.lookback_s))
                    self.last = ident
                    out.append(row)
                elif ident not in self.filled:
                    self.filled.add(ident)
                    out.append(row)
            if len(rows) < PAGE:
                break
            after = rows[-1]._mapping[self.id]
        self.gaps = self.gaps[-MAX_GAPS:]
        return out


class TimeCursor:
    def __init__(self, query: Select[Any], key_column: ColumnElement[str], time_column: ColumnElement[datetime],
                 lookback_s: float):
        self.query, self.key, self.time = query, key_column, time_column
        self.lookback = timedelta(seconds=lookback_s)
        self.ready = False
        self.mark: datetime | None = None  # the newest time seen
        self.seen: dict[str, datetime] = {}  # keys published (or present at start) within the lookback

    def reset(self) -> None:
        self.ready, self.seen = False, {}

    def start(self, conn: Connection) -> None:
        self.mark = conn.execute(select(func.max(self.time))).scalar()
        self.seen = {}
        if self.mark is not None:
            query = select(self.key, self.time).where(self.time >= self.mark - self.lookback)
            self.seen = {row[0]: row[1] for row in conn.execute(query)}
        self.ready = True

    def read(self, conn: Connection) -> list[Row[Any]]:
        query = self.query if self.mark is None else self.query.where(self.time >= self.mark - self.lookback)
        out = []
        for row in conn.execute(query.order_by(self.time, self.key)):
            key, at = row._mapping[self.key], row._mapping[self.time]
            if key in self.seen:
                continue
            self.seen[key] = at
            self.mark = at if self.mark is None else max(self.mark, at)
            out.append(row)
        if self.mark is not None:
            floor = self.mark - self.lookback
            self.seen = {k: t for k, t in self.seen.items() if t >= floor}
        return out


Cursor = IdCursor | TimeCursor
