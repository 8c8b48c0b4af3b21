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
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from omniwatch.serving.tasks import Task, TaskStore, ThreadLauncher, Work, execute_task

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

    def _execute(self, task: Task) -> None:
        from omniwatch.jobs.serving_tasks import serving_task_job

        try:
            result = serving_task_job.execute_in_process(
                run_config=run_config(task.task_id), instance=self.instance_factory(),
                resources={"serving_tasks": _ApiTasks(self.store, self.work)}, raise_on_error=False,
                tags=run_tags(task))
        except Exception as exc:  # no run at all (e.g. an unusable instance): the task must not hang
            self.store.finish(task.task_id, only_if_active=True, error={
                "code": "task_failed", "detail": f"the Dagster instance refused the run: {type(exc).__name__}: {exc}"})
            raise
        # A run that failed before the op stored an outcome fails the task.
        self.store.attach_run(task.task_id, result.run_id)
        self.store.finish(task.task_id, only_if_active=True,
                          error={"code": "task_failed", "detail": f"dagster run {result.run_id} failed"})


class DagsterWebserverLauncher:
    executor = "dagster"
    in_process = False

    def __init__(self, url: str, store: TaskStore, timeout_s: int = 30):
        self.url = urlparse(url)
        if self.url.scheme not in ("http", "https") or not self.url.hostname:
            raise ValueError(f"OMNIWATCH_DAGSTER_WEBSERVER_URL must be an http(s) URL, got {url!r}")
        self.store, self.timeout_s = store, timeout_s

    @cached_property
    def client(self) -> DagsterGraphQLClient:
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(self.url.hostname or "", port_number=self.url.port,
                                    use_https=self.url.scheme == "https", timeout=self.timeout_s,
                                    path_prefix=self.url.path.rstrip("/"))

    def launch(self, task: Task) -> None:
        run_id = self.client.submit_job_execution(JOB, run_config=run_config(task.task_id), tags=run_tags(task))
        self.store.attach_run(task.task_id, run_id)
        log.info("task %s submitted as dagster run %s", task.task_id, run_id)

    def reconcile(self, task: Task) -> Task:
        if task.dagster_run_id is None:
            return task
        try:
            status = self.client.get_run_status(task.dagster_run_id)
        except Exception:  # the webserver is down: the stored state is all we know
            log.warning("cannot read the status of dagster run %s", task.dagster_run_id, exc_info=True)
            return task
        if status.value in ("FAILURE", "CANCELED"):
            self.store.finish(task.task_id, only_if_active=True, error={
                "code": "task_failed",
                "detail": f"dagster run {task.dagster_run_id} ended {status.value} before the task stored a result"})
            return self.store.get(task.task_id) or task
        return task

    def close(self) -> None:
        pass
