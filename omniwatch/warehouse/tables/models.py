"""Features, models and serving: snapshots, lineage, registry, predictions, backtests, tasks."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from omniwatch.warehouse.tables._base import UTC, Id, _id, metadata

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
    # execution/run sizes from a version's newest forecast per hour of one target over the last H
    # hours (migration 0015, replacing 0014's): the search is answered from this index however
    # many predictions an hour holds (every prediction request stores one).
    Index("ix_predictions_v2_forecast_hours", "target", "model_name", "model_version", "as_of_ts", "created_at",
          "prediction_id", "snapshot_id", "error", sqlite_where=text("error IS NULL AND snapshot_id IS NOT NULL"),
          postgresql_where=text("error IS NULL AND snapshot_id IS NOT NULL")),
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
