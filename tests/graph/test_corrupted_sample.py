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
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


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
    dup = checks["market_bars_have_no_duplicate_keys"]
    assert not dup.passed and f"{DAY}T13:00:00+00:00" in dup.metadata["failures"].value
    ohlc = checks["market_bars_have_sane_ohlcv"]
    assert not ohlc.passed and f"{DAY}T05:00:00+00:00" in ohlc.metadata["failures"].value
    nulls = checks["market_bars_have_no_null_required_values"]
    assert not nulls.passed and f"{DAY}T09:00:00+00:00" in nulls.metadata["failures"].value
    for failed in (dup, ohlc, nulls):
        assert "BTC" in failed.metadata["failures"].value
        assert failed.severity.value == "ERROR"
    assert checks["funding_rates_have_no_duplicate_keys"].passed  # the other assets are clean

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
    bars_meta = next(e for e in result.get_asset_materialization_events()
                     if e.asset_key.to_user_string() == "market_bars").materialization.metadata
    assert bars_meta["rows_written"].value == 0 and bars_meta["written"].value is False
    assert set(bars_meta["blocked_by"].value) >= {
        "market_bars_have_no_duplicate_keys", "market_bars_have_sane_ohlcv",
        "market_bars_have_no_null_required_values",
    }

    audit = wh.read_window("data_quality_audit", pd.Timestamp("2000-01-01", tz="UTC"),
                           pd.Timestamp("2100-01-01", tz="UTC"), time_column="checked_at")
    failed = audit[(audit["run_id"] == result.run_id) & ~audit["passed"]]
    assert set(failed["check_name"]) >= {"market_bars_have_no_duplicate_keys", "market_bars_have_sane_ohlcv"}
