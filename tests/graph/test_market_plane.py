"""Materializing the market plane from the bundled sample into a real warehouse."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .helpers import make_settings, run_market_plane


def _materializations(result, asset: str) -> list:
    return [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]


def test_three_days_of_the_sample_land_with_metadata_and_rerun_changes_nothing(tmp_path):
    settings = make_settings(tmp_path)
    result = run_market_plane(settings, "2024-12-02", "2024-12-04")
    assert result.success
    wh = WarehouseResource(database_url=settings.warehouse_url)
    counts = {name: wh.count(name) for name in tables.RAW_MARKET_TABLES}
    assert counts["market_bars"] == 3 * 3 * 24
    # 3 settlements a day for BTC and ETH; SOL stops after 2024-12-04 00:00 (the real gap).
    assert counts["funding_rates"] == 9 + 9 + 7
    assert counts["onchain_signals"] > 0 and counts["trades_ticks"] == 0 and counts["orderbook_l2"] == 0

    bars = _materializations(result, "market_bars")
    assert len(bars) == 3  # one materialization per daily partition of the range
    meta = bars[0].materialization.metadata
    # Each partition reports its own day (rows, content hash = its DataVersion's input).
    assert [b.materialization.metadata["rows_written"].value for b in bars] == [3 * 24] * 3
    assert len({b.materialization.metadata["content_hash"].value for b in bars}) == 3
    assert meta["source"].value == "replay"
    assert meta["symbols"].value == ["BTC", "ETH", "SOL"]
    assert meta["first_event_time"].value.startswith("2024-12-02T00:00")
    assert meta["last_event_time"].value.startswith("2024-12-04T23:00")

    book = _materializations(result, "orderbook_l2")[0].materialization.metadata
    assert book["rows_written"].value == 0
    assert "no L2 book snapshots" in book["coverage"].value

    audit = pd.read_sql(select(tables.data_quality_audit), get_engine(settings.warehouse_url))
    # The audit holds every check per day; Dagster one evaluation per check over the range.
    assert len(audit) == 3 * len(result.get_asset_check_evaluations()) > 45
    assert audit["passed"].all() or set(audit.loc[~audit["passed"], "severity"]) == {"WARN"}

    again = run_market_plane(settings, "2024-12-02", "2024-12-04")
    assert again.success
    assert {name: wh.count(name) for name in tables.RAW_MARKET_TABLES} == counts


def test_the_sol_funding_gap_is_reported_missing_not_filled_and_does_not_block(tmp_path):
    settings = make_settings(tmp_path)
    result = run_market_plane(settings, "2024-12-10", "2024-12-11")
    assert result.success
    wh = WarehouseResource(database_url=settings.warehouse_url)
    funding = wh.read_window("funding_rates", pd.Timestamp("2024-12-10", tz="UTC"),
                             pd.Timestamp("2024-12-12", tz="UTC"))
    assert set(funding["symbol"]) == {"BTC", "ETH"}  # nothing invented for SOL
    coverage = {e.check_name: e for e in result.get_asset_check_evaluations()}["cover_settlements"]
    assert not coverage.passed and coverage.severity.value == "WARN"
    assert "SOL" in coverage.metadata["failures"].value
    cov = _materializations(result, "market_coverage")[0].materialization.metadata["coverage_json"].value
    sol = next(r for r in cov if r["symbol"] == "SOL")
    assert sol["funding_settlements"] == 0 and sol["funding_missing"] == "all"
    assert next(r for r in cov if r["symbol"] == "SOL")["onchain_days"] == 0


def test_onchain_values_become_available_when_their_day_ends(tmp_path):
    settings = make_settings(tmp_path)
    assert run_market_plane(settings, "2025-01-05", "2025-01-05").success
    wh = WarehouseResource(database_url=settings.warehouse_url)
    rows = wh.read_window("onchain_signals", pd.Timestamp("2025-01-05", tz="UTC"), pd.Timestamp("2025-01-06", tz="UTC"))
    assert set(rows["symbol"]) == {"BTC", "ETH"}
    assert (rows["event_time"] == pd.Timestamp("2025-01-05", tz="UTC")).all()
    assert (rows["available_time"] == pd.Timestamp("2025-01-06", tz="UTC")).all()


def test_liquid_symbols_setting_narrows_the_universe(tmp_path):
    settings = make_settings(tmp_path, liquid_symbols=["ETH"])
    assert run_market_plane(settings, "2025-03-01", "2025-03-01").success
    wh = WarehouseResource(database_url=settings.warehouse_url)
    bars = wh.read_window("market_bars", pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC"))
    assert set(bars["symbol"]) == {"ETH"} and set(bars["venue_symbol"]) == {"ETHUSDT"} and len(bars) == 24


def test_a_replay_folder_with_later_months_extends_the_plane(tmp_path):
    """OMNIWATCH_REPLAY_DIR may hold months after the bundled window: the same file names and
    format are read, and the replay partitions end on its last day (the bundled sample's end otherwise)."""
    import gzip
    import shutil

    from omniwatch.partitions import build_daily_partitions
    from omniwatch.settings import BUNDLED_SAMPLE_DIR

    replay = tmp_path / "replay"
    shutil.copytree(BUNDLED_SAMPLE_DIR, replay, ignore=shutil.ignore_patterns("*.py", "__pycache__", "events"))
    path = replay / "binance_spot_1h" / "ETHUSDT_1h.csv.gz"
    bars = pd.read_csv(path, dtype=str)
    # Append the last 48 real rows again, stamped 30 days later (2025-10-25..26): a later month.
    later = bars.tail(48).copy()
    later["timestamp"] = (pd.to_datetime(later["timestamp"], utc=True) + pd.Timedelta(days=30)).dt.strftime(
        "%Y-%m-%d %H:%M:%S+00:00")
    with gzip.open(path, "wt") as fh:
        pd.concat([bars, later]).to_csv(fh, index=False)
    settings = make_settings(tmp_path, replay_dir=replay, liquid_symbols=["ETH"])
    assert build_daily_partitions(settings).get_last_partition_key() == "2025-10-26"
    assert build_daily_partitions(make_settings(tmp_path)).get_last_partition_key() == "2025-09-26"
    assert build_daily_partitions(make_settings(tmp_path, source="live")).get_last_partition_key() == (
        pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d"))
    from omniwatch.resources import build_resources

    batch = build_resources(settings)["market_data"].fetch_bars(
        ["ETH"], pd.Timestamp("2025-10-26", tz="UTC"), pd.Timestamp("2025-10-27", tz="UTC"))
    assert len(batch.frame) == 24 and set(batch.frame["symbol"]) == {"ETH"}
