"""Column types shared by the warehouse schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored and read back as timezone-aware UTC on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zone and hands back naive values, which
    this type marks as UTC on the way out. A naive value written is taken to be UTC (everything
    Omniwatch stores is); an aware one is converted. Readers never need to convert.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return _utc(value)
