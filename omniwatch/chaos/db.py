"""db_interrupt: the warehouse database goes away in the middle of an ingest run.

Two drill databases are made on the local PostgreSQL: a reference, written by one clean run of
``market_plane_job`` over a replayed day of the embedded sample, and the drill warehouse. On the
drill warehouse the same job runs three times:

1. The project's ``market_plane_job`` (it has no retry policy), with a hook that cuts the database
   (``ALLOW_CONNECTIONS false`` and ``pg_terminate_backend`` of its sessions) as soon as the first
   step has succeeded: the run fails, part of the day is written. The cut is held ``hold_s``.
2. After ``recover`` (connections allowed again) the same job reruns: its writes are upserts on
   natural keys, so the partial day is completed, not duplicated.
3. The same selection with a Dagster ``RetryPolicy``, cut again after its first step and
   re-allowed after ``hold_s`` by a timer: the failed steps are retried by Dagster and the run
   succeeds without anyone stepping in.

After 2 and 3 every table's row count must equal the reference's: nothing lost, nothing doubled.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
import uuid
from typing import Any

import dagster as dg
from sqlalchemy import func, inspect, select

from omniwatch.chaos.infra import ChaosConfig, Postgres
from omniwatch.chaos.report import DrillReport
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

PARTITION = "2024-06-01"  # a replayed day of the embedded sample
JOB = "market_plane_job"
RETRY_DELAY_S = 0.25


# Logs with one row per run (each run records its own check evaluations): compared by what they
# record, the natural key without the run, not by rows.
PER_RUN_LOGS = {"data_quality_audit": ("asset_key", "check_name", "partition_start")}


def table_counts(url: str) -> dict[str, int]:
    """Rows of every warehouse table that exists in the database at ``url``; for the per-run logs,
    distinct keys without the run (``<table> (distinct)``)."""
    with get_engine(url).connect() as conn:
        present = set(inspect(conn).get_table_names())
        counts: dict[str, int] = {}
        for t in tables.metadata.sorted_tables:
            if t.name not in present:
                continue
            if t.name in PER_RUN_LOGS:
                keys = select(*(t.c[c] for c in PER_RUN_LOGS[t.name])).distinct().subquery()
                counts[f"{t.name} (distinct)"] = int(conn.execute(select(func.count()).select_from(keys)).scalar_one())
            else:
                counts[t.name] = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        return counts


def audit_rows_by_run(url: str) -> list[int]:
    """Rows each run wrote to ``data_quality_audit``, oldest run first."""
    t = tables.data_quality_audit
    query = select(func.count()).select_from(t).group_by(t.c.run_id).order_by(func.min(t.c.id))
    with get_engine(url).connect() as conn:
        return [int(n) for n in conn.execute(query).scalars()]


def _cut_hook(pg: Postgres, database: str, cuts: list[dict[str, Any]], reallow_after_s: float | None
              ) -> dg.HookDefinition:
    """A success hook that cuts ``database`` once, right after the run's first step succeeded
    (and, with ``reallow_after_s``, re-allows it that much later from a timer thread)."""

    @dg.success_hook(name="chaos_cut_after_first_step")
    def cut_after_first_step(context: dg.HookContext) -> None:
        if cuts:
            return
        ended = pg.cut(database)
        cuts.append({"after_step": context.step_key, "sessions_ended": ended, "at": time.monotonic()})
        if reallow_after_s is not None:
            timer = threading.Timer(reallow_after_s, pg.allow, (database,))
            timer.daemon = True
            timer.start()
            cuts[-1]["timer"] = timer

    return cut_after_first_step


def _retrying_job(defs: dg.Definitions, hook: dg.HookDefinition, max_retries: int) -> dg.JobDefinition:
    """The project job's selection with a Dagster step ``RetryPolicy`` (and the cut hook)."""
    from omniwatch.jobs import market_plane_job

    job = dg.define_asset_job(f"chaos_{JOB}", selection=market_plane_job.selection,
                              partitions_def=market_plane_job.partitions_def, hooks={hook},
                              op_retry_policy=dg.RetryPolicy(max_retries=max_retries, delay=RETRY_DELAY_S))
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, resources=defs.resources,
                          jobs=[job]).resolve_job_def(job.name)


def _run(job: dg.JobDefinition) -> tuple[bool, dict[str, list[str]]]:
    # The failures a cut causes are expected: the console logger stays quiet (the report says it).
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    result = job.execute_in_process(partition_key=PARTITION, instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False, run_config=quiet)
    events: dict[str, list[str]] = {}
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_SUCCESS"):
            events.setdefault(event.event_type_value, []).append(event.step_key or "")
    return result.success, events


def db_interrupt(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.definitions import build_definitions
    from omniwatch.settings import Settings
    from omniwatch.warehouse.migrate import upgrade

    pg = Postgres(config)
    made: list[str] = []
    homes = config.folder(f"homes-{uuid.uuid4().hex[:8]}")
    cuts: list[dict[str, Any]] = []
    try:
        with report.step("create and migrate the reference and drill databases") as step:
            reference = pg.create()
            made.append(reference)
            upgrade(pg.url(reference))
            get_engine(pg.url(reference)).dispose()  # a TEMPLATE must have no session
            drill = pg.create(template=reference)
            made.append(drill)
            step.detail = f"reference {reference}, drill {drill}"
        defs = {name: build_definitions(Settings(home=homes / name, database_url=pg.url(name), source="replay"))
                for name in (reference, drill)}

        with report.step(f"clean run of {JOB} [{PARTITION}] on the reference") as step:
            ok, _ = _run(defs[reference].resolve_job_def(JOB))
            report.expect_in_step(step, ok, "the clean reference run succeeds")
            report.counts["reference"] = table_counts(pg.url(reference))
            step.detail = f"{sum(report.counts['reference'].values())} rows"

        with report.step(f"{JOB} with the database cut after its first step (no retries)") as step:
            job = defs[drill].resolve_job_def(JOB).with_hooks({_cut_hook(pg, drill, cuts, None)})
            ok, events = _run(job)
            report.expect_in_step(step, bool(cuts), "the cut happened during the run")
            report.expect_in_step(step, not ok, "the run fails while its database is cut")
            failed = sorted(set(events.get("STEP_FAILURE", [])))
            report.expect_in_step(step, bool(failed), "steps failed on the cut database")
            cut = cuts[0] if cuts else {"after_step": "?", "sessions_ended": 0}
            step.detail = (f"cut after {cut['after_step']} ({cut['sessions_ended']} sessions ended); "
                           f"failed steps: {', '.join(failed) or 'none'}")
        with report.step(f"hold the cut {config.hold_s:g} s; the database refuses connections") as step:
            time.sleep(max(0.0, config.hold_s - (time.monotonic() - cuts[0]["at"])) if cuts else 0.0)
            refused = not pg.accepts_connections(drill)
            report.expect_in_step(step, refused, "the drill database refuses connections during the cut")
            step.detail = "datallowconn = false" if refused else "the database was reachable"
        with report.step("recover: allow connections again"):
            pg.allow(drill)
        report.counts["after cut"] = table_counts(pg.url(drill))
        report.expect(sum(report.counts["after cut"].values()) < sum(report.counts["reference"].values()),
                      "the interrupted run left the day partly written", report.counts["after cut"])

        with report.step(f"rerun {JOB} after recovery") as step:
            ok, _ = _run(defs[drill].resolve_job_def(JOB))
            report.expect_in_step(step, ok, "the rerun succeeds")
        report.counts["after rerun"] = table_counts(pg.url(drill))
        _expect_equal(report, "after rerun")

        cuts.clear()
        retries = math.ceil((config.hold_s + 2.0) / RETRY_DELAY_S)
        with report.step(f"cut again for {config.hold_s:g} s under a Dagster RetryPolicy") as step:
            job = _retrying_job(defs[drill], _cut_hook(pg, drill, cuts, config.hold_s), retries)
            ok, events = _run(job)
            if cuts:
                cuts[0]["timer"].join(config.hold_s + 5)
            retried = events.get("STEP_UP_FOR_RETRY", [])
            report.expect_in_step(step, bool(cuts), "the cut happened during the run")
            report.expect_in_step(step, bool(retried), "Dagster retried steps that met the cut database")
            report.expect_in_step(step, ok, "the run with step retries succeeds once the database is back")
            step.detail = (f"{len(retried)} step retries ({', '.join(sorted(set(retried)))}), "
                           f"max {retries} x {RETRY_DELAY_S} s each")
            report.facts["step_retries_during_cut"] = len(retried)
        report.counts["after retried run"] = table_counts(pg.url(drill))
        _expect_equal(report, "after retried run")
        report.facts["audit rows per run (reference)"] = audit_rows_by_run(pg.url(reference))
        report.facts["audit rows per run (drill: cut, rerun, retried)"] = audit_rows_by_run(pg.url(drill))
        report.expect(pg.accepts_connections(drill), "the drill database accepts connections at the end")
        report.notes.append(f"the project's {JOB} has no RetryPolicy: a database blip fails its run (step 2) "
                            "until it is rerun; the same selection with dg.RetryPolicy rides over it (last step)")
    finally:
        for made_cut in cuts:
            if "timer" in made_cut:
                made_cut["timer"].cancel()
        for name in made:
            pg.drop(name)
        shutil.rmtree(homes, ignore_errors=True)


def _expect_equal(report: DrillReport, stage: str) -> None:
    ref, got = report.counts["reference"], report.counts[stage]
    diff = {t: (ref.get(t), got.get(t)) for t in sorted(set(ref) | set(got)) if ref.get(t) != got.get(t)}
    report.expect(not diff, f"{stage}: every table has the reference's row count (reference, drill)", diff)
