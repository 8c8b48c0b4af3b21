"""A corrupted copy of the sample: the blocking checks fail, name the rows, and stop downstream."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd

from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.settings import BUNDLED_SAMPLE_DIR

from .helpers import make_settings, run_market_plane

DAY = "2025-02-10"


def _corrupt_copy(tmp_path: Path) -> Path:
    """The bundled sample with three faults in BTC's bars on DAY."""
    replay = tmp_path / "replay"
    shutil.copytree(BUNDLED_SAMPLE_DIR, replay, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = replay / "binance_spot_1h" / "BTCUSDT_1h.csv.gz"
    bars = pd.read_csv(path, dtype=str)
    ts = pd.to_datetime(bars["timestamp"], utc=True)
    at = lambda hour: bars.index[ts == pd.Timestamp(f"{DAY}T{hour:02d}:00Z")][0]  # noqa: E731
    bars.loc[at(5), "high"] = str(float(bars.loc[at(5), "low"]) - 10.0)      # a high below its low
    bars.loc[at(9), "close"] = ""                                               # a NaN close
    bars = pd.concat([bars, bars.loc[[at(13)]]]).sort_index(kind="stable")     # a duplicated timestamp
    with gzip.open(path, "wt") as fh:
        bars.to_csv(fh, index=False)
    return replay


def _evaluations(result) -> dict:
    """Check evaluations by ``asset.check`` (check names repeat across assets)."""
    return {f"{e.asset_key.to_user_string()}.{e.check_name}": e for e in result.get_asset_check_evaluations()}


def test_corrupted_bars_fail_their_checks_name_the_rows_and_block_downstream(tmp_path):
    clean = make_settings(tmp_path)
    assert run_market_plane(clean, DAY, DAY).success
    wh = WarehouseResource(database_url=clean.warehouse_url)
    window = (pd.Timestamp(DAY, tz="UTC"), pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(days=1))
    before = wh.read_window("market_bars", *window)

    corrupt = make_settings(tmp_path, replay_dir=_corrupt_copy(tmp_path))
    assert corrupt.warehouse_url == clean.warehouse_url
    result = run_market_plane(corrupt, DAY, DAY)
    assert not result.success

    checks = _evaluations(result)
    dup = checks["market_bars.have_no_duplicate_keys"]
    assert not dup.passed and f"{DAY}T13:00:00+00:00" in dup.metadata["failures"].value
    ohlc = checks["market_bars.have_sane_ohlcv"]
    assert not ohlc.passed and f"{DAY}T05:00:00+00:00" in ohlc.metadata["failures"].value
    nulls = checks["market_bars.have_no_null_required_values"]
    assert not nulls.passed and f"{DAY}T09:00:00+00:00" in nulls.metadata["failures"].value
    for failed in (dup, ohlc, nulls):
        assert "BTC" in failed.metadata["failures"].value
        assert failed.severity.value == "ERROR"
    assert checks["funding_rates.have_no_duplicate_keys"].passed  # the other assets are clean

    # Downstream of a failed blocking check does not run in this run.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "market_coverage" not in materialized
    skipped = [e for e in result.all_events if e.step_key == "market_coverage"]
    assert not any(e.event_type_value == "STEP_SUCCESS" for e in skipped)

    # The bad batch was not written: the stored rows are exactly what the clean run stored.
    after = wh.read_window("market_bars", *window)
    pd.testing.assert_frame_equal(
        before.drop(columns=["ingested_at"]).reset_index(drop=True),
        after.drop(columns=["ingested_at"]).reset_index(drop=True),
    )
    # The day is not materialized: the step failed and names the day and the checks.
    assert "market_bars" not in materialized
    failure = next(e for e in result.all_events
                   if e.event_type_value == "STEP_FAILURE" and e.step_key == "market_bars")
    failed_days = failure.event_specific_data.user_failure_data.metadata["failed_days"].value
    assert set(failed_days[DAY]) >= {
        "have_no_duplicate_keys", "have_sane_ohlcv",
        "have_no_null_required_values",
    }

    audit = wh.read_window("data_quality_audit", pd.Timestamp("2000-01-01", tz="UTC"),
                           pd.Timestamp("2100-01-01", tz="UTC"), time_column="checked_at")
    failed = audit[(audit["run_id"] == result.run_id) & ~audit["passed"]]
    assert set(failed["check_name"]) >= {"have_no_duplicate_keys", "have_sane_ohlcv"}


def test_a_range_run_writes_the_good_days_and_fails_only_the_bad_one(tmp_path):
    """One corrupted day inside a single-run backfill: the other days are written and reported
    materialized for their own partitions; the bad day is not written and shows failed."""
    import dagster as dg

    from omniwatch.assets.market import funding_rates, market_bars
    from omniwatch.resources import build_resources

    settings = make_settings(tmp_path, replay_dir=_corrupt_copy(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [market_bars, funding_rates], instance=instance, resources=build_resources(settings), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2025-02-09", "dagster/asset_partition_range_end": "2025-02-11"},
    )
    assert not result.success
    failure = next(e for e in result.all_events
                   if e.event_type_value == "STEP_FAILURE" and e.step_key == "market_bars")
    assert DAY in failure.event_specific_data.error.message
    assert list(failure.event_specific_data.user_failure_data.metadata["failed_days"].value) == [DAY]

    wh = WarehouseResource(database_url=settings.warehouse_url)
    bars = wh.read_window("market_bars", pd.Timestamp("2025-02-09", tz="UTC"), pd.Timestamp("2025-02-12", tz="UTC"))
    assert sorted(bars["event_time"].dt.strftime("%Y-%m-%d").unique()) == ["2025-02-09", "2025-02-11"]
    assert len(bars) == 2 * 3 * 24
    assert wh.count("funding_rates") > 0  # a clean asset of the same run is written for every day

    bars_key = dg.AssetKey("market_bars")
    materialized = instance.get_materialized_partitions(bars_key)
    assert materialized == {"2025-02-09", "2025-02-11"}
    assert instance.get_materialized_partitions(dg.AssetKey("funding_rates")) == {
        "2025-02-09", "2025-02-10", "2025-02-11"}
    records = instance.fetch_materializations(bars_key, limit=10).records
    versions = {r.partition_key: r.asset_materialization.tags["dagster/data_version"] for r in records}
    assert set(versions) == {"2025-02-09", "2025-02-11"} and len(set(versions.values())) == 2

    # The UI's partition status: the bad day failed, the good ones materialized.
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    partitions_def = market_bars.partitions_def
    cache = get_and_update_asset_status_cache_value(instance, bars_key, partitions_def)
    assert set(cache.deserialize_failed_partition_subsets(partitions_def).get_partition_keys()) == {DAY}

    # Every check evaluation was recorded, the failed ones naming the bad day.
    checks = _evaluations(result)
    assert not checks["market_bars.have_sane_ohlcv"].passed
    assert checks["market_bars.have_sane_ohlcv"].metadata["failed_days"].value == [DAY]
    assert checks["funding_rates.have_no_duplicate_keys"].passed
    audit = wh.read_window("data_quality_audit", pd.Timestamp("2000-01-01", tz="UTC"),
                           pd.Timestamp("2100-01-01", tz="UTC"), time_column="checked_at")
    failed = audit[(audit["asset_key"] == "market_bars") & ~audit["passed"]]
    assert set(pd.to_datetime(failed["partition_start"], utc=True).dt.strftime("%Y-%m-%d")) == {DAY}
