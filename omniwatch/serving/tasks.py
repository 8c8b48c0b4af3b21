"""Asynchronous tasks (backtests, PnL attribution): accepted at once, run in the background.

Executors: ``local``, one worker thread in the API process (one at a time: on a small machine a
second replay would only slow the first), or ``dagster``, where each task is a run of
``serving_task_job`` recorded in the configured Dagster instance (run id, status, logs in the
UI). Task state lives in this process; a backtest task's id is also its ``backtest_runs`` id,
so its stored result outlives a restart (``GET /api/v2/backtest/{run_id}``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from omniwatch.serving.errors import ApiError

log = logging.getLogger(__name__)
Work = Callable[[str, str, dict], dict]   # (kind, task_id, payload) -> result


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TaskRunner:
    def __init__(self, work: Work, executor: str = "local", instance_factory: Callable[[], Any] | None = None):
        if executor == "dagster" and instance_factory is None:
            raise ValueError("the dagster executor needs a Dagster instance")
        self.work, self.executor, self.instance_factory = work, executor, instance_factory
        self._tasks: dict[str, Task] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniwatch-task")
        self._lock = threading.Lock()

    def submit(self, kind: str, payload: dict) -> Task:
        task = Task(str(uuid.uuid4()), kind, self.executor, created_at=_now())
        with self._lock:
            self._tasks[task.task_id] = task
        self._pool.submit(self._execute, task, payload)
        return task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def wait(self, task_id: str, timeout: float = 60.0) -> Task | None:
        """Block until the task ends (tests and scripts); returns it."""
        done = threading.Event()
        self._pool.submit(done.set)  # one worker: this runs after every earlier task
        done.wait(timeout)
        return self.get(task_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _execute(self, task: Task, payload: dict) -> None:
        task.status, task.started_at = "running", _now()
        try:
            if self.executor == "dagster":
                from omniwatch.serving.dagster_tasks import run_in_dagster

                task.dagster_run_id, task.result = run_in_dagster(
                    self.instance_factory(), self.work, task.kind, task.task_id, payload)
            else:
                task.result = self.work(task.kind, task.task_id, payload)
            task.status = "succeeded"
        except ApiError as exc:
            task.status, task.error = "failed", {"code": exc.code, "detail": exc.detail}
            task.dagster_run_id = (exc.context or {}).get("dagster_run_id", task.dagster_run_id)
        except Exception as exc:  # the task fails, the worker lives on
            log.exception("task %s (%s) failed", task.task_id, task.kind)
            task.status, task.error = "failed", {"code": "task_failed", "detail": f"{type(exc).__name__}: {exc}"}
        finally:
            task.finished_at = _now()
