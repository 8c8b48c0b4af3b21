"""Asynchronous tasks (backtests, PnL attribution): accepted at once, run elsewhere, polled by id.

State lives in the warehouse table ``serving_tasks`` (request, status, result or typed error,
Dagster run id), so a task outlives the process that accepted it and any API process answers
for it. Three launchers run the stored task through the same :func:`execute_task`:

- ``local``: one worker thread in the API process (one at a time: on a small machine a second
  replay would only slow the first);
- ``dagster`` with ``OMNIWATCH_DAGSTER_WEBSERVER_URL``: a run of the code location's
  ``serving_task_job`` submitted over the webserver's GraphQL API, launched by the deployment's
  run coordinator (the daemon with the queued coordinator); it shows in the UI like any run and
  can be re-executed there, which recomputes the same task;
- ``dagster`` without a webserver (``DAGSTER_HOME`` only): the same job executed in the API
  process against that instance (run id, status and logs in the instance).

A task that ran inside an API process which then stopped is marked ``task_interrupted`` when
the next one starts; each attempt stores its outcome only while it is still the current attempt,
so a stale worker never overwrites a newer state. In-process tasks assume one API process per
warehouse (a second one starting would interrupt the first one's tasks): run several API
processes with the Dagster webserver executor.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic_core import to_jsonable_python
from sqlalchemy import select, update

from omniwatch.serving.tasks.schemas import TaskErrorCode
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

log = logging.getLogger(__name__)
Work = Callable[[str, str, dict], dict]   # (kind, task_id, payload) -> result
T = tables.serving_tasks
ACTIVE = ("queued", "running")


@dataclass
class Task:
    task_id: str
    kind: str
    executor: str
    status: str = "queued"
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dagster_run_id: str | None = None
    result: dict | None = None
    error: dict | None = None
    attempts: int = 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TaskStore:
    """Rows of ``serving_tasks``; every change is one short transaction."""

    def __init__(self, database_url: str):
        self.database_url = database_url

    def _engine(self):
        return get_engine(self.database_url)

    def create(self, kind: str, payload: dict, executor: str, in_process: bool) -> Task:
        task = Task(str(uuid.uuid4()), kind, executor, created_at=_now())
        with self._engine().begin() as conn:
            conn.execute(T.insert().values(task_id=task.task_id, kind=kind, executor=executor,
                                           in_process=in_process, status="queued", payload=payload,
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

    def request(self, task_id: str) -> tuple[str, dict]:
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

    def finish(self, task_id: str, result: dict | None = None, error: dict | None = None, *,
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
    from omniwatch.serving.errors import ApiError

    kind, payload = store.request(task_id)
    attempt = store.start(task_id, dagster_run_id, in_process)
    try:
        outcome: dict[str, Any] = {"result": to_jsonable_python(work(kind, task_id, payload))}
    except ApiError as exc:
        typed = exc.code in TaskErrorCode._value2member_map_
        outcome = {"error": {"code": exc.code if typed else TaskErrorCode.TASK_FAILED,
                             "detail": exc.detail if typed else f"{exc.code}: {exc.detail}"}}
    except Exception as exc:  # the task fails, the worker lives on
        log.exception("task %s (%s) failed", task_id, kind)
        outcome = {"error": {"code": TaskErrorCode.TASK_FAILED, "detail": f"{type(exc).__name__}: {exc}"}}
    if not store.finish(task_id, attempt=attempt, **outcome):
        log.warning("task %s attempt %d ended after it was interrupted or re-run; outcome not stored",
                    task_id, attempt)
    task = store.get(task_id)
    assert task is not None
    return task


class Launcher(Protocol):
    executor: str
    in_process: bool

    def launch(self, task: Task) -> None: ...

    def reconcile(self, task: Task) -> Task: ...

    def close(self) -> None: ...


class ThreadLauncher:
    """Runs each task in the API process, one at a time (``local``, or an in-process Dagster run)."""

    in_process = True

    def __init__(self, run: Callable[[Task], Any], executor: str):
        self.run, self.executor = run, executor
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniwatch-task")

    def launch(self, task: Task) -> None:
        self._pool.submit(self._run, task)

    def _run(self, task: Task) -> None:
        try:
            self.run(task)
        except Exception:  # execute_task stores the task's failures; this is the launcher's own
            log.exception("running task %s failed", task.task_id)

    def reconcile(self, task: Task) -> Task:
        return task

    def drain(self, timeout: float) -> None:
        done = threading.Event()
        self._pool.submit(done.set)  # one worker: this runs after every earlier task
        done.wait(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TaskRunner:
    """Accepts tasks (stored first, then launched) and answers their state from the store."""

    def __init__(self, store: TaskStore, launcher: Launcher):
        self.store, self.launcher = store, launcher
        self.executor = launcher.executor

    def recover(self) -> None:
        """At start-up: fail the in-process tasks a stopped API process left behind (whatever
        executor this process uses)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            n = self.store.interrupt_orphans()
        except SQLAlchemyError as exc:  # e.g. a warehouse not migrated yet: the API still starts
            log.warning("cannot check serving_tasks for interrupted tasks: %s", exc)
            return
        if n:
            log.warning("%d task(s) of a stopped API process marked task_interrupted", n)

    def submit(self, kind: str, payload: dict) -> Task:
        task = self.store.create(kind, payload, self.executor, self.launcher.in_process)
        try:
            self.launcher.launch(task)
        except Exception as exc:
            from omniwatch.serving.errors import ApiError

            log.exception("launching task %s failed", task.task_id)  # the full reason, for operators
            detail = f"the {self.executor} executor did not accept the task ({type(exc).__name__}); see the API log"
            self.store.finish(task.task_id, error={"code": TaskErrorCode.TASK_EXECUTOR_UNAVAILABLE, "detail": detail})
            raise ApiError(503, TaskErrorCode.TASK_EXECUTOR_UNAVAILABLE, detail, {"task_id": task.task_id}) from exc
        return self.get(task.task_id) or task

    def get(self, task_id: str) -> Task | None:
        task = self.store.get(task_id)
        if task is not None and task.status in ACTIVE:
            task = self.launcher.reconcile(task)
        return task

    def wait(self, task_id: str, timeout: float = 60.0, poll_s: float = 0.2) -> Task | None:
        """Block until the task ends or the timeout passes (tests and scripts); returns it."""
        import time

        deadline = time.monotonic() + timeout
        if isinstance(self.launcher, ThreadLauncher):
            self.launcher.drain(timeout)
        task = self.get(task_id)
        while task is not None and task.status in ACTIVE and time.monotonic() < deadline:
            time.sleep(poll_s)
            task = self.get(task_id)
        return task

    def close(self) -> None:
        self.launcher.close()
