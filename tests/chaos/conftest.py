"""Chaos drill fixtures: a state folder per test, drill databases made through the tests'
administrative database on the local PostgreSQL, and a check that a drill leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_ADMIN_DB, _admin, pg_url_for  # the root conftest: the local PostgreSQL

from omniwatch.chaos import ChaosConfig
from omniwatch.chaos.infra import DRILL_PREFIX


def databases_named(names: set[str]) -> set[str]:
    """Which of ``names`` exist on the server."""
    with _admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                            (DRILL_PREFIX.replace("_", r"\_") + "%",)).fetchall()
    return {r[0] for r in rows} & names


@pytest.fixture
def chaos_config(tmp_path: Path) -> Iterator[ChaosConfig]:
    """Drill state in ``tmp_path`` (MLflow cut through its proxy: one server start); afterwards no
    drill database, cut or pid file may be left."""
    config = ChaosConfig(tmp_path / "chaos", pg_url_for(PG_ADMIN_DB), hold_s=0.5, mlflow_cut="proxy")
    yield config
    leftovers = {folder: sorted(p.name for p in (config.state_dir / folder).glob("*"))
                 for folder in ("databases", "cuts", "pids")}
    assert not any(leftovers.values()), f"the drill left {leftovers} behind"
