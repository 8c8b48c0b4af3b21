"""Set-based, idempotent writes: ``INSERT ... ON CONFLICT (natural key) DO UPDATE``.

Rows go in multi-row ``VALUES`` chunks (one statement per chunk, never one per row), sized under
the bind-parameter limits of SQLite (32,766) and PostgreSQL (65,535).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from omniwatch.jsonsafe import json_safe

MAX_BIND_PARAMS = 30_000


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
    stmt = _insert_for(conn, table).values(row).on_conflict_do_nothing(index_elements=list(key))
    return conn.execute(stmt).rowcount == 1


def upsert_frame(
    conn: Connection, table: Table, frame: pd.DataFrame, key: Sequence[str],
    update: Iterable[str] | None = None,
) -> int:
    """``upsert_rows`` for a canonical frame (its columns must exist in ``table``)."""
    columns = [c for c in frame.columns if c in table.c]
    return upsert_rows(conn, table, frame_records(frame, columns), key, update)
