"""Shared fixtures: real SQLite files and real PostgreSQL databases (127.0.0.1:5432), migrated once
per session and copied per test, and one trained warehouse shared by the whole session."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

PG_HOST = os.environ.get("OMNIWATCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OMNIWATCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("OMNIWATCH_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("OMNIWATCH_TEST_PG_DB", "test")

# The shared trained warehouse: four months of the sample, enough for two walk-forward months.
TRAINED_START, TRAINED_END = "2024-05-01", "2024-08-31"


def pytest_collection_modifyitems(config, items):
    """The end-to-end test first: it is the longest, so it starts at once on one worker while the
    other worker (and, with ``--dist worksteal``, the first one's queue) takes everything else."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)  # stable: order kept otherwise


def _admin() -> psycopg.Connection:
    # No skip on failure: CI must run the Postgres tests (.ci/run starts the cluster).
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True)


def pg_url_for(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per session (per xdist worker): the TEMPLATE of every
    migrated test database. Nothing stays connected to it, as CREATE DATABASE ... TEMPLATE needs."""
    from omniwatch.warehouse.engine import get_engine
    from omniwatch.warehouse.migrate import upgrade

    name = f"omniwatch_tpl_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(pg_url_for(name))
        get_engine(pg_url_for(name)).dispose()
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_pg_database(request) -> Iterator[Callable[..., str]]:
    """A factory of fresh PostgreSQL databases, all dropped after the test; returns names.
    ``make(migrated=True)`` copies the session's migrated template instead of running Alembic;
    ``make(template=name)`` copies another database nothing is connected to."""
    created: list[str] = []

    def make(migrated: bool = False, template: str | None = None) -> str:
        name = f"omniwatch_t_{uuid.uuid4().hex[:12]}"
        template = template or (request.getfixturevalue("pg_template") if migrated else None)
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        created.append(name)
        return name

    try:
        yield make
    finally:
        # FORCE ends the pooled connections of engines cached by the code under test.
        with _admin() as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(make_pg_database) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return make_pg_database()


@pytest.fixture
def pg_env() -> dict[str, str]:
    """Connection settings of the local PostgreSQL, for configs that read them from the environment."""
    return {"host": PG_HOST, "port": str(PG_PORT), "user": PG_USER}


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_url_for(pg_database)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path) -> str:
    """A migrated warehouse with no rows on each backend: a copy of the session's migrated
    SQLite file, or a database created from the migrated PostgreSQL template."""
    from graph.helpers import fresh_sqlite_warehouse

    if request.param == "sqlite":
        return fresh_sqlite_warehouse(tmp_path / "warehouse.db")
    return pg_url_for(request.getfixturevalue("make_pg_database")(migrated=True))


# --- The shared trained warehouse -------------------------------------------------------------
# Built once per session, shared by the xdist workers through a lock in the session's base temp
# folder. Tests read these homes or copy them (copy_home) and never write their warehouse, MLflow
# store or Dagster instance; the one thing shared is the artifact folder: MLflow artifact URIs are
# absolute, so runs logged from a copy write their artifacts (under new run ids) into it.


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A folder of this session that every xdist worker sees (their base temps' parent)."""
    kept = os.environ.get("OMNIWATCH_TEST_SHARED_TMP")  # a developer's kept homes between sessions
    if kept:
        return Path(kept)
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``root/name`` built by ``build`` in exactly one process of the session; the others wait.
    Built in place (MLflow stores absolute artifact URIs), complete once ``.done`` exists."""
    from filelock import FileLock

    target = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (target / ".done").exists():
            shutil.rmtree(target, ignore_errors=True)  # a build that failed in another worker
            target.mkdir(parents=True)
            build(target)
            _settle_sqlite(target)
            (target / ".done").touch()
    return target


def _settle_sqlite(home: Path) -> None:
    """Fold each SQLite write-ahead log into its database file, so a plain file copy is whole."""
    from omniwatch.warehouse.engine import get_engine

    for db in home.glob("*.db"):
        get_engine(f"sqlite:///{db}").dispose()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def copy_home(source: Path, target: Path) -> Path:
    """A private, writable copy of a shared home: warehouse, MLflow store, Dagster instance and
    checkpoints. MLflow artifact URIs are absolute, so the copy reads the shared artifacts (and
    new runs of the copied experiments write theirs beside them, under new run ids)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("mlartifacts", ".done", "*.db-wal", "*.db-shm"))
    return target


def home_instance(home: Path):
    """The persistent Dagster instance stored in ``home/dagster`` (the runs that built the home)."""
    import dagster as dg

    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(home / "dagster"))


@pytest.fixture(scope="session")
def ingested_home(shared_tmp) -> Path:
    """Four months of the sample through liquid_data_job (market plane, checks, features), run
    on the persistent Dagster instance in ``home/dagster``. Read-only: copy it to write."""

    def build(home: Path) -> None:
        from graph.helpers import run_job, settings_for

        instance = home_instance(home)
        try:
            result = run_job(settings_for(home), "liquid_data_job", TRAINED_START, TRAINED_END, instance)
            assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        finally:
            instance.dispose()

    return build_once(shared_tmp, "ingested_home", build)


@pytest.fixture(scope="session")
def trained_home(shared_tmp, ingested_home) -> Path:
    """``ingested_home`` plus one tiny training run on the same instance: warehouse, MLflow store
    and artifacts under one home, omniwatch-liquid v1 as champion and challenger. Read-only:
    copy it (``copy_home``) for a test that writes; the run is ``trained_run(instance)``."""

    def build(home: Path) -> None:
        from graph.helpers import run_training, settings_for

        shutil.rmtree(home)
        copy_home(ingested_home, home)
        instance = home_instance(home)
        try:
            result = run_training(settings_for(home), instance)
            assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        finally:
            instance.dispose()

    return build_once(shared_tmp, "trained_home", build)
