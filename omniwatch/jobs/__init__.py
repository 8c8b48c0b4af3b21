"""Jobs and schedules."""

from __future__ import annotations

import dagster as dg

from omniwatch.jobs.serving_tasks import serving_task_job
from omniwatch.partitions import daily_partitions

MARKET_GROUP = "market"
FEATURES_GROUP = "features"
TRAINING_GROUP = "training"
EVENTS_GROUP = "events"
VC_GROUP = "vc"

market_plane_job = dg.define_asset_job(
    name="market_plane_job",
    selection=dg.AssetSelection.groups(MARKET_GROUP),
    partitions_def=daily_partitions,
    description="Ingest the market-data plane for a day (or a backfill range) behind its blocking checks.",
)

# The market plane and the features computed from it, in one run: a failed blocking check on a
# raw asset stops feature_snapshots in the same run.
liquid_data_job = dg.define_asset_job(
    name="liquid_data_job",
    selection=dg.AssetSelection.groups(MARKET_GROUP, FEATURES_GROUP) | dg.AssetSelection.assets("news_events"),
    partitions_def=daily_partitions,
    description="Ingest the market plane and build point-in-time feature snapshots for a day or a range.",
)

# Training runs separately from ingestion; training_dataset asks the audit trail whether every
# input partition passed its blocking checks (blocked_by_data_quality otherwise).
liquid_training_job = dg.define_asset_job(
    name="liquid_training_job",
    selection=dg.AssetSelection.groups(TRAINING_GROUP),
    description="Train TSMixer + LightGBM on the stored snapshots, evaluate walk-forward, register the ensemble.",
)

# Daily SEC filings (incremental; the history before the partitions is sec_filings_archive).
sec_filings_job = dg.define_asset_job(
    name="sec_filings_job",
    selection=dg.AssetSelection.assets("sec_filings"),
    partitions_def=daily_partitions,
    description="Ingest the SEC filings accepted on a day (or a range) behind the events checks.",
)

# The VC track end to end: archive load, entity resolution, dataset (gated), model, registry.
vc_job = dg.define_asset_job(
    name="vc_job",
    selection=dg.AssetSelection.assets("sec_filings_archive") | dg.AssetSelection.groups(VC_GROUP),
    description="Resolve entities, link events, build the VC dataset and train/register omniwatch-vc.",
)

# Live mode: ingest each finished UTC day half an hour after it ends.
liquid_data_schedule = dg.build_schedule_from_partitioned_job(
    liquid_data_job, minute_of_hour=30, hour_of_day=0
)

JOBS = [market_plane_job, liquid_data_job, liquid_training_job, sec_filings_job, vc_job, serving_task_job]
sec_filings_schedule = dg.build_schedule_from_partitioned_job(sec_filings_job, minute_of_hour=45, hour_of_day=0)

SCHEDULES = [liquid_data_schedule, sec_filings_schedule]
