"""Point-in-time feature snapshots of the liquid track (see ``omniwatch/features/liquid.py``)."""

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.checks.gate import blocking_failures
from omniwatch.errors import BlockedByDataQuality
from omniwatch.features import liquid as liquid_features
from omniwatch.features.lineage import day_lineages, feature_code_version
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.liquid import LiquidTrackResource
from omniwatch.resources.warehouse import WarehouseResource

INPUTS = ("market_bars", "funding_rates", "onchain_signals", "news_events")
DAY = pd.Timedelta(days=1)


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
            "code_version": feature_code_version(), "data_version": lin.data_version, "inputs": lin.inputs,
        }
    return rows, list(lineage_rows.values())


def _liquid_news(warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """News of the liquid track known in [start, end) (by available_time)."""
    events = warehouse.read_window("events", start, end, time_column="available_time")
    if events.empty:
        return events
    return events[events["track"] == "liquid"].reset_index(drop=True)


@dg.asset(
    deps=list(INPUTS),
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"python", "sql"},
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
    return dg.MaterializeResult(metadata={
        "rows_written": dg.MetadataValue.int(written),
        "symbols": dg.MetadataValue.json(sorted(computed["symbol"].unique().tolist())),
        "as_of_first": dg.MetadataValue.text(computed["as_of_ts"].min().isoformat() if len(computed) else "none"),
        "as_of_last": dg.MetadataValue.text(computed["as_of_ts"].max().isoformat() if len(computed) else "none"),
        "data_versions": dg.MetadataValue.int(len({r["data_version"] for r in rows})),
        "feature_code_version": dg.MetadataValue.text(feature_code_version()),
        "missing_by_feature": dg.MetadataValue.md(missing.round(4).to_markdown()),
    })
