"""Signals: requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from omniwatch.serving.predict.schemas import SkippedTarget
from omniwatch.serving.schemas import Horizon, RequestKey, Strict, Targets

StrategyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class SignalsRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"targets": ["BTC", "ETH"], "horizons": ["1h", "24h"], "strategy_id": "liquid_v2",
         "request_key": "docs-example"},
        {},
    ]})

    targets: Targets | None = Field(default=None, description="Default: the liquid universe.")
    horizons: Annotated[list[Horizon], Field(min_length=1, max_length=3)] | None = None
    strategy_id: StrategyId | None = None
    request_key: RequestKey | None = None


class RolloutBlend(BaseModel):
    """How a blended number came about: ``(1 - s) * champion + s * candidate``, ``s = stage / 100``."""

    candidate_version: str
    candidate_prediction_id: str
    rollout_stage: int
    champion: float
    candidate: float


class Signal(BaseModel):
    signal_id: str
    prediction_id: str
    target: str
    horizon: str
    direction: Literal[-1, 0, 1]
    strength: float
    threshold_bps: float
    prediction_bps: float
    as_of_ts: datetime
    status: str
    model_version: str
    model_skill: Literal["demonstrated", "no_demonstrated_skill"] | None = Field(
        default=None, description="The version's skill verdict at this signal's horizon: without demonstrated "
                                  "skill it trades on paper only (risk refuses live orders: model_not_validated).")
    snapshot_age_seconds: float | None = None
    rollout: RolloutBlend | None = None


class SignalsResponse(BaseModel):
    strategy_id: str
    model_name: str
    signals: list[Signal]
    skipped: list[SkippedTarget]
