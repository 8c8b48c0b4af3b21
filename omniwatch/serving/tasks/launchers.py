"""The two ways a task becomes a run of ``serving_task_job`` (``omniwatch.tasks.job``).

- :class:`WebserverLauncher` (``OMNIWATCH_DAGSTER_WEBSERVER_URL`` set) submits the run over the
  webserver's GraphQL API: the deployment's run coordinator launches it (the daemon, with the
  queued coordinator of ``deploy/dagster.yaml``), it shows in the UI and can be re-executed there.
  A run that ends without the task having stored an outcome (its process was killed, the run was
  cancelled) turns the task ``failed`` when the task is next read.
- :class:`InProcessLauncher` (the embedded default) executes the same job in the API process,
  one task at a time (on a small machine a second replay would only slow the first), against the
  configured Dagster instance (``DAGSTER_HOME``): run id, status and logs in the instance.

Dagster itself loads with the first task, not at API start-up.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from omniwatch.settings import Settings
from omniwatch.tasks.store import Task, TaskErrorCode, TaskStore

if TYPE_CHECKING:
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient


log = logging.getLogger(__name__)


class InProcessLauncher:
    executor: Literal["in_process"] = "in_process"

    def __init__(self, settings: Settings, store: TaskStore):
        self.settings, self.store = settings, store
        self._instance: dg.DagsterInstance | None = None  # one per API process, made on first use
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniwatch-task")

    def launch(self, task: Task) -> None:
        self._pool.submit(self._run, task)

    def open(self) -> None:
        """Start a new worker after ``close`` (an app restarted in the same process: its lifespan
        runs again, as with a second test client). The old worker finishes its task first: one
        Dagster execution at a time per process (two at once deadlock in logging's locks)."""
        if self._pool._shutdown:  # noqa: SLF001 - ThreadPoolExecutor has no public "is shut down"
            self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniwatch-task")

    def _run(self, task: Task) -> None:
        from omniwatch.instance import dagster_instance
        from omniwatch.tasks.job import ServingTasksResource, run_config, run_tags, serving_task_job

        s = self.settings
        resource = ServingTasksResource(database_url=s.warehouse_url, tracking_uri=s.mlflow_uri,
                                        serving_device=s.serving_device, in_process=True)
        try:
            if self._instance is None:  # only the one worker thread gets here
                self._instance = dagster_instance(s)
            result = serving_task_job.execute_in_process(
                run_config=run_config(task.task_id), instance=self._instance,
                resources={"serving_tasks": resource}, raise_on_error=False, tags=run_tags(task))
        except Exception as exc:  # no run at all (e.g. an unusable instance): the task must not hang
            log.exception("running task %s failed", task.task_id)
            self.store.finish(task.task_id, only_if_active=True, error={
                "code": TaskErrorCode.TASK_FAILED,
                "detail": f"the Dagster instance refused the run: {type(exc).__name__}: {exc}"})
            return
        # A run that failed before the op stored an outcome fails the task.
        self.store.attach_run(task.task_id, result.run_id)
        self.store.finish(task.task_id, only_if_active=True, dagster_run_id=result.run_id,
                          error={"code": TaskErrorCode.TASK_FAILED, "detail": f"dagster run {result.run_id} failed"})

    def reconcile(self, task: Task) -> Task:
        return task

    def drain(self, timeout: float) -> None:
        done = threading.Event()
        self._pool.submit(done.set)  # one worker: this runs after every earlier task
        done.wait(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


class WebserverLauncher:
    executor: Literal["webserver"] = "webserver"
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
        from omniwatch.tasks.job import JOB, run_config, run_tags

        with self._lock:
            run_id = self.client.submit_job_execution(JOB, run_config=run_config(task.task_id), tags=run_tags(task))
        self.store.attach_run(task.task_id, run_id)
        log.info("task %s submitted as dagster run %s", task.task_id, run_id)

    def reconcile(self, task: Task) -> Task:
        """Fail an active task whose run ended (or vanished) without the task storing an outcome."""
        run_id = task.dagster_run_id
        if run_id is None:
            age = (datetime.now(UTC) - task.created_at).total_seconds() if task.created_at else 0.0
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

    def drain(self, timeout: float) -> None:
        pass  # runs are polled through reconcile

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass
