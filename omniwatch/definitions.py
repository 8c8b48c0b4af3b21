"""The one Definitions object: assets, checks, jobs, schedules and resources.

Loaded by the Dagster webserver/daemon (workspace.yaml), ``dg check defs`` and the CLI. Heavy
libraries (torch, lightgbm, mlflow, great_expectations) are imported inside asset bodies only.

Every asset links to the file and line that define it (the UI's source-code button); where
``OMNIWATCH_GIT_URL`` names the repository (e.g. https://github.com/org/omniwatch), the link opens
that file on branch ``OMNIWATCH_GIT_BRANCH`` (default ``main``) instead of the local path.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from omniwatch.assets import coverage, ensemble, events, features, live, market, slo, trading, training, vc
from omniwatch.checks.model_standing import newest_version_passed_gate
from omniwatch.jobs import (
    EVENTS_GROUP,
    FEATURES_GROUP,
    JOBS,
    MARKET_GROUP,
    SCHEDULES,
    TRAINING_GROUP,
    VC_GROUP,
    labels_automation_sensor,
)
from omniwatch.jobs.modelops import model_drift_job, model_standing_job
from omniwatch.resources import build_resources
from omniwatch.sensors.modelops import build_modelops_sensors
from omniwatch.sensors.run_failure import run_failure_sensor
from omniwatch.settings import Settings, get_settings

MODELOPS_GROUP = "modelops"


def with_code_references(assets: Sequence[Any], git_url: str | None = None,
                         git_branch: str = "main") -> Sequence[Any]:
    """The assets with a link to the file and line defining each; with ``git_url``, the link
    points into that repository at ``git_branch`` (paths taken relative to the repository root)."""
    # Code references are a beta API: its warning would repeat for every asset at each load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references(assets)
        if not git_url:
            return assets
        return dg.link_code_references_to_git(
            assets, git_url=git_url, git_branch=git_branch,
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=Path(__file__), file_anchor_path_in_repository="omniwatch/definitions.py"),
        )


def build_definitions(settings: Settings, resource_overrides: dict | None = None) -> dg.Definitions:
    """Everything Dagster needs, for one environment (the settings choose the resources)."""
    assets = [
        *dg.load_assets_from_modules([market, coverage], group_name=MARKET_GROUP),
        *dg.load_assets_from_modules([events], group_name=EVENTS_GROUP),
        *dg.load_assets_from_modules([features], group_name=FEATURES_GROUP),
        *dg.load_assets_from_modules([training, ensemble], group_name=TRAINING_GROUP),
        *dg.load_assets_from_modules([vc], group_name=VC_GROUP),
        *dg.load_assets_from_modules([live, trading], group_name=MODELOPS_GROUP),
        *dg.load_assets_from_modules([slo], group_name=slo.OBSERVABILITY_GROUP),
    ]
    return dg.Definitions(
        assets=with_code_references(assets, settings.git_url or None, settings.git_branch),
        asset_checks=[newest_version_passed_gate],
        jobs=[*JOBS, model_standing_job, model_drift_job, slo.api_slo_job],
        schedules=[*SCHEDULES, slo.api_slo_schedule],
        sensors=[labels_automation_sensor, run_failure_sensor, *build_modelops_sensors(
            dg.DefaultSensorStatus.RUNNING if settings.automation_running else dg.DefaultSensorStatus.STOPPED,
            settings.sensor_interval_s)],
        resources={**build_resources(settings), **slo.slo_resources(), **(resource_overrides or {})},
    )


def definitions_for(settings: Settings) -> dg.Definitions:
    """The definitions of ``settings``, with its training profile (OMNIWATCH_TRAINING_PROFILE)."""
    from omniwatch.demo import training_overrides

    return build_definitions(settings, training_overrides(settings))


def load_definitions() -> dg.Definitions:
    """The environment's definitions, read at each call rather than the process's cached
    settings: ``omniwatch demo``/``live`` load their code location through this, so runs
    launched after the environment changed (another OMNIWATCH_HOME in a test) use its resources."""
    return definitions_for(Settings())


defs = definitions_for(get_settings())
