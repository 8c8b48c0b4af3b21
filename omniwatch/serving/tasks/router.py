"""Asynchronous backtests and PnL attributions: accepted with 202, polled by id."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.backtest.schemas import BacktestRequest
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import TASK_REFUSED, documented, not_found
from omniwatch.serving.tasks.schemas import TaskStatus

router = APIRouter(tags=["tasks"])
# Any string: an id that names no task is 404 whatever its format (the seed's contract), never 422.
TaskId = Annotated[str, Path(description="task_id (a UUID)")]


def _status(task) -> TaskStatus:
    return TaskStatus.model_validate(asdict(task))


@router.post("/tasks/backtest", response_model=TaskStatus, status_code=202,
             responses={**documented(401, 422), **TASK_REFUSED}, dependencies=[Security(require_api_key)])
def backtest(body: BacktestRequest, services: Services = Depends(get_services)) -> TaskStatus:
    """Queue a backtest: a Dagster run of serving_task_job (submitted to the webserver when
    configured, else executed in this process); its task id is also its backtest run id. The
    request is stored with its defaults resolved, so a re-execution replays the same."""
    return _status(services.tasks.submit("backtest", services.backtests.params(body)))


@router.post("/tasks/pnl-attribution", response_model=TaskStatus, status_code=202,
             responses={**documented(401, 422), **TASK_REFUSED}, dependencies=[Security(require_api_key)])
def pnl_attribution(body: BacktestRequest, services: Services = Depends(get_services)) -> TaskStatus:
    """Queue a PnL attribution of the same replay: by target, side and month, summing to the total."""
    return _status(services.tasks.submit("pnl_attribution", services.backtests.params(body)))


@router.get("/tasks/{task_id}", response_model=TaskStatus, responses=documented(401, 404))
def status(task_id: TaskId, services: Services = Depends(get_services)) -> TaskStatus:
    """Status, and the result or the typed error once finished."""
    task = services.tasks.get(task_id)
    if task is None:
        raise not_found("task", task_id)
    return _status(task)
