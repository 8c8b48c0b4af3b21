"""Bodies and answers of the risk API. Bodies forbid unknown fields, and none can say who acted:
the actor of a trigger or reset is the API key's name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from omniwatch.serving.schemas import Strict, Symbol, UtcTime
from omniwatch.trading.risk import KillSwitch, LimitOverrides, RiskDecision, RiskLimits
from omniwatch.trading.risk_store import BreakerStatus

Track = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,7}$"), Field(examples=["liquid"])]
StrategyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$"), Field(examples=["liquid_v2"])]
SwitchScope = Annotated[str, StringConstraints(pattern=r"^(\*|[A-Za-z0-9_.-]{1,64})$"), Field(
    examples=["liquid_v2", "*"], description="A strategy id, or `*` for every strategy of the track.")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
Amount = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]


class CheckRequest(Strict):
    """A proposed order: decided, never executed. ``price`` defaults to the limit price, else the
    newest stored bar close of the symbol."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"symbol": "BTC", "side": "buy", "qty": 0.1, "price": 60000.0, "strategy_id": "liquid_v2"},
        {"track": "liquid", "strategy_id": "liquid_v2", "symbol": "ETH", "side": "sell", "qty": 2.0,
         "order_type": "limit", "limit_price": 2500.0, "time_in_force": "IOC"},
        {"symbol": "BTC", "side": "buy", "qty": 0.1, "adapter": "coinbase_live", "model_version": "3",
         "horizon": "24h"}]})

    symbol: Symbol
    side: Literal["buy", "sell"]
    qty: Amount = Field(description="Base units.")
    track: Track = "liquid"
    strategy_id: StrategyId | None = Field(default=None, description="Default: OMNIWATCH_SIGNAL_STRATEGY_ID.")
    order_type: Literal["market", "limit"] = "market"
    limit_price: Amount | None = None
    time_in_force: Literal["GTC", "IOC", "FOK"] = "GTC"
    max_slippage_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] | None = None
    price: Amount | None = Field(default=None, description="The price notionals use (USD per unit).")
    as_of: UtcTime | None = Field(default=None, description="Decision clock (day of the daily loss); default: "
                                  "the replay frontier, or the wall clock when live.")
    adapter: Literal["paper", "coinbase_live"] = Field(
        default="paper", description="Where the order would go: live orders from a model version without "
                                     "demonstrated skill are refused (model_not_validated).")
    model_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")] | None = Field(
        default=None, description="The omniwatch-liquid version whose forecast would place the order "
                                  "(none: a person's order).")
    horizon: Literal["1h", "4h", "24h"] = Field(default="24h", description="The forecast horizon traded.")

    @model_validator(mode="after")
    def _limit_has_price(self) -> Self:
        if self.order_type == "limit" and self.limit_price is None:
            raise ValueError("a limit order needs limit_price")
        return self


class CheckResponse(RiskDecision):
    as_of: datetime = Field(description="The decision clock the figures were read at.")
    limits: RiskLimits


class EffectiveLimits(BaseModel):
    track: str
    strategy_id: str
    sources: list[str] = Field(description="What the limits come from, later ones winning: defaults, "
                                           "track:*, track:strategy_id.")
    limits: RiskLimits


class LimitsResponse(BaseModel):
    defaults: RiskLimits
    overrides: dict[str, LimitOverrides] = Field(description="OMNIWATCH_RISK_LIMITS, by track:strategy_id.")
    effective: list[EffectiveLimits]


class KillSwitchRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"track": "liquid", "strategy_id": "liquid_v2", "reason": "Fills far from the book: halting to investigate."},
        {"strategy_id": "*", "reason": "Exchange incident: halting every liquid strategy."}]})

    strategy_id: SwitchScope
    reason: Reason
    track: Track = "liquid"


class BreakerResetRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"track": "liquid", "strategy_id": "liquid_v2",
         "reason": "Losses reviewed: a volatility spike, the model is fine; trading on."}]})

    strategy_id: StrategyId
    reason: Reason
    track: Track = "liquid"


class KillSwitchesResponse(BaseModel):
    kill_switches: list[KillSwitch] = Field(description="Every switch ever set, triggered or reset.")


StateResponse = BreakerStatus
KillSwitchResponse = KillSwitch
