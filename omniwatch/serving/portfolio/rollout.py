"""Serving a rollout: the stage is the candidate's share of every forecast and position.

``(1 - s) * champion + s * candidate`` with ``s = rollout_stage / 100`` (``omniwatch.modelops.blend``),
applied to each target's forecast (signals, portfolio scores) and to the rebalance's target weights:
both books stay inside the risk limits, and so does any convex mix of them.
"""

from __future__ import annotations

from omniwatch.modelops.blend import blend, blend_positions
from omniwatch.serving.predict.schemas import PredictionResponse
from omniwatch.serving.signals.schemas import RolloutBlend


def blended(pred: PredictionResponse, horizon: str) -> tuple[float, RolloutBlend | None]:
    """The served forecast of ``horizon`` and, during a rollout, how it was blended."""
    champion = pred.predictions[horizon]
    cand = pred.candidate
    if cand is None:
        return champion, None
    candidate = cand.horizon_predictions[horizon]
    return blend(champion, candidate, cand.rollout_stage), RolloutBlend(
        candidate_version=cand.model_version, candidate_prediction_id=cand.prediction_id,
        rollout_stage=cand.rollout_stage, champion=champion, candidate=candidate)


def blended_weight(champion: float, candidate: float, pred: PredictionResponse) -> tuple[float, RolloutBlend | None]:
    """A target weight: the champion's book and the candidate's, mixed by the stage."""
    cand = pred.candidate
    if cand is None:
        return champion, None
    return blend_positions(champion, candidate, cand.rollout_stage), RolloutBlend(
        candidate_version=cand.model_version, candidate_prediction_id=cand.prediction_id,
        rollout_stage=cand.rollout_stage, champion=champion, candidate=candidate)
