"""Asynchronous task requests and answers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from omniwatch.serving.backtest.schemas import BacktestResult, PnlAttributionResult

TaskStatusValue = Literal["queued", "running", "succeeded", "failed"]


class TaskErrorCode(StrEnum):
    """Why a task failed: the typed refusals of its work, or what happened to its execution."""

    INSUFFICIENT_FEATURES = "insufficient_features"
    INSUFFICIENT_PRICES = "insufficient_prices"
    MODEL_ARTIFACT_MISSING = "model_artifact_missing"
    IN_SAMPLE_WINDOW = "in_sample_window"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    SCORING_FAILED = "scoring_failed"
    TASK_FAILED = "task_failed"                              # the work or its Dagster run crashed
    TASK_INTERRUPTED = "task_interrupted"                    # the API process running it stopped
    TASK_EXECUTOR_UNAVAILABLE = "task_executor_unavailable"  # the Dagster webserver did not take it


class TaskError(BaseModel):
    code: TaskErrorCode
    detail: str


class TaskStatus(BaseModel):
    task_id: str
    kind: Literal["backtest", "pnl_attribution"]
    status: TaskStatusValue
    executor: Literal["local", "dagster"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dagster_run_id: str | None = Field(default=None, description="The latest Dagster run of the task.")
    attempts: int = Field(default=0, description="Executions so far (a re-execution from the UI adds one).")
    result: BacktestResult | PnlAttributionResult | None = None
    error: TaskError | None = None
