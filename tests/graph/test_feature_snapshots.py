"""feature_snapshots in the graph: lineage, data_version semantics, idempotency, the DQ gate."""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
from sqlalchemy import select

from omniwatch.settings import BUNDLED_SAMPLE_DIR
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .helpers import make_settings, run_job, run_market_plane


def _snapshots(url: str) -> pd.DataFrame:
    return pd.read_sql(select(tables.feature_snapshots), get_engine(url))


def test_snapshots_carry_lineage_and_rerun_writes_no_new_rows(tmp_path):
    settings = make_settings(tmp_path)
    assert run_job(settings, "liquid_data_job", "2025-03-01", "2025-03-12").success
    snaps = _snapshots(settings.warehouse_url)
    assert len(snaps) == 12 * 24 * 3
    assert set(snaps["track"]) == {"liquid"} and set(snaps["target"]) == {"BTC", "ETH", "SOL"}
    assert snaps[["as_of_ts", "event_time", "data_version", "lineage_id"]].notna().all().all()
    row = snaps.iloc[0]
    assert set(row["features"]) == set(row["feature_mask"]) and len(row["features"]) == 15
    # One lineage per symbol-day, and it names the raw partitions it read.
    assert snaps.groupby(["target", snaps["event_time"].astype(str).str[:10]])["lineage_id"].nunique().max() == 1
    lineage = pd.read_sql(select(tables.feature_lineage), get_engine(settings.warehouse_url)).set_index("lineage_id")
    inputs = lineage.loc[row["lineage_id"], "inputs"]
    assert set(inputs) == {"market_bars", "funding_rates", "onchain_signals", "news_events"}
    assert inputs["market_bars"]["rows"] > 0

    # Labels of a day's last hours are filled once the next day is stored (same data_version).
    assert run_job(settings, "liquid_data_job", "2025-03-01", "2025-03-12").success
    again = _snapshots(settings.warehouse_url)
    assert len(again) == len(snaps)
    assert set(again["data_version"]) == set(snaps["data_version"])


def test_data_version_changes_only_for_days_that_read_a_changed_partition(tmp_path):
    settings = make_settings(tmp_path)
    assert run_job(settings, "liquid_data_job", "2025-03-01", "2025-03-20").success
    before = _snapshots(settings.warehouse_url)

    replay = tmp_path / "replay"
    shutil.copytree(BUNDLED_SAMPLE_DIR, replay, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = replay / "binance_spot_1h" / "ETHUSDT_1h.csv.gz"
    bars = pd.read_csv(path, dtype=str)
    i = bars.index[bars["timestamp"].str.startswith("2025-03-10 06:00")][0]
    bars.loc[i, "volume"] = str(float(bars.loc[i, "volume"]) * 1.5)  # a restated volume
    with gzip.open(path, "wt") as fh:
        bars.to_csv(fh, index=False)
    changed = make_settings(tmp_path, replay_dir=replay)
    assert run_job(changed, "liquid_data_job", "2025-03-01", "2025-03-20").success
    after = _snapshots(settings.warehouse_url)
    new = after[~after["id"].isin(before["id"])]
    # ETH days 03-10 .. 03-18 read the restated bar (8 days of warm-up); nothing else changed.
    assert set(new["target"]) == {"ETH"}
    assert sorted(new["event_time"].dt.strftime("%m-%d").unique()) == [f"03-{d}" for d in range(10, 19)]
    assert set(before["data_version"]) & set(new["data_version"]) == set()


def test_a_failed_blocking_check_blocks_features_in_a_separate_run(tmp_path):
    settings = make_settings(tmp_path)
    assert run_market_plane(settings, "2025-04-01", "2025-04-03").success
    # A later ingestion of 04-02 failed a blocking check (recorded as the market assets do).
    from omniwatch.checks.outcome import make_outcome
    from omniwatch.resources.warehouse import WarehouseResource

    wh = WarehouseResource(database_url=settings.warehouse_url)
    bad = make_outcome("have_sane_ohlcv", "high below low",
                       [{"symbol": "BTC", "event_time": "2025-04-02T05:00:00+00:00", "reason": "high < low"}])
    wh.record_checks("market_bars", [bad], pd.Timestamp("2025-04-02", tz="UTC").to_pydatetime(),
                     pd.Timestamp("2025-04-03", tz="UTC").to_pydatetime(), "a-later-run")

    from dagster import AssetSelection

    from omniwatch.definitions import build_definitions

    defs = build_definitions(settings)
    job = defs.get_implicit_global_asset_job_def().get_subset(asset_selection=set(
        AssetSelection.assets("feature_snapshots").resolve(defs.resolve_asset_graph())))
    from dagster import DagsterInstance

    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2025-04-01", "dagster/asset_partition_range_end": "2025-04-03"},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "blocked_by_data_quality" in failure.event_specific_data.error.message
    meta = failure.event_specific_data.user_failure_data.metadata
    assert meta["error_code"].value == "blocked_by_data_quality"
    assert meta["failed_checks"].value[0]["days"] == ["2025-04-02"]
    assert _snapshots(settings.warehouse_url).empty

    # A passing re-run of that day clears the gate.
    assert run_market_plane(settings, "2025-04-02", "2025-04-02").success
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2025-04-01", "dagster/asset_partition_range_end": "2025-04-03"},
    )
    assert result.success and len(_snapshots(settings.warehouse_url)) == 3 * 24 * 3
