"""execution/run, execution/orders, execution/audit and metrics/pnl-attribution."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Security
from starlette.concurrency import run_in_threadpool

from omniwatch.serving.auth import key_scopes, require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import RISK_REFUSED, ApiError, documented, not_found
from omniwatch.serving.execution.schemas import (
    AuditChain,
    ExecutionRunRequest,
    ExecutionRunResponse,
    OrderCreateRequest,
    OrderView,
    PnlAttributionResponse,
)
from omniwatch.serving.metrics import Metrics, metrics_of
from omniwatch.serving.runtime.writer import RowsNotStored
from omniwatch.serving.signals.schemas import SignalsRequest, StrategyId
from omniwatch.serving.signals.service import generate_signals
from omniwatch.trading.audit import audit_chain, order_view, pnl_attribution

router = APIRouter(tags=["execution"])
RUN_ERRORS = {**documented(401, 403, 404), **RISK_REFUSED}
ORDER_ERRORS = {**documented(401, 403), **RISK_REFUSED}


@router.post("/execution/run", response_model=ExecutionRunResponse, responses=RUN_ERRORS)
async def run(body: ExecutionRunRequest, request: Request, actor: str = Security(require_api_key),
              services: Services = Depends(get_services)) -> ExecutionRunResponse:
    """Take a stored signal (``signal_id``) or the latest signals of the track (each target
    predicted and its signal stored, as signals/generate does) through sizing at the forecast's
    horizon (held hourly tranches, volatility-scaled, no-trade band), the risk check and the
    adapter. Every target's outcome is a decision (``trade``, ``hold``, ``denied``, ``not_sent``,
    ``venue_unavailable``) whose id opens its audit chain. Risk refusing an order before any is
    sent sends nothing; refusing one when it is sent (checked again against the run's fills) stops
    the rest: HTTP 423 with the violation codes either way, the refused orders stored ``denied``,
    the trades already made listed in ``context.decisions``."""
    services.execution.allow(body.adapter, key_scopes(request, actor))
    metrics = metrics_of(request)
    with metrics.execution("execution/run", body.adapter):
        out = await run_in_threadpool(_run_one_at_a_time, services, body, actor, metrics)
    metrics.record_decisions(out["decisions"])
    return ExecutionRunResponse.model_validate(out)


def _run_one_at_a_time(services: Services, body: ExecutionRunRequest, actor: str, metrics: Metrics) -> dict:
    execution = services.execution
    signal = execution.signal(body.signal_id) if body.signal_id is not None else None  # 404 before any lock
    strategy = body.strategy_id or (signal["strategy_id"] if signal else None) or execution.default_strategy
    with execution.deciding(body.track, strategy):
        return _run(services, body, actor, metrics, signal)


def _run(services: Services, body: ExecutionRunRequest, actor: str, metrics: Metrics,
         signal: dict | None) -> dict:
    execution = services.execution
    if signal is not None:
        if signal["horizon"] != body.horizon:
            raise ApiError(422, "validation_error", f"body.horizon: the signal is a {signal['horizon']} signal, "
                           f"not {body.horizon}", {"signal_horizon": signal["horizon"]})
        body = body.model_copy(update={"strategy_id": body.strategy_id or signal["strategy_id"]})
        return execution.run(body, [signal], actor, [])
    targets = body.targets or list(services.settings.liquid_symbols)
    # The run's predictions and signals are written by this thread, in one transaction, before it
    # sizes from them (not queued for the writer thread and waited for: see PredictionWriter.in_caller).
    try:
        with metrics.signal_timer("execution/run"), services.writer.in_caller():
            generated = generate_signals(services, SignalsRequest(targets=targets, horizons=[body.horizon],
                                                                  strategy_id=body.strategy_id,
                                                                  request_key=body.request_key), targets, True)
    except RowsNotStored as exc:
        raise ApiError(503, "signals_not_stored", f"the run's signals were not stored ({exc}); nothing was sent",
                       {"targets": targets}) from exc
    # Read back: the stored rows (with their prediction's version and snapshot) are what is sized.
    wanted = [s.signal_id for s in generated.signals]
    signals = execution.signals(wanted)
    missing = sorted(set(wanted) - {s["signal_id"] for s in signals})
    if missing:  # committed above: only a concurrent delete gets here
        raise ApiError(503, "signals_not_stored", f"signal {missing[0]} was not stored", {"signal_ids": missing})
    return execution.run(body, signals, actor, [s.model_dump(mode="json") for s in generated.skipped])


@router.post("/execution/orders", response_model=OrderView, responses=ORDER_ERRORS)
async def create_order(body: OrderCreateRequest, request: Request, actor: str = Security(require_api_key),
                       services: Services = Depends(get_services)) -> OrderView:
    """One order through the risk check and the adapter (no sizing). The same ``client_order_id``
    twice returns the stored order. Refused by risk: HTTP 423, the order stored ``denied``."""
    services.execution.allow(body.adapter, key_scopes(request, actor))
    metrics = metrics_of(request)
    with metrics.execution("execution/orders", body.adapter):
        order = order_view(await run_in_threadpool(services.execution.place, body, actor))
    metrics.record_order(order)
    return OrderView.model_validate(order)


@router.get("/execution/orders/{order_id}", response_model=OrderView, responses=documented(401, 404))
def get_order(order_id: str, services: Services = Depends(get_services)) -> OrderView:
    """An order with its ``lifecycle`` (every transition, time and reason) and fills; 404 for an
    unknown id of any format."""
    return OrderView.model_validate(order_view(services.execution.order(order_id)))


@router.post("/execution/orders/{order_id}/refresh", response_model=OrderView, responses=documented(401, 404))
def refresh_order(order_id: str, request: Request, actor: str = Security(require_api_key),
                  services: Services = Depends(get_services)) -> OrderView:
    """Ask the venue about an open order (a resting GTC limit, or one a timeout left ``submitted``).
    A live order needs the live gate (403); a venue that does not answer is 503 ``venue_unavailable``."""
    order = services.execution.order(order_id)
    services.execution.allow(order.adapter, key_scopes(request, actor))
    return OrderView.model_validate(order_view(services.execution.refresh(order_id)))


@router.post("/execution/orders/{order_id}/cancel", response_model=OrderView, responses=documented(401, 404))
def cancel_order(order_id: str, request: Request, actor: str = Security(require_api_key),
                 services: Services = Depends(get_services)) -> OrderView:
    """Cancel an open order: allowed in every trading state, HALTED included (it takes risk off).
    A live order needs the live gate (403); a venue that does not answer is 503 ``venue_unavailable``."""
    order = services.execution.order(order_id)
    services.execution.allow(order.adapter, key_scopes(request, actor))
    return OrderView.model_validate(order_view(services.execution.cancel(order_id)))


@router.get("/execution/audit/{decision_id}", response_model=AuditChain, responses=documented(401, 404))
def audit(decision_id: str, services: Services = Depends(get_services)) -> AuditChain:
    """The whole chain of one decision: signal -> order (with ``lifecycle``) -> fills -> position ->
    PnL, with the model version, the prediction and the feature snapshot behind it."""
    chain = audit_chain(services.database_url, decision_id, services.execution.clock())
    if chain is None:
        raise not_found("decision", decision_id)
    return AuditChain.model_validate(chain)


@router.get("/metrics/pnl-attribution", response_model=PnlAttributionResponse, responses=documented(401))
def attribution(track: str | None = Query(default=None, pattern=r"^[a-z]{1,8}$"),
                strategy_id: StrategyId | None = None,
                services: Services = Depends(get_services)) -> PnlAttributionResponse:
    """Executed PnL (real fills, their fees and slippage against the decision price, funding paid)
    by symbol, model version and cost component, marked at the newest closes. Not the same as
    tasks/pnl-attribution, which replays a model over stored snapshots (a backtest)."""
    return PnlAttributionResponse.model_validate(
        pnl_attribution(services.database_url, services.execution.clock(), track, strategy_id))
