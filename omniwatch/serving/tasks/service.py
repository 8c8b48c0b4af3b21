"""Accepting and answering tasks: stored first (``omniwatch.tasks.store``), then launched as a
run of ``serving_task_job`` by one of two launchers (``omniwatch.serving.tasks.launchers``)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from omniwatch.serving.errors import ApiError
from omniwatch.tasks.store import ACTIVE, Executor, Task, TaskErrorCode, TaskStore

log = logging.getLogger(__name__)


class Launcher(Protocol):
    @property
    def executor(self) -> Executor: ...

    def launch(self, task: Task) -> None: ...

    def reconcile(self, task: Task) -> Task: ...

    def drain(self, timeout: float) -> None: ...

    def open(self) -> None: ...

    def close(self) -> None: ...


class TaskRunner:
    """Accepts tasks (stored first, then launched) and answers their state from the store."""

    def __init__(self, store: TaskStore, launcher: Launcher):
        self.store, self.launcher = store, launcher

    def recover(self) -> None:
        """At start-up: (re)open the launcher, and fail the in-process tasks a stopped API process
        left behind (whatever executor this process uses)."""
        self.launcher.open()
        try:
            n = self.store.interrupt_orphans()
        except SQLAlchemyError as exc:  # e.g. a warehouse not migrated yet: the API still starts
            log.warning("cannot check serving_tasks for interrupted tasks: %s", exc)
            return
        if n:
            log.warning("%d task(s) of a stopped API process marked task_interrupted", n)

    def submit(self, kind: str, payload: dict) -> Task:
        executor = self.launcher.executor
        task = self.store.create(kind, payload, executor)
        try:
            self.launcher.launch(task)
        except Exception as exc:
            log.exception("launching task %s failed", task.task_id)  # the full reason, for operators
            detail = f"the {executor} executor did not accept the task ({type(exc).__name__}); see the API log"
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
        deadline = time.monotonic() + timeout
        self.launcher.drain(timeout)
        task = self.get(task_id)
        while task is not None and task.status in ACTIVE and time.monotonic() < deadline:
            time.sleep(poll_s)
            task = self.get(task_id)
        return task

    def close(self) -> None:
        self.launcher.close()
