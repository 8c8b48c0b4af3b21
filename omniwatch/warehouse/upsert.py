"""Set-based, idempotent writes: ``INSERT ... ON CONFLICT (natural key) DO UPDATE``.

Rows go in multi-row ``VALUES`` chunks (one statement per chunk, never one per row), sized under
the bind-parameter limits of SQLite (32,766) and PostgreSQL (65,535).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite

from omniwatch.jsonsafe import json_safe

MAX_BIND_PARAMS = 30_000
SMALL_BATCH = 16  # up to this many rows: one cached statement, executemany (see upsert_rows)


def _clean(value: Any) -> Any:
    """A driver-ready cell: NaN/NaT/NA -> NULL, numpy -> builtin, Timestamp -> datetime (for
    DateTime columns); dicts, lists and arrays (JSON columns) through the one JSON sanitiser."""
    if isinstance(value, (Mapping, list, tuple, np.ndarray)):
        return json_safe(value)
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The frame's rows as driver-ready dicts restricted to ``columns``."""
    sub = frame[list(columns)]
    return [
        {c: _clean(v) for c, v in zip(columns, row, strict=True)}
        for row in sub.itertuples(index=False, name=None)
    ]


def _insert_for(conn: Connection, table: Table):
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"upsert is implemented for sqlite and postgresql, not {name}")


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update: Iterable[str] | None = None,
) -> int:
    """Insert ``rows`` or update them on a natural-key conflict; returns rows written.

    ``update`` defaults to every non-key column present in the rows. Duplicate keys inside one
    batch are an error (PostgreSQL refuses to touch a row twice in one statement, and silently
    keeping one of them would hide bad input): callers validate before writing.
    """
    if not rows:
        return 0
    seen: set[tuple] = set()
    for row in rows:
        k = tuple(row[c] for c in key)
        if k in seen:
            raise ValueError(f"duplicate natural key {dict(zip(key, k, strict=True))} in batch for {table.name}")
        seen.add(k)
    columns = list(rows[0].keys())
    update_cols = list(update) if update is not None else [c for c in columns if c not in key]
    if len(rows) <= SMALL_BATCH and all(r.keys() == rows[0].keys() for r in rows):
        # A few rows (a request's signals, a position): the cached one-row statement, executed for
        # each row by the driver; compiling a multi-row statement for them cost more than the writes.
        conn.execute(_row_statement(table, tuple(columns), tuple(key), tuple(update_cols)),
                     [_with_defaults(table, r) for r in rows])
        return len(rows)
    chunk = max(1, MAX_BIND_PARAMS // max(1, len(columns)))
    written = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        stmt = _insert_for(conn, table).values(part)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key),
                set_={c: stmt.excluded[c] for c in update_cols},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        conn.execute(stmt)
        written += len(part)
    return written


def insert_new(conn: Connection, table: Table, row: dict[str, Any], key: Sequence[str]) -> bool:
    """Insert ``row`` unless a row with its natural ``key`` is stored (then nothing changes); True
    when this call inserted it. Lets a writer that only needs the stored row on a conflict skip
    reading back the row it has just written."""
    return conn.execute(_row_statement(table, tuple(row), tuple(key), None), _with_defaults(table, row)).rowcount == 1


@lru_cache(maxsize=256)
def _row_statement(table: Table, columns: tuple[str, ...], key: tuple[str, ...],
                   update: tuple[str, ...] | None) -> TextClause:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET ...`` (``update`` None or empty: ``DO NOTHING``)
    for one row of ``columns`` (plus the table's Python-side defaults that the row lacks), as SQL
    text with bind parameters typed by their columns: the same text on SQLite and PostgreSQL. A
    TextClause is cached by SQLAlchemy; its dialects' on-conflict constructs are not (SQLAlchemy 2.0
    compiles them again on every call), built once here per table and shape."""
    unknown = [c for c in (*columns, *key, *(update or ())) if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {unknown[0]!r}")
    names = [*columns, *(c for c in _defaults(table) if c not in columns)]
    q = '"{}"'.format
    sql = (f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in names)}) "
           f"VALUES ({', '.join(f':{c}' for c in names)}) ON CONFLICT ({', '.join(q(c) for c in key)}) ")
    sql += (f"DO UPDATE SET {', '.join(f'{q(c)} = excluded.{q(c)}' for c in update)}" if update else "DO NOTHING")
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in names))


@lru_cache(maxsize=64)
def _defaults(table: Table) -> dict[str, Any]:
    """The table's Python-side column defaults (``Column(default=...)``), which SQLAlchemy's own
    insert applies to the columns a row lacks: scalars as they are, callables as factories."""
    out: dict[str, Any] = {}
    for c in table.c:
        d = c.default
        if d is None:
            continue
        if not (d.is_scalar or d.is_callable):  # a sequence or a SQL expression: not a row value
            raise ValueError(f"{table.name}.{c.name}: default {d!r} is not a Python value")
        out[c.name] = d
    return out


def _with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    missing = {c: d for c, d in _defaults(table).items() if c not in row}
    if not missing:
        return row
    return {**row, **{c: (d.arg(None) if d.is_callable else d.arg) for c, d in missing.items()}}


def upsert_frame(
    conn: Connection, table: Table, frame: pd.DataFrame, key: Sequence[str],
    update: Iterable[str] | None = None,
) -> int:
    """``upsert_rows`` for a canonical frame (its columns must exist in ``table``)."""
    columns = [c for c in frame.columns if c in table.c]
    return upsert_rows(conn, table, frame_records(frame, columns), key, update)
