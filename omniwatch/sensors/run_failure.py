"""Watching the pipeline itself: every failed run becomes a visible alert.

``run_failure_sensor`` logs the failed run (job, run id, error, failed steps) and writes one row
per run to the warehouse table ``pipeline_alerts`` (idempotent on ``run_id``), which the API and
dashboards can read. Starts RUNNING only where ``OMNIWATCH_AUTOMATION_RUNNING`` is true.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.settings import get_settings

PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The run's failed steps with their error messages (first line kept short)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    out = []
    for record in records:
        event = record.event_log_entry.dagster_event
        error = event.step_failure_data.error if event and event.step_failure_data else None
        out.append({"step": event.step_key if event else None,
                    "error": (error.message.strip()[:500] if error else None)})
    return out


def alert_row(run: dg.DagsterRun, error: str | None, steps: list[dict]) -> dict:
    tags = run.tags or {}
    in_range = all(t in tags for t in RANGE_TAGS)
    partition = tags.get(PARTITION_TAG) or ("..".join(tags[t] for t in RANGE_TAGS) if in_range else None)
    return {"run_id": run.run_id, "job_name": run.job_name, "kind": "run_failure",
            "error": (error or "")[:4000] or None, "failed_steps": steps, "partition": partition}


@dg.run_failure_sensor(
    name="run_failure_sensor",
    default_status=(dg.DefaultSensorStatus.RUNNING if get_settings().automation_running
                    else dg.DefaultSensorStatus.STOPPED),
    monitor_all_code_locations=False,
    description="Logs every failed run and records it in the warehouse table pipeline_alerts.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    run = context.dagster_run
    steps = failed_steps(context.instance, run.run_id)
    error = context.failure_event.message if context.failure_event else None
    row = alert_row(run, error, steps)
    context.log.error(
        f"run {run.run_id} of {run.job_name} failed"
        f"{' (' + row['partition'] + ')' if row['partition'] else ''}: "
        f"{', '.join(s['step'] or '?' for s in steps) or 'no step failed'}; {error}"
    )
    warehouse.upsert_rows("pipeline_alerts", [row], ["run_id"])
