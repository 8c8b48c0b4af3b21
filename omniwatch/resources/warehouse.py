"""The warehouse as a Dagster resource: idempotent writes and window reads on canonical tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
from sqlalchemy import Engine, func, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_frame, upsert_rows


class WarehouseResource(dg.ConfigurableResource):
    """Canonical tables on SQLite (embedded default) or PostgreSQL (``OMNIWATCH_DATABASE_URL``)."""

    database_url: str

    def engine(self) -> Engine:
        return get_engine(self.database_url)

    def upsert(self, table_name: str, frame: pd.DataFrame, key: Sequence[str]) -> int:
        """Upsert a canonical frame on its natural key, in one transaction."""
        table = tables.metadata.tables[table_name]
        with self.engine().begin() as conn:
            return upsert_frame(conn, table, frame, key)

    def upsert_rows(self, table_name: str, rows: Sequence[dict], key: Sequence[str]) -> int:
        """Upsert plain row dicts (JSON columns as Python objects), in one transaction."""
        with self.engine().begin() as conn:
            return upsert_rows(conn, tables.metadata.tables[table_name], list(rows), key)

    def count(self, table_name: str) -> int:
        table = tables.metadata.tables[table_name]
        with self.engine().connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def read_table(self, table_name: str) -> pd.DataFrame:
        """A whole (small) table, e.g. ``entities`` or ``event_links``."""
        with self.engine().connect() as conn:
            return pd.read_sql(select(tables.metadata.tables[table_name]), conn)

    def read_window(
        self,
        table_name: str,
        start: datetime,
        end: datetime,
        symbols: Sequence[str] | None = None,
        time_column: str = "event_time",
    ) -> pd.DataFrame:
        """Rows with ``start <= time_column < end`` (times returned as UTC)."""
        table = tables.metadata.tables[table_name]
        col = table.c[time_column]
        query = select(table).where(col >= start, col < end).order_by(col)
        if symbols is not None:
            query = query.where(table.c.symbol.in_(list(symbols)))
        with self.engine().connect() as conn:
            frame = pd.read_sql(query, conn)
        for name in ("event_time", "available_time"):
            if name in frame:
                frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    def read_audit(self, assets: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Audit rows of ``assets`` whose partition window overlaps ``[start, end)``."""
        t = tables.data_quality_audit
        query = select(t).where(
            t.c.asset_key.in_(list(assets)),
            t.c.partition_start < pd.Timestamp(end).isoformat(),
            t.c.partition_end > pd.Timestamp(start).isoformat(),
        )
        with self.engine().connect() as conn:
            return pd.read_sql(query, conn)

    def record_checks(
        self,
        asset_key: str,
        outcomes: Sequence[Any],
        window_start: datetime,
        window_end: datetime,
        run_id: str,
    ) -> int:
        """Write each check outcome to ``data_quality_audit`` (idempotent per run and window)."""
        return self.record_checks_many(asset_key, [(outcomes, window_start, window_end)], run_id)

    def record_checks_many(self, asset_key: str, windows: Sequence[tuple[Sequence[Any], datetime, datetime]],
                           run_id: str) -> int:
        """``record_checks`` for several windows (the days of a range run) in one transaction."""
        rows = [
            {
                "asset_key": asset_key,
                "check_name": o.name,
                "partition_start": window_start.isoformat(),
                "partition_end": window_end.isoformat(),
                "run_id": run_id,
                "passed": bool(o.passed),
                "blocking": o.severity == "ERROR",
                "severity": o.severity,
                "failed_count": int(o.failed_count),
                "details": {"failures": list(o.failures), "metadata": dict(o.metadata)},
            }
            for outcomes, window_start, window_end in windows
            for o in outcomes
        ]
        key = ["run_id", "asset_key", "check_name", "partition_start"]
        with self.engine().begin() as conn:
            return upsert_rows(conn, tables.data_quality_audit, rows, key)
