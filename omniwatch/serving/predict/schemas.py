"""Predictions and explanations: requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import MASKED
from omniwatch.serving.schemas import EntityId, Finite, RequestKey, Strict, Symbol, UtcTime

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


# Bounds of the features that have them; the feature list itself comes from the feature code,
# so the request schema follows it (a model trained on other features is refused at load).
_BOUNDS: dict[str, dict[str, float]] = {
    "vol_24h": {"ge": 0}, "vol_168h": {"ge": 0}, "cs_spread_24h": {"ge": 0}, "drawdown_168h": {"le": 0},
    "news_count_24h": {"ge": 0}, "hour_of_day": {"ge": 0, "le": 23}, "day_of_week": {"ge": 0, "le": 6},
}


# Every feature is a return, a ratio, a z-score or a count: far below this. Values near the
# float limit overflow the models' float32 scaling, so they are refused here, by name.
FEATURE_LIMIT = 1e6


def _feature_field(name: str) -> tuple[Any, Any]:
    bounds = {"ge": -FEATURE_LIMIT, "le": FEATURE_LIMIT, **_BOUNDS.get(name, {})}
    kind = Annotated[float, Field(allow_inf_nan=False, **bounds)]
    # Features whose source can be missing (a mask channel) may be null; bar features may not.
    return (kind | None, None) if name in MASKED else (kind, ...)


_FEATURE_FIELDS: dict[str, Any] = {name: _feature_field(name) for name in FEATURES}
LiquidFeatures = create_model(
    "LiquidFeatures", __base__=Strict, __doc__="The point-in-time features of one symbol-hour "
    "(omniwatch/features/liquid.py); those with a missing-source mask may be null.",
    **_FEATURE_FIELDS)


class PredictLiquidRequest(Strict):
    """Predict one symbol from its newest stored snapshot, the one at ``as_of_ts``, or from
    ``features`` given here (then ``as_of_ts`` is required and stored history is the lookback)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"target": "BTC"},
        {"target": "ETH", "as_of_ts": "2024-08-30T12:00:00Z", "request_key": "docs-example"},
    ]})

    target: Symbol
    as_of_ts: UtcTime | None = None
    features: LiquidFeatures | None = None  # type: ignore[valid-type]
    request_key: RequestKey | None = Field(
        default=None, description="Stored with the prediction, to find a caller's predictions again.")

    @model_validator(mode="after")
    def _features_need_time(self) -> PredictLiquidRequest:
        if self.as_of_ts is not None:
            utc = self.as_of_ts
            # Snapshots sit on the hourly grid: an off-grid time matches no lookback row.
            if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
                raise ValueError("as_of_ts must be on the hour (snapshots are hourly)")
            # Clock features (when the feature list has them) must agree with as_of_ts.
            clock = (getattr(self.features, "hour_of_day", utc.hour),
                     getattr(self.features, "day_of_week", utc.weekday()))
            if self.features is not None and clock != (utc.hour, utc.weekday()):
                raise ValueError("features.hour_of_day/day_of_week do not match as_of_ts (UTC)")
        elif self.features is not None:
            raise ValueError("as_of_ts is required when features are given")
        return self


class PredictVcRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"entity_id": "cik:0001045810", "request_key": "docs-example"},
        {"entity_id": "cik:0001045810", "as_of_ts": "2024-08-30T00:00:00Z"},
    ]})

    entity_id: EntityId
    as_of_ts: UtcTime | None = None
    features: dict[Name, Finite | None] | None = Field(default=None, max_length=256)
    request_key: RequestKey | None = None


class SnapshotRef(BaseModel):
    snapshot_id: int
    as_of_ts: datetime
    event_time: datetime
    data_version: str
    lineage_id: str


class CandidateForecast(BaseModel):
    """During a rollout: the candidate's forecast on the same window (stored as its own
    prediction); signals and rebalances give it ``rollout_stage`` percent of the book."""

    prediction_id: str
    model_version: str
    rollout_stage: int = Field(ge=1, le=99)
    horizon_predictions: dict[str, float]


SkillStatus = Literal["demonstrated", "no_demonstrated_skill"]


class ModelSkill(BaseModel):
    """Whether the answering version demonstrated skill on its walk-forward (judged at registration):
    ``status`` is its flag (the traded horizon's verdict), ``by_horizon`` each horizon's. Without
    skill at a horizon its forecasts there are served for monitoring, the promotion gate rejects
    the version, and risk refuses live orders it places at that horizon (``model_not_validated``)."""

    status: SkillStatus
    reason: str
    by_horizon: dict[str, SkillStatus] = Field(default_factory=dict)


class PredictionResponse(BaseModel):
    """Predictions are forward log returns in basis points, per horizon (the champion's)."""

    prediction_id: str
    track: Literal["liquid", "vc"]
    target: str
    model_name: str
    model_version: str
    model_role: Literal["champion", "candidate", "pinned"]
    train_lineage_id: str | None
    infer_lineage_id: str
    input_source: Literal["snapshot", "request"]
    snapshot: SnapshotRef | None
    history_rows: int = Field(description="Hourly rows of the lookback window the model read.")
    as_of_ts: datetime
    predictions: dict[str, float]
    components: dict[str, dict[str, float]] = Field(default_factory=dict)
    unit: Literal["bps"] = "bps"
    snapshot_age_seconds: float | None = Field(
        default=None, description="Age of the snapshot predicted, against the request's as_of_ts, else the "
                                  "data clock (replay) or the wall clock (live); null for request features.")
    candidate: CandidateForecast | None = None
    skill: ModelSkill | None = Field(
        default=None, description="The version's skill flag (liquid; null for the VC track, which is not traded).")


class ComponentExplanation(BaseModel):
    prediction_bps: float
    contributions: dict[str, float]
    bias: float | None = None
    method: str


class HorizonExplanation(BaseModel):
    prediction_bps: float
    weight_lightgbm: float
    lightgbm: ComponentExplanation
    tsmixer: ComponentExplanation


class ExplanationResponse(BaseModel):
    prediction_id: str
    target: str
    model_name: str
    model_version: str
    as_of_ts: datetime
    horizons: dict[str, HorizonExplanation]


class SkippedTarget(BaseModel):
    target: str
    code: str
    detail: str
    context: dict[str, Any] | None = None
