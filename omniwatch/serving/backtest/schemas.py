"""Backtest requests and results."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from omniwatch.serving.schemas import Horizon, Strict, Targets, UtcTime

Version = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,9}|[a-z][a-z0-9_-]{0,31})$"),
                    Field(description="A version number or an alias (champion, challenger, ...).")]
Bps = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


class BacktestRequest(Strict):
    """Replay the stored snapshots of ``[start, end)`` through one model version."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"start": "2025-06-01T00:00:00Z", "end": "2025-07-01T00:00:00Z", "targets": ["BTC", "ETH"], "horizon": "1h"},
        {"model_version": "champion", "start": "2024-08-20T00:00:00Z", "end": "2024-08-22T00:00:00Z",
         "targets": ["BTC"], "horizon": "4h", "fee_bps": 5.0, "slippage_bps": 2.5, "include_funding": True,
         "allow_in_sample": True},
    ]})

    model_name: Literal["omniwatch-liquid"] = "omniwatch-liquid"
    model_version: Version = "champion"
    start: UtcTime
    end: UtcTime
    targets: Targets | None = None
    horizon: Horizon = Field(default="1h", description="The forecast that sets the position.")
    sizing: Literal["horizon", "sign"] = Field(
        default="horizon", description="horizon: as execution/run sizes (the forecast held as hourly tranches of "
        "its horizon, volatility-scaled, no-trade band in weight); sign: the hourly sign rule (the older default).")
    band_bps: Bps | None = Field(default=None, description="Forecast threshold (sign rule: no-trade band); "
                                 "default: the signal threshold of the horizon.")
    weight_band: float | None = Field(default=None, ge=0, le=1, description="horizon sizing: no-trade band in "
                                      "weight (fraction of capital); default: OMNIWATCH_SIZING_WEIGHT_BAND.")
    fee_bps: Bps = 5.0
    slippage_bps: Bps = 5.0
    include_funding: bool = True
    allow_in_sample: bool = Field(
        default=False, description="Replay a window that overlaps the model version's training span. Refused "
        "otherwise (in_sample_window): in-sample PnL overstates what the model would have earned.")

    @model_validator(mode="after")
    def _window(self) -> BacktestRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=400):
            raise ValueError("the window may span at most 400 days")
        return self


class CostParts(BaseModel):
    """Sums of hourly log returns: ``net = gross - fees - slippage - funding`` exactly."""

    gross: float
    fees: float
    slippage: float
    funding: float
    net: float
    turnover: float
    hours: int


class CostBreakdown(CostParts):
    unit: Literal["log_return"] = "log_return"
    by_target: dict[str, CostParts]


class MetricRow(BaseModel):
    """One row of ``omniwatch.ml.metrics.summarize`` (NaN is null)."""

    horizon: int
    strategy: str
    symbol: str
    ic_mean: float | None = None
    ic_std: float | None = None
    icir: float | None = None
    rank_ic_mean: float | None = None
    rank_ic_std: float | None = None
    rank_icir: float | None = None
    n_windows: int | None = None
    n_windows_dropped: int | None = None
    hit_rate: float | None = None
    coverage: float | None = None
    gross_return: float | None = None
    net_return: float | None = None
    fees: float | None = None
    slippage: float | None = None
    funding: float | None = None
    turnover: float | None = None
    turnover_annual: float | None = None
    max_drawdown: float | None = None
    sharpe: float | None = None
    n_hours: int | None = None


class BacktestResult(BaseModel):
    run_id: str
    status: Literal["running", "succeeded", "failed"]
    model_name: str
    model_version: str
    params: dict[str, Any]
    lineage_coverage: float | None = None
    cost_breakdown: CostBreakdown | None = None
    metrics: list[MetricRow] | None = None
    input_digest: str | None = Field(default=None, description="Hash of the snapshot rows replayed.")
    in_sample: bool | None = Field(default=None, description="The window overlaps the version's training span "
                                   "(only with allow_in_sample); None until the run got that far.")
    error_code: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class PnlAttributionResult(BaseModel):
    model_name: str
    model_version: str
    horizon: str
    input_digest: str
    in_sample: bool
    total: CostParts
    by_target: dict[str, CostParts]
    by_side: dict[str, CostParts]
    by_month: dict[str, CostParts]
