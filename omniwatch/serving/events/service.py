"""Event ingestion (idempotent by source id) and entity reads with their linked events.

Point in time: an ingested event counts from the later of the client's ``available_time`` and
the moment the server received it, so a client cannot back-date what features could have seen.
The pipeline's sources (edgar, gdelt, rss) are written by the pipeline only: a client may not
create or overwrite their rows (403 ``pipeline_source``). The batch passes the same blocking
checks the pipeline runs on events (``omniwatch.checks.registry``) before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select, tuple_

from omniwatch import frames
from omniwatch.checks.events import EVENT_SOURCES
from omniwatch.errors import ErrorCode
from omniwatch.serving.errors import ApiError, ApiErrorCode
from omniwatch.serving.events.schemas import EventIn
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

E, L, N = tables.events, tables.event_links, tables.entities
CHECKED_AS = "news_events"  # the pipeline asset whose event checks a client batch must pass


def _row(e: EventIn, received: datetime) -> dict[str, Any]:
    return {"source": e.source, "source_id": e.source_id, "track": e.track, "event_type": e.event_type,
            "title": e.title, "body": e.body, "url": str(e.url) if e.url is not None else None,
            "event_time": e.event_time, "available_time": max(e.available_time or e.event_time, received),
            "tone": e.tone, "payload": e.payload}


def _refuse_pipeline_sources(events: list[EventIn]) -> None:
    taken = [{"field": f"body.events.{n}.source", "type": "pipeline_source",
              "reason": f"source {e.source!r} is written by the pipeline; clients cannot write or overwrite its rows"}
             for n, e in enumerate(events) if e.source in EVENT_SOURCES]
    if taken:
        raise ApiError(403, ApiErrorCode.PIPELINE_SOURCE, taken[0]["reason"], errors=taken,
                       context={"pipeline_sources": list(EVENT_SOURCES)})


def check_quality(rows: list[dict[str, Any]], received: datetime) -> None:
    """The pipeline's blocking event checks on the rows about to be written; a failure is a 422
    ``blocked_by_data_quality`` naming each failed check and the rows it found. The schema
    check's source domain is the pipeline's own sources, which clients may not use (refused
    before this), so that one property does not apply here."""
    from omniwatch.checks.registry import run_checks  # pandera and friends: not at API start-up

    frame = pd.DataFrame(rows, columns=frames.EVENT_COLUMNS)
    for col in ("event_time", "available_time"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    position = {(r["source"], r["source_id"]): n for n, r in enumerate(rows)}
    errors = []
    for outcome in run_checks(CHECKED_AS, frame, received, received, received):
        failures = [f for f in outcome.failures if not (outcome.name == "match_schema"
                                                         and f.get("column") == "source")]
        for f in failures:
            n = position.get((f.get("source"), f.get("source_id")))
            field = "body.events" if n is None else f"body.events.{n}"
            errors.append({"field": f"{field}.{f['column']}" if f.get("column") else field,
                           "reason": f"{outcome.name}: {f.get('reason')}", "type": outcome.name})
    if errors:
        failed = sorted({e["type"] for e in errors})
        raise ApiError(422, ErrorCode.BLOCKED_BY_DATA_QUALITY, f"failed data-quality checks: {', '.join(failed)}",
                       context={"checks": failed}, errors=errors)


def ingest(database_url: str, events: list[EventIn]) -> dict[str, Any]:
    """Upsert events on (source, source_id) and link them to known entities (method ``api``), in
    one transaction, after the pipeline's checks; an unknown entity id refuses the whole batch."""
    _refuse_pipeline_sources(events)
    received = datetime.now(UTC)
    rows = [_row(e, received) for e in events]
    check_quality(rows, received)
    keys = [(e.source, e.source_id) for e in events]
    wanted = sorted({i for e in events for i in e.entity_ids})
    with get_engine(database_url).begin() as conn:
        known = set(conn.execute(select(N.c.entity_id).where(N.c.entity_id.in_(wanted))).scalars()) if wanted else set()
        unknown = [{"field": f"body.events.{n}.entity_ids", "reason": f"unknown entity {i!r}", "type": "not_found"}
                   for n, e in enumerate(events) for i in e.entity_ids if i not in known]
        if unknown:
            raise ApiError(422, ApiErrorCode.VALIDATION_ERROR, "; ".join(u["reason"] for u in unknown),
                           errors=unknown)
        key_col = tuple_(E.c.source, E.c.source_id)
        existing = conn.execute(select(E.c.source, E.c.source_id).where(key_col.in_(keys)))
        before = {(r.source, r.source_id) for r in existing}
        upsert_rows(conn, E, rows, ["source", "source_id"])
        ids = {(r.source, r.source_id): int(r.id)
               for r in conn.execute(select(E.c.id, E.c.source, E.c.source_id).where(key_col.in_(keys)))}
        links = [{"event_id": ids[(e.source, e.source_id)], "entity_id": i, "confidence": 1.0, "method": "api"}
                 for e in events for i in dict.fromkeys(e.entity_ids)]
        upsert_rows(conn, L, links, ["event_id", "entity_id"])
    out = [{"source": r["source"], "source_id": r["source_id"], "event_id": ids[(r["source"], r["source_id"])],
            "available_time": r["available_time"],
            "status": "updated" if (r["source"], r["source_id"]) in before else "inserted"} for r in rows]
    inserted = sum(o["status"] == "inserted" for o in out)
    return {"received": len(events), "inserted": inserted, "updated": len(events) - inserted,
            "links_written": len(links), "events": out}


def entity(database_url: str, entity_id: str, limit: int) -> dict[str, Any] | None:
    with get_engine(database_url).connect() as conn:
        found = conn.execute(select(N).where(N.c.entity_id == entity_id)).mappings().first()
        if found is None:
            return None
        query = (select(E.c.id.label("event_id"), E.c.source, E.c.source_id, E.c.event_type, E.c.title, E.c.url,
                        E.c.event_time, E.c.available_time, E.c.tone, L.c.confidence, L.c.method)
                 .join(L, L.c.event_id == E.c.id).where(L.c.entity_id == entity_id)
                 .order_by(E.c.event_time.desc(), E.c.id.desc()).limit(limit))
        events = [dict(r) for r in conn.execute(query).mappings()]
    return {**dict(found), "aliases": list(found["aliases"] or []), "events": events}
