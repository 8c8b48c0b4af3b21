"""Request and response models of backtests, asynchronous tasks, data quality and events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, HttpUrl, StringConstraints, model_validator

from omniwatch.serving.schemas import EntityId, Horizon, Strict, Targets, UtcTime

Version = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,9}|[a-z][a-z0-9_-]{0,31})$"),
                    Field(description="A version number or an alias (champion, challenger, ...).")]
Bps = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


# ----------------------------------------------------------------------------- backtest
class BacktestRequest(Strict):
    """Replay the stored snapshots of ``[start, end)`` through one model version."""

    model_name: Literal["omniwatch-liquid"] = "omniwatch-liquid"
    model_version: Version = "champion"
    start: UtcTime
    end: UtcTime
    targets: Targets | None = None
    horizon: Horizon = Field(default="1h", description="The forecast whose sign sets the hourly position.")
    band_bps: Bps | None = Field(default=None, description="No-trade band; default: the signal threshold.")
    fee_bps: Bps = 5.0
    slippage_bps: Bps = 5.0
    include_funding: bool = True

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
    error_code: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class PnlAttributionResult(BaseModel):
    model_name: str
    model_version: str
    horizon: str
    input_digest: str
    total: CostParts
    by_target: dict[str, CostParts]
    by_side: dict[str, CostParts]
    by_month: dict[str, CostParts]


# ----------------------------------------------------------------------------- tasks
TaskStatusValue = Literal["queued", "running", "succeeded", "failed"]


class TaskError(BaseModel):
    code: str
    detail: str


class TaskStatus(BaseModel):
    task_id: str
    kind: Literal["backtest", "pnl_attribution"]
    status: TaskStatusValue
    executor: Literal["local", "dagster"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dagster_run_id: str | None = Field(default=None, description="The latest Dagster run of the task.")
    attempts: int = Field(default=0, description="Executions so far (a re-execution from the UI adds one).")
    result: BacktestResult | PnlAttributionResult | None = None
    error: TaskError | None = None


# ----------------------------------------------------------------------------- data quality
SampleTable = Literal["market_bars", "funding_rates", "onchain_signals", "feature_snapshots",
                      "trades_ticks", "orderbook_l2"]


class SampleResponse(BaseModel):
    table: str
    count: int
    rows: list[dict[str, Any]]


class AuditRow(BaseModel):
    id: int
    asset_key: str
    check_name: str
    partition_start: str
    partition_end: str
    run_id: str
    passed: bool
    blocking: bool
    severity: str
    failed_count: int
    details: Any = None
    checked_at: datetime | None = None


class AuditResponse(BaseModel):
    count: int
    rows: list[AuditRow]


class CheckStats(BaseModel):
    asset_key: str
    check_name: str
    results: int
    failures: int
    blocking_failures: int
    pass_rate: float
    last_checked_at: datetime | None
    last_failure_at: datetime | None


class StatsResponse(BaseModel):
    results: int
    failures: int
    checks: list[CheckStats]


class TargetConsistency(BaseModel):
    target: str
    bars: int
    snapshots: int
    bars_without_snapshot: int
    snapshots_without_bar: int
    latest_bar_close: datetime | None
    latest_snapshot_as_of: datetime | None
    lag_hours: float | None
    consistent: bool


class ConsistencyResponse(BaseModel):
    start: datetime
    end: datetime
    consistent: bool
    targets: list[TargetConsistency]


class LineageCheckRequest(Strict):
    track: Literal["liquid", "vc"] = "liquid"
    target: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None
    strict: bool = Field(default=False, description="Also compare masks, nulls and data versions.")
    data_version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")] | None = None


class LineageTarget(BaseModel):
    target: str
    snapshot_ids: list[int]
    as_of: list[datetime]
    data_versions: list[str]
    mismatch_keys: list[str]
    ok: bool


class LineageCheckResponse(BaseModel):
    ok: bool
    strict: bool
    data_version: str | None
    mismatch_keys: list[str]
    targets: list[LineageTarget]


# ----------------------------------------------------------------------------- events, entities
class EventIn(Strict):
    source: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,16}$")]
    source_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    track: Literal["vc", "liquid"]
    event_type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,32}$")]
    title: Annotated[str, StringConstraints(max_length=2000)] | None = None
    body: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    url: HttpUrl | None = None
    event_time: UtcTime
    available_time: UtcTime | None = Field(default=None, description="Default: event_time.")
    tone: Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)] | None = None
    payload: dict[str, Any] | None = None
    entity_ids: Annotated[list[EntityId], Field(max_length=32)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_after_it_happened(self) -> EventIn:
        if self.available_time is not None and self.available_time < self.event_time:
            raise ValueError("available_time must not be before event_time")
        return self


class IngestRequest(Strict):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _unique(self) -> IngestRequest:
        keys = [(e.source, e.source_id) for e in self.events]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate (source, source_id) in one request")
        return self


class IngestedEvent(BaseModel):
    source: str
    source_id: str
    event_id: int
    status: Literal["inserted", "updated"]


class IngestResponse(BaseModel):
    received: int
    inserted: int
    updated: int
    links_written: int
    events: list[IngestedEvent]


class LinkedEvent(BaseModel):
    event_id: int
    source: str
    source_id: str
    event_type: str
    title: str | None
    url: str | None
    event_time: datetime
    available_time: datetime
    tone: float | None
    confidence: float
    method: str


class EntityResponse(BaseModel):
    entity_id: str
    track: str
    name: str
    normalized_name: str
    cik: str | None
    ticker: str | None
    aliases: list[Any]
    entity_type: str | None
    events: list[LinkedEvent]
