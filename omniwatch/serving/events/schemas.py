"""Event ingestion and entity answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, model_validator

from omniwatch.serving.schemas import EntityId, Strict, UtcTime


class EventIn(Strict):
    source: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,16}$")]
    source_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    track: Literal["vc", "liquid"]
    event_type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,32}$")]
    title: Annotated[str, StringConstraints(max_length=2000)] | None = None
    body: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    url: HttpUrl | None = None
    event_time: UtcTime
    available_time: UtcTime | None = Field(
        default=None, description="When the client could first have known it (default: event_time). The server "
        "stores the later of this and the time it received the event: nothing counts before it reached us.")
    tone: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = Field(
        default=None, description="Signed tone on the pipeline's scale (VADER compound, -1 to 1).")
    payload: dict[str, Any] | None = None
    entity_ids: Annotated[list[EntityId], Field(max_length=32)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_after_it_happened(self) -> EventIn:
        if self.available_time is not None and self.available_time < self.event_time:
            raise ValueError("available_time must not be before event_time")
        return self


class IngestRequest(Strict):
    # A client source (the pipeline's own, edgar/gdelt/rss, are refused); sending it again updates it.
    model_config = ConfigDict(json_schema_extra={"examples": [{"events": [
        {"source": "partner_feed", "source_id": "pf-2024-08-30-0001", "track": "vc", "event_type": "funding_round",
         "title": "Acme Robotics raises a $40M Series B", "body": "Acme Robotics closed a $40M Series B led by "
         "Example Ventures.", "url": "https://example.com/news/acme-series-b", "event_time": "2024-08-30T14:05:00Z",
         "available_time": "2024-08-30T14:20:00Z", "tone": 0.6, "payload": {"amount_usd": 40000000}},
    ]}]})

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
    available_time: datetime = Field(description="As stored: the later of the client's value and receipt.")
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
