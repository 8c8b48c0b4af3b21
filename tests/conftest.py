"""Shared fixtures: real SQLite files and real PostgreSQL databases (127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_HOST = os.environ.get("OMNIWATCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OMNIWATCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("OMNIWATCH_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("OMNIWATCH_TEST_PG_DB", "test")


def _admin() -> psycopg.Connection:
    # No skip on failure: CI must run the Postgres tests (.ci/run starts the cluster).
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True)


@pytest.fixture
def make_pg_database() -> Iterator:
    """A factory of fresh PostgreSQL databases, all dropped after the test; returns names."""
    created: list[str] = []

    def make() -> str:
        name = f"omniwatch_t_{uuid.uuid4().hex[:12]}"
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
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
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    return make_pg_database()


@pytest.fixture
def pg_env() -> dict[str, str]:
    """Connection settings of the local PostgreSQL, for configs that read them from the environment."""
    return {"host": PG_HOST, "port": str(PG_PORT), "user": PG_USER}


def pg_url_for(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_url_for(pg_database)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path) -> str:
    """An empty, migrated warehouse on each backend."""
    from omniwatch.warehouse.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        url = pg_url_for(request.getfixturevalue("pg_database"))
    upgrade(url)
    return url
