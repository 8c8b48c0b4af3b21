"""Portfolio scores and rebalances: requests and answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from omniwatch.serving.predict.schemas import SkippedTarget
from omniwatch.serving.schemas import Horizon, Strict, Symbol, Targets
from omniwatch.serving.signals.schemas import RolloutBlend
from omniwatch.trading.portfolio import RiskLimits

Weight = Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)]


class PortfolioScoreRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"weights": {"BTC": 0.3, "ETH": -0.2}, "horizon": "24h"}]})

    weights: Annotated[dict[Symbol, Weight], Field(min_length=1, max_length=64)]
    horizon: Horizon = "24h"


class AssetScore(BaseModel):
    target: str
    weight: float
    prediction_bps: float
    contribution_bps: float
    vol_annual: float | None
    model_version: str
    snapshot_age_seconds: float | None = None
    rollout: RolloutBlend | None = None


class PortfolioScoreResponse(BaseModel):
    horizon: str
    expected_return_bps: float
    gross_exposure: float
    net_exposure: float
    vol_annual_upper: float | None = Field(description="sum |w| vol: the bound at perfect correlation.")
    assets: list[AssetScore]
    limit_breaches: list[str]


class RebalanceRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"targets": ["BTC", "ETH", "SOL"], "horizon": "24h", "current_weights": {"BTC": 0.1, "ETH": -0.05}}, {}]})

    targets: Targets | None = None
    horizon: Horizon = "24h"
    current_weights: Annotated[dict[Symbol, Weight], Field(max_length=64)] = Field(default_factory=dict)


class AssetRebalance(BaseModel):
    target: str
    prediction_bps: float
    threshold_bps: float
    direction: int
    vol_annual: float | None
    raw_weight: float
    weight: float
    trade: float
    model_version: str | None = None
    snapshot_age_seconds: float | None = None
    rollout: RolloutBlend | None = Field(default=None, description="The weight's blend of the champion's and "
                                         "the candidate's target weights, during a rollout.")


class RebalanceResponse(BaseModel):
    horizon: str
    target_weights: dict[str, float]
    trades: dict[str, float]
    gross_exposure: float
    net_exposure: float
    vol_annual_upper: float
    binding_limits: list[str]
    limits: RiskLimits
    assets: list[AssetRebalance]
    skipped: list[SkippedTarget]
