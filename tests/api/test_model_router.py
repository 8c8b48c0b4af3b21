"""The model router: alias moves reload without a restart; during a rollout the champion answers
and the candidate's forecast is blended in by its stage (no request-hash split); a registry
error is never 'no champion'; model_artifact_missing (503) for a missing or unloadable model."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from omniwatch.registry import record_registration
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for, flush

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
    body = c.post(f"{P}/predict/liquid", json={"target": "BTC", "request_key": key}, headers=AUTH).json()
    return body["model_version"], body["model_role"]


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


def _rollout(settings: Settings, version: str, stage: int | None) -> None:
    """``version`` in rollout: alias candidate and ``model_registry.rollout_stage``."""
    _mlflow(settings).client().set_registered_model_alias(NAME, "candidate", version)
    t = tables.model_registry
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == version).values(rollout_stage=stage))


def _shift_candidate(monkeypatch, c, bps: float = 100.0) -> None:
    """v2 holds v1's artifacts; shift the candidate's forecasts so a blend is visible."""
    from omniwatch.serving.predict import service as predicting

    candidate = c.app.state.services.router.arms(NAME).candidate.model
    real = predicting.score_last
    monkeypatch.setattr(predicting, "score_last", lambda model, frame: (
        {k: v + bps for k, v in real(model, frame).items()} if model is candidate else real(model, frame)))


def test_during_a_rollout_predict_answers_the_champion_with_the_candidate_beside_it(own_warehouse, monkeypatch):
    settings = own_warehouse
    version = _second_version(settings)
    _rollout(settings, version, 30)
    with client_for(settings) as c:
        _shift_candidate(monkeypatch, c)
        body = c.post(f"{P}/predict/liquid", json={"target": "BTC", "request_key": "anyone"}, headers=AUTH).json()
        flush(c)
    assert (body["model_version"], body["model_role"]) == ("1", "champion")
    cand = body["candidate"]
    assert (cand["model_version"], cand["rollout_stage"]) == (version, 30)
    for h, bps in body["predictions"].items():
        assert abs(cand["horizon_predictions"][h] - (bps + 100.0)) < 1e-9
    t = tables.predictions_v2
    with get_engine(settings.warehouse_url).connect() as conn:
        rows = {r.prediction_id: r for r in conn.execute(select(t).where(
            t.c.prediction_id.in_([body["prediction_id"], cand["prediction_id"]])))}
    assert rows[body["prediction_id"]].model_version == "1"
    assert rows[cand["prediction_id"]].model_version == version
    assert rows[cand["prediction_id"]].horizon_predictions["pred_24h"] == cand["horizon_predictions"]["24h"]


def test_the_stage_is_the_candidates_share_of_every_symbol(own_home, monkeypatch):
    """Stage 30 on three symbols: every signal is 0.7 champion + 0.3 candidate, not one symbol
    (or 30 % of requests) handed to the candidate whole."""
    version = _second_version(own_home)
    _rollout(own_home, version, 30)
    with client_for(own_home) as c:
        _shift_candidate(monkeypatch, c)
        out = c.post(f"{P}/signals/generate", json={"horizons": ["24h"]}, headers=AUTH).json()
        rebal = c.post(f"{P}/portfolio/rebalance", json={"horizon": "24h"}, headers=AUTH).json()
    assert {s["target"] for s in out["signals"]} == {"BTC", "ETH", "SOL"}
    for s in out["signals"]:
        r = s["rollout"]
        assert (r["candidate_version"], r["rollout_stage"]) == (version, 30)
        assert abs(r["candidate"] - r["champion"] - 100.0) < 1e-9
        assert abs(s["prediction_bps"] - (0.7 * r["champion"] + 0.3 * r["candidate"])) < 1e-9
        assert s["model_version"] == "1"
    for a in rebal["assets"]:
        r = a["rollout"]
        assert r["rollout_stage"] == 30 and abs(a["weight"] - (0.7 * r["champion"] + 0.3 * r["candidate"])) < 1e-12
    assert rebal["gross_exposure"] <= rebal["limits"]["max_gross_leverage"] + 1e-12


def test_no_rollout_without_the_candidate_alias_or_outside_0_to_100(own_home):
    v2, v3 = _second_version(own_home), _second_version(own_home)
    t = tables.model_registry
    with get_engine(own_home.warehouse_url).begin() as conn:  # staged, but without the alias
        conn.execute(update(t).where(t.c.model_name == NAME, t.c.version == v3).values(rollout_stage=30))
    with client_for(own_home) as c:
        body = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()
        assert body["model_version"] == "1" and body["candidate"] is None
        for stage in (None, 0, 100):
            _rollout(own_home, v2, stage)
            assert c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()["candidate"] is None
        _rollout(own_home, v2, 10)
        assert c.post(f"{P}/predict/liquid",
                      json={"target": "BTC"}, headers=AUTH).json()["candidate"]["model_version"] == v2
        assert c.app.state.services.router.state()[NAME]["candidate"] == v2


def test_a_transient_registry_error_is_not_no_champion(own_home, monkeypatch):
    """Only RESOURCE_DOES_NOT_EXIST means 'no model'; a registry outage answers 503 with its
    cause, never the 'no champion' answer (nor a model picked without the registry)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from omniwatch.ml import versions

    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise MlflowException("registry is restarting", error_code=TEMPORARILY_UNAVAILABLE)
            return fail

    monkeypatch.setattr(versions, "client", lambda tracking_uri: Down())
    with client_for(own_home) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["code"] == "model_artifact_missing" and "registry is restarting" in body["detail"]
    assert "carries the alias" not in body["detail"]


def test_no_registered_model_is_model_artifact_missing(tmp_path, own_home):
    empty = Settings(home=tmp_path / "empty", database_url=own_home.warehouse_url)
    with client_for(empty) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH)
    assert r.status_code == 503
    assert r.json()["code"] == "model_artifact_missing" and "champion" in r.json()["detail"]


def test_an_unloadable_champion_is_model_artifact_missing_not_a_500(own_home, tmp_path):
    client = _mlflow(own_home).client()
    bad = client.create_model_version(NAME, source=str(tmp_path / "no-such-model"), run_id=None)
    client.set_registered_model_alias(NAME, "champion", bad.version)
    with client_for(own_home) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"
        assert r.json()["context"]["model_version"] == str(bad.version)
        r = c.post(f"{P}/backtest/run", headers={"X-API-Key": "test-key-1"},
                   json={"model_version": str(bad.version), "start": "2024-08-01T00:00:00Z",
                         "end": "2024-08-02T00:00:00Z"})
        assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"
