"""What a new user reads in the Dagster UI: owners, track/layer tags, column schemas, source-code
links, check names, per-partition row counts and MLflow links on the model assets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dagster as dg
import pytest

from omniwatch.assets.catalog import LAYERS, OWNER_BY_LAYER
from omniwatch.definitions import build_definitions
from omniwatch.progress import parse
from omniwatch.settings import Settings
from omniwatch.warehouse import tables

from .helpers import RANGE_END_TAG, RANGE_START_TAG, StoredRun, make_settings, run_job

# The assets stored as one warehouse table, and that table (news and filings share ``events``).
TABLE_OF = {
    "market_bars": "market_bars", "trades_ticks": "trades_ticks", "orderbook_l2": "orderbook_l2",
    "funding_rates": "funding_rates", "onchain_signals": "onchain_signals", "news_events": "events",
    "sec_filings": "events", "sec_filings_archive": "events", "entities": "entities",
    "event_links": "event_links", "feature_snapshots": "feature_snapshots", "live_predictions": "predictions_v2",
}
DAYS = ("2025-03-03", "2025-03-04")
BARS_PER_DAY = 3 * 24  # BTC, ETH, SOL hourly


def _specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    graph = defs.get_repository_def().asset_graph
    return {spec.key.to_user_string(): spec for a in graph.assets_defs for spec in a.specs}


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, dg.AssetSpec]:
    return _specs(build_definitions(make_settings(tmp_path_factory.mktemp("defs"))))


def test_every_asset_has_an_owner_a_track_and_a_layer(specs):
    assert len(specs) >= 20
    for name, spec in specs.items():
        layer, track = spec.tags.get("layer"), spec.tags.get("track")
        assert layer in LAYERS and track in {"liquid", "vc", "shared"}, (name, spec.tags)
        assert list(spec.owners) == [OWNER_BY_LAYER[layer]], (name, spec.owners)
    assert specs["market_bars"].tags["layer"] == "raw" and specs["liquid_ensemble"].tags["layer"] == "model"
    assert specs["news_events"].tags["track"] == "shared" and specs["vc_model"].tags["track"] == "vc"


def test_every_asset_links_to_the_line_that_defines_it(specs):
    for name, spec in specs.items():
        [ref] = spec.metadata["dagster/code_references"].code_references
        lines = Path(ref.file_path).read_text().splitlines()
        # The reference points at the decorator; the next definition below it is the asset's.
        first_def = next(line for line in lines[ref.line_number - 1:] if line.startswith("def "))
        assert first_def.startswith(f"def {name}("), (name, ref)


def test_a_configured_git_url_turns_the_references_into_repository_links(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIWATCH_GIT_URL", "https://github.com/acme/omniwatch")
    monkeypatch.setenv("OMNIWATCH_GIT_BRANCH", "release")
    specs = _specs(build_definitions(make_settings(tmp_path)))
    [ref] = specs["market_bars"].metadata["dagster/code_references"].code_references
    assert re.fullmatch(r"https://github\.com/acme/omniwatch/tree/release/omniwatch/assets/market\.py#L\d+", ref.url)


def test_warehouse_assets_show_their_tables_columns_and_natural_key(specs):
    for name, table_name in TABLE_OF.items():
        schema = specs[name].metadata["dagster/column_schema"]
        table = tables.metadata.tables[table_name]
        assert [c.name for c in schema.columns] == [c.name for c in table.columns], name
        assert specs[name].metadata["dagster/table_name"] == table_name
    bars = {c.name: c for c in specs["market_bars"].metadata["dagster/column_schema"].columns}
    assert bars["event_time"].type == "timestamp (UTC)" and bars["close"].type == "float"
    assert not bars["close"].constraints.nullable and bars["quote"].constraints.nullable
    assert specs["market_bars"].metadata["dagster/column_schema"].constraints.other == [
        "natural key (upserted on): venue, venue_symbol, interval, event_time"]
    links = {c.name: c for c in specs["event_links"].metadata["dagster/column_schema"].columns}
    assert links["entity_id"].constraints.other == ["references entities.entity_id"]
    assert not any("dagster/column_schema" in specs[n].metadata for n in ("liquid_ensemble", "model_drift"))


def test_check_names_do_not_repeat_their_asset(tmp_path):
    graph = build_definitions(make_settings(tmp_path)).get_repository_def().asset_graph
    keys = list(graph.asset_check_keys)
    assert len(keys) > 30
    repeated = [f"{k.asset_key.to_user_string()}.{k.name}" for k in keys
                if k.name.startswith(k.asset_key.to_user_string())]
    assert repeated == []
    assert dg.AssetCheckKey(dg.AssetKey("market_bars"), "have_sane_ohlcv") in keys


def _instance(folder: Path) -> dg.DagsterInstance:
    """A Dagster instance stored in SQLite files under ``folder`` (runs, events, materializations)."""
    folder.mkdir(parents=True)
    return dg.DagsterInstance.local_temp(str(folder))


def _metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, (asset, partition)
    return records[0].asset_materialization.metadata


def _run_slice(settings: Settings, instance: dg.DagsterInstance, start: str, end: str) -> dg.ExecuteInProcessResult:
    """The market plane and the features of [start, end] in one single-run backfill (without the
    news, so the slice depends on the market sample only)."""
    defs = build_definitions(settings)
    graph = defs.get_repository_def().asset_graph
    selection = (dg.AssetSelection.groups("market") | dg.AssetSelection.assets("feature_snapshots")).resolve(graph)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=selection)
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  tags={RANGE_START_TAG: start, RANGE_END_TAG: end})


def test_a_backfill_records_each_days_row_count_and_reports_progress(tmp_path, caplog):
    settings = make_settings(tmp_path)
    instance = _instance(tmp_path / "dagster")
    try:
        with caplog.at_level(logging.INFO, logger="omniwatch.progress"):
            result = _run_slice(settings, instance, DAYS[0], DAYS[-1])
        assert result.success
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert {"market_bars", "funding_rates", "orderbook_l2", "feature_snapshots"} <= materialized
        for day in DAYS:
            bars = _metadata(instance, "market_bars", day)
            assert bars["dagster/row_count"].value == bars["dagster/partition_row_count"].value == BARS_PER_DAY
            assert bars["rows_written"].value == BARS_PER_DAY  # existing metadata kept
            snaps = _metadata(instance, "feature_snapshots", day)
            assert snaps["dagster/row_count"].value == BARS_PER_DAY and "day_data_version" in snaps
            assert _metadata(instance, "orderbook_l2", day)["dagster/row_count"].value == 0  # no recorded books
            # Every asset stored as a table says how many rows its day holds.
            for name in materialized & set(TABLE_OF):
                assert "dagster/row_count" in _metadata(instance, name, day), (name, day)
    finally:
        instance.dispose()
    reports = [p for p in map(parse, caplog.messages) if p is not None]
    assert [(p.done, p.total) for p in reports if p.what == "market_bars days"] == [(1, 2), (2, 2)]
    assert {p.what for p in reports} >= {"funding_rates days", "onchain_signals days"}


def test_a_single_day_run_records_that_days_row_count(tmp_path):
    """The live path: the hourly refresh materializes one partition in its own run."""
    settings = make_settings(tmp_path)
    instance = _instance(tmp_path / "dagster")
    try:
        assert run_job(settings, "market_plane_job", DAYS[0], DAYS[0], instance).success
        bars = _metadata(instance, "market_bars", DAYS[0])
        assert bars["dagster/row_count"].value == bars["dagster/partition_row_count"].value == BARS_PER_DAY
        assert bars["content_hash"].value  # existing metadata kept
    finally:
        instance.dispose()


def test_model_assets_link_their_mlflow_run_and_registered_version(trained_home):
    """The shared trained home's training run (read only): each model step links its MLflow run."""
    from conftest import home_instance

    from omniwatch.resources.mlflow import MLflowResource

    settings = Settings(home=trained_home)
    client = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir)).client()
    instance = home_instance(trained_home)
    try:
        run = StoredRun.latest(instance, "liquid_training_job")
    finally:
        instance.dispose()
    for node in ("lightgbm_model", "tsmixer_model", "liquid_ensemble"):
        [materialization] = run.asset_materializations_for_node(node)
        meta = materialization.metadata
        run_id = meta["mlflow_run_id"].value
        experiment = client.get_run(run_id).info.experiment_id
        # Every link opens MLflow's model-training view (its GenAI view is the browser's default).
        view = "?workflowType=machine_learning"
        assert isinstance(meta["mlflow_run"], dg.UrlMetadataValue), node
        assert meta["mlflow_run"].value == f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{run_id}{view}"
        assert meta["mlflow_experiment"].value == f"http://127.0.0.1:5000/#/experiments/{experiment}/runs{view}"
    version = meta["registered_version"].value
    assert meta["mlflow_model_version"].value == (
        f"http://127.0.0.1:5000/#/models/omniwatch-liquid/versions/{version}{view}")
