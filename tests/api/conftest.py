"""API fixtures: one real warehouse + MLflow registry with a tiny trained model per session
(SQLite), the same rows copied into a PostgreSQL database, and clients over either."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _admin, copy_home, pg_url_for  # the root conftest: PostgreSQL, the shared trained home
from fastapi.testclient import TestClient
from sqlalchemy import select

from omniwatch.serving.app import create_app
from omniwatch.serving.settings import ServingSettings
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.migrate import upgrade
from omniwatch.warehouse.upsert import upsert_rows

KEY = "test-key-1"
AUTH = {"X-API-Key": KEY}
# What the API needs from the warehouse, in foreign-key order.
COPIED = ("feature_lineage", "feature_snapshots", "market_bars", "data_quality_audit", "model_registry",
          "model_promotions")


@pytest.fixture(scope="session")
def trained_home(trained_home, tmp_path_factory) -> Path:
    """This worker's writable copy of the session's shared trained home (the root conftest:
    2024-05-01..2024-08-31 through liquid_data_job, one tiny training, omniwatch-liquid v1 as
    champion), built once for all workers; the API writes predictions and tasks into its copy."""
    return copy_home(trained_home, tmp_path_factory.mktemp("api") / "home")


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory) -> Iterator[Path]:
    """The instance the API's in-process task runs land in: a fresh one for the session, never
    the embedded one of the home (``omniwatch.instance``)."""
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        yield home


def serving(**overrides) -> ServingSettings:
    """Test knobs: no cache intervals (each request re-checks), one key, thresholds low enough
    that the tiny model's forecasts produce signals."""
    values = dict(api_keys=[KEY], alias_check_interval_s=0, snapshot_check_interval_s=0,
                  prediction_flush_interval_s=0.01, signal_threshold_bps_1h=0.01, signal_threshold_bps_4h=0.01,
                  signal_threshold_bps_24h=0.01)
    return ServingSettings(**{**values, **overrides})


def client_for(settings: Settings, **overrides) -> TestClient:
    return TestClient(create_app(settings, serving(**overrides)), raise_server_exceptions=False)


@pytest.fixture(scope="session")
def pg_database(pg_template) -> Iterator[str]:
    """A PostgreSQL warehouse with the trained home's rows (session-long, dropped at the end)."""
    name = f"omniwatch_api_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:  # already migrated: a copy of the session's template
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_warehouse(source_url: str, target_url: str) -> None:
    upgrade(target_url)
    with get_engine(source_url).connect() as src, get_engine(target_url).begin() as dst:
        for name in COPIED:
            table = tables.metadata.tables[name]
            rows = [dict(r) for r in src.execute(select(table)).mappings()]
            pk = [c.name for c in table.primary_key.columns]
            upsert_rows(dst, table, rows, pk)
        for name in COPIED:  # explicit ids were inserted: move each sequence past them
            table = tables.metadata.tables[name]
            if "id" in table.c and table.c.id.autoincrement is True:
                dst.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)")


@pytest.fixture(scope="session")
def pg_home(trained_home, pg_database, tmp_path_factory) -> Settings:
    settings = Settings(home=trained_home, database_url=pg_url_for(pg_database))
    copy_warehouse(Settings(home=trained_home).warehouse_url, settings.warehouse_url)
    return settings


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, trained_home) -> Settings:
    """The shared trained warehouse on each backend (tests must not move aliases here)."""
    if request.param == "sqlite":
        return Settings(home=trained_home)
    return request.getfixturevalue("pg_home")


@pytest.fixture(scope="session")
def client(backend) -> Iterator[TestClient]:
    """One app per backend for the read-mostly tests (the model loads once per backend)."""
    with client_for(backend) as c:
        yield c


@pytest.fixture
def own_home(trained_home, tmp_path) -> Settings:
    """A private copy of the trained home, for tests that move aliases or change the registry.
    (MLflow artifact URIs stay absolute, so the copy reads the shared artifacts.)"""
    for name in ("warehouse.db", "mlflow.db"):
        get_engine(f"sqlite:///{trained_home / name}").dispose()
    home = tmp_path / "home"
    shutil.copytree(trained_home, home, ignore=shutil.ignore_patterns("dagster", "checkpoints"))
    return Settings(home=home)


@pytest.fixture(scope="session")
def trained_pg_template(trained_home, pg_template) -> Iterator[str]:
    """The trained home's rows in a PostgreSQL database nothing stays connected to: the TEMPLATE
    of each test's private PostgreSQL warehouse (a file copy instead of a row copy per test)."""
    name = f"omniwatch_trained_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        copy_warehouse(Settings(home=trained_home).warehouse_url, pg_url_for(name))
        get_engine(pg_url_for(name)).dispose()
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_warehouse(request, own_home) -> Settings:
    """``own_home`` with its warehouse on each backend (the registry stays the home's SQLite)."""
    if request.param == "sqlite":
        return own_home
    template = request.getfixturevalue("trained_pg_template")
    url = pg_url_for(request.getfixturevalue("make_pg_database")(template=template))
    return Settings(home=own_home.home, database_url=url)


def flush(c: TestClient) -> None:
    assert c.app.state.services.writer.flush()
