"""Migration 0007: stored tasks keep their meaning when the executors become webserver | in_process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.migrate import downgrade, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("pg_url")


def _executors(url: str) -> dict[str, str]:
    t = tables.serving_tasks
    with get_engine(url).connect() as conn:
        return dict(conn.execute(sa.select(t.c.task_id, t.c.executor)).all())


def test_old_executor_names_map_to_the_two_that_remain_and_back(empty_url):
    upgrade(empty_url, "0006")
    t = tables.serving_tasks
    row = {"kind": "backtest", "status": "succeeded", "payload": {}, "created_at": datetime(2026, 11, 30, tzinfo=UTC)}
    with get_engine(empty_url).begin() as conn:
        conn.execute(sa.insert(t), [
            {**row, "task_id": "thread", "executor": "local", "in_process": True},
            {**row, "task_id": "submitted", "executor": "dagster", "in_process": False},
            {**row, "task_id": "executed-here", "executor": "dagster", "in_process": True},
        ])
    upgrade(empty_url)
    assert _executors(empty_url) == {"thread": "in_process", "submitted": "webserver", "executed-here": "in_process"}
    downgrade(empty_url, "0006")
    assert set(_executors(empty_url).values()) == {"dagster"}
