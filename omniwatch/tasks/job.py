"""``serving_task_job``: one stored API task (backtest or PnL attribution) as a Dagster run.

The API stores the request in ``serving_tasks`` and submits this job with the task id (to the
webserver, or executed in its own process); the run executes it and stores the result there.
Re-executing the run from the UI recomputes the same task (a backtest replaces its
``backtest_runs`` row). A task refused with a typed code (``insufficient_features``,
``model_artifact_missing``...) fails the run with that code in the failure's metadata.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from omniwatch.tasks.store import Task, TaskStore, execute_task

JOB = "serving_task_job"


# dagster documents (and resolves) resources as unparametrised subclasses; subscripting this pydantic
# generic would create a new parametrised class at runtime.
class ServingTasksResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Replays a stored task's request through the registry model it names and stores the result
    in ``serving_tasks`` (and a backtest in ``backtest_runs``). The API stores each request with
    its defaults resolved (targets, band), so the run replays exactly what the API would have."""

    database_url: str
    tracking_uri: str
    serving_device: str = "cuda:0"
    in_process: bool = Field(default=False, description="Set by the API for the runs it executes itself: "
                             "an API restart then marks them task_interrupted. A run launched elsewhere "
                             "(the webserver, a UI re-execution) is tied to no API process.")

    def execute(self, task_id: str, dagster_run_id: str) -> Task:
        from omniwatch.ml.versions import LoadedModel, load_version, resolve
        from omniwatch.resources.compute import resolve_device
        from omniwatch.trading.backtest_runs import BacktestRuns

        device, _ = resolve_device(self.serving_device)

        def load(name: str, version: str) -> LoadedModel:
            return load_version(self.tracking_uri, name, resolve(self.tracking_uri, name, version), device)

        return execute_task(TaskStore(self.database_url), BacktestRuns(self.database_url, load).perform,
                            task_id, dagster_run_id, in_process=self.in_process)


class ServingTaskConfig(dg.Config):
    task_id: str = Field(description="The serving_tasks row to run (its request and kind are stored there).")


def run_config(task_id: str) -> dict[str, Any]:
    return {"ops": {"serving_task": {"config": {"task_id": task_id}}}}


def run_tags(task: Task) -> dict[str, str]:
    return {"omniwatch/task_id": task.task_id, "omniwatch/task_kind": task.kind}


@dg.op
def serving_task(context: dg.OpExecutionContext, config: ServingTaskConfig,
                 serving_tasks: ServingTasksResource) -> dg.Output[dict]:  # type: ignore[type-arg]
    # (dagster derives the output's type from this runtime annotation: ``dict`` is its PythonDict)
    """Run one stored serving task; fail with its error code when it is refused."""
    task = serving_tasks.execute(config.task_id, context.run_id)
    summary = {"task_id": task.task_id, "kind": task.kind, "status": task.status, "attempts": task.attempts}
    if task.status != "succeeded":
        error = task.error or {}
        raise dg.Failure(description=f"{error.get('code')}: {error.get('detail')}",
                         metadata={"task_id": task.task_id, "error_code": str(error.get("code")),
                                   "detail": str(error.get("detail"))})
    result = task.result or {}
    metadata: dict[str, Any] = dict(summary)
    if task.kind == "backtest":
        metadata.update(model_version=str(result.get("model_version")),
                        net_pnl=float((result.get("cost_breakdown") or {}).get("net", 0.0)))
    return dg.Output(summary, metadata=metadata)


@dg.job(name=JOB, tags={"omniwatch/area": "serving"},
        description="A backtest or PnL attribution requested through the serving API (POST /api/v2/tasks/*).")
def serving_task_job() -> None:
    serving_task()
