"""The serving_tasks state machine: each outcome lands only on the attempt (or run) that made it,
so a stale worker or a late reconcile never overwrites a newer state (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

from omniwatch.tasks.store import TaskStore, execute_task
from omniwatch.trading.backtest import BacktestErrorCode, BacktestRefused

REQUEST = {"start": "2024-08-10T00:00:00Z", "end": "2024-08-12T00:00:00Z"}


def test_a_worker_that_outlived_its_interruption_does_not_revive_the_task(warehouse_url):
    store = TaskStore(warehouse_url)
    task = store.create("backtest", REQUEST, "in_process")
    attempt = store.start(task.task_id)
    assert store.interrupt_orphans() == 1  # a new API process started meanwhile
    assert not store.finish(task.task_id, attempt=attempt, result={"late": True})
    stored = store.get(task.task_id)
    assert stored.status == "failed" and stored.error["code"] == "task_interrupted" and stored.result is None


def test_only_the_current_attempt_stores_its_outcome(warehouse_url):
    store = TaskStore(warehouse_url)
    task = store.create("backtest", REQUEST, "webserver")
    first = store.start(task.task_id, "run-1")
    second = store.start(task.task_id, "run-2")  # a re-execution from the UI
    assert (first, second) == (1, 2)
    assert not store.finish(task.task_id, attempt=first, error={"code": "task_failed", "detail": "old run"})
    # A reconcile that saw run-1 end must not fail the attempt of run-2 either.
    assert not store.finish(task.task_id, only_if_active=True, dagster_run_id="run-1",
                            error={"code": "task_failed", "detail": "run-1 ended"})
    assert store.get(task.task_id).status == "running"
    assert store.finish(task.task_id, attempt=second, result={"ok": 1})
    stored = store.get(task.task_id)
    assert (stored.status, stored.result, stored.attempts) == ("succeeded", {"ok": 1}, 2)
    assert stored.dagster_run_id == "run-2"


def test_execute_task_stores_typed_errors_and_results_as_json(warehouse_url):
    store = TaskStore(warehouse_url)

    def work(kind: str, task_id: str, payload: dict) -> dict:
        if kind == "pnl_attribution":
            raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_FEATURES, "no snapshots")
        return {"task": task_id, "at": datetime(2024, 8, 10, tzinfo=UTC), "payload": payload}

    ok = execute_task(store, work, store.create("backtest", REQUEST, "in_process").task_id)
    refused = execute_task(store, work, store.create("pnl_attribution", REQUEST, "in_process").task_id)
    assert ok.status == "succeeded" and ok.result["payload"] == REQUEST
    assert ok.result["at"] == "2024-08-10T00:00:00+00:00"
    assert refused.status == "failed" and refused.error == {"code": "insufficient_features", "detail": "no snapshots"}
    assert store.interrupt_orphans() == 0  # finished tasks are never interrupted
