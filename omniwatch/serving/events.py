"""Event ingestion (idempotent by source id) and entity reads with their linked events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, tuple_

from omniwatch.serving.errors import ApiError, ApiErrorCode
from omniwatch.serving.schemas_ops import EventIn
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import as_utc, upsert_rows

E, L, N = tables.events, tables.event_links, tables.entities


def _row(e: EventIn) -> dict[str, Any]:
    return {"source": e.source, "source_id": e.source_id, "track": e.track, "event_type": e.event_type,
            "title": e.title, "body": e.body, "url": str(e.url) if e.url is not None else None,
            "event_time": e.event_time, "available_time": e.available_time or e.event_time, "tone": e.tone,
            "payload": e.payload}


def ingest(database_url: str, events: list[EventIn]) -> dict[str, Any]:
    """Upsert events on (source, source_id) and link them to known entities (method ``api``), in
    one transaction; an unknown entity id refuses the whole batch."""
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
        upsert_rows(conn, E, [_row(e) for e in events], ["source", "source_id"])
        ids = {(r.source, r.source_id): int(r.id)
               for r in conn.execute(select(E.c.id, E.c.source, E.c.source_id).where(key_col.in_(keys)))}
        links = [{"event_id": ids[(e.source, e.source_id)], "entity_id": i, "confidence": 1.0, "method": "api"}
                 for e in events for i in dict.fromkeys(e.entity_ids)]
        upsert_rows(conn, L, links, ["event_id", "entity_id"])
    out = [{"source": s, "source_id": sid, "event_id": ids[(s, sid)],
            "status": "updated" if (s, sid) in before else "inserted"} for s, sid in keys]
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
    for e in events:
        e["event_time"], e["available_time"] = as_utc(e["event_time"]), as_utc(e["available_time"])
    return {**dict(found), "aliases": list(found["aliases"] or []), "events": events}
