"""Tasks as runs of the code location's serving_task_job, submitted to a real Dagster webserver
(``dagster dev``: webserver and daemon; the daemon dequeues each run and launches it in its own
process), re-executed over GraphQL, and reconciled when a run ends without storing an outcome."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from servers import free_port, stop_group
from sqlalchemy import func, select

from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for

P = "/api/v2"
ROOT = Path(__file__).resolve().parents[2]
WINDOW = {"start": "2024-08-10T00:00:00Z", "end": "2024-08-12T00:00:00Z", "band_bps": 0.5,
          "allow_in_sample": True}  # the fixture holds only the training span's data
EMPTY = {"start": "2023-01-01T00:00:00Z", "end": "2023-01-02T00:00:00Z"}
REEXECUTE = """mutation($parent: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  }
}"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    r.raise_for_status()
    return r.json()["data"]


@pytest.fixture
def webserver(own_home: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``dagster dev`` (webserver + daemon) over the repository's workspace.yaml, its instance in
    a fresh DAGSTER_HOME (queued run coordinator, the default), the code location configured for
    ``own_home`` through the environment. Per test: a shared one made the second test wait for the
    first one's trailing runs in the daemon's queue (80 s instead of 13)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "OMNIWATCH_HOME": str(own_home.home),
           "OMNIWATCH_SERVING_DEVICE": "cpu"}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1",
                             "-p", str(port), "-w", "workspace.yaml"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            assert time.time() < deadline, "the webserver did not load the code location in 120 s"
            try:
                entries = _graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, home
    finally:
        # dagster dev did not exit within 30 s of SIGTERM to its group here (the default 30 s grace
        # cost each test 30 s); Ctrl-C to it alone shuts it down in seconds. Past 10 s the group is
        # killed (its instance is this test's own temporary DAGSTER_HOME).
        stop_group(proc, grace_s=10, parent_sigint=True)
        log.close()


def _wait(c, task_id: str, timeout: float = 240) -> dict:
    task = c.app.state.services.tasks.wait(task_id, timeout=timeout, poll_s=0.5)
    assert task is not None
    r = c.get(f"{P}/tasks/{task_id}")
    assert r.status_code == 200
    return r.json()


def _wait_run(instance: DagsterInstance, run_id: str, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        time.sleep(0.5)
    raise AssertionError(f"dagster run {run_id} did not finish in {timeout} s")


def test_tasks_are_launched_runs_of_the_code_location_job_and_can_be_re_executed(own_home, webserver):
    url, dagster_home = webserver
    instance = DagsterInstance.from_config(str(dagster_home))
    with client_for(own_home, dagster_webserver_url=url) as c:
        r = c.post(f"{P}/tasks/backtest", json=WINDOW, headers=AUTH)
        assert r.status_code == 202 and r.json()["executor"] == "webserver", r.text
        first_run = r.json()["dagster_run_id"]
        assert first_run  # submitted: the run exists before the API answers
        task = _wait(c, r.json()["task_id"])
        assert task["status"] == "succeeded", task
        assert task["result"]["run_id"] == task["task_id"] and task["result"]["status"] == "succeeded"
        run = _wait_run(instance, first_run)
        assert run.job_name == "serving_task_job" and run.status == DagsterRunStatus.SUCCESS
        assert run.tags["omniwatch/task_id"] == task["task_id"] and run.remote_job_origin is not None

        # Re-execution from the UI (its GraphQL mutation) recomputes the same task in a new run.
        launched = _graphql(url, REEXECUTE, {"parent": first_run})["launchRunReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        second_run = launched["run"]["runId"]
        assert _wait_run(instance, second_run).status == DagsterRunStatus.SUCCESS
        again = c.get(f"{P}/tasks/{task['task_id']}").json()
        assert again["status"] == "succeeded" and again["dagster_run_id"] == second_run
        assert again["result"]["cost_breakdown"] == task["result"]["cost_breakdown"]
        runs = tables.backtest_runs
        with get_engine(own_home.warehouse_url).connect() as conn:
            assert conn.execute(select(func.count()).select_from(runs).where(
                runs.c.run_id == task["task_id"])).scalar_one() == 1
        assert (task["attempts"], again["attempts"]) == (1, 2)

        # A refused task fails its run with the task's error code in the failure metadata.
        failed = _wait(c, c.post(f"{P}/tasks/pnl-attribution", json=EMPTY, headers=AUTH).json()["task_id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "insufficient_features"
        failed_run = _wait_run(instance, failed["dagster_run_id"])
        assert failed_run.status == DagsterRunStatus.FAILURE
        failures = [e for e in instance.all_logs(failed_run.run_id) if e.dagster_event
                    and e.dagster_event.event_type_value == "STEP_FAILURE"]
        metadata = failures[0].dagster_event.event_specific_data.user_failure_data.metadata
        assert metadata["error_code"].value == "insufficient_features"

        # Requests overlap in the server's thread pool: concurrent submissions and polls all pass.
        with ThreadPoolExecutor(6) as pool:
            posts = list(pool.map(lambda _: c.post(f"{P}/tasks/pnl-attribution", json=EMPTY, headers=AUTH),
                                  range(6)))
            assert [r.status_code for r in posts] == [202] * 6, [r.text for r in posts]
            polls = list(pool.map(lambda r: c.get(f"{P}/tasks/{r.json()['task_id']}"), posts * 2))
        assert {r.status_code for r in polls} == {200}
        assert all(r.json()["dagster_run_id"] for r in posts)


def test_a_run_that_ends_without_storing_an_outcome_fails_its_task(own_home, webserver):
    """A run that dies before its task stored anything (here: it names a task the store does not
    hold yet, as if the row were written after the run's process crashed) leaves the task queued;
    the next read asks the webserver, sees the failed run and fails the task."""
    url, dagster_home = webserver
    instance = DagsterInstance.from_config(str(dagster_home))
    with client_for(own_home, dagster_webserver_url=url) as c:
        runner = c.app.state.services.tasks
        orphan = "00000000-0000-4000-8000-00000000abcd"
        run_id = runner.launcher.client.submit_job_execution(
            "serving_task_job", run_config={"ops": {"serving_task": {"config": {"task_id": orphan}}}})
        assert _wait_run(instance, run_id).status == DagsterRunStatus.FAILURE
        with get_engine(own_home.warehouse_url).begin() as conn:
            conn.execute(tables.serving_tasks.insert().values(
                task_id=orphan, kind="backtest", executor="webserver", in_process=False, status="queued",
                payload=WINDOW, dagster_run_id=run_id, created_at=datetime.now(UTC)))
        task = c.get(f"{P}/tasks/{orphan}").json()
    assert task["status"] == "failed" and task["error"]["code"] == "task_failed"
    assert run_id in task["error"]["detail"] and "FAILURE" in task["error"]["detail"]


def test_an_unreachable_webserver_is_503_and_the_task_is_stored_as_failed(own_home):
    with client_for(own_home, dagster_webserver_url=f"http://127.0.0.1:{free_port()}") as c:
        r = c.post(f"{P}/tasks/backtest", json=WINDOW, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "task_executor_unavailable"
        task_id = r.json()["context"]["task_id"]
        task = c.get(f"{P}/tasks/{task_id}").json()
    assert task["status"] == "failed" and task["error"]["code"] == "task_executor_unavailable"
