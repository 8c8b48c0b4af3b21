"""Stored API tasks (backtests, PnL attributions) run inside Dagster runs of ``serving_task_job``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from omniwatch.serving.tasks.service import Task


class ServingTasksResource(dg.ConfigurableResource):
    """Replays a stored task's request through the registry model it names and stores the result
    in ``serving_tasks`` (and a backtest in ``backtest_runs``), as the API's local worker does.
    The API stores each request with its defaults resolved (targets, band), so the run replays
    exactly what the API would have."""

    database_url: str
    tracking_uri: str
    serving_device: str = "cuda:0"
    symbols: list[str]

    def execute(self, task_id: str, dagster_run_id: str) -> Task:
        from omniwatch.serving.backtest.service import BacktestService
        from omniwatch.serving.runtime.model_router import ModelRouter
        from omniwatch.serving.settings import ServingSettings
        from omniwatch.serving.tasks.service import TaskStore, execute_task

        serving = ServingSettings()
        router = ModelRouter(self.tracking_uri, self.database_url, self.serving_device,
                             serving.alias_check_interval_s, serving.rollout_alias)
        backtests = BacktestService(router, self.database_url, list(self.symbols), serving.thresholds_bps())
        try:
            # in_process=False: this run is not tied to an API process (a UI re-execution of an
            # in-process task's run lands here too), so no API start-up may interrupt it.
            return execute_task(TaskStore(self.database_url), backtests.perform, task_id, dagster_run_id,
                                in_process=False)
        finally:
            router.refresher.close()
