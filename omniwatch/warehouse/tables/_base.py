"""What every table module shares: the one MetaData (stable constraint names), id and time columns."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, func

from omniwatch.warehouse.types import UtcDateTime

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT identity on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


UTC = UtcDateTime()


def _id() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _ingested_at() -> Column:
    return Column("ingested_at", UTC, nullable=False, server_default=func.now())


def _times() -> list[Column]:
    return [
        Column("event_time", UTC, nullable=False),
        Column("available_time", UTC, nullable=False),
    ]


def _instrument() -> list[Column]:
    return [
        Column("symbol", String(16), nullable=False),
        Column("venue", String(32), nullable=False),
        Column("venue_symbol", String(32), nullable=False),
        Column("quote", String(8)),
    ]
