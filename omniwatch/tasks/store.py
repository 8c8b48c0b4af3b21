"""Asynchronous tasks (backtests, PnL attribution): their state and how one is executed.

State lives in the warehouse table ``serving_tasks`` (request, status, result or typed error,
Dagster run id), so a task outlives the process that accepted it and any API process answers
for it. A task runs as a run of ``serving_task_job`` (:mod:`omniwatch.tasks.job`), through
:func:`execute_task`, on one of two executors:

- ``webserver`` (when ``OMNIWATCH_DAGSTER_WEBSERVER_URL`` is set): submitted over the
  webserver's GraphQL API and launched by the deployment's run coordinator; it shows in the UI
  like any run and can be re-executed there, which recomputes the same task;
- ``in_process`` (the embedded default): the same job executed in the API process, one task at a
  time, against the configured Dagster instance (run id, status and logs there).

A task that ran inside an API process which then stopped is marked ``task_interrupted`` when
the next one starts; each attempt stores its outcome only while it is still the current attempt,
so a stale worker never overwrites a newer state. ``in_process`` assumes one API process per
warehouse (a second one starting would interrupt the first one's tasks): run several API
processes with the webserver executor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Engine, select, update

from omniwatch.jsonsafe import json_safe
from omniwatch.ml.versions import ModelUnavailable
from omniwatch.trading.backtest import BacktestRefused
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

log = logging.getLogger(__name__)
Work = Callable[[str, str, dict[str, Any]], dict[str, Any]]   # (kind, task_id, payload) -> result
Executor = Literal["webserver", "in_process"]
T = tables.serving_tasks
ACTIVE = ("queued", "running")


class TaskErrorCode(StrEnum):
    """Why a task failed: the typed refusals of its work, or what happened to its execution."""

    INSUFFICIENT_FEATURES = "insufficient_features"
    INSUFFICIENT_PRICES = "insufficient_prices"
    MODEL_ARTIFACT_MISSING = "model_artifact_missing"
    IN_SAMPLE_WINDOW = "in_sample_window"
    TASK_FAILED = "task_failed"                              # the work or its Dagster run crashed
    TASK_INTERRUPTED = "task_interrupted"                    # the API process running it stopped
    TASK_EXECUTOR_UNAVAILABLE = "task_executor_unavailable"  # the Dagster webserver did not take it


@dataclass
class Task:
    task_id: str
    kind: str
    executor: Executor
    status: str = "queued"
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dagster_run_id: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class TaskStore:
    """Rows of ``serving_tasks``; every change is one short transaction."""

    def __init__(self, database_url: str):
        self.database_url = database_url

    def _engine(self) -> Engine:
        return get_engine(self.database_url)

    def create(self, kind: str, payload: dict[str, Any], executor: Executor) -> Task:
        task = Task(str(uuid.uuid4()), kind, executor, created_at=_now())
        with self._engine().begin() as conn:
            conn.execute(T.insert().values(task_id=task.task_id, kind=kind, executor=executor,
                                           in_process=executor == "in_process", status="queued", payload=payload,
                                           created_at=task.created_at))
        return task

    def get(self, task_id: str) -> Task | None:
        with self._engine().connect() as conn:
            row = conn.execute(select(T).where(T.c.task_id == task_id)).mappings().first()
        if row is None:
            return None
        return Task(row["task_id"], row["kind"], row["executor"], row["status"], row["created_at"],
                    row["started_at"], row["finished_at"], row["dagster_run_id"],
                    row["result"], row["error"], row["attempts"])

    def request(self, task_id: str) -> tuple[str, dict[str, Any]]:
        """(kind, payload) of a stored task; KeyError when there is none."""
        with self._engine().connect() as conn:
            row = conn.execute(select(T.c.kind, T.c.payload).where(T.c.task_id == task_id)).first()
        if row is None:
            raise KeyError(f"no serving task {task_id!r}")
        return row.kind, row.payload

    def start(self, task_id: str, dagster_run_id: str | None = None, in_process: bool | None = None) -> int:
        """Running from now; a re-execution starts over (result and error cleared). Returns the
        attempt number, which guards this attempt's outcome against a later one."""
        values: dict[str, Any] = dict(status="running", started_at=_now(), finished_at=None, result=None,
                                      error=None, attempts=T.c.attempts + 1)
        if dagster_run_id is not None:
            values["dagster_run_id"] = dagster_run_id
        if in_process is not None:
            values["in_process"] = in_process
        with self._engine().begin() as conn:
            conn.execute(update(T).where(T.c.task_id == task_id).values(**values))
            return int(conn.execute(select(T.c.attempts).where(T.c.task_id == task_id)).scalar_one())

    def attach_run(self, task_id: str, dagster_run_id: str) -> None:
        with self._engine().begin() as conn:
            conn.execute(update(T).where(T.c.task_id == task_id, T.c.dagster_run_id.is_(None))
                         .values(dagster_run_id=dagster_run_id))

    def finish(self, task_id: str, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None, *,
               attempt: int | None = None, only_if_active: bool = False,
               dagster_run_id: str | None = None) -> bool:
        """Store the outcome; with a guard, only while the row is still that attempt / active /
        that run (a stale writer never overwrites a newer attempt). True when written."""
        query = update(T).where(T.c.task_id == task_id)
        if attempt is not None:
            query = query.where(T.c.attempts == attempt, T.c.status == "running")
        if only_if_active:
            query = query.where(T.c.status.in_(ACTIVE))
        if dagster_run_id is not None:
            query = query.where(T.c.dagster_run_id == dagster_run_id)
        with self._engine().begin() as conn:
            return conn.execute(query.values(status="failed" if error else "succeeded", result=result,
                                             error=error, finished_at=_now())).rowcount == 1

    def interrupt_orphans(self) -> int:
        """Fail the in-process tasks a stopped API process left queued or running."""
        error = {"code": TaskErrorCode.TASK_INTERRUPTED,
                 "detail": "the API process running this task stopped; submit it again"}
        with self._engine().begin() as conn:
            return conn.execute(update(T).where(T.c.in_process.is_(True), T.c.status.in_(ACTIVE)).values(
                status="failed", error=error, finished_at=_now())).rowcount


def execute_task(store: TaskStore, work: Work, task_id: str, dagster_run_id: str | None = None,
                 in_process: bool | None = None) -> Task:
    """Run one stored task and store its result or typed error; never raises for the task's own
    failure (the returned task says how it ended)."""
    kind, payload = store.request(task_id)
    attempt = store.start(task_id, dagster_run_id, in_process)
    try:
        outcome: dict[str, Any] = {"result": json_safe(work(kind, task_id, payload))}
    except (BacktestRefused, ModelUnavailable) as exc:  # the work's typed refusals
        outcome = {"error": {"code": TaskErrorCode(exc.code), "detail": exc.detail}}
    except Exception as exc:  # the task fails, the worker lives on
        log.exception("task %s (%s) failed", task_id, kind)
        outcome = {"error": {"code": TaskErrorCode.TASK_FAILED, "detail": f"{type(exc).__name__}: {exc}"}}
    if not store.finish(task_id, attempt=attempt, **outcome):
        log.warning("task %s attempt %d ended after it was interrupted or re-run; outcome not stored",
                    task_id, attempt)
    task = store.get(task_id)
    assert task is not None
    return task
