"""The seed's data-quality review loop through HTTP: POST data-quality/sample draws rows for
people to judge, POST data-quality/audit records their verdicts, GET data-quality/precision
(both backends); and scripts/data_quality_weekly_audit.py against a real uvicorn server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from graph.helpers import fresh_sqlite_warehouse
from servers import free_port, running
from sqlalchemy import func, select

from omniwatch.serving.data_quality.service import record_verdicts
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import client_for

P = "/api/v2/data-quality"
REPO = Path(__file__).resolve().parents[2]
ALICE, BOB = {"X-API-Key": "alice-secret"}, {"X-API-Key": "bob-secret"}
KEYS = ["alice:alice-secret", "bob:bob-secret"]
T0 = datetime(2024, 8, 1, tzinfo=UTC)
# 12 events: sources gdelt (6), rss (4), partner (2), one a day from T0; each linked to one entity.
SOURCES = ["gdelt"] * 6 + ["rss"] * 4 + ["partner"] * 2


def seed_events(url: str) -> dict[str, list[int]]:
    """Events and their links; returns the ids per table (event_links ids in event order)."""
    with get_engine(url).begin() as conn:
        conn.execute(tables.entities.insert(), [
            {"entity_id": "cik:0000000001", "track": "vc", "name": "Acme Robotics", "normalized_name": "acme robotics",
             "cik": "0000000001", "aliases": ["Acme"]},
            {"entity_id": "cik:0000000002", "track": "vc", "name": "Zenith Labs", "normalized_name": "zenith labs",
             "cik": "0000000002", "aliases": []}])
        event_ids, link_ids = [], []
        for i, source in enumerate(SOURCES):
            t = T0 + timedelta(days=i)
            event_ids.append(conn.execute(tables.events.insert().values(
                source=source, source_id=f"{source}-{i}", track="vc", event_type="funding",
                title=f"Acme news {i}", body="Acme Robotics raised a round. " * 40, url=f"https://example.com/{i}",
                event_time=t, available_time=t + timedelta(minutes=5), tone=0.1 * (i % 3)).returning(
                tables.events.c.id)).scalar_one())
            link_ids.append(conn.execute(tables.event_links.insert().values(
                event_id=event_ids[-1], entity_id="cik:0000000001" if i % 2 == 0 else "cik:0000000002",
                confidence=0.9, method="name").returning(tables.event_links.c.id)).scalar_one())
    return {"events": event_ids, "event_links": link_ids}


@pytest.fixture
def review(warehouse_url, tmp_path) -> Iterator[tuple[TestClient, str, dict[str, list[int]]]]:
    """An app over a migrated warehouse (each backend) holding 12 linked events; two keys."""
    ids = seed_events(warehouse_url)
    with client_for(Settings(home=tmp_path / "home", database_url=warehouse_url), api_keys=KEYS) as c:
        yield c, warehouse_url, ids


def count(url: str, table) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def draw(c: TestClient, **body) -> dict:
    r = c.post(f"{P}/sample", json=body, headers=ALICE)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_sample_of_links_is_drawn_stored_and_reproducible(review):
    c, url, ids = review
    before = datetime.now(UTC)
    first = draw(c, table="event_links", limit=5, seed=7)
    assert first["drawn_by"] == "alice" and before <= datetime.fromisoformat(first["drawn_at"]) <= datetime.now(UTC)
    assert (first["table"], first["seed"], first["population"], first["count"]) == ("event_links", 7, 12, 5)
    keys = [row["row_key"] for row in first["rows"]]
    assert keys == sorted(keys) and set(keys) <= set(ids["event_links"])
    row = first["rows"][0]
    i = ids["event_links"].index(row["row_key"])
    # What the reviewer judges: the entity the link names next to the event it was found in.
    assert row["link"]["entity_name"] == ("Acme Robotics" if i % 2 == 0 else "Zenith Labs")
    assert row["link"]["confidence"] == 0.9 and row["link"]["method"] == "name"
    assert row["event"]["event_id"] == ids["events"][i] and row["event"]["title"] == f"Acme news {i}"
    assert row["source"] == SOURCES[i] and len(row["event"]["excerpt"]) == 500
    # The same seed over the same rows draws the same rows, as a new sample.
    again = draw(c, table="event_links", limit=5, seed=7)
    assert [r["row_key"] for r in again["rows"]] == keys and again["sample_id"] != first["sample_id"]
    other = draw(c, table="event_links", limit=5, seed=8)
    assert [r["row_key"] for r in other["rows"]] != keys
    # No seed: the server picks one and says which, so the draw can be replayed.
    picked = draw(c, table="events", limit=3)
    assert [r["row_key"] for r in draw(c, table="events", limit=3, seed=picked["seed"])["rows"]] == \
        [r["row_key"] for r in picked["rows"]]
    assert all(r["link"] is None for r in picked["rows"])
    with get_engine(url).connect() as conn:
        stored = conn.execute(select(tables.data_quality_samples).where(
            tables.data_quality_samples.c.id == first["sample_id"])).mappings().one()
        held = sorted(r[0] for r in conn.execute(select(tables.data_quality_sample_rows.c.row_key).where(
            tables.data_quality_sample_rows.c.sample_id == first["sample_id"])))
    assert (stored["sample_table"], stored["drawn_by"], stored["seed"], stored["population"]) == \
        ("event_links", "alice", 7, 12)
    assert held == keys


def test_filters_limit_the_population(review):
    c, _, ids = review
    gdelt = draw(c, table="events", source="gdelt", limit=500)
    assert gdelt["population"] == gdelt["count"] == 6 and {r["source"] for r in gdelt["rows"]} == {"gdelt"}
    window = draw(c, table="event_links", start="2024-08-03T00:00:00Z", end="2024-08-06T00:00:00Z", limit=10)
    assert [r["row_key"] for r in window["rows"]] == ids["event_links"][2:5]
    assert window["filters"] == {"source": None, "start": "2024-08-03T00:00:00Z", "end": "2024-08-06T00:00:00Z"}
    empty = draw(c, table="events", source="edgar")
    assert (empty["population"], empty["count"], empty["rows"]) == (0, 0, [])


def test_drawing_needs_a_key_and_valid_input(review):
    c, url, _ = review
    assert c.post(f"{P}/sample", json={"table": "events"}).status_code == 401
    assert c.post(f"{P}/sample", json={"table": "events"}, headers={"X-API-Key": "nope"}).status_code == 401
    for body in ({"table": "market_bars"}, {"table": "events", "limit": 501}, {"table": "events", "limit": 0},
                 {"table": "events", "drawn_by": "mallory"}, {"table": "events", "seed": -1},
                 {"table": "events", "start": "2024-08-06T00:00:00Z", "end": "2024-08-03T00:00:00Z"},
                 {"table": "events", "source": "GDELT!"}):
        r = c.post(f"{P}/sample", json=body, headers=ALICE)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (body, r.text)
    assert count(url, tables.data_quality_samples) == 0
    # The reads of the automated checks keep answering on the same paths.
    assert c.get(f"{P}/sample", params={"table": "market_bars"}).json() == {"table": "market_bars", "count": 0,
                                                                           "rows": []}
    assert c.get(f"{P}/audit").json() == {"count": 0, "rows": []}


def test_verdicts_are_append_only_idempotent_and_give_precision(review):
    c, url, _ = review
    sample = draw(c, table="event_links", limit=12, seed=1)
    by_source = {}
    for row in sample["rows"]:
        by_source.setdefault(row["source"], []).append(row["row_key"])
    g, r_ = by_source["gdelt"], by_source["rss"]
    verdicts = [*({"row_key": k, "verdict": "correct"} for k in g[:5]), {"row_key": g[5], "verdict": "incorrect",
                                                                         "note": "Zenith, not Acme"},
                {"row_key": r_[0], "verdict": "incorrect"}, {"row_key": r_[1], "verdict": "unsure"}]
    body = {"sample_id": sample["sample_id"], "verdicts": verdicts}
    before = datetime.now(UTC)
    r = c.post(f"{P}/audit", json=body, headers=ALICE)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["reviewer"], out["received"], out["written"], out["unchanged"]) == ("alice", 8, 8, 0)
    assert all(v["status"] == "written" and v["revision"] == 1 and v["reviewer"] == "alice" for v in out["verdicts"])
    assert before <= datetime.fromisoformat(out["verdicts"][0]["reviewed_at"]) <= datetime.now(UTC)
    [links] = out["precision"]["tables"]
    assert (links["table"], links["correct"], links["incorrect"], links["unsure"], links["judged"]) == \
        ("event_links", 5, 2, 1, 7)
    assert links["precision"] == pytest.approx(5 / 7)
    sources = {s["source"]: s for s in links["sources"]}
    assert sources["gdelt"]["precision"] == pytest.approx(5 / 6) and sources["rss"]["precision"] == 0.0
    assert (sources["rss"]["judged"], sources["rss"]["unsure"]) == (1, 1)

    # The same body again writes nothing: each verdict equals the reviewer's latest on its row.
    again = c.post(f"{P}/audit", json=body, headers=ALICE).json()
    assert (again["written"], again["unchanged"]) == (0, 8) and again["precision"] == out["precision"]
    assert {v["status"] for v in again["verdicts"]} == {"unchanged"}
    assert count(url, tables.data_quality_reviews) == 8

    # A change of mind is a new revision (the first stays); precision reads the latest.
    changed = c.post(f"{P}/audit", headers=ALICE, json={"sample_id": sample["sample_id"], "verdicts": [
        {"row_key": r_[0], "verdict": "correct", "note": "checked the filing"}]}).json()
    assert changed["written"] == 1 and changed["verdicts"][0]["revision"] == 2
    assert count(url, tables.data_quality_reviews) == 9
    # Another reviewer's verdicts count beside alice's.
    bob = c.post(f"{P}/audit", headers=BOB, json={"sample_id": sample["sample_id"], "verdicts": [
        {"row_key": g[0], "verdict": "incorrect"}]}).json()
    assert bob["reviewer"] == "bob" and bob["verdicts"][0]["revision"] == 1

    r = c.get(f"{P}/precision", params={"table": "event_links"})
    assert r.status_code == 200, r.text
    [links] = r.json()["tables"]
    assert (links["correct"], links["incorrect"], links["unsure"], links["judged"]) == (6, 2, 1, 8)
    sources = {s["source"]: s for s in links["sources"]}
    assert (sources["gdelt"]["correct"], sources["gdelt"]["judged"]) == (5, 7)
    assert (sources["rss"]["correct"], sources["rss"]["judged"]) == (1, 1)
    only_rss = c.get(f"{P}/precision", params={"source": "rss"}).json()["tables"][0]
    assert [s["source"] for s in only_rss["sources"]] == ["rss"] and only_rss["precision"] == 1.0
    assert c.get(f"{P}/precision", params={"table": "events"}).json() == {"tables": []}
    assert c.get(f"{P}/precision", params={"sample_id": sample["sample_id"] + 1}).json() == {"tables": []}
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(tables.data_quality_reviews.c.reviewer, tables.data_quality_reviews.c.verdict,
                                   tables.data_quality_reviews.c.revision)
                            .where(tables.data_quality_reviews.c.row_key == r_[0])
                            .order_by(tables.data_quality_reviews.c.revision)).all()
    assert [tuple(x) for x in rows] == [("alice", "incorrect", 1), ("alice", "correct", 2)]


def test_a_bad_verdict_body_writes_nothing(review):
    c, url, ids = review
    sample = draw(c, table="events", limit=3, seed=3)
    keys = [r["row_key"] for r in sample["rows"]]
    outside = next(k for k in ids["events"] if k not in keys)
    good = {"row_key": keys[0], "verdict": "correct"}

    r = c.post(f"{P}/audit", headers=ALICE, json={"sample_id": sample["sample_id"] + 100, "verdicts": [good]})
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    # One row the sample does not hold: 422 naming it, and the good verdict beside it is not kept.
    r = c.post(f"{P}/audit", headers=ALICE, json={"sample_id": sample["sample_id"], "verdicts": [
        good, {"row_key": outside, "verdict": "incorrect"}]})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "body.verdicts.1.row_key", "type": "not_in_sample",
                                   "reason": f"row {outside} is not in sample {sample['sample_id']}"}]
    for body in ({"sample_id": sample["sample_id"], "verdicts": [{**good, "verdict": "maybe"}]},
                 {"sample_id": sample["sample_id"], "verdicts": [good], "reviewer": "mallory"},
                 {"sample_id": sample["sample_id"], "verdicts": [{**good, "reviewed_at": "2024-01-01T00:00:00Z"}]},
                 {"sample_id": sample["sample_id"], "verdicts": [good, good]},
                 {"sample_id": sample["sample_id"], "verdicts": []},
                 {"sample_id": sample["sample_id"], "verdicts": [{**good, "note": "x" * 2001}]}):
        r = c.post(f"{P}/audit", headers=ALICE, json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (body, r.text)
    assert c.post(f"{P}/audit", json={"sample_id": sample["sample_id"], "verdicts": [good]}).status_code == 401
    assert count(url, tables.data_quality_reviews) == 0


def test_the_request_examples_sent_as_they_are_are_answered(review):
    """/docs's examples, in order on a fresh warehouse: the first draw is sample 1 and holds links 1
    and 2, which the audit example judges."""
    c, url, _ = review
    components = c.app.openapi()["components"]["schemas"]
    draws, audits = components["SampleDrawRequest"]["examples"], components["AuditRequest"]["examples"]
    for example in draws:
        r = c.post(f"{P}/sample", json=example, headers=ALICE)
        assert r.status_code == 200, (example, r.text)
    assert c.post(f"{P}/sample", json=draws[0], headers=ALICE).json()["count"] == 12
    r = c.post(f"{P}/audit", json=audits[0], headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 2 and count(url, tables.data_quality_reviews) == 2


def test_identical_verdicts_racing_are_written_once(review):
    c, url, _ = review
    sample = draw(c, table="events", limit=4, seed=5)
    verdicts = [{"row_key": r["row_key"], "verdict": "correct", "note": None} for r in sample["rows"]]
    barrier, results, errors = threading.Barrier(4), [], []

    def post() -> None:
        barrier.wait()
        try:
            results.append(record_verdicts(url, sample["sample_id"], "alice", verdicts))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 4
    assert sum(v["status"] == "written" for out in results for v in out) == 4
    assert count(url, tables.data_quality_reviews) == 4


def test_the_weekly_audit_script_draws_a_sheet_and_posts_it_back(tmp_path):
    """The script against uvicorn as `make serve` runs it: draw, fill the CSV, post, precision."""
    sqlite_url = fresh_sqlite_warehouse(tmp_path / "warehouse.db")
    ids = seed_events(sqlite_url)
    get_engine(sqlite_url).dispose()
    port = free_port()
    env = {**os.environ, "OMNIWATCH_HOME": str(tmp_path / "home"), "OMNIWATCH_DATABASE_URL": sqlite_url,
           "OMNIWATCH_API_PORT": str(port), "OMNIWATCH_API_KEYS": ",".join(KEYS)}
    base = f"http://127.0.0.1:{port}"

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "scripts" / "data_quality_weekly_audit.py"),
                               "--api-base", base, *args], env={**env, "OMNIWATCH_API_KEY": "alice-secret"},
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    with running([sys.executable, "-W", "ignore", "-m", "omniwatch.serving.app"], env=env, cwd=REPO,
                 log_path=tmp_path / "api.log", what="the API", timeout_s=120,
                 ready=lambda: httpx.get(f"{base}/api/v2/health", timeout=5).status_code == 200):
        sheet = tmp_path / "sheet.csv"
        drawn = script("--limit", "200", "--seed", "11", "--out", str(sheet))
        assert drawn.returncode == 0, drawn.stderr
        assert "12 of 12 rows (seed 11, drawn by alice" in drawn.stdout and "--verdicts" in drawn.stdout
        with sheet.open(newline="") as fh:
            lines = list(csv.DictReader(fh))
        assert sorted(int(x["row_key"]) for x in lines) == sorted(ids["event_links"])
        assert {x["verdict"] for x in lines} == {""} and {x["entity_name"] for x in lines} == {"Acme Robotics",
                                                                                              "Zenith Labs"}
        # The reviewer judges 3 gdelt links correct and 1 incorrect, and leaves the rest blank.
        gdelt = [x for x in lines if x["source"] == "gdelt"]
        for x, verdict in zip(gdelt, ["correct", "correct", "correct", "incorrect"], strict=False):
            x["verdict"] = verdict
        gdelt[3]["note"] = "wrong company"
        with sheet.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
            writer.writeheader()
            writer.writerows(lines)
        posted = script("--verdicts", str(sheet))
        assert posted.returncode == 0, posted.stderr
        assert "4 verdicts written, 0 unchanged (reviewer alice)" in posted.stdout
        assert "0.750  (3/4 judged, 0 unsure)" in posted.stdout
        again = script("--verdicts", str(sheet))
        assert "0 verdicts written, 4 unchanged" in again.stdout, again.stdout + again.stderr

        # A line naming a row the sample does not hold: the API refuses the whole sheet.
        lines[0]["row_key"], lines[0]["verdict"] = str(10**9), "correct"
        bad = tmp_path / "bad.csv"
        with bad.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
            writer.writeheader()
            writer.writerows(lines)
        refused = script("--verdicts", str(bad))
        assert refused.returncode == 1 and "422" in refused.stderr and "is not in sample" in refused.stderr
    with get_engine(sqlite_url).connect() as conn:
        stored = conn.execute(select(tables.data_quality_reviews.c.reviewer, tables.data_quality_reviews.c.verdict,
                                     tables.data_quality_reviews.c.note)).all()
    assert sorted(tuple(x) for x in stored) == [("alice", "correct", None)] * 3 + [("alice", "incorrect",
                                                                                    "wrong company")]
