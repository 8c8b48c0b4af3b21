"""Execution: requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from omniwatch.serving.schemas import Horizon, RequestKey, Strict, Symbol, Targets
from omniwatch.serving.signals.schemas import StrategyId

Adapter = Literal["paper", "coinbase_live"]


class ExecutionRunRequest(Strict):
    """One stored signal (``signal_id``), or the latest signals of the track: each target is
    predicted, its signal stored (as signals/generate), then sized, checked and executed."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"track": "liquid", "horizon": "24h", "adapter": "paper"},
        {"track": "liquid", "targets": ["BTC"], "horizon": "1h", "strategy_id": "liquid_v2", "adapter": "paper",
         "request_key": "docs-example"},
    ]})

    track: Literal["liquid"] = "liquid"
    signal_id: str | None = Field(default=None, max_length=64, description="Execute this stored signal only.")
    targets: Targets | None = Field(default=None, description="Default: the liquid universe.")
    horizon: Horizon = Field(default="24h", description="The forecast traded; it is held for its horizon.")
    strategy_id: StrategyId | None = None
    adapter: Adapter = "paper"
    request_key: RequestKey | None = None


class OrderCreateRequest(Strict):
    """One order, checked by risk and sent to the adapter (no sizing)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"symbol": "BTC", "side": "buy", "qty": 0.01, "order_type": "market", "time_in_force": "IOC",
         "max_slippage_bps": 25.0, "adapter": "paper"},
        {"symbol": "ETH", "side": "sell", "qty": 0.5, "order_type": "limit", "limit_price": 2500.0,
         "time_in_force": "GTC", "strategy_id": "liquid_v2", "client_order_id": "docs-example-1"},
    ]})

    track: Literal["liquid"] = "liquid"
    strategy_id: StrategyId | None = None
    symbol: Symbol
    side: Literal["buy", "sell"]
    qty: float = Field(gt=0, le=1e9, allow_inf_nan=False, description="Base units.")
    order_type: Literal["market", "limit"] = "market"
    limit_price: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False, description="USD per unit.")
    time_in_force: Literal["GTC", "IOC", "FOK"] = "IOC"
    max_slippage_bps: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    client_order_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                                        description="Idempotency key: the same one twice returns the stored order.")
    adapter: Adapter = "paper"


class LifecycleEvent(BaseModel):
    ts: datetime
    from_: str | None = Field(alias="from")
    to: str
    reason: str


class FillView(BaseModel):
    venue_fill_id: str
    ts: datetime
    qty: float
    price: float
    fee: float
    liquidity: str


class OrderView(BaseModel):
    order_id: str
    client_order_id: str
    status: str
    adapter: str
    venue: str
    venue_order_id: str | None
    track: str
    strategy_id: str
    symbol: str
    side: str
    qty: float
    order_type: str
    limit_price: float | None
    time_in_force: str
    max_slippage_bps: float | None
    signal_id: str | None
    decision_id: str | None
    model_version: str | None
    snapshot_id: int | None
    reference_price: float | None
    filled_qty: float
    avg_fill_price: float | None
    fee: float
    created_at: datetime
    updated_at: datetime
    lifecycle: list[LifecycleEvent]
    fills: list[FillView]


class DecisionView(BaseModel):
    decision_id: str
    symbol: str
    horizon: str
    action: Literal["trade", "hold", "denied", "not_sent", "venue_unavailable"]
    reason: str
    signal_id: str | None
    model_version: str | None
    price: float | None
    target_weight: float | None
    held_weight: float | None
    new_weight: float | None
    order: OrderView | None = None
    risk_codes: list[str] = Field(default_factory=list)


class ExecutionRunResponse(BaseModel):
    run_id: str
    track: str
    strategy_id: str
    adapter: str
    horizon: str
    as_of: datetime
    decisions: list[DecisionView]
    skipped: list[dict[str, Any]] = Field(default_factory=list, description="Targets without a fresh prediction.")


class AuditChain(BaseModel):
    """signal -> order -> fill -> position -> PnL of one decision, with the model and snapshot."""

    decision: dict[str, Any]
    signal: dict[str, Any] | None
    prediction: dict[str, Any] | None
    feature_snapshot: dict[str, Any] | None
    model: dict[str, Any]
    order: OrderView | None
    fills: list[dict[str, Any]]
    position: dict[str, Any] | None
    pnl: dict[str, Any] | None


class PnlParts(BaseModel):
    gross: float
    slippage: float
    fees: float
    funding: float
    net: float


class PnlAttributionResponse(BaseModel):
    """Executed PnL (fills and funding) at the newest closes: ``net = gross - slippage - fees - funding``."""

    as_of: datetime
    track: str | None
    strategy_id: str | None
    marks: dict[str, float]
    unmarked_symbols: list[str]
    fills: int
    funding_payments: int
    total: PnlParts
    by_symbol: dict[str, PnlParts]
    by_model_version: dict[str, PnlParts]
