"""Point-in-time feature snapshots of the liquid track (see ``omniwatch/features/liquid.py``).

Day D reads market bars up to D+1 (its last hours' forward-return labels), declared as a
``TimeWindowPartitionMapping(end_offset=1)``; :func:`labels_mature` re-materializes D once D+1's
bars land in a later run, so a live day gets its labels and enters training.
"""

import hashlib

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, row_count, table_metadata
from omniwatch.checks.gate import blocking_failures
from omniwatch.errors import BlockedByDataQuality
from omniwatch.features import liquid as liquid_features
from omniwatch.features.lineage import FEATURE_CODE_VERSION, day_lineages
from omniwatch.freshness import FEATURE_FRESHNESS
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.liquid import LiquidTrackResource
from omniwatch.resources.warehouse import WarehouseResource

INPUTS = ("market_bars", "funding_rates", "onchain_signals", "news_events")
DAY = pd.Timedelta(days=1)
# D's labels need D+1's bars; a missing D+1 (today, the replay's last day) must not block D.
NEXT_DAY = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1, allow_nonexistent_upstream_partitions=True)


def labels_mature() -> dg.AutomationCondition:
    """Re-run an already materialized day once bars of a day it reads (D+1's, for D's labels)
    landed after the day's own last materialization (or request), unless it or an input is in
    progress or an input's blocking check failed. Bars stored in the same run as the day itself
    reset the condition in the same tick, so the hourly refresh of D does not request D again;
    a day never materialized is left to its schedule or backfill."""
    bars_updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated()).allow(
        dg.AssetSelection.assets("market_bars"))
    handled = dg.AutomationCondition.newly_updated() | dg.AutomationCondition.newly_requested()
    return (
        bars_updated.since(handled).with_label("bars_landed_after_this_day")
        & ~dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("labels_mature")


def _json_values(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def snapshot_rows(features: pd.DataFrame, lineages: dict) -> tuple[list[dict], list[dict]]:
    """Warehouse rows for ``feature_snapshots`` and ``feature_lineage`` from computed features."""
    rows, lineage_rows = [], {}
    feats = features[list(liquid_features.FEATURES)].to_numpy(dtype=float)
    labels = features[[*liquid_features.LABELS, "next_hour_funding"]].to_numpy(dtype=float)
    label_names = [*liquid_features.LABELS, "next_hour_funding"]
    for i, rec in enumerate(features[["symbol", "event_time", "as_of_ts"]].itertuples(index=False)):
        lin = lineages[(rec.symbol, rec.event_time.floor("D"))]
        values = _json_values(feats[i])
        rows.append({
            "track": "liquid", "target": rec.symbol,
            "as_of_ts": rec.as_of_ts.to_pydatetime(), "event_time": rec.event_time.to_pydatetime(),
            "data_version": lin.data_version, "lineage_id": lin.lineage_id,
            "features": dict(zip(liquid_features.FEATURES, values, strict=True)),
            "feature_mask": {n: v is not None for n, v in zip(liquid_features.FEATURES, values, strict=True)},
            "labels": dict(zip(label_names, _json_values(labels[i]), strict=True)),
        })
        lineage_rows[lin.lineage_id] = {
            "lineage_id": lin.lineage_id, "track": "liquid", "target": rec.symbol,
            "snapshot_day": rec.event_time.floor("D").date().isoformat(),
            "code_version": FEATURE_CODE_VERSION, "data_version": lin.data_version, "inputs": lin.inputs,
        }
    return rows, list(lineage_rows.values())


def _by_day(rows: list[dict]) -> dict[str, list[dict]]:
    by_day: dict[str, list[dict]] = {}
    for r in rows:
        by_day.setdefault(pd.Timestamp(r["event_time"]).strftime("%Y-%m-%d"), []).append(r)
    return dict(sorted(by_day.items()))


def _day_versions(rows: list[dict]) -> dict[str, str]:
    """Per snapshot day, a hash of its symbols' data_versions (code version + input lineage)."""
    return {d: hashlib.sha256("|".join(sorted({r["data_version"] for r in day})).encode()).hexdigest()[:24]
            for d, day in _by_day(rows).items()}


def _combined(day_versions: dict[str, str]) -> str:
    if not day_versions:
        return "empty"
    if len(day_versions) == 1:
        return next(iter(day_versions.values()))
    return hashlib.sha256("|".join(day_versions.values()).encode()).hexdigest()[:24]


def _liquid_news(warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """News of the liquid track published or first seen in [start, end): an item published
    earlier but first fetched inside the window became usable inside it (``features.news_time``)."""
    published = warehouse.read_window("events", start, end, time_column="available_time")
    seen = warehouse.read_window("events", start, end, time_column="first_seen_at")
    events = pd.concat([f for f in (published, seen) if not f.empty] or [published])
    if events.empty:
        return events
    events = events.drop_duplicates("id")
    return events[events["track"] == "liquid"].reset_index(drop=True)


@dg.asset(
    deps=[dg.AssetDep("market_bars", partition_mapping=NEXT_DAY), *INPUTS[1:]],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"python", "sql"},
    code_version=FEATURE_CODE_VERSION,
    automation_condition=labels_mature(),
    freshness_policy=FEATURE_FRESHNESS,
    metadata=table_metadata("feature_snapshots"),
    **labels("liquid", "features"),
)
def feature_snapshots(
    context: AssetExecutionContext, warehouse: WarehouseResource, liquid: LiquidTrackResource
) -> dg.MaterializeResult:
    """The 15 liquid features per symbol and hour, point in time (only records with
    ``available_time <= as_of_ts``), with forward-return labels, a missing-source mask, and
    ``as_of_ts, event_time, data_version, lineage_id, target, track`` on every row."""
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    read_from = start - liquid_features.WARMUP
    failures = blocking_failures(warehouse.read_audit(INPUTS, read_from, end), INPUTS, read_from, end)
    if failures:
        raise dg.Failure(
            description=str(BlockedByDataQuality(failures)),
            metadata={"error_code": "blocked_by_data_quality", "failed_checks": dg.MetadataValue.json(failures)},
        )
    symbols = liquid.symbols
    # Bars reach a day past the window so the forward-return labels of its last hours are known
    # when the next day is stored; features only look back (the look-ahead probe tests this), and
    # the lineage counts only rows available by each day's last as_of_ts.
    inputs = {
        "market_bars": warehouse.read_window("market_bars", read_from, end + DAY + pd.Timedelta(hours=1), symbols),
        "funding_rates": warehouse.read_window("funding_rates", read_from, end + DAY, symbols),
        "onchain_signals": warehouse.read_window("onchain_signals", read_from, end, symbols),
        "news_events": _liquid_news(warehouse, read_from - DAY, end + DAY),
    }
    computed = liquid_features.compute_features(inputs["market_bars"], inputs["funding_rates"],
                                                inputs["onchain_signals"], symbols, news=inputs["news_events"])
    computed = computed[(computed["event_time"] >= start) & (computed["event_time"] < end)].reset_index(drop=True)
    lineages = {}
    for symbol in symbols:
        days = sorted(computed.loc[computed["symbol"] == symbol, "event_time"].dt.floor("D").unique())
        for day, lin in day_lineages(inputs, symbol, [pd.Timestamp(d) for d in days]).items():
            lineages[(symbol, day)] = lin
    rows, lineage_rows = snapshot_rows(computed, lineages)
    written = warehouse.upsert_rows("feature_snapshots", rows, ["track", "target", "as_of_ts", "data_version"])
    warehouse.upsert_rows("feature_lineage", lineage_rows, ["lineage_id"])
    missing = computed[list(liquid_features.FEATURES)].isna().mean().rename("missing_share").to_frame()
    day_versions = _day_versions(rows)
    if context.has_partition_key_range and len(context.partition_keys) > 1:
        day_rows = _by_day(rows)
        for day in context.partition_keys:
            version = {"day_data_version": dg.MetadataValue.text(day_versions[day])} if (
                len(day_versions) > 1 and day in day_versions) else {}
            context.add_asset_metadata({**version, **row_count(len(day_rows.get(day, [])), partitioned=True)},
                                       partition_key=day)
    return dg.MaterializeResult(data_version=dg.DataVersion(_combined(day_versions)), metadata={
        "rows_written": dg.MetadataValue.int(written),
        # A range's total; each day's own count is in its partition's metadata above.
        **row_count(len(rows), partitioned=True),
        "symbols": dg.MetadataValue.json(sorted(computed["symbol"].unique().tolist())),
        "as_of_first": dg.MetadataValue.text(computed["as_of_ts"].min().isoformat() if len(computed) else "none"),
        "as_of_last": dg.MetadataValue.text(computed["as_of_ts"].max().isoformat() if len(computed) else "none"),
        "data_versions": dg.MetadataValue.int(len({r["data_version"] for r in rows})),
        "feature_code_version": dg.MetadataValue.text(FEATURE_CODE_VERSION),
        "missing_by_feature": dg.MetadataValue.md(missing.round(4).to_markdown()),
    })
