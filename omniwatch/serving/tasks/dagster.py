"""Serving tasks as Dagster runs of the code location's ``serving_task_job``.

- :class:`DagsterWebserverLauncher` submits the run over the webserver's GraphQL API
  (``OMNIWATCH_DAGSTER_WEBSERVER_URL``): the deployment's run coordinator launches it (the daemon,
  with the queued coordinator of ``deploy/dagster.yaml``), it shows in the UI and can be
  re-executed there. A run that ends without the task having stored an outcome (its process was
  killed, the run was cancelled) turns the task ``failed`` when the task is next read.
- :class:`DagsterInProcessLauncher` executes the same job in the API process against the
  configured instance (``DAGSTER_HOME``), with the API's own model router as the resource: run id,
  status and logs in the instance, no webserver needed.

Dagster itself loads with the first task, not at API start-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from omniwatch.serving.tasks.schemas import TaskErrorCode
from omniwatch.serving.tasks.service import Task, TaskStore, ThreadLauncher, Work, execute_task

if TYPE_CHECKING:
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

log = logging.getLogger(__name__)
JOB = "serving_task_job"


def run_config(task_id: str) -> dict:
    return {"ops": {"serving_task": {"config": {"task_id": task_id}}}}


def run_tags(task: Task) -> dict[str, str]:
    return {"omniwatch/task_id": task.task_id, "omniwatch/task_kind": task.kind}


class _ApiTasks:
    """The ``serving_tasks`` resource of an in-process run: the API's store and work."""

    def __init__(self, store: TaskStore, work: Work):
        self.store, self.work = store, work

    def execute(self, task_id: str, dagster_run_id: str) -> Task:
        return execute_task(self.store, self.work, task_id, dagster_run_id)


class DagsterInProcessLauncher(ThreadLauncher):
    def __init__(self, instance_factory: Callable[[], dg.DagsterInstance], store: TaskStore, work: Work):
        super().__init__(self._execute, "dagster")
        self.instance_factory, self.store, self.work = instance_factory, store, work
        self._instance: dg.DagsterInstance | None = None  # one per API process, made on first use

    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:  # only the one worker thread gets here
            self._instance = self.instance_factory()
        return self._instance

    def close(self) -> None:
        super().close()
        if self._instance is not None:
            self._instance.dispose()

    def _execute(self, task: Task) -> None:
        from omniwatch.jobs.serving_tasks import serving_task_job

        try:
            result = serving_task_job.execute_in_process(
                run_config=run_config(task.task_id), instance=self.instance(),
                resources={"serving_tasks": _ApiTasks(self.store, self.work)}, raise_on_error=False,
                tags=run_tags(task))
        except Exception as exc:  # no run at all (e.g. an unusable instance): the task must not hang
            self.store.finish(task.task_id, only_if_active=True, error={
                "code": TaskErrorCode.TASK_FAILED,
                "detail": f"the Dagster instance refused the run: {type(exc).__name__}: {exc}"})
            raise
        # A run that failed before the op stored an outcome fails the task.
        self.store.attach_run(task.task_id, result.run_id)
        self.store.finish(task.task_id, only_if_active=True, dagster_run_id=result.run_id,
                          error={"code": TaskErrorCode.TASK_FAILED, "detail": f"dagster run {result.run_id} failed"})


class DagsterWebserverLauncher:
    executor = "dagster"
    in_process = False
    never_submitted_after_s = 300.0  # a queued task with no run by then was never submitted

    def __init__(self, url: str, store: TaskStore, timeout_s: int = 30):
        self.url = urlparse(url)
        if self.url.scheme not in ("http", "https") or not self.url.hostname:
            raise ValueError(f"OMNIWATCH_DAGSTER_WEBSERVER_URL must be an http(s) URL, got {url!r}")
        self.store, self.timeout_s = store, timeout_s
        # One GraphQL transport is not safe for concurrent use (request threads overlap).
        self._lock = threading.Lock()

    @cached_property
    def client(self) -> DagsterGraphQLClient:
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(self.url.hostname or "", port_number=self.url.port,
                                    use_https=self.url.scheme == "https", timeout=self.timeout_s,
                                    path_prefix=self.url.path.rstrip("/"))

    def launch(self, task: Task) -> None:
        with self._lock:
            run_id = self.client.submit_job_execution(JOB, run_config=run_config(task.task_id), tags=run_tags(task))
        self.store.attach_run(task.task_id, run_id)
        log.info("task %s submitted as dagster run %s", task.task_id, run_id)

    def reconcile(self, task: Task) -> Task:
        """Fail an active task whose run ended (or vanished) without the task storing an outcome."""
        run_id = task.dagster_run_id
        if run_id is None:
            age = (datetime.now(timezone.utc) - task.created_at).total_seconds() if task.created_at else 0.0
            if task.status == "queued" and age > self.never_submitted_after_s:
                return self._fail(task, None, "the task was never submitted to Dagster (the API stopped?)")
            return task
        from dagster_graphql import DagsterGraphQLClientError

        try:
            with self._lock:
                status = self.client.get_run_status(run_id).value
        except DagsterGraphQLClientError as exc:
            if exc.args and exc.args[0] in ("RunNotFoundError", "PipelineRunNotFoundError"):
                return self._fail(task, run_id, f"dagster run {run_id} no longer exists")
            log.warning("cannot read the status of dagster run %s: %s", run_id, exc)
            return task
        except Exception as exc:  # the webserver is down: the stored state is all we know
            log.warning("cannot read the status of dagster run %s: %s", run_id, exc)
            return task
        if status in ("FAILURE", "CANCELED"):
            return self._fail(task, run_id, f"dagster run {run_id} ended {status} before the task stored a result")
        return task

    def _fail(self, task: Task, run_id: str | None, detail: str) -> Task:
        # Guarded by the run id seen: a re-execution started meanwhile is not failed by it.
        self.store.finish(task.task_id, only_if_active=True, dagster_run_id=run_id,
                          error={"code": TaskErrorCode.TASK_FAILED, "detail": detail})
        return self.store.get(task.task_id) or task

    def close(self) -> None:
        pass
