"""The canonical warehouse schema (DESIGN.md section 3), as SQLAlchemy 2 Core tables.

Every table has a natural-key unique constraint, so writes are upserts and any partition can be
re-run without duplicating rows. Raw records keep both ``event_time`` (when it happened) and
``available_time`` (when we could have known it); point-in-time features filter on the second.
Schema changes go through Alembic (``omniwatch/warehouse/migrations``), never ``create_all``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

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

# ----------------------------------------------------------------------------- features, models
feature_snapshots = Table(
    "feature_snapshots", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("event_time", UTC, nullable=False),
    Column("data_version", String(64), nullable=False),
    Column("lineage_id", String(64), nullable=False),
    Column("features", JSON, nullable=False),
    Column("feature_mask", JSON),
    Column("labels", JSON),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("track", "target", "as_of_ts", "data_version"),
    Index(None, "track", "target", "as_of_ts"),
    Index(None, "lineage_id"),
)

feature_lineage = Table(
    "feature_lineage", metadata,
    Column("lineage_id", String(64), primary_key=True),
    Column("track", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("snapshot_day", String(10), nullable=False),
    Column("code_version", String(32), nullable=False),
    Column("data_version", String(64), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "target", "snapshot_day"),
)

model_registry = Table(
    "model_registry", metadata, _id(),
    Column("model_name", String(128), nullable=False),
    Column("version", String(32), nullable=False),
    Column("mlflow_run_id", String(64)),
    Column("track", String(8), nullable=False),
    Column("aliases", JSON, nullable=False, default=list),
    Column("rollout_stage", Integer),
    Column("status", String(32), nullable=False),
    Column("train_lineage_id", String(64)),
    Column("data_version", String(64)),
    Column("metrics", JSON),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Column("updated_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("model_name", "version"),
)

predictions_v2 = Table(
    "predictions_v2", metadata,
    Column("prediction_id", String(36), primary_key=True),
    Column("track", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("snapshot_id", Id, ForeignKey("feature_snapshots.id", ondelete="SET NULL")),
    Column("train_lineage_id", String(64)),
    Column("infer_lineage_id", String(64), nullable=False),
    Column("request_key", String(128)),
    Column("horizon_predictions", JSON, nullable=False),
    # The live scoring asset: which alias the version held (champion, candidate, challenger,
    # previous), a scoring failure (then no forecasts), and the realised returns once matured.
    Column("role", String(16)),
    Column("error", Text),
    Column("realised", JSON),
    Column("matured_at", UTC),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "target", "as_of_ts"),
    Index(None, "model_name", "model_version"),
)

prediction_explanations = Table(
    "prediction_explanations", metadata, _id(),
    Column("prediction_id", String(36),
           ForeignKey("predictions_v2.prediction_id", ondelete="CASCADE"), nullable=False),
    Column("method", String(32), nullable=False),
    Column("feature", String(64), nullable=False),
    Column("contribution", Float, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("prediction_id", "method", "feature"),
)

backtest_runs = Table(
    "backtest_runs", metadata,
    Column("run_id", String(36), primary_key=True),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON),
    Column("cost_breakdown", JSON),
    Column("lineage_coverage", Float),
    Column("error_code", String(64)),
    Column("started_at", UTC, nullable=False, server_default=func.now()),
    Column("finished_at", UTC),
    Index(None, "model_name", "model_version"),
)

# Asynchronous API tasks (backtest, PnL attribution): the request, its state and its result, so a
# task outlives the process that accepted it and every API process answers for it. A backtest
# task's id is also its backtest_runs run_id.
serving_tasks = Table(
    "serving_tasks", metadata,
    Column("task_id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("executor", String(16), nullable=False),    # webserver | in_process (migration 0007)
    Column("in_process", Boolean, nullable=False),     # runs inside the API process that accepted it
    Column("status", String(16), nullable=False),      # queued | running | succeeded | failed
    Column("payload", JSON, nullable=False),
    Column("result", JSON),
    Column("error", JSON),
    Column("dagster_run_id", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTC, nullable=False),
    Column("started_at", UTC),
    Column("finished_at", UTC),
    Index(None, "status", "created_at"),
)

# ----------------------------------------------------------------------------- trading
signal_candidates = Table(
    "signal_candidates", metadata,
    Column("signal_id", String(36), primary_key=True),
    Column("prediction_id", String(36), ForeignKey("predictions_v2.prediction_id")),
    Column("track", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("horizon", String(8), nullable=False),
    Column("direction", Integer, nullable=False),
    Column("strength", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("strategy_id", "target", "horizon", "as_of_ts"),
)

orders_sim = Table(
    "orders_sim", metadata,
    Column("order_id", String(36), primary_key=True),
    Column("client_order_id", String(64), nullable=False),
    Column("signal_id", String(36), ForeignKey("signal_candidates.signal_id")),
    Column("decision_id", String(36)),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("limit_price", Float),
    Column("order_type", String(16), nullable=False),
    # Migration 0009: the seed's ``mode String(8)`` (it could not hold ``coinbase_live``) became
    # ``adapter`` (paper | coinbase_live); ``venue`` is where it executes (paper | coinbase).
    Column("adapter", String(16), nullable=False),
    Column("venue", String(16), nullable=False),
    Column("venue_order_id", String(64)),
    Column("time_in_force", String(8), nullable=False),
    Column("max_slippage_bps", Float),
    Column("reference_price", Float),                  # the price slippage is measured against
    Column("status", String(16), nullable=False),
    Column("filled_qty", Float, nullable=False, default=0.0),
    Column("avg_fill_price", Float),
    Column("fee", Float, nullable=False, default=0.0),
    Column("lifecycle", JSON, nullable=False),         # [{ts, from, to, reason}], append only
    Column("model_version", String(32)),
    Column("snapshot_id", Id, ForeignKey("feature_snapshots.id", ondelete="SET NULL")),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Column("updated_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("client_order_id"),
    Index(None, "strategy_id", "created_at"),
    Index(None, "venue", "venue_order_id"),
)

# One row per execution; idempotent by (order_id, venue_fill_id). ``slippage_bps`` is signed,
# adverse positive, against the order's reference price.
fills = Table(
    "fills", metadata,
    Column("fill_id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders_sim.order_id", ondelete="CASCADE"), nullable=False),
    Column("venue_fill_id", String(64), nullable=False),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("slippage_bps", Float),
    Column("ts", UTC, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("order_id", "venue_fill_id"),
    Index(None, "track", "strategy_id", "ts"),
)

# Funding charged to (positive) or received by (negative) an open perpetual position, one row per
# funding time, so an accrual re-run never charges twice.
funding_payments = Table(
    "funding_payments", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("funding_time", UTC, nullable=False),
    Column("venue", String(32), nullable=False),
    Column("funding_rate", Float, nullable=False),
    Column("mark_price", Float, nullable=False),
    Column("position_qty", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("track", "strategy_id", "symbol", "funding_time"),
)

# The paper venue's own book of orders (what an exchange would hold): the request and when it
# arrived, so ``get`` replays it deterministically over the data stored since, in any process.
paper_orders = Table(
    "paper_orders", metadata,
    Column("venue_order_id", String(64), primary_key=True),
    Column("client_order_id", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("submitted_at", UTC, nullable=False),
    Column("canceled_at", UTC),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("client_order_id"),
)

positions_snapshots = Table(
    "positions_snapshots", metadata, _id(),
    Column("strategy_id", String(64), nullable=False),
    Column("track", String(8), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("qty", Float, nullable=False),
    Column("avg_price", Float),
    Column("mark_price", Float),
    Column("unrealized_pnl", Float, nullable=False, default=0.0),
    Column("realized_pnl", Float, nullable=False, default=0.0),
    # Cumulative costs for attribution (migration 0009); slippage is already in the fill prices.
    Column("fees", Float, nullable=False, server_default="0"),
    Column("funding", Float, nullable=False, server_default="0"),
    Column("slippage_cost", Float, nullable=False, server_default="0"),
    Column("reason", String(16)),                     # fill | funding | mark
    UniqueConstraint("track", "strategy_id", "symbol", "as_of_ts"),
)

risk_events = Table(
    "risk_events", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("code", String(128), nullable=False),
    Column("detail", JSON),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "strategy_id", "created_at"),
)

# The risk controls' audit, append only: every kill-switch trigger and reset, every daily-loss
# trip and every keyed consecutive-loss reset; the state of a control is its latest row.
# ``strategy_id`` ``*`` is a track-wide switch; ``as_of`` is the decision clock (the replay
# frontier in replay), ``created_at`` the wall clock of the write.
risk_controls = Table(
    "risk_controls", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("control", String(32), nullable=False),   # kill_switch | daily_loss | consecutive_loss
    Column("action", String(16), nullable=False),    # trigger | reset | trip
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", JSON),
    Column("as_of", UTC, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "strategy_id", "control", "as_of"),
)

# What execution/run decided per target (migration 0011): the signal, the sizing, the risk
# decision, the action and the order; execution/audit/{decision_id} starts here. Append only.
execution_decisions = Table(
    "execution_decisions", metadata,
    Column("decision_id", String(36), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("horizon", String(8), nullable=False),
    Column("adapter", String(16), nullable=False),
    Column("signal_id", String(36)),
    Column("prediction_id", String(36)),
    Column("model_version", String(32)),
    Column("snapshot_id", Id),
    Column("as_of_ts", UTC, nullable=False),
    Column("action", String(24), nullable=False),   # trade | hold | denied | not_sent | venue_unavailable
    Column("reason", Text, nullable=False),
    Column("price", Float),
    Column("target_weight", Float),
    Column("held_weight", Float),
    Column("new_weight", Float),
    Column("sizing", JSON),
    Column("risk", JSON),
    Column("order_id", String(36)),
    Column("actor", String(128), nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "strategy_id", "symbol", "created_at"),
    Index(None, "run_id"),
)

model_promotions = Table(
    "model_promotions", metadata, _id(),
    Column("model_name", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("alias", String(32)),
    Column("from_version", String(32)),
    Column("to_version", String(32)),
    Column("rollout_stage", Integer),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decision", JSON),
    # The audit log of model operations (append only): what was decided about which version,
    # by whom (``actor``: ``system`` for sensors, the API key's name for API calls), from where
    # (``source``: ``scheduler`` | ``api`` | ``dagster``), over which window, with the thresholds
    # and the metric values behind it.
    Column("model_version", String(32)),
    Column("outcome", String(32)),
    Column("source", String(32)),
    Column("window", JSON),
    Column("thresholds", JSON),
    Column("metrics", JSON),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "model_name", "created_at"),
)

data_quality_audit = Table(
    "data_quality_audit", metadata, _id(),
    Column("asset_key", String(128), nullable=False),
    Column("check_name", String(128), nullable=False),
    Column("partition_start", String(32), nullable=False),
    Column("partition_end", String(32), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("blocking", Boolean, nullable=False),
    Column("severity", String(8), nullable=False),
    Column("failed_count", Integer, nullable=False),
    Column("details", JSON),
    Column("checked_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("run_id", "asset_key", "check_name", "partition_start"),
    Index(None, "asset_key", "partition_start", "partition_end"),
)

# The seed's human review loop (serving/data_quality): random samples of event links or events
# drawn for people to judge, the rows each sample holds (with the event's source, so precision
# groups by source even after a row changes), and the verdicts. Verdicts are append only: a
# reviewer's change of mind is a new revision; precision reads each reviewer's latest.
data_quality_samples = Table(
    "data_quality_samples", metadata, _id(),
    Column("sample_table", String(32), nullable=False),
    Column("drawn_by", String(128), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("filters", JSON, nullable=False),
    Column("population", Integer, nullable=False),
    Column("drawn_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "sample_table", "drawn_at"),
)

data_quality_sample_rows = Table(
    "data_quality_sample_rows", metadata, _id(),
    Column("sample_id", Id, ForeignKey("data_quality_samples.id", ondelete="CASCADE"), nullable=False),
    Column("row_key", Id, nullable=False),
    Column("source", String(16), nullable=False),
    UniqueConstraint("sample_id", "row_key"),
)

data_quality_reviews = Table(
    "data_quality_reviews", metadata, _id(),
    Column("sample_id", Id, nullable=False),
    Column("row_key", Id, nullable=False),
    Column("reviewer", String(128), nullable=False),
    # 1 for a reviewer's first verdict on a row, +1 per change; unique, so two identical
    # requests racing cannot both append.
    Column("revision", Integer, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("note", Text),
    Column("reviewed_at", UTC, nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["sample_id", "row_key"],
                         ["data_quality_sample_rows.sample_id", "data_quality_sample_rows.row_key"]),
    UniqueConstraint("sample_id", "row_key", "reviewer", "revision"),
)

RAW_MARKET_TABLES = {
    "market_bars": market_bars,
    "trades_ticks": trades_ticks,
    "orderbook_l2": orderbook_l2,
    "funding_rates": funding_rates,
    "onchain_signals": onchain_signals,
}

# Failed Dagster runs, one row per run (written by omniwatch/sensors/run_failure.py).
pipeline_alerts = Table(
    "pipeline_alerts", metadata, _id(),
    Column("run_id", String(64), nullable=False, unique=True),
    Column("job_name", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("error", Text),
    Column("failed_steps", JSON),
    Column("partition", String(64)),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "job_name", "created_at"),
)
