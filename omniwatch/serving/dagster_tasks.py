"""Serving tasks as Dagster runs: ``serving_task_job`` runs one backtest or attribution.

The API executes the job in process (``execute_in_process``) against the configured instance,
so each task is a Dagster run with its id, status, tags and logs in the UI. The op's work is the
``serving_tasks`` resource: the API passes its own function; the typed error code of a refused
task travels as ``dg.Failure`` metadata. Imported only when the dagster executor is chosen.
"""

import json
from typing import Any

import dagster as dg

from omniwatch.serving.errors import ApiError


@dg.op(config_schema={"kind": str, "task_id": str, "payload_json": str},
       required_resource_keys={"serving_tasks"})
def serving_task(context: dg.OpExecutionContext) -> dict:
    """Run one serving task (backtest or PnL attribution) and return its result."""
    cfg = context.op_config
    try:
        return context.resources.serving_tasks(cfg["kind"], cfg["task_id"], json.loads(cfg["payload_json"]))
    except ApiError as exc:
        raise dg.Failure(description=f"{exc.code}: {exc.detail}",
                         metadata={"error_code": exc.code, "detail": exc.detail}) from exc


@dg.job(description="A backtest or PnL attribution requested through the serving API.")
def serving_task_job() -> None:
    serving_task()


def run_in_dagster(instance: dg.DagsterInstance, work: Any, kind: str, task_id: str,
                   payload: dict) -> tuple[str, dict]:
    """(Dagster run id, result); raises ApiError with the op's error code when the run failed."""
    result = serving_task_job.execute_in_process(
        run_config={"ops": {"serving_task": {"config": {"kind": kind, "task_id": task_id,
                                                        "payload_json": json.dumps(payload)}}}},
        instance=instance, resources={"serving_tasks": work}, raise_on_error=False,
        tags={"omniwatch/task_id": task_id, "omniwatch/task_kind": kind},
    )
    if result.success:
        return result.run_id, result.output_for_node("serving_task")
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            meta = data.user_failure_data.metadata if data.user_failure_data else {}
            code = meta["error_code"].value if "error_code" in meta else "task_failed"
            detail = meta["detail"].value if "detail" in meta else data.error.message
            raise ApiError(422, code, f"{detail} (dagster run {result.run_id})", {"dagster_run_id": result.run_id})
    raise ApiError(422, "task_failed", f"dagster run {result.run_id} failed", {"dagster_run_id": result.run_id})
