"""The one Definitions object: assets, checks, jobs, schedules and resources.

Loaded by the Dagster webserver/daemon (workspace.yaml), ``dg check defs`` and the CLI. Heavy
libraries (torch, lightgbm, mlflow, great_expectations) are imported inside asset bodies only.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.assets import coverage, ensemble, events, features, market, training, vc
from omniwatch.jobs import EVENTS_GROUP, FEATURES_GROUP, JOBS, MARKET_GROUP, SCHEDULES, TRAINING_GROUP, VC_GROUP
from omniwatch.resources import build_resources
from omniwatch.settings import Settings, get_settings


def build_definitions(settings: Settings, resource_overrides: dict | None = None) -> dg.Definitions:
    """Everything Dagster needs, for one environment (the settings choose the resources)."""
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_modules([market, coverage], group_name=MARKET_GROUP),
            *dg.load_assets_from_modules([events], group_name=EVENTS_GROUP),
            *dg.load_assets_from_modules([features], group_name=FEATURES_GROUP),
            *dg.load_assets_from_modules([training, ensemble], group_name=TRAINING_GROUP),
            *dg.load_assets_from_modules([vc], group_name=VC_GROUP),
        ],
        jobs=JOBS,
        schedules=SCHEDULES,
        resources={**build_resources(settings), **(resource_overrides or {})},
    )


defs = build_definitions(get_settings())
