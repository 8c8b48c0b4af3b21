"""Model operations, data-quality review and pipeline alerts."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from omniwatch.warehouse.tables._base import UTC, Id, _id, metadata

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

# Alertmanager notifications received by POST /api/v2/alerts/notify (omniwatch/serving/alerts),
# one row per alert state: Alertmanager re-sends a firing alert every repeat_interval, and the
# same (fingerprint, starts_at, status) is then the same row; its resolution is a second row.
alert_notifications = Table(
    "alert_notifications", metadata, _id(),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("alertname", String(128), nullable=False),
    Column("severity", String(16)),
    Column("route", String(256)),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("starts_at", UTC, nullable=False),
    Column("ends_at", UTC),
    Column("generator_url", Text),
    Column("receiver", String(128), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("received_by", String(128), nullable=False),
    Column("received_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("fingerprint", "starts_at", "status"),
    Index(None, "alertname", "received_at"),
)

# Scrapes of the API's /metrics kept for SLO windows without a Prometheus server
# (omniwatch/observability/sources.py): the SLO series of one scrape, as [name, labels, value].
metric_snapshots = Table(
    "metric_snapshots", metadata, _id(),
    Column("target", String(512), nullable=False),
    Column("scraped_at", UTC, nullable=False),
    Column("samples", JSON, nullable=False),
    UniqueConstraint("target", "scraped_at"),
)
