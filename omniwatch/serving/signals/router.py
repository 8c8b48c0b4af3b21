"""Signals from predictions: thresholds from the settings, stored in signal_candidates."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Security
from starlette.concurrency import run_in_threadpool

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented
from omniwatch.serving.portfolio.rollout import blended
from omniwatch.serving.schemas import HORIZONS
from omniwatch.serving.signals.schemas import Signal, SignalsRequest, SignalsResponse
from omniwatch.trading.signals import decide_signal

router = APIRouter(tags=["signals"])
SIGNAL_NAMESPACE = uuid.UUID("5b0c4f8e-6d0a-4d55-9d43-2f1f3c0a9e11")


@router.post("/signals/generate", response_model=SignalsResponse, responses=documented(401, 422, 503),
             dependencies=[Security(require_api_key)])
async def generate(body: SignalsRequest, services: Services = Depends(get_services)) -> SignalsResponse:
    """Predict each target, turn each horizon's forecast into a direction when it clears that
    horizon's threshold (OMNIWATCH_SIGNAL_THRESHOLD_BPS_*), and store the candidates (one per
    strategy, target, horizon and hour: a repeat updates it). During a rollout the forecast is
    ``(1 - s) * champion + s * candidate`` with ``s = rollout_stage / 100``, for every target.
    A target whose newest snapshot is stale is skipped (``stale_features``)."""
    targets = body.targets or list(services.settings.liquid_symbols)
    if all(services.predictor.peek_liquid(t) for t in targets):
        return _generate(services, body, targets, False)  # every prediction is cached: stay on the loop
    return await run_in_threadpool(_generate, services, body, targets, True)


def _generate(services: Services, body: SignalsRequest, targets: list[str], wait: bool) -> SignalsResponse:
    strategy = body.strategy_id or services.serving.signal_strategy_id
    thresholds = services.serving.thresholds_bps()
    done, skipped = services.predictor.predict_many(targets, body.request_key)
    signals, rows = [], []
    for target, (pred, _) in done.items():
        for h in body.horizons or HORIZONS:
            forecast, rollout = blended(pred, h)
            d = decide_signal(forecast, thresholds[h])
            sid = str(uuid.uuid5(SIGNAL_NAMESPACE, f"{strategy}|{target}|{h}|{pred.as_of_ts.isoformat()}"))
            status = "candidate" if d.direction else "flat"
            rows.append({"signal_id": sid, "prediction_id": pred.prediction_id, "track": "liquid", "target": target,
                         "strategy_id": strategy, "horizon": h, "direction": d.direction, "strength": d.strength,
                         "threshold": d.threshold_bps, "as_of_ts": pred.as_of_ts, "status": status})
            signals.append({**rows[-1], "threshold_bps": d.threshold_bps, "prediction_bps": forecast,
                            "model_version": pred.model_version, "snapshot_age_seconds": pred.snapshot_age_seconds,
                            "rollout": rollout})
    services.writer.submit("signal_candidates", rows, wait=wait)
    return SignalsResponse(strategy_id=strategy, model_name="omniwatch-liquid",
                           signals=[Signal.model_validate(s) for s in signals], skipped=skipped)
