"""The model router: alias moves reload without a restart, deterministic traffic split during a
rollout, and model_artifact_missing (503) for a missing or unloadable model."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import update

from omniwatch.registry import record_registration
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.serving.model_router import choose_candidate, traffic_bucket
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import client_for

P = "/api/v2"
NAME = "omniwatch-liquid"


def _mlflow(settings: Settings) -> MLflowResource:
    return MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))


def _second_version(settings: Settings) -> str:
    """Version 2: the same artifacts registered again (alias challenger), as a retrain would."""
    mlflow = _mlflow(settings)
    v1 = mlflow.client().get_model_version(NAME, "1")
    version, _ = record_registration(mlflow, settings.warehouse_url, NAME, v1.source, run_id=v1.run_id,
                                     track="liquid", train_lineage_id="t" * 24, data_version="d" * 24, metrics={},
                                     actor="test")
    return version


def _version(c, key: str = "k") -> tuple[str, str]:
    body = c.post(f"{P}/predict/liquid", json={"target": "BTC", "request_key": key}).json()
    return body["model_version"], body["model_role"]


def test_traffic_bucket_is_a_stable_hash_and_the_share_bounds_the_candidate():
    assert traffic_bucket("liquid:BTC") == traffic_bucket("liquid:BTC")
    assert [traffic_bucket(k) for k in ("a", "b", "c")] == [int.from_bytes(
        __import__("hashlib").sha256(k.encode()).digest()[:8], "big") % 100 for k in ("a", "b", "c")]
    assert not any(choose_candidate(f"k{i}", 0) for i in range(200))
    assert all(choose_candidate(f"k{i}", 100) for i in range(200))
    share = sum(choose_candidate(f"k{i}", 30) for i in range(2000)) / 2000
    assert 0.26 < share < 0.34


def test_an_alias_move_reloads_the_model_without_a_restart(own_home):
    version = _second_version(own_home)
    with client_for(own_home) as c:
        assert _version(c) == ("1", "champion")
        loads = c.app.state.services.router.loads
        _mlflow(own_home).move_alias(NAME, "champion", version, actor="test", reason="promote",
                                     database_url=own_home.warehouse_url)
        assert _version(c) == (version, "champion")
        assert c.app.state.services.router.loads == loads + 1


def test_with_a_check_interval_the_move_is_picked_up_in_the_background(own_home):
    """Cached routes answer on the event loop; past the interval a background re-read loads the
    new version first and then switches, so no request waits for the load."""
    version = _second_version(own_home)
    with client_for(own_home, alias_check_interval_s=0.3, snapshot_check_interval_s=0.3) as c:
        assert _version(c) == ("1", "champion")
        _mlflow(own_home).move_alias(NAME, "champion", version, actor="test", reason="promote",
                                     database_url=own_home.warehouse_url)
        assert _version(c) == ("1", "champion")  # inside the interval: the cached route
        deadline, seen = time.time() + 30, "1"
        while seen == "1" and time.time() < deadline:
            time.sleep(0.1)
            seen = _version(c)[0]
    assert seen == version


def test_a_rollout_splits_traffic_deterministically_by_request_key(own_warehouse):
    own_home = own_warehouse
    version = _second_version(own_home)
    t = tables.model_registry
    with get_engine(own_home.warehouse_url).begin() as conn:
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == version).values(rollout_stage=30))
    keys = [f"client-{i}" for i in range(60)]
    with client_for(own_home) as c:
        first = {k: _version(c, k) for k in keys}
        again = {k: _version(c, k) for k in keys}
        assert first == again  # the same key keeps its arm
        for k, (v, role) in first.items():
            expect = (version, "candidate") if choose_candidate(k, 30) else ("1", "champion")
            assert (v, role) == expect, k
        assert 0 < Counter(v for v, _ in first.values())[version] < len(keys)
        with get_engine(own_home.warehouse_url).begin() as conn:
            conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == version).values(rollout_stage=100))
        assert {_version(c, k) for k in keys} == {(version, "candidate")}


def test_the_rollout_alias_names_the_candidate_and_its_stage_sets_the_share(own_home):
    """The version carrying 'candidate' is the candidate even when a newer version is staged; a
    candidate alias without a stage takes no traffic."""
    v2, v3 = _second_version(own_home), _second_version(own_home)
    t = tables.model_registry
    with get_engine(own_home.warehouse_url).begin() as conn:
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == v2).values(rollout_stage=30))
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == v3).values(rollout_stage=10))
    client = _mlflow(own_home).client()
    keys = [f"client-{i}" for i in range(60)]
    with client_for(own_home) as c:
        # No alias: the newest staged version (v3) at its 10 %.
        assert {k: _version(c, k) for k in keys} == {
            k: (v3, "candidate") if choose_candidate(k, 10) else ("1", "champion") for k in keys}
        client.set_registered_model_alias(NAME, "candidate", v2)
        assert {k: _version(c, k) for k in keys} == {
            k: (v2, "candidate") if choose_candidate(k, 30) else ("1", "champion") for k in keys}
        assert c.app.state.services.router.state()[NAME]["candidate"] == v2
        with get_engine(own_home.warehouse_url).begin() as conn:
            conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == v2).values(rollout_stage=None))
        assert {_version(c, k) for k in keys} == {("1", "champion")}


def test_no_registered_model_is_model_artifact_missing(tmp_path, own_home):
    empty = Settings(home=tmp_path / "empty", database_url=own_home.warehouse_url)
    with client_for(empty) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"})
    assert r.status_code == 503
    assert r.json()["code"] == "model_artifact_missing" and "champion" in r.json()["detail"]


def test_an_unloadable_champion_is_model_artifact_missing_not_a_500(own_home, tmp_path):
    client = _mlflow(own_home).client()
    bad = client.create_model_version(NAME, source=str(tmp_path / "no-such-model"), run_id=None)
    client.set_registered_model_alias(NAME, "champion", bad.version)
    with client_for(own_home) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"})
        assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"
        assert r.json()["context"]["model_version"] == str(bad.version)
        r = c.post(f"{P}/backtest/run", headers={"X-API-Key": "test-key-1"},
                   json={"model_version": str(bad.version), "start": "2024-08-01T00:00:00Z",
                         "end": "2024-08-02T00:00:00Z"})
        assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"
