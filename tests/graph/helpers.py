"""Building a real Definitions object over test resources (tmp warehouse, a replay folder)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from omniwatch.definitions import build_definitions
from omniwatch.settings import Settings
from omniwatch.warehouse.migrate import upgrade

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def make_settings(tmp_path: Path, database_url: str | None = None, replay_dir: Path | None = None, **kw) -> Settings:
    values = dict(home=tmp_path / "home", database_url=database_url, **kw)
    if replay_dir is not None:
        values["replay_dir"] = replay_dir
    settings = Settings(**values)
    upgrade(settings.warehouse_url)
    return settings


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
