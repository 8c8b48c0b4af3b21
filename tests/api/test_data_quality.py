"""data-quality/sample|audit|stats|consistency|lineage/check through HTTP (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from omniwatch.features.liquid import FEATURES
from omniwatch.serving.data_quality.service import compare_hours, snapshot_mismatches
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import client_for

P = "/api/v2/data-quality"


def test_sample_returns_the_newest_rows_of_a_table(client):
    r = client.get(f"{P}/sample", params={"table": "market_bars", "target": "ETH", "limit": 3})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert r.json()["count"] == 3 and {x["symbol"] for x in rows} == {"ETH"}
    assert [x["event_time"] for x in rows] == ["2024-08-31T23:00:00Z", "2024-08-31T22:00:00Z", "2024-08-31T21:00:00Z"]
    r = client.get(f"{P}/sample", params={"table": "feature_snapshots", "limit": 1, "end": "2024-06-01T00:00:00Z"})
    assert r.json()["rows"][0]["as_of_ts"] < "2024-06-01" and set(r.json()["rows"][0]["features"]) == set(FEATURES)
    assert client.get(f"{P}/sample", params={"table": "users"}).status_code == 422
    assert client.get(f"{P}/sample", params={"limit": 0}).status_code == 422


def test_audit_and_stats_read_the_check_results(client):
    audit = client.get(f"{P}/audit", params={"asset_key": "market_bars", "limit": 50}).json()
    assert audit["count"] > 0 and {r["asset_key"] for r in audit["rows"]} == {"market_bars"}
    assert all(r["passed"] for r in audit["rows"])
    assert client.get(f"{P}/audit", params={"passed": "false"}).json()["count"] == 0
    stats = client.get(f"{P}/stats").json()
    assert stats["results"] >= audit["count"] and stats["failures"] == 0
    check = next(c for c in stats["checks"]
                 if c["asset_key"] == "market_bars" and c["check_name"] == "have_no_duplicate_keys")
    assert check["pass_rate"] == 1.0 and check["last_failure_at"] is None and check["last_checked_at"]


def test_consistency_matches_each_bar_close_with_one_snapshot_hour(client):
    r = client.get(f"{P}/consistency", params={"start": "2024-08-01T00:00:00Z", "end": "2024-08-08T00:00:00Z"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["consistent"] and {t["target"] for t in out["targets"]} == {"BTC", "ETH", "SOL"}
    assert all(t["bars"] == t["snapshots"] == 7 * 24 and t["lag_hours"] == 0 for t in out["targets"])
    default = client.get(f"{P}/consistency", params={"targets": ["BTC"]}).json()
    assert default["end"] == "2024-09-01T01:00:00Z" and default["targets"][0]["latest_snapshot_as_of"]
    assert client.get(f"{P}/consistency", params={"start": "2024-08-08T00:00:00Z",
                                                  "end": "2024-08-01T00:00:00Z"}).status_code == 422


def test_compare_hours_and_snapshot_mismatches_as_functions():
    assert compare_hours({1, 2, 3}, {2, 3, 4}) == {"bars": 3, "snapshots": 3, "bars_without_snapshot": 1,
                                                  "snapshots_without_bar": 1}
    base = {"features": {"a": 1.0, "b": None}, "feature_mask": {"a": True, "b": False}, "lineage_id": "L",
            "data_version": "v1", "event_time": datetime(2024, 1, 1, 0, tzinfo=UTC),
            "as_of_ts": datetime(2024, 1, 1, 1, tzinfo=UTC)}
    other = {**base, "features": {"a": 2.0, "c": 1.0}, "data_version": "v2", "lineage_id": "M"}
    lineage = {"L": {"code_version": "x"}, "M": {"code_version": "y"}}
    assert snapshot_mismatches(base, other, lineage, strict=False) == ["features.b", "features.c", "code_version"]
    assert snapshot_mismatches(base, base, lineage, strict=True) == ["null.b"]
    late = {**base, "event_time": datetime(2024, 1, 1, 2, tzinfo=UTC)}
    assert snapshot_mismatches(late, base, lineage, strict=False) == ["event_time.newer"]


def test_lineage_check_of_the_two_newest_snapshots(client):
    r = client.post(f"{P}/lineage/check", json={})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] and out["mismatch_keys"] == [] and len(out["targets"]) == 3
    assert all(len(t["snapshot_ids"]) == 2 and t["as_of"][0] > t["as_of"][1] for t in out["targets"])
    one = client.post(f"{P}/lineage/check", json={"target": "BTC", "strict": True}).json()
    assert one["strict"] and [t["target"] for t in one["targets"]] == ["BTC"]
    version = out["targets"][0]["data_versions"][0]
    pinned = client.post(f"{P}/lineage/check", json={"data_version": version}).json()
    assert {v for t in pinned["targets"] for v in t["data_versions"]} == {version}
    assert client.post(f"{P}/lineage/check", json={"target": "NOPE"}).status_code == 404
    assert client.post(f"{P}/lineage/check", json={"strict": "maybe"}).status_code == 422


def test_lineage_check_names_the_keys_a_newer_snapshot_lost(own_home):
    t = tables.feature_snapshots
    with get_engine(own_home.warehouse_url).begin() as conn:
        newest = conn.execute(select(t).where(t.c.target == "SOL").order_by(t.c.as_of_ts.desc()).limit(1)
                              ).mappings().one()
        features = {k: v for k, v in newest["features"].items() if k != "ret_4h"}
        conn.execute(t.update().where(t.c.id == newest["id"]).values(features=features, lineage_id="unknown"))
    with client_for(own_home) as c:
        out = c.post(f"{P}/lineage/check", json={"target": "SOL"}).json()
    assert not out["ok"] and out["mismatch_keys"] == ["SOL:features.ret_4h", "SOL:lineage_id.newer"]
