"""Data-quality samples, audits, statistics, consistency and lineage answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from omniwatch.serving.schemas import Strict

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
