"""Asynchronous task requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from omniwatch.serving.backtest.schemas import BacktestResult, PnlAttributionResult
from omniwatch.tasks.store import Executor, TaskErrorCode

TaskStatusValue = Literal["queued", "running", "succeeded", "failed"]


class TaskError(BaseModel):
    code: TaskErrorCode
    detail: str


class TaskStatus(BaseModel):
    task_id: str
    kind: Literal["backtest", "pnl_attribution"]
    status: TaskStatusValue
    executor: Executor = Field(description="webserver: a run submitted to the Dagster webserver; "
                               "in_process: the same job run in the API process.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dagster_run_id: str | None = Field(default=None, description="The latest Dagster run of the task.")
    attempts: int = Field(default=0, description="Executions so far (a re-execution from the UI adds one).")
    result: BacktestResult | PnlAttributionResult | None = None
    error: TaskError | None = None
