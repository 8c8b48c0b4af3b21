"""The one Definitions object: assets, checks, jobs, schedules and resources.

Loaded by the Dagster webserver/daemon (workspace.yaml), ``dg check defs`` and the CLI. Heavy
libraries (torch, lightgbm, mlflow, great_expectations) are imported inside asset bodies only.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.assets import coverage, market
from omniwatch.jobs import JOBS, MARKET_GROUP, SCHEDULES
from omniwatch.resources import build_resources
from omniwatch.settings import get_settings

market_assets = dg.load_assets_from_modules([market, coverage], group_name=MARKET_GROUP)

defs = dg.Definitions(
    assets=[*market_assets],
    jobs=JOBS,
    schedules=SCHEDULES,
    resources=build_resources(get_settings()),
)
