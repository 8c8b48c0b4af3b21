"""``serving_task_job``: one stored API task (backtest or PnL attribution) as a Dagster run.

The API stores the request in ``serving_tasks`` and submits this job with the task id; the run
executes it and stores the result there. Re-executing the run from the UI recomputes the same
task (a backtest replaces its ``backtest_runs`` row). A task refused with a typed code
(``insufficient_features``, ``model_artifact_missing``...) fails the run with that code in the
failure's metadata.
"""

import dagster as dg
from pydantic import Field


class ServingTaskConfig(dg.Config):
    task_id: str = Field(description="The serving_tasks row to run (its request and kind are stored there).")


@dg.op(required_resource_keys={"serving_tasks"})
def serving_task(context: dg.OpExecutionContext, config: ServingTaskConfig) -> dg.Output[dict]:
    """Run one stored serving task; fail with its error code when it is refused."""
    task = context.resources.serving_tasks.execute(config.task_id, context.run_id)
    summary = {"task_id": task.task_id, "kind": task.kind, "status": task.status, "attempts": task.attempts}
    if task.status != "succeeded":
        error = task.error or {}
        raise dg.Failure(description=f"{error.get('code')}: {error.get('detail')}",
                         metadata={"task_id": task.task_id, "error_code": str(error.get("code")),
                                   "detail": str(error.get("detail"))})
    result = task.result or {}
    metadata: dict = dict(summary)
    if task.kind == "backtest":
        metadata.update(model_version=str(result.get("model_version")),
                        net_pnl=float((result.get("cost_breakdown") or {}).get("net", 0.0)))
    return dg.Output(summary, metadata=metadata)


@dg.job(description="A backtest or PnL attribution requested through the serving API (POST /api/v2/tasks/*).",
        tags={"omniwatch/area": "serving"})
def serving_task_job() -> None:
    serving_task()
