"""ingest/events (validated, idempotent by source id) and entities/{entity_id} (both backends)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH

P = "/api/v2"


def _event(source_id: str, **kw) -> dict:
    return {"source": "rss", "source_id": source_id, "track": "vc", "event_type": "news", "title": "Acme raises",
            "url": "https://example.com/a", "event_time": "2024-08-01T10:00:00Z",
            "available_time": "2024-08-01T10:05:00Z", "tone": 1.5, "payload": {"feed": "x"}, **kw}


def test_ingest_is_idempotent_by_source_id_and_links_entities(client, backend):
    entity = f"E{uuid.uuid4().hex[:8]}"
    with get_engine(backend.warehouse_url).begin() as conn:
        conn.execute(tables.entities.insert().values(entity_id=entity, track="vc", name="Acme Corp",
                                                     normalized_name="acme", aliases=["Acme"]))
    ids = [f"{entity}-{i}" for i in range(2)]
    body = {"events": [_event(ids[0], entity_ids=[entity]), _event(ids[1], title="Acme files Form D")]}
    r = client.post(f"{P}/ingest/events", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["received"], first["inserted"], first["updated"], first["links_written"]) == (2, 2, 0, 1)
    again = client.post(f"{P}/ingest/events", json=body, headers=AUTH).json()
    assert (again["inserted"], again["updated"]) == (0, 2)
    assert [e["event_id"] for e in again["events"]] == [e["event_id"] for e in first["events"]]
    t = tables.events
    with get_engine(backend.warehouse_url).connect() as conn:
        assert conn.execute(select(func.count()).where(t.c.source_id.in_(ids))).scalar() == 2
    r = client.get(f"{P}/entities/{entity}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["name"] == "Acme Corp" and out["aliases"] == ["Acme"]
    assert [(e["source_id"], e["method"], e["confidence"]) for e in out["events"]] == [(ids[0], "api", 1.0)]
    assert out["events"][0]["available_time"] == "2024-08-01T10:05:00Z"


def test_bad_events_are_refused_with_the_field(client):
    cases = [
        ({"events": []}, "body.events"),
        ({"events": [_event("a", track="crypto")]}, "body.events.0.track"),
        ({"events": [_event("a", available_time="2024-08-01T09:00:00Z")]}, "body.events.0"),
        ({"events": [_event("a"), _event("a")]}, "body"),
        ({"events": [_event("a", url="not a url")]}, "body.events.0.url"),
        ({"events": [_event("a", entity_ids=["no-such-entity"])]}, "body.events.0.entity_ids"),
    ]
    for body, field in cases:
        r = client.post(f"{P}/ingest/events", json=body, headers=AUTH)
        assert r.status_code == 422, body
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


def test_unknown_entities_are_404(client):
    r = client.get(f"{P}/entities/no-such-entity")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.get(f"{P}/entities/bad id").status_code == 422
