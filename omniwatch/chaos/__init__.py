"""Chaos drills: cut or kill a dependency during real work, then prove recovery.

Each scenario runs for real on the local services (PostgreSQL, an MLflow server, the API, a
drill Redis) and returns a :class:`~omniwatch.chaos.report.DrillReport` whose verdict is
``recovered`` only when nothing was lost or duplicated. ``scripts/chaos_drill.py`` is the command
line; ``recover`` undoes what an interrupted drill left behind. Not to be confused with
``omniwatch.drills`` (the model-ops rollback drill).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from omniwatch.chaos.infra import ChaosConfig, recover
from omniwatch.chaos.report import DrillReport

__all__ = ["SCENARIOS", "ChaosConfig", "DrillReport", "recover", "run"]


def _db(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.chaos.db import db_interrupt

    db_interrupt(config, report)


def _mlflow(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.chaos.mlflow_drill import mlflow_interrupt

    mlflow_interrupt(config, report)


def _api(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.chaos.api import api_kill

    api_kill(config, report)


def _redis(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.chaos.redis_drill import redis_interrupt

    redis_interrupt(config, report)


SCENARIOS: dict[str, Callable[[ChaosConfig, DrillReport], None]] = {
    "db_interrupt": _db, "mlflow_interrupt": _mlflow, "api_kill": _api, "redis_interrupt": _redis}


def run(scenario: str, config: ChaosConfig) -> DrillReport:
    """Run one scenario end to end; an error that stops it is recorded, not raised."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    report = DrillReport(scenario, config.hold_s)
    started = time.monotonic()
    try:
        SCENARIOS[scenario](config, report)
        report.finished = True
    except Exception as exc:  # noqa: BLE001 - the report says why the drill stopped
        report.failures.append(f"the drill stopped: {type(exc).__name__}: {exc}"[:500])
    finally:
        report.seconds = round(time.monotonic() - started, 2)
    return report
