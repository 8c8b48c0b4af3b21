"""The canonical warehouse schema (DESIGN.md section 3), as SQLAlchemy 2 Core tables.

Every table has a natural-key unique constraint, so writes are upserts and any partition can be
re-run without duplicating rows. Raw records keep both ``event_time`` (when it happened) and
``available_time`` (when we could have known it); point-in-time features filter on the second.
Schema changes go through Alembic (``omniwatch/warehouse/migrations``), never ``create_all``.

The tables live in one module per plane (market, events, models, trading, operations) on one
shared ``metadata``; import them from here (``tables.orders_sim``).
"""

from __future__ import annotations

from omniwatch.warehouse.tables._base import UTC, Id, metadata
from omniwatch.warehouse.tables.events import (
    entities,
    event_links,
    events,
)
from omniwatch.warehouse.tables.market import (
    RAW_MARKET_TABLES,
    funding_rates,
    market_bars,
    onchain_signals,
    orderbook_l2,
    trades_ticks,
)
from omniwatch.warehouse.tables.models import (
    backtest_runs,
    feature_lineage,
    feature_snapshots,
    model_registry,
    prediction_explanations,
    predictions_v2,
    serving_tasks,
)
from omniwatch.warehouse.tables.operations import (
    alert_notifications,
    data_quality_audit,
    data_quality_reviews,
    data_quality_sample_rows,
    data_quality_samples,
    metric_snapshots,
    model_promotions,
    pipeline_alerts,
)
from omniwatch.warehouse.tables.trading import (
    execution_decisions,
    fills,
    funding_payments,
    orders_sim,
    paper_orders,
    positions_snapshots,
    risk_controls,
    risk_events,
    signal_candidates,
)

__all__ = [
    "UTC",
    "Id",
    "metadata",
    "market_bars",
    "trades_ticks",
    "orderbook_l2",
    "funding_rates",
    "onchain_signals",
    "RAW_MARKET_TABLES",
    "entities",
    "events",
    "event_links",
    "feature_snapshots",
    "feature_lineage",
    "model_registry",
    "predictions_v2",
    "prediction_explanations",
    "backtest_runs",
    "serving_tasks",
    "signal_candidates",
    "orders_sim",
    "fills",
    "funding_payments",
    "paper_orders",
    "positions_snapshots",
    "risk_events",
    "risk_controls",
    "execution_decisions",
    "model_promotions",
    "data_quality_audit",
    "data_quality_samples",
    "data_quality_sample_rows",
    "data_quality_reviews",
    "pipeline_alerts",
    "alert_notifications",
    "metric_snapshots",
]
