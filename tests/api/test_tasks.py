"""Asynchronous tasks on the embedded default: runs of serving_task_job executed in the API process."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from omniwatch.tasks.store import TaskStore

from .conftest import AUTH, client_for

P = "/api/v2"
WINDOW = {"start": "2024-08-10T00:00:00Z", "end": "2024-08-14T00:00:00Z", "band_bps": 0.5,
          "allow_in_sample": True}  # the fixture holds only the training span's data


def _finish(c, task_id: str) -> dict:
    c.app.state.services.tasks.wait(task_id)
    r = c.get(f"{P}/tasks/{task_id}")
    assert r.status_code == 200
    return r.json()


def test_a_backtest_task_runs_in_the_background_and_is_also_a_backtest_run(client):
    r = client.post(f"{P}/tasks/backtest", json=WINDOW, headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "succeeded")
    assert r.json()["executor"] == "in_process"
    task = _finish(client, r.json()["task_id"])
    assert task["status"] == "succeeded" and task["error"] is None
    assert task["result"]["run_id"] == task["task_id"] and task["result"]["status"] == "succeeded"
    stored = client.get(f"{P}/backtest/{task['task_id']}").json()
    assert stored["cost_breakdown"] == task["result"]["cost_breakdown"]


def test_pnl_attribution_splits_sum_to_the_total(client):
    r = client.post(f"{P}/tasks/pnl-attribution", json=WINDOW, headers=AUTH)
    task = _finish(client, r.json()["task_id"])
    assert task["status"] == "succeeded", task
    result = task["result"]
    assert result["in_sample"] is True
    total = result["total"]
    assert total["net"] == pytest.approx(total["gross"] - total["fees"] - total["slippage"] - total["funding"])
    for split in ("by_target", "by_side", "by_month"):
        for part in ("gross", "fees", "net"):
            assert sum(p[part] for p in result[split].values()) == pytest.approx(total[part], abs=1e-12), split
    assert set(result["by_target"]) == {"BTC", "ETH", "SOL"} and set(result["by_month"]) == {"2024-08"}
    # Same replay, same band: the pooled net of a backtest.
    bt = client.post(f"{P}/backtest/run", json=WINDOW, headers=AUTH).json()
    assert bt["cost_breakdown"]["net"] == pytest.approx(total["net"], abs=1e-12)


def test_a_failing_task_keeps_its_error_code_and_unknown_tasks_are_404(client):
    r = client.post(f"{P}/tasks/backtest", json={"start": "2023-01-01T00:00:00Z", "end": "2023-01-02T00:00:00Z"},
                    headers=AUTH)
    task = _finish(client, r.json()["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "insufficient_features"
    assert client.get(f"{P}/tasks/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.post(f"{P}/tasks/backtest", json=WINDOW).status_code == 401


def test_with_a_dagster_instance_each_task_is_a_dagster_run(own_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    with client_for(own_home) as c:
        r = c.post(f"{P}/tasks/backtest", json=WINDOW, headers=AUTH)
        assert r.json()["executor"] == "in_process"
        task = _finish(c, r.json()["task_id"])
        failed = _finish(c, c.post(f"{P}/tasks/pnl-attribution", headers=AUTH,
                                   json={"start": "2023-01-01T00:00:00Z", "end": "2023-01-02T00:00:00Z"}
                                   ).json()["task_id"])
    assert task["status"] == "succeeded", task
    assert task["result"]["status"] == "succeeded" and task["dagster_run_id"]
    instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    run = instance.get_run_by_id(task["dagster_run_id"])
    assert run.job_name == "serving_task_job" and run.status == DagsterRunStatus.SUCCESS
    assert run.tags["omniwatch/task_id"] == task["task_id"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "insufficient_features"
    assert instance.get_run_by_id(failed["dagster_run_id"] or "").status == DagsterRunStatus.FAILURE


def test_task_state_outlives_the_api_process_that_accepted_it(own_warehouse):
    """State lives in serving_tasks: a second app (a restart, or another API process) answers
    for a finished task; a task a stopped process left running is failed as task_interrupted."""
    with client_for(own_warehouse) as c:
        done = _finish(c, c.post(f"{P}/tasks/pnl-attribution", json=WINDOW, headers=AUTH).json()["task_id"])
    assert done["status"] == "succeeded"
    stranded = TaskStore(own_warehouse.warehouse_url).create("backtest", WINDOW, "in_process")
    TaskStore(own_warehouse.warehouse_url).start(stranded.task_id)
    with client_for(own_warehouse) as c:  # the restart
        again = c.get(f"{P}/tasks/{done['task_id']}").json()
        interrupted = c.get(f"{P}/tasks/{stranded.task_id}").json()
    assert again == done
    assert interrupted["status"] == "failed" and interrupted["error"]["code"] == "task_interrupted"
    assert interrupted["finished_at"] is not None


def test_an_unusable_dagster_instance_fails_the_task_instead_of_leaving_it_queued(own_home, tmp_path, monkeypatch):
    home = tmp_path / "broken_dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  no_such_storage: {}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with client_for(own_home) as c:
        task = _finish(c, c.post(f"{P}/tasks/backtest", json=WINDOW, headers=AUTH).json()["task_id"])
    assert task["status"] == "failed" and task["error"]["code"] == "task_failed"
    assert "Dagster instance refused the run" in task["error"]["detail"]
