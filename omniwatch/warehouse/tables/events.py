"""The events plane: entities, events and their links."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from omniwatch.warehouse.tables._base import UTC, Id, _id, _ingested_at, _times, metadata

# ----------------------------------------------------------------------------- events plane
entities = Table(
    "entities", metadata,
    Column("entity_id", String(64), primary_key=True),
    Column("track", String(8), nullable=False),
    Column("name", String(256), nullable=False),
    Column("normalized_name", String(256), nullable=False),
    Column("cik", String(10)),
    Column("ticker", String(16)),
    Column("aliases", JSON, nullable=False, default=list),
    Column("entity_type", String(32)),
    Column("sic", String(8)),
    Column("state", String(8)),
    Column("coverage_start", UTC),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Column("updated_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("cik"),
    Index(None, "normalized_name"),
    Index(None, "ticker"),
)

events = Table(
    "events", metadata, _id(),
    Column("source", String(16), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("track", String(8), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("title", Text),
    Column("body", Text),
    Column("url", Text),
    *_times(),
    Column("tone", Float),
    Column("payload", JSON),
    # When our connector first saw the item (a re-fetch never moves it later); NULL for rows
    # written before migration 0006 could not be backfilled. Features use the later of this and
    # available_time (publication) as the moment the item became usable.
    Column("first_seen_at", UTC),
    _ingested_at(),
    UniqueConstraint("source", "source_id"),
    Index(None, "available_time"),
    Index(None, "first_seen_at"),
    Index(None, "event_type", "event_time"),
)

event_links = Table(
    "event_links", metadata, _id(),
    Column("event_id", Id, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("entity_id", String(64), ForeignKey("entities.entity_id", ondelete="CASCADE"),
           nullable=False),
    Column("confidence", Float, nullable=False),
    Column("method", String(32), nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", "entity_id"),
    Index(None, "entity_id"),
)
