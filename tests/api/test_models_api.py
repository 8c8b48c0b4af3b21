"""The models API over HTTP against a real warehouse and a temporary MLflow SQLite store (two
registered versions): keys, the audit row's actor (the key's name, never the client's word),
one stage per manual advance, and typed errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from omniwatch.registry import record_registration
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, KEY, client_for

P = "/api/v2/models"
NAME = "omniwatch-liquid"
ALICE = {"X-API-Key": "secret-of-alice"}
MUTATIONS = [("/drift/evaluate", {}), ("/gate/evaluate", {}), ("/gate/auto-evaluate", {}),
             ("/rollout/advance", {"reason": "looks good"}), ("/rollback/check", {}),
             ("/audit/log", {"reason": "a note"})]


def _mlflow(settings: Settings) -> MLflowResource:
    return MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))


def _second_version(settings: Settings) -> str:
    mlflow = _mlflow(settings)
    v1 = mlflow.client().get_model_version(NAME, "1")
    version, _ = record_registration(mlflow, settings.warehouse_url, NAME, v1.source, run_id=v1.run_id,
                                     track="liquid", train_lineage_id="t" * 24, data_version="d" * 24, metrics={},
                                     actor="test")
    return version


def _client(settings: Settings):
    return client_for(settings, api_keys=["ops-alice:secret-of-alice", KEY])


def _audit(settings: Settings, audit_id: int) -> dict:
    t = tables.model_promotions
    with get_engine(settings.warehouse_url).connect() as conn:
        return dict(conn.execute(select(t).where(t.c.id == audit_id)).mappings().one())


def _audit_count(settings: Settings) -> int:
    t = tables.model_promotions
    with get_engine(settings.warehouse_url).connect() as conn:
        return len(conn.execute(select(t.c.id)).all())


@pytest.fixture
def two_versions(own_warehouse) -> Settings:
    """v1 champion, v2 challenger (same artifacts, as a retrain of the same data would give)."""
    assert _second_version(own_warehouse) == "2"
    return own_warehouse


def test_mutations_need_a_key_and_reads_do_not(two_versions):
    with _client(two_versions) as c:
        before = _audit_count(two_versions)
        for path, body in MUTATIONS:
            for headers in ({}, {"X-API-Key": "wrong"}):
                r = c.post(P + path, json=body, headers=headers)
                assert r.status_code == 401 and r.json()["code"] == "unauthorized", path
        assert _audit_count(two_versions) == before
        state = c.get(f"{P}/rollout/state")
    assert state.status_code == 200, state.text
    body = state.json()
    assert body["aliases"] == {"champion": "1", "challenger": "2"} and body["candidate"] is None
    assert {v["version"]: v["aliases"] for v in body["versions"]} == {"1": ["champion"], "2": ["challenger"]}
    assert body["stages"] == [10, 30, 100] and body["stage"] == 0
    assert body["recent_decisions"] and all("actor" in d for d in body["recent_decisions"])


def test_an_audit_note_is_written_as_the_keys_name_from_the_api(two_versions):
    with _client(two_versions) as c:
        r = c.post(f"{P}/audit/log", headers=ALICE,
                   json={"reason": "checked the shadow plots", "version": "2", "metrics": {"rank_ic": 0.04}})
        assert r.status_code == 200, r.text
        bare = c.post(f"{P}/audit/log", headers={"X-API-Key": KEY}, json={"reason": "bare key"}).json()
    d = r.json()
    assert (d["action"], d["outcome"], d["version"], d["model_name"]) == ("manual", "no_action", "2", NAME)
    row = _audit(two_versions, d["audit_id"])
    assert (row["actor"], row["source"], row["action"]) == ("ops-alice", "api", "manual")
    assert row["reason"] == "checked the shadow plots" and row["metrics"]["rank_ic"] == 0.04
    assert _audit(two_versions, bare["audit_id"])["actor"].startswith("key-")  # a fingerprint, not the key
    assert KEY not in _audit(two_versions, bare["audit_id"])["actor"]


@pytest.mark.parametrize("field", [{"who": "system"}, {"actor": "system"}, {"source": "scheduler"}])
def test_no_request_field_can_name_who_acted(own_home, field):
    _second_version(own_home)
    with _client(own_home) as c:
        before = _audit_count(own_home)
        for path, body in MUTATIONS:
            r = c.post(P + path, headers=ALICE, json={**body, **field})
            assert r.status_code == 422, (path, r.text)
            assert r.json()["errors"][0]["field"] == f"body.{next(iter(field))}"
    assert _audit_count(own_home) == before


def test_advance_needs_a_reason_and_moves_exactly_one_stage(two_versions):
    settings = two_versions
    _mlflow(settings).client().set_registered_model_alias(NAME, "candidate", "2")
    t = tables.model_registry
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == "2").values(rollout_stage=10))
    with _client(settings) as c:
        for body in ({}, {"reason": ""}, {"reason": "  "}):
            r = c.post(f"{P}/rollout/advance", headers=ALICE, json=body)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.reason", body
        r = c.post(f"{P}/rollout/advance", headers=ALICE, json={"reason": "shadow windows look fine"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["action"], d["outcome"], d["from_stage"], d["to_stage"], d["version"]) == (
            "manual", "advance", 10, 30, "2")
        state = c.get(f"{P}/rollout/state").json()
        assert state["candidate"] == "2" and state["stage"] == 30 and state["aliases"]["champion"] == "1"
        row = _audit(settings, d["audit_id"])
        assert (row["actor"], row["source"], row["reason"]) == ("ops-alice", "api", "shadow windows look fine")
        # Serving sees the new stage: the candidate rides along at 30 %.
        assert c.post("/api/v2/predict/liquid",
                      json={"target": "BTC"}, headers=AUTH).json()["candidate"]["rollout_stage"] == 30
        d = c.post(f"{P}/rollout/advance", headers=ALICE, json={"reason": "promote it"}).json()
        assert (d["outcome"], d["from_stage"], d["to_stage"]) == ("promote", 30, 100)
        assert c.get(f"{P}/rollout/state").json()["aliases"]["champion"] == "2"


def test_gate_drift_and_rollback_decisions_are_audited(two_versions):
    settings = two_versions
    with _client(settings) as c:
        gate = c.post(f"{P}/gate/evaluate", headers=ALICE, json={})
        drift = c.post(f"{P}/drift/evaluate", headers=ALICE, json={"model_name": NAME})
        rollback = c.post(f"{P}/rollback/check", headers=ALICE, json={})
        unknown = c.post(f"{P}/gate/evaluate", headers=ALICE, json={"version": "99"})
    for r, action in ((gate, "gate"), (drift, "drift"), (rollback, "rollback")):
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["action"] == action
        row = _audit(settings, d["audit_id"])
        assert (row["actor"], row["source"], row["action"], row["outcome"]) == (
            "ops-alice", "api", action, d["outcome"])
    assert gate.json()["version"] == "2" and gate.json()["champion_version"] == "1"
    assert rollback.json()["outcome"] == "skip"
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_auto_evaluate_skips_a_challenger_that_is_the_champion(own_home):
    with _client(own_home) as c:
        r = c.post(f"{P}/gate/auto-evaluate", headers=ALICE, json={})
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["outcome"]) == ("gate", "skip")
    assert _audit(own_home, r.json()["audit_id"])["actor"] == "ops-alice"


def test_unknown_model_is_404_and_a_registry_error_is_503_with_its_cause(own_home, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    with _client(own_home) as c:
        r = c.get(f"{P}/rollout/state", params={"model_name": "no-such-model"})
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        r = c.post(f"{P}/audit/log", headers=ALICE, json={"model_name": "no-such-model", "reason": "hello"})
        assert r.status_code == 404
        before = _audit_count(own_home)
        r = c.post(f"{P}/drift/evaluate", headers=ALICE, json={"model_name": "no-such-model"})
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
        assert _audit_count(own_home) == before  # an unknown model is not a decision

        def down(self):
            raise MlflowException("registry is restarting", error_code=TEMPORARILY_UNAVAILABLE)

        monkeypatch.setattr(MLflowResource, "client", down)
        before = _audit_count(own_home)
        for call in (lambda: c.get(f"{P}/rollout/state"),
                     lambda: c.post(f"{P}/rollout/advance", headers=ALICE, json={"reason": "go on"})):
            r = call()
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "registry_unavailable" and "registry is restarting" in r.json()["detail"]
        assert _audit_count(own_home) == before
