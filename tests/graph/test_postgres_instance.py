"""The production instance config (deploy/dagster.yaml) against the local PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from omniwatch.resources.warehouse import WarehouseResource

from .helpers import make_settings, run_market_plane

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

pytestmark = pytest.mark.postgres


def test_market_plane_on_the_production_instance_config(tmp_path, monkeypatch, pg_url, make_pg_database, pg_env):
    dagster_db = make_pg_database()
    for key, value in {"DAGSTER_PG_HOST": pg_env["host"], "DAGSTER_PG_PORT": pg_env["port"],
                       "DAGSTER_PG_USERNAME": pg_env["user"], "DAGSTER_PG_PASSWORD": "",
                       "DAGSTER_PG_DB": dagster_db}.items():
        monkeypatch.setenv(key, value)

    # A copy of the production config, so local artifact storage lands in tmp_path.
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "deploy" / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path / "deploy"))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DockerRunLauncher"

        # The warehouse is on PostgreSQL too: the production path end to end.
        settings = make_settings(tmp_path, database_url=pg_url)
        result = run_market_plane(settings, "2025-06-01", "2025-06-02", instance=instance)
        assert result.success

        run = instance.get_run_by_id(result.run_id)
        assert run.status == DagsterRunStatus.SUCCESS
        record = instance.get_latest_materialization_event(AssetKey("market_bars"))
        assert record is not None and record.run_id == result.run_id
        partitions = instance.get_materialized_partitions(AssetKey("market_bars"))
        assert {"2025-06-01", "2025-06-02"} <= set(partitions)
        assert WarehouseResource(database_url=pg_url).count("market_bars") == 2 * 3 * 24
        dsn = f"host={pg_env['host']} port={pg_env['port']} user={pg_env['user']} dbname={dagster_db}"
        with psycopg.connect(dsn) as conn:
            (n_events,) = conn.execute("select count(*) from event_logs").fetchone()
        assert n_events > 0
    finally:
        instance.dispose()

