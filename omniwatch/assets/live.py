"""The live plane of model operations: every live hour scored, and the champion's drift.

``live_predictions`` runs after each refresh of a day's snapshots (the hourly live refresh, or a
replay-as-live tick) and scores the hours of that day that are inside the live window; a
backfill of old days scores nothing. ``model_drift`` compares the champion's training reference
with the recent snapshots and forecasts; ``drift_sensor`` reads its result and asks for a
retraining when it says ``drift`` (heavy statistics in an asset, the sensor stays thin).
"""


from datetime import timedelta

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, row_count, table_metadata
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.modelops import ModelOpsResource

LIQUID_MODEL = "omniwatch-liquid"


@dg.asset(
    deps=["feature_snapshots"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"python", "mlflow", "sql"},
    code_version="live-predictions-v1",
    automation_condition=dg.AutomationCondition.eager(),
    metadata=table_metadata("predictions_v2"),
    **labels("liquid", "ops"),
)
def live_predictions(context: AssetExecutionContext, modelops: ModelOpsResource) -> dg.MaterializeResult:
    """Forecasts (bps, 1/4/24 h) of every version holding an alias (champion; the candidate in
    shadow during a rollout; a new challenger; previous while a promoted champion is watched) for
    each snapshot hour of the day inside the live window, stored in ``predictions_v2`` with role
    and lineage; predictions whose horizon has passed get their realised return."""
    from omniwatch import live_scoring
    from omniwatch.ml.dataset import load_snapshots

    ops = modelops.context()
    now = pd.Timestamp(ops.clock())
    window = context.partition_time_window
    day_start, day_end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    start = max(day_start, now - timedelta(hours=modelops.scoring_lookback_hours))
    end = min(day_end, now + timedelta(seconds=1))
    from omniwatch.operations import monitored_previous, rejected_versions

    aliases = ops.mlflow.aliases(LIQUID_MODEL)
    # A rejected version keeps its alias (history) but is no longer scored; previous only while
    # the champion that replaced it is still watched against it.
    rejected = rejected_versions(ops.database_url, LIQUID_MODEL)
    aliases = {role: v for role, v in aliases.items() if v not in rejected or role == "champion"}
    if aliases.get("previous") and monitored_previous(ops, LIQUID_MODEL) is None:
        aliases.pop("previous")
    versions = live_scoring.versions_to_score(aliases)
    matured = live_scoring.mature(ops.database_url, now.to_pydatetime())
    meta = {"clock": dg.MetadataValue.text(now.isoformat()), "matured": dg.MetadataValue.int(matured),
            "versions": dg.MetadataValue.json(versions)}
    if start >= end or not versions:
        why = "no version of omniwatch-liquid holds an alias yet" if not versions else (
            f"the day is outside the live window (clock {now.isoformat()}, "
            f"lookback {modelops.scoring_lookback_hours} h)")
        context.log.info(f"live_predictions: nothing scored: {why}")
        return dg.MaterializeResult(metadata={**meta, "scored": dg.MetadataValue.int(0),
                                              **row_count(0, partitioned=True),
                                              "skipped": dg.MetadataValue.text(why)},
                                    data_version=dg.DataVersion(f"{now.isoformat()}|{sorted(versions.items())}"))
    # Enough history before the first hour for every version's lookback (168 h + a margin).
    frame = load_snapshots(ops.database_url, start - timedelta(hours=24 * 9), end)
    frame = frame[frame["as_of_ts"] <= now]
    hours = frame.loc[frame["as_of_ts"] >= start, "as_of_ts"].drop_duplicates()
    rows, errors = [], 0
    for version, role in versions.items():
        model, tags = live_scoring.load_model(ops.mlflow.tracking_uri, LIQUID_MODEL, version)
        scored = live_scoring.score_hours(LIQUID_MODEL, version, role, model, tags, frame, hours,
                                          ops.database_url)
        errors += sum(1 for r in scored if r["error"])
        rows += scored
    written = live_scoring.store(ops.database_url, rows)
    matured += live_scoring.mature(ops.database_url, now.to_pydatetime())
    context.log.info(f"live_predictions: {written} rows for {len(hours)} hours, versions {versions}, "
                     f"{errors} failed scorings, {matured} matured")
    if context.has_partition_key_range and len(context.partition_keys) > 1:
        days = pd.Series([pd.Timestamp(r["as_of_ts"]).strftime("%Y-%m-%d") for r in rows], dtype=object)
        for day in context.partition_keys:
            context.add_asset_metadata(row_count(int((days == day).sum()), partitioned=True), partition_key=day)
    return dg.MaterializeResult(
        metadata={**meta, "scored": dg.MetadataValue.int(written), "hours": dg.MetadataValue.int(len(hours)),
                  **row_count(len(rows), partitioned=True),
                  "failed_scorings": dg.MetadataValue.int(errors), "matured": dg.MetadataValue.int(matured),
                  "last_hour": dg.MetadataValue.text(hours.max().isoformat() if len(hours) else "none")},
        data_version=dg.DataVersion(f"{hours.max().isoformat() if len(hours) else 'none'}|{sorted(versions.items())}"),
    )


@dg.asset(
    kinds={"python", "mlflow"},
    code_version="model-drift-v1",
    automation_condition=dg.AutomationCondition.on_cron("15 * * * *"),
    **labels("liquid", "ops"),
)
def model_drift(context: AssetExecutionContext, modelops: ModelOpsResource) -> dg.MaterializeResult:
    """The champion's drift over the last window: PSI on the training reference's fixed bins plus
    KS for each feature and for the forecast, and slippage of filled orders; the decision is
    appended to ``model_promotions`` (action ``drift``) and its outcome is this asset's metadata,
    which ``drift_sensor`` reads."""
    from omniwatch.jsonsafe import json_safe
    from omniwatch.operations import evaluate_drift

    recorded = evaluate_drift(modelops.context(), LIQUID_MODEL)
    d = recorded.decision
    context.log.info(d.summary())
    return dg.MaterializeResult(metadata={
        "outcome": dg.MetadataValue.text(d.outcome.value),
        "reason": dg.MetadataValue.text(d.reason),
        "model_version": dg.MetadataValue.text(d.version or ""),
        "window_end": dg.MetadataValue.text(d.window.end.isoformat() if d.window.end else ""),
        "audit_id": dg.MetadataValue.int(recorded.audit_id),
        "metrics": dg.MetadataValue.json(json_safe(d.metrics)),
    })

