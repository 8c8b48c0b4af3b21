"""Data-quality samples, audits, statistics, consistency and lineage answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from omniwatch.serving.schemas import Strict, UtcTime

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


# ----------------------------------------------------------------------------- human review loop
ReviewTable = Literal["event_links", "events"]
Verdict = Literal["correct", "incorrect", "unsure"]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,16}$")]
RowKey = Annotated[int, Field(ge=1, le=2**53 - 1, description="The sampled row's id in its table "
                              "(event_links.id or events.id), as the sample returned it.")]


class SampleDrawRequest(Strict):
    """Draw a random sample of rows for people to judge. The same seed over the same rows draws
    the same sample; without one the server picks a seed and returns it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"table": "event_links", "limit": 50, "seed": 7},
        {"table": "events", "limit": 200, "source": "gdelt", "start": "2024-08-01T00:00:00Z",
         "end": "2024-08-08T00:00:00Z"}]})

    table: ReviewTable = Field(description="event_links: does the link name the right company? "
                                           "events: is it a real event, correctly dated and toned?")
    limit: int = Field(default=50, ge=1, le=500, description="Rows to draw (fewer when fewer match).")
    seed: int | None = Field(default=None, ge=0, le=2**53 - 1, description="Random seed (reproducible draw).")
    source: Source | None = Field(default=None, description="Only events (or links of events) of this source.")
    start: UtcTime | None = Field(default=None, description="Only events with event_time >= start.")
    end: UtcTime | None = Field(default=None, description="Only events with event_time < end.")

    @model_validator(mode="after")
    def _window(self) -> SampleDrawRequest:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ReviewEvent(BaseModel):
    event_id: int
    source: str
    source_id: str
    track: str
    event_type: str
    title: str | None
    url: str | None
    excerpt: str | None = Field(description="The first 500 characters of the body.")
    event_time: datetime
    available_time: datetime
    tone: float | None


class ReviewLink(BaseModel):
    link_id: int
    entity_id: str
    entity_name: str
    ticker: str | None
    cik: str | None
    aliases: list[Any]
    confidence: float
    method: str


class ReviewRow(BaseModel):
    row_key: int = Field(description="What a verdict names (event_links.id or events.id).")
    source: str
    event: ReviewEvent
    link: ReviewLink | None = Field(default=None, description="The link to judge (table event_links only).")


class SampleFilters(BaseModel):
    source: str | None
    start: datetime | None
    end: datetime | None


class ReviewSampleResponse(BaseModel):
    sample_id: int
    table: ReviewTable
    drawn_at: datetime
    drawn_by: str = Field(description="The name of the API key that drew it.")
    seed: int
    filters: SampleFilters
    population: int = Field(description="Rows that matched the filters, the sample's universe.")
    count: int
    rows: list[ReviewRow]


class VerdictIn(Strict):
    row_key: RowKey
    verdict: Verdict
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class AuditRequest(Strict):
    """Verdicts on rows of one drawn sample (``row_key`` as the sample returned it). The reviewer
    is the API key's name and reviewed_at the server's clock: neither is a field. The example
    judges links 1 and 2 of sample 1, what the first draw example gives on a fresh warehouse."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sample_id": 1, "verdicts": [{"row_key": 1, "verdict": "correct"},
                                      {"row_key": 2, "verdict": "incorrect", "note": "links the wrong Acme"}]}]})

    sample_id: int = Field(ge=1, le=2**53 - 1)
    verdicts: Annotated[list[VerdictIn], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _one_per_row(self) -> AuditRequest:
        keys = [v.row_key for v in self.verdicts]
        if len(set(keys)) != len(keys):
            raise ValueError("one verdict per row_key in one request")
        return self


class VerdictOut(BaseModel):
    row_key: int
    verdict: Verdict
    note: str | None
    reviewer: str
    revision: int = Field(description="1 for the reviewer's first verdict on the row, +1 per change.")
    reviewed_at: datetime
    status: Literal["written", "unchanged"] = Field(
        description="unchanged: the reviewer's latest verdict on the row already said the same (nothing written).")


class Precision(BaseModel):
    correct: int
    incorrect: int
    unsure: int
    judged: int = Field(description="correct + incorrect (unsure is not a judgement).")
    precision: float | None = Field(description="correct / judged; null when nothing was judged.")


class SourcePrecision(Precision):
    source: str


class TablePrecision(Precision):
    table: ReviewTable
    sources: list[SourcePrecision]


class PrecisionResponse(BaseModel):
    tables: list[TablePrecision]


class AuditResultResponse(BaseModel):
    sample_id: int
    reviewer: str
    received: int
    written: int
    unchanged: int
    verdicts: list[VerdictOut]
    precision: PrecisionResponse = Field(description="Of this sample, after these verdicts.")
