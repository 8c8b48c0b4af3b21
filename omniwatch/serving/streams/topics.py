"""The three topics: the table each tails, the payload of each message, and its filters.

Every payload is one warehouse row as JSON, timestamps as ISO 8601 UTC text:

``signals`` (``signal_candidates``, with the model version of its prediction):
    ``signal_id`` str (UUID), ``prediction_id`` str | null, ``track`` str, ``target`` str (the
    symbol), ``strategy_id`` str, ``horizon`` str (``1h`` | ``4h`` | ``24h``), ``direction`` int
    (-1 short, 0 flat, 1 long), ``strength`` float, ``threshold`` float (bps), ``as_of_ts``
    time, ``status`` str (``candidate`` | ``flat``), ``model_version`` str | null, ``created_at``
    time. Filters: ``symbols`` (of the liquid universe), ``horizon``, ``strategy_id``, ``track``.
``events`` (``events``, with the entities ``event_links`` names when the row is read):
    ``id`` int, ``source`` str, ``source_id`` str, ``track`` str, ``event_type`` str, ``title``
    str | null, ``url`` str | null, ``event_time`` time, ``available_time`` time,
    ``first_seen_at`` time | null, ``tone`` float | null, ``ingested_at`` time, ``entity_ids``
    list[str] (links are written by a later asset, so often empty). ``body`` and ``payload`` are
    left out (they can be large). Filters: ``track``, ``event_type``, ``source``.
``risk`` (``risk_events``: one row per violation code of a refused order):
    ``id`` int, ``track`` str, ``strategy_id`` str, ``code`` str, ``detail`` object | null (the
    order, the figures and the limit), ``created_at`` time. Filters: ``track``, ``strategy_id``.

Order: ``events`` and ``risk`` by ``id``; ``signals`` by ``created_at`` then ``signal_id`` (the
rows of one write share a ``created_at``). Each row is sent once, when it is first written: an
upsert that changes a stored signal or event is not sent again.

A list filter is comma-separated (``symbols=BTC,ETH``); a message passes when every given filter
matches it. An unknown parameter or value is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from sqlalchemy import Connection, Row, select

from omniwatch.jsonsafe import json_safe
from omniwatch.serving.schemas import Horizon
from omniwatch.serving.streams.broker import Message
from omniwatch.serving.streams.cursors import Cursor, IdCursor, TimeCursor
from omniwatch.warehouse import tables

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
LIST_FIELDS = ("symbols", "horizon", "event_type", "source")


class StreamFilters(BaseModel):
    """Query parameters of a stream; ``None`` matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    track: Literal["liquid", "vc"] | None = None

    @field_validator(*LIST_FIELDS, mode="before", check_fields=False)
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def accepts(self, payload: dict[str, Any]) -> bool:
        return self.track is None or payload["track"] == self.track


class SignalFilters(StreamFilters):
    symbols: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None
    horizon: Annotated[list[Horizon], Field(min_length=1)] | None = None
    strategy_id: Name | None = None

    @field_validator("symbols")
    @classmethod
    def _known(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        universe = (info.context or {}).get("symbols")
        unknown = sorted(set(value or ()) - set(universe or ()))
        if value and universe is not None and unknown:
            raise ValueError(f"{unknown} not in the liquid universe {list(universe)}")
        return value

    def accepts(self, payload: dict[str, Any]) -> bool:
        return (super().accepts(payload) and (self.symbols is None or payload["target"] in self.symbols)
                and (self.horizon is None or payload["horizon"] in self.horizon)
                and (self.strategy_id is None or payload["strategy_id"] == self.strategy_id))


class EventFilters(StreamFilters):
    event_type: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None
    source: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None

    def accepts(self, payload: dict[str, Any]) -> bool:
        return (super().accepts(payload) and (self.event_type is None or payload["event_type"] in self.event_type)
                and (self.source is None or payload["source"] in self.source))


class RiskFilters(StreamFilters):
    strategy_id: Name | None = None

    def accepts(self, payload: dict[str, Any]) -> bool:
        return super().accepts(payload) and (self.strategy_id is None or payload["strategy_id"] == self.strategy_id)


def _payload(row: Row[Any]) -> dict[str, Any]:
    return json_safe(dict(row._mapping))


def _signal_messages(conn: Connection, rows: list[Row[Any]]) -> list[Message]:
    return [Message.of("signals", row.signal_id, _payload(row)) for row in rows]


def _event_messages(conn: Connection, rows: list[Row[Any]]) -> list[Message]:
    links: dict[int, list[str]] = {}
    ids = [row.id for row in rows]
    link = tables.event_links
    for start in range(0, len(ids), 1000):
        query = (select(link.c.event_id, link.c.entity_id).where(link.c.event_id.in_(ids[start:start + 1000]))
                 .order_by(link.c.event_id, link.c.entity_id))
        for event_id, entity_id in conn.execute(query):
            links.setdefault(event_id, []).append(entity_id)
    return [Message.of("events", str(row.id), {**_payload(row), "entity_ids": links.get(row.id, [])})
            for row in rows]


def _risk_messages(conn: Connection, rows: list[Row[Any]]) -> list[Message]:
    return [Message.of("risk", str(row.id), _payload(row)) for row in rows]


def _signals_cursor(lookback_s: float) -> Cursor:
    s, p = tables.signal_candidates, tables.predictions_v2
    query = select(*s.c, p.c.model_version).select_from(s.outerjoin(p, s.c.prediction_id == p.c.prediction_id))
    return TimeCursor(query, s.c.signal_id, s.c.created_at, lookback_s)


def _events_cursor(lookback_s: float) -> Cursor:
    e = tables.events
    columns = [c for c in e.c if c.name not in ("body", "payload")]
    return IdCursor(select(*columns), e.c.id, lookback_s)


def _risk_cursor(lookback_s: float) -> Cursor:
    return IdCursor(select(tables.risk_events), tables.risk_events.c.id, lookback_s)


@dataclass(frozen=True)
class Topic:
    name: str
    filters: type[StreamFilters]
    cursor: Callable[[float], Cursor]  # given the lookback
    messages: Callable[[Connection, list[Row[Any]]], list[Message]]


TOPICS: dict[str, Topic] = {t.name: t for t in (
    Topic("signals", SignalFilters, _signals_cursor, _signal_messages),
    Topic("events", EventFilters, _events_cursor, _event_messages),
    Topic("risk", RiskFilters, _risk_cursor, _risk_messages),
)}
