"""The production instance (deploy/dagster.yaml) and the migrate service, against the local PostgreSQL.

The migrate service's own command runs with the deployment's environment pointed at two fresh
databases (Dagster's and the warehouse, as in the compose file); then the instance loads as the
webserver and daemon load it: PostgreSQL storage, queued runs, the Docker run launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_HOST, PG_PORT, PG_USER, pg_url_for
from tests.deploy.conftest import DEPLOY, clean_env

pytestmark = pytest.mark.postgres


def deployment_env(compose_config: dict, dagster_db: str, warehouse_db: str) -> dict[str, str]:
    """The migrate service's environment, its PostgreSQL (host `postgres`) replaced by the local one."""
    env = {k: str(v) for k, v in compose_config["services"]["migrate"]["environment"].items()}
    env.update(DAGSTER_PG_HOST=PG_HOST, DAGSTER_PG_PORT=str(PG_PORT), DAGSTER_PG_USERNAME=PG_USER,
               DAGSTER_PG_DB=dagster_db, DAGSTER_HOME=str(DEPLOY),
               OMNIWATCH_DATABASE_URL=pg_url_for(warehouse_db).replace("postgresql://", "postgresql+psycopg://"))
    return env


def table_names(database: str) -> set[str]:
    engine = sa.create_engine(pg_url_for(database))
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_migrate_service_prepares_both_databases_and_the_instance_loads(compose_config, make_pg_database,
                                                                        monkeypatch, tmp_path):
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
    from dagster_docker import DockerRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    dagster_db, warehouse_db = make_pg_database(), make_pg_database()
    env = deployment_env(compose_config, dagster_db, warehouse_db)
    command = compose_config["services"]["migrate"]["entrypoint"]
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(command, env=clean_env(**env, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    assert {"positions_snapshots", "fills", "model_promotions", "alembic_version"} <= table_names(warehouse_db)
    assert {"runs", "event_logs", "jobs", "concurrency_limits"} <= table_names(dagster_db)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_config(str(DEPLOY)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["omniwatch"]
        assert launcher.container_kwargs["volumes"]["omniwatch_home"]["bind"] == env["OMNIWATCH_HOME"]
        logs = instance.compute_log_manager
        assert isinstance(logs, LocalComputeLogManager)
        assert logs._base_dir.startswith(env["OMNIWATCH_HOME"] + "/")  # no public accessor
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.get_runs() == []
