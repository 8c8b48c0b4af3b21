"""Building a real Definitions object over test resources (tmp warehouse, a replay folder)."""

from __future__ import annotations

import atexit
import functools
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from omniwatch.definitions import build_definitions
from omniwatch.settings import Settings
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.migrate import upgrade

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def make_settings(tmp_path: Path, database_url: str | None = None, replay_dir: Path | None = None, **kw) -> Settings:
    return settings_for(tmp_path / "home", database_url, replay_dir, **kw)


def settings_for(home: Path, database_url: str | None = None, replay_dir: Path | None = None, **kw) -> Settings:
    """Settings over ``home`` with a migrated warehouse (a new SQLite file is a copy of the
    session's migrated one: Alembic runs once per process, not once per test)."""
    values = dict(home=home, database_url=database_url, **kw)
    if replay_dir is not None:
        values["replay_dir"] = replay_dir
    settings = Settings(**values)
    if database_url is None and not (settings.home / "warehouse.db").exists():
        fresh_sqlite_warehouse(settings.home / "warehouse.db")
    else:
        upgrade(settings.warehouse_url)
    return settings


@functools.cache
def _migrated_sqlite() -> Path:
    """A SQLite warehouse migrated to head, once per process (removed when the process exits)."""
    folder = Path(tempfile.mkdtemp(prefix="omniwatch-migrated-"))
    atexit.register(shutil.rmtree, folder, True)
    url = f"sqlite:///{folder / 'warehouse.db'}"
    upgrade(url)
    get_engine(url).dispose()
    with sqlite3.connect(folder / "warehouse.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return folder / "warehouse.db"


def fresh_sqlite_warehouse(path: Path) -> str:
    """A migrated SQLite warehouse with no rows at ``path`` (a copy); returns its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_sqlite(), path)
    return f"sqlite:///{path}"


@dataclass
class StoredRun:
    """A finished run read back from its Dagster instance: what tests read of an
    ``ExecuteInProcessResult``, for a run made by a shared fixture in another process."""

    run_id: str
    all_events: list

    @classmethod
    def latest(cls, instance: dg.DagsterInstance, job_name: str) -> StoredRun:
        run = instance.get_runs(dg.RunsFilter(job_name=job_name), limit=1)[0]
        return cls(run.run_id, [e.dagster_event for e in instance.all_logs(run.run_id) if e.is_dagster_event])

    @property
    def success(self) -> bool:
        return any(e.event_type_value == "PIPELINE_SUCCESS" for e in self.all_events)

    def asset_materializations_for_node(self, node_name: str) -> list:
        return [e.event_specific_data.materialization for e in self.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION" and e.step_key == node_name]

    def get_asset_check_evaluations(self) -> list:
        return [e.event_specific_data for e in self.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def tiny_training():
    """A training protocol small enough for a test (seconds, not minutes)."""
    from omniwatch.resources.training import TrainingResource

    return TrainingResource(kfold_splits=2, wf_test_windows=2, min_train_days=45, window_stride_hours=12,
                            tsmixer_max_epochs=1, tsmixer_d_ff=8, lightgbm_max_rounds=30)


def run_training(settings: Settings, instance: dg.DagsterInstance | None = None, **overrides):
    defs = build_definitions(settings, {"training": tiny_training(), **overrides})
    return defs.resolve_job_def("liquid_training_job").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False)


def run_job(settings: Settings, job_name: str, start: str, end: str, instance: dg.DagsterInstance | None = None):
    job = build_definitions(settings).resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        raise_on_error=False,
    )


def run_market_plane(settings: Settings, start: str, end: str, instance: dg.DagsterInstance | None = None):
    return run_job(settings, "market_plane_job", start, end, instance)
