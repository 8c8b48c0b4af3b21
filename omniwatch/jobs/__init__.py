"""Jobs and schedules.

Cadence (live mode): the liquid plane every hour at hh:05 (``liquid_live_schedule``), training
weekly (``OMNIWATCH_TRAINING_CRON``), the VC track monthly (``OMNIWATCH_VC_CRON``), SEC filings
daily. Schedules start RUNNING only where ``OMNIWATCH_AUTOMATION_RUNNING`` is true (deploy).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from omniwatch.partitions import daily_partitions
from omniwatch.settings import get_settings
from omniwatch.tasks.job import serving_task_job

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
    selection=dg.AssetSelection.groups(MARKET_GROUP, FEATURES_GROUP)
    | dg.AssetSelection.assets("news_events", "live_predictions"),
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

JOBS = [market_plane_job, liquid_data_job, liquid_training_job, sec_filings_job, vc_job, serving_task_job]


def automation_status() -> dg.DefaultScheduleStatus:
    """RUNNING where the deployment turns automation on, STOPPED in the embedded default."""
    running = get_settings().automation_running
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def live_partition_keys(tick: dt.datetime) -> list[str]:
    """Partitions the hh:05 tick refreshes: the current UTC day; at 00:05 also the day that just
    ended, whose last hour (23:00-24:00) closed at midnight."""
    tick = tick.astimezone(dt.UTC)
    days = [tick.date() - dt.timedelta(days=1), tick.date()] if tick.hour == 0 else [tick.date()]
    return [d.isoformat() for d in days]


@dg.schedule(job=liquid_data_job, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=automation_status(),
             description="Live liquid plane: every hour at hh:05, ingest and snapshot the current UTC day "
                         "(and, at 00:05, the day that just ended), so a bar closed at hh:00 is in a snapshot "
                         "by hh:10.")
def liquid_live_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    keys = live_partition_keys(tick)
    existing = set(daily_partitions.get_partition_keys(current_time=tick))  # as of the tick, not now
    known = [k for k in keys if k in existing]
    if not known:
        return dg.SkipReason(f"no daily partition for {', '.join(keys)} (replay partitions end "
                             f"{daily_partitions.get_last_partition_key()}); "
                             "the live refresh needs OMNIWATCH_SOURCE=live")
    hour = tick.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
    return [dg.RunRequest(run_key=f"liquid_live:{hour}:{key}", partition_key=key) for key in known]


liquid_training_schedule = dg.ScheduleDefinition(
    name="liquid_training_schedule", job=liquid_training_job, cron_schedule=get_settings().training_cron,
    execution_timezone="UTC", default_status=automation_status(),
    description="Weekly retraining of the liquid ensemble (skipped inside the run when nothing changed).",
)

vc_schedule = dg.ScheduleDefinition(
    name="vc_schedule", job=vc_job, cron_schedule=get_settings().vc_cron, execution_timezone="UTC",
    default_status=automation_status(), description="Monthly VC track: entities, links, dataset, model.",
)

# Daily SEC filings, each finished UTC day 45 minutes after it ends.
sec_filings_schedule = dg.build_schedule_from_partitioned_job(
    sec_filings_job, minute_of_hour=45, hour_of_day=0, default_status=automation_status()
)

# Re-runs feature_snapshots days whose labels matured (see assets/features.py::labels_mature).
labels_automation_sensor = dg.AutomationConditionSensorDefinition(
    "labels_automation_sensor", target=dg.AssetSelection.assets("feature_snapshots"),
    default_status=dg.DefaultSensorStatus(automation_status().value),
)

SCHEDULES = [liquid_live_schedule, liquid_training_schedule, vc_schedule, sec_filings_schedule]
