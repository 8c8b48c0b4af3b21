"""Predictions and their explanations.

Every route here stores rows (``predictions_v2``, ``prediction_explanations``), so each needs an
API key, like every other mutation (not a rate limit: a key names who filled the table and can
be revoked; ``OMNIWATCH_API_OPEN_READS`` does not open these)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Security
from starlette.concurrency import run_in_threadpool

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented
from omniwatch.serving.predict.schemas import (
    ExplanationResponse,
    PredictionResponse,
    PredictLiquidRequest,
    PredictVcRequest,
)

router = APIRouter(tags=["predict"], dependencies=[Security(require_api_key)])
# Any string: an id that names no prediction is 404 whatever its format (the seed's contract).
PredictionId = Annotated[str, Path(description="prediction_id (a UUID)")]


@router.post("/predict/liquid", response_model=PredictionResponse, responses=documented(401, 422, 503))
async def predict_liquid(body: PredictLiquidRequest, services: Services = Depends(get_services)) -> PredictionResponse:
    """Forecast one symbol (bps, per horizon) from its newest stored snapshot, the snapshot at
    ``as_of_ts``, or the request's features; the prediction is stored in predictions_v2."""
    if body.features is None and body.as_of_ts is None:
        # Warm caches answer on the event loop; anything that reads the database or a model
        # goes to the thread pool.
        cached = services.predictor.cached_liquid(body.target, body.request_key)
        if cached is not None:
            return cached[0]
    features = body.features.model_dump() if body.features is not None else None
    return await run_in_threadpool(services.predictor.predict_liquid, body.target, body.as_of_ts, features,
                                   body.request_key)


@router.post("/predict/vc", response_model=PredictionResponse, responses=documented(401, 422, 503))
def predict_vc(body: PredictVcRequest, services: Services = Depends(get_services)) -> PredictionResponse:
    """Forecast for a company (the ``omniwatch-vc`` model); model_artifact_missing until one is
    registered."""
    return services.predictor.predict_vc(body.entity_id, body.as_of_ts, body.features, body.request_key)


@router.get("/predictions/{prediction_id}/explanation", response_model=ExplanationResponse,
            responses=documented(401, 404, 422, 503))
def explanation(prediction_id: PredictionId, services: Services = Depends(get_services)) -> dict:
    """Per horizon: LightGBM ``pred_contrib`` and TSMixer gradient x input per feature, computed
    by the version that made the prediction on the rows it read; stored in prediction_explanations."""
    return services.predictor.explain(prediction_id)
