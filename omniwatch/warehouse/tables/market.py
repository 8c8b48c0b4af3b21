"""The market plane: bars, trades, L2 books, funding rates, on-chain signals."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from omniwatch.warehouse.tables._base import _id, _ingested_at, _instrument, _times, metadata

# ----------------------------------------------------------------------------- market plane
market_bars = Table(
    "market_bars", metadata, _id(), *_instrument(),
    Column("interval", String(8), nullable=False),
    *_times(),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("source", String(16), nullable=False),
    _ingested_at(),
    UniqueConstraint("venue", "venue_symbol", "interval", "event_time"),
    Index(None, "symbol", "interval", "event_time"),
    Index(None, "symbol", "available_time"),
)

trades_ticks = Table(
    "trades_ticks", metadata, _id(), *_instrument(),
    Column("trade_id", String(64), nullable=False),
    *_times(),
    Column("price", Float, nullable=False),
    Column("size", Float, nullable=False),
    Column("side", String(8)),
    Column("source", String(16), nullable=False),
    _ingested_at(),
    UniqueConstraint("venue", "venue_symbol", "trade_id"),
    Index(None, "symbol", "event_time"),
)

orderbook_l2 = Table(
    "orderbook_l2", metadata, _id(), *_instrument(),
    *_times(),
    Column("sequence", BigInteger),
    Column("side", String(4), nullable=False),
    Column("level", Integer, nullable=False),
    Column("price", Float, nullable=False),
    Column("size", Float, nullable=False),
    Column("num_orders", Integer),
    Column("source", String(16), nullable=False),
    _ingested_at(),
    UniqueConstraint("venue", "venue_symbol", "event_time", "side", "level"),
    Index(None, "symbol", "event_time"),
)

funding_rates = Table(
    "funding_rates", metadata, _id(),
    Column("symbol", String(16), nullable=False),
    Column("venue", String(32), nullable=False),
    Column("venue_symbol", String(32), nullable=False),
    *_times(),
    Column("funding_rate", Float, nullable=False),
    Column("mark_price", Float),
    Column("source", String(16), nullable=False),
    _ingested_at(),
    UniqueConstraint("venue", "venue_symbol", "event_time"),
    Index(None, "symbol", "available_time"),
)

onchain_signals = Table(
    "onchain_signals", metadata, _id(),
    Column("symbol", String(16), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("metric", String(64), nullable=False),
    *_times(),
    Column("value", Float),
    Column("source", String(16), nullable=False),
    _ingested_at(),
    UniqueConstraint("provider", "symbol", "metric", "event_time"),
    Index(None, "symbol", "metric", "available_time"),
)


RAW_MARKET_TABLES = {
    "market_bars": market_bars,
    "trades_ticks": trades_ticks,
    "orderbook_l2": orderbook_l2,
    "funding_rates": funding_rates,
    "onchain_signals": onchain_signals,
}
