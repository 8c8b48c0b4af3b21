"""Synchronous backtests and their stored results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.backtest.schemas import BacktestRequest, BacktestResult
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented, not_found

router = APIRouter(tags=["backtest"])
# Any string: an id that names no run is 404 whatever its format (the seed's contract), never 422.
RunId = Annotated[str, Path(description="run_id (a UUID)")]


@router.post("/backtest/run", response_model=BacktestResult, responses=documented(401, 422, 503),
             dependencies=[Security(require_api_key)])
def run(body: BacktestRequest, services: Services = Depends(get_services)) -> dict:
    """Replay the stored snapshots of ``[start, end)`` through the named model version: positions
    from the chosen horizon's forecast (no-trade band), PnL after fees, slippage and funding, and
    the metrics of omniwatch.ml.metrics; stored in backtest_runs. For long windows use
    POST /api/v2/tasks/backtest."""
    return services.backtests.run(body)


@router.get("/backtest/{run_id}", response_model=BacktestResult, responses=documented(401, 404))
def get(run_id: RunId, services: Services = Depends(get_services)) -> dict:
    """A stored backtest (running, succeeded with its metrics, or failed with its error code)."""
    found = services.backtests.load(run_id)
    if found is None:
        raise not_found("backtest run", run_id)
    return found
