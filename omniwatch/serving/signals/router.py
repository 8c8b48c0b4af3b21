"""Signals from predictions: thresholds from the settings, stored in signal_candidates."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Security
from starlette.concurrency import run_in_threadpool

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented
from omniwatch.serving.metrics import metrics_of
from omniwatch.serving.signals.schemas import SignalsRequest, SignalsResponse
from omniwatch.serving.signals.service import generate_signals

router = APIRouter(tags=["signals"])


@router.post("/signals/generate", response_model=SignalsResponse, responses=documented(401, 422, 503),
             dependencies=[Security(require_api_key)])
async def generate(body: SignalsRequest, request: Request,
                   services: Services = Depends(get_services)) -> SignalsResponse:
    """Predict each target, turn each horizon's forecast into a direction when it clears that
    horizon's threshold (OMNIWATCH_SIGNAL_THRESHOLD_BPS_*), and store the candidates (one per
    strategy, target, horizon and hour: a repeat updates it). During a rollout the forecast is
    ``(1 - s) * champion + s * candidate`` with ``s = rollout_stage / 100``, for every target.
    A target whose newest snapshot is stale is skipped (``stale_features``)."""
    targets = body.targets or list(services.settings.liquid_symbols)
    with metrics_of(request).signal_timer("signals/generate"):
        if all(services.predictor.peek_liquid(t) for t in targets):
            return generate_signals(services, body, targets, False)  # every prediction is cached: stay on the loop
        return await run_in_threadpool(generate_signals, services, body, targets, True)
