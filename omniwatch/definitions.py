"""The one Definitions object: assets, checks, jobs, schedules and resources.

Loaded by the Dagster webserver/daemon (workspace.yaml), ``dg check defs`` and the CLI. Heavy
libraries (torch, lightgbm, mlflow, great_expectations) are imported inside asset bodies only.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.assets import coverage, ensemble, events, features, live, market, training, vc
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


def build_definitions(settings: Settings, resource_overrides: dict | None = None) -> dg.Definitions:
    """Everything Dagster needs, for one environment (the settings choose the resources)."""
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_modules([market, coverage], group_name=MARKET_GROUP),
            *dg.load_assets_from_modules([events], group_name=EVENTS_GROUP),
            *dg.load_assets_from_modules([features], group_name=FEATURES_GROUP),
            *dg.load_assets_from_modules([training, ensemble], group_name=TRAINING_GROUP),
            *dg.load_assets_from_modules([vc], group_name=VC_GROUP),
            *dg.load_assets_from_modules([live], group_name=MODELOPS_GROUP),
        ],
        asset_checks=[newest_version_passed_gate],
        jobs=[*JOBS, model_standing_job, model_drift_job],
        schedules=SCHEDULES,
        sensors=[labels_automation_sensor, run_failure_sensor, *build_modelops_sensors(
            dg.DefaultSensorStatus.RUNNING if settings.automation_running else dg.DefaultSensorStatus.STOPPED)],
        resources={**build_resources(settings), **(resource_overrides or {})},
    )


defs = build_definitions(get_settings())
