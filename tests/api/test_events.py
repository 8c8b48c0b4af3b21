"""ingest/events (validated, idempotent by source id) and entities/{entity_id} (both backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH

P = "/api/v2"


def _event(source_id: str, **kw) -> dict:
    return {"source": "partner", "source_id": source_id, "track": "vc", "event_type": "news", "title": "Acme raises",
            "url": "https://example.com/a", "event_time": "2024-08-01T10:00:00Z",
            "available_time": "2024-08-01T10:05:00Z", "tone": 0.6, "payload": {"feed": "x"}, **kw}


def test_ingest_is_idempotent_by_source_id_and_links_entities(client, backend):
    entity = f"E{uuid.uuid4().hex[:8]}"
    with get_engine(backend.warehouse_url).begin() as conn:
        conn.execute(tables.entities.insert().values(entity_id=entity, track="vc", name="Acme Corp",
                                                     normalized_name="acme", aliases=["Acme"]))
    ids = [f"{entity}-{i}" for i in range(2)]
    body = {"events": [_event(ids[0], entity_ids=[entity]), _event(ids[1], title="Acme files Form D")]}
    received = datetime.now(UTC)
    r = client.post(f"{P}/ingest/events", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    first = r.json()
    # Point in time: a 2024 event sent now counts from now, not from the client's 10:05.
    stamped = datetime.fromisoformat(first["events"][0]["available_time"])
    assert received <= stamped <= datetime.now(UTC)
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
    assert datetime.fromisoformat(out["events"][0]["available_time"]) >= received
    assert out["events"][0]["tone"] == 0.6


def test_a_later_client_available_time_is_kept(client):
    soon = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)
    iso = soon.isoformat().replace("+00:00", "Z")
    r = client.post(f"{P}/ingest/events", json={"events": [_event(f"later-{uuid.uuid4().hex[:8]}", event_time=iso,
                                                                   available_time=iso)]}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["events"][0]["available_time"]) == soon


def test_pipeline_sources_cannot_be_written_by_clients(client, backend):
    for source in ("edgar", "gdelt", "rss"):
        source_id = f"pipe-{uuid.uuid4().hex[:8]}"
        r = client.post(f"{P}/ingest/events", json={"events": [_event(source_id, source=source)]}, headers=AUTH)
        assert r.status_code == 403, r.text
        body = r.json()
        assert body["code"] == "pipeline_source" and source in body["detail"]
        assert body["errors"][0]["field"] == "body.events.0.source"
        with get_engine(backend.warehouse_url).connect() as conn:
            t = tables.events
            assert conn.execute(select(func.count()).where(t.c.source_id == source_id)).scalar() == 0


def test_tone_is_on_the_pipeline_scale(client):
    for tone in (1.5, -1.01, 100):
        r = client.post(f"{P}/ingest/events", json={"events": [_event("t", tone=tone)]}, headers=AUTH)
        assert r.status_code == 422, tone
        assert r.json()["errors"][0]["field"] == "body.events.0.tone"
    ok = client.post(f"{P}/ingest/events", json={"events": [_event(f"t-{uuid.uuid4().hex[:8]}", tone=-1.0)]},
                     headers=AUTH)
    assert ok.status_code == 200, ok.text


def test_a_failed_data_quality_check_refuses_the_whole_batch(client, backend):
    """The pipeline's event checks run before any write: one bad event stores nothing."""
    ids = [f"dq-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    cases = [([_event(ids[0]), _event(ids[1], title="  ")], "have_text", "body.events.1.title"),
             ([_event(ids[0]), _event(ids[1], event_time=future, available_time=future)],
              "have_no_future_timestamps", "body.events.1.")]
    for events, check, field in cases:
        r = client.post(f"{P}/ingest/events", json={"events": events}, headers=AUTH)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "blocked_by_data_quality" and check in body["detail"], body
        assert check in body["context"]["checks"]
        assert any(e["field"].startswith(field) and e["type"] == check for e in body["errors"]), body
        with get_engine(backend.warehouse_url).connect() as conn:
            t = tables.events
            assert conn.execute(select(func.count()).where(t.c.source_id.in_(ids))).scalar() == 0


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
    assert client.get(f"{P}/entities/bad id").status_code == 404  # unknown whatever its format
