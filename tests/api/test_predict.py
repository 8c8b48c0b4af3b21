"""predict/liquid and predict/vc through HTTP, prediction storage, explanations (both backends)."""

from __future__ import annotations

import time
import uuid

import pandas as pd
from sqlalchemy import func, select

from omniwatch.features.liquid import FEATURES
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for, flush

P = "/api/v2"


def _stored(url: str, prediction_id: str) -> dict:
    t = tables.predictions_v2
    with get_engine(url).connect() as conn:
        return dict(conn.execute(select(t).where(t.c.prediction_id == prediction_id)).mappings().one())


def _newest(url: str, target: str) -> dict:
    t = tables.feature_snapshots
    with get_engine(url).connect() as conn:
        return dict(conn.execute(select(t).where(t.c.target == target).order_by(t.c.as_of_ts.desc(), t.c.id.desc())
                                 .limit(1)).mappings().one())


def test_predict_liquid_from_the_newest_snapshot_names_model_lineage_and_snapshot(client, backend):
    r = client.post(f"{P}/predict/liquid", json={"target": "ETH"}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    newest = _newest(backend.warehouse_url, "ETH")
    assert (body["model_name"], body["model_version"], body["model_role"]) == ("omniwatch-liquid", "1", "champion")
    assert body["snapshot"]["snapshot_id"] == newest["id"] and body["input_source"] == "snapshot"
    assert body["snapshot"]["lineage_id"] == newest["lineage_id"] and body["history_rows"] == 168
    assert set(body["predictions"]) == {"1h", "4h", "24h"} and len(body["infer_lineage_id"]) == 24
    assert len(body["train_lineage_id"]) == 24
    flush(client)
    row = _stored(backend.warehouse_url, body["prediction_id"])
    assert (row["model_version"], row["snapshot_id"], row["infer_lineage_id"]) == (
        "1", newest["id"], body["infer_lineage_id"])
    assert row["train_lineage_id"] == body["train_lineage_id"]
    assert row["horizon_predictions"]["pred_1h"] == body["predictions"]["1h"]
    assert row["horizon_predictions"]["tsmixer_pred_24h"] == body["components"]["tsmixer"]["24h"]


def test_every_answer_is_a_new_stored_prediction(client, backend):
    ids = [client.post(f"{P}/predict/liquid",
                       json={"target": "BTC", "request_key": "k"}, headers=AUTH).json()["prediction_id"]
           for _ in range(3)]
    flush(client)
    assert len(set(ids)) == 3
    t = tables.predictions_v2
    with get_engine(backend.warehouse_url).connect() as conn:
        keys = conn.execute(select(t.c.request_key).where(t.c.prediction_id.in_(ids))).scalars().all()
    assert keys == ["k", "k", "k"]


def test_predict_at_a_stored_time_and_from_request_features(client, backend):
    at = client.post(f"{P}/predict/liquid",
                     json={"target": "SOL", "as_of_ts": "2024-08-20T06:00:00Z"}, headers=AUTH).json()
    assert at["as_of_ts"] == "2024-08-20T06:00:00Z" and at["snapshot"]["as_of_ts"] == "2024-08-20T06:00:00Z"
    features = dict.fromkeys(FEATURES, 0.0)
    features.update({"vol_24h": 0.01, "vol_168h": 0.01, "drawdown_168h": -0.05, "hour_of_day": 6, "day_of_week": 1})
    features = {k: v for k, v in features.items() if k in FEATURES}
    r = client.post(f"{P}/predict/liquid", json={"target": "SOL", "as_of_ts": "2024-08-20T06:00:00Z",
                                                 "features": features}, headers=AUTH)
    assert r.status_code == 200, r.text
    req = r.json()
    assert req["input_source"] == "request" and req["snapshot"] is None and req["history_rows"] == 168
    assert req["infer_lineage_id"] != at["infer_lineage_id"] and req["predictions"] != at["predictions"]
    flush(client)
    row = _stored(backend.warehouse_url, req["prediction_id"])
    assert row["snapshot_id"] is None and row["horizon_predictions"]["request_features"]["ret_1h"] == 0.0


def test_explanation_per_feature_for_both_components_and_stored(client, backend):
    pid = client.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()["prediction_id"]
    r = client.get(f"{P}/predictions/{pid}/explanation", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["horizons"]) == {"1h", "4h", "24h"}
    h = body["horizons"]["1h"]
    assert set(h["lightgbm"]["contributions"]) == set(FEATURES) == set(h["tsmixer"]["contributions"])
    # pred_contrib is exact: contributions + bias = the LightGBM forecast.
    lg = h["lightgbm"]
    assert abs(sum(lg["contributions"].values()) + lg["bias"] - lg["prediction_bps"]) < 1e-6
    w = h["weight_lightgbm"]
    assert abs(w * lg["prediction_bps"] + (1 - w) * h["tsmixer"]["prediction_bps"] - h["prediction_bps"]) < 1e-6
    assert h["tsmixer"]["method"] == "gradient_x_input"
    t = tables.prediction_explanations
    with get_engine(backend.warehouse_url).connect() as conn:
        n = conn.execute(select(func.count()).where(t.c.prediction_id == pid)).scalar()
    assert n == 3 * 2 * (len(FEATURES) + 1)
    assert client.get(f"{P}/predictions/{pid}/explanation",
                      headers=AUTH).status_code == 200  # recomputed, not duplicated


def test_unknown_and_malformed_prediction_ids(client):
    r = client.get(f"{P}/predictions/00000000-0000-4000-8000-000000000000/explanation", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.get(f"{P}/predictions/not-a-uuid/explanation", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "not_found"  # unknown whatever its format


def test_no_snapshot_is_insufficient_features(client):
    r = client.post(f"{P}/predict/liquid", json={"target": "XRP"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features"
    r = client.post(f"{P}/predict/liquid", json={"target": "BTC", "as_of_ts": "2023-01-01T00:00:00Z"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features"


def test_malformed_bodies_name_the_field_and_the_reason(client):
    cases = [({"target": "btc"}, "body.target"), ({"target": "BTC", "extra": 1}, "body.extra"),
             ({"target": "BTC", "as_of_ts": "2024-08-20T06:30:00Z"}, "body"),
             ({"target": "BTC", "as_of_ts": "2024-08-20T06:00:00"}, "body.as_of_ts"),
             ({"target": "BTC", "features": {"ret_1h": 0.1}, "as_of_ts": "2024-08-20T06:00:00Z"}, "body.features"),
             ({}, "body.target")]
    for body, field in cases:
        r = client.post(f"{P}/predict/liquid", json=body, headers=AUTH)
        assert r.status_code == 422, body
        err = r.json()
        assert err["code"] == "validation_error" and any(e["field"].startswith(field) for e in err["errors"]), err
        assert all(e["reason"] for e in err["errors"])
    r = client.post(f"{P}/predict/liquid", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_prediction_ids_are_random_uuid4(client):
    ids = [client.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()["prediction_id"]
           for _ in range(3)]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 4 for i in ids)


def test_feature_values_near_the_float_limit_are_bad_input(client, backend):
    features = dict.fromkeys(FEATURES, 0.0) | {"vol_24h": 0.01, "vol_168h": 0.01, "drawdown_168h": -0.05}
    for value in (1e308, -1e308, 1e7):
        body = {"target": "SOL", "as_of_ts": "2024-08-20T06:00:00Z", "features": features | {"ret_1h": value}}
        r = client.post(f"{P}/predict/liquid", json=body, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "validation_error"
        assert r.json()["errors"][0]["field"] == "body.features.ret_1h" and r.json()["errors"][0]["reason"]


def test_predict_vc_without_a_registered_model_is_model_artifact_missing(client):
    r = client.post(f"{P}/predict/vc", json={"entity_id": "0001234567"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"


def test_a_new_snapshot_invalidates_the_cached_window(own_home):
    """The newest window and its score are cached; a new snapshot hour replaces both."""
    with client_for(own_home) as c:
        first = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()
        newest = _newest(own_home.warehouse_url, "BTC")
        t = tables.feature_snapshots
        added = {k: v for k, v in newest.items() if k not in ("id", "created_at")}
        added["as_of_ts"] = pd.Timestamp(newest["as_of_ts"]) + pd.Timedelta(hours=1)
        added["event_time"] = added["as_of_ts"] - pd.Timedelta(hours=1)
        with get_engine(own_home.warehouse_url).begin() as conn:
            new_id = conn.execute(t.insert().values(**added)).inserted_primary_key[0]
        second = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()
    assert first["snapshot"]["snapshot_id"] == newest["id"]
    assert second["snapshot"]["snapshot_id"] == new_id != newest["id"]


def test_warm_caches_answer_without_reading_the_warehouse_and_pick_up_a_new_hour(own_home):
    """With check intervals, repeated requests read no snapshot rows; a new hour is found by the
    background re-check, scored there, and then served."""
    with client_for(own_home, alias_check_interval_s=30, snapshot_check_interval_s=0.3) as c:
        first = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()
        store = c.app.state.services.snapshots
        reads = store.reads
        for _ in range(20):
            assert c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()["infer_lineage_id"] == \
                first["infer_lineage_id"]
        assert store.reads == reads
        newest = _newest(own_home.warehouse_url, "BTC")
        added = {k: v for k, v in newest.items() if k not in ("id", "created_at")}
        added["as_of_ts"] = pd.Timestamp(newest["as_of_ts"]) + pd.Timedelta(hours=1)
        added["event_time"] = added["as_of_ts"] - pd.Timedelta(hours=1)
        with get_engine(own_home.warehouse_url).begin() as conn:
            new_id = conn.execute(tables.feature_snapshots.insert().values(**added)).inserted_primary_key[0]
        seen, deadline = first["snapshot"]["snapshot_id"], time.time() + 20
        while seen != new_id and time.time() < deadline:
            time.sleep(0.1)
            seen = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()["snapshot"]["snapshot_id"]
    assert seen == new_id


class _SumModel:  # a pyfunc whose signature names two inputs
    def predict(self, context, model_input, params=None):
        return (model_input["a"] + model_input["b"]).to_numpy()


def test_vc_features_the_model_does_not_know_or_cannot_score_are_bad_input(own_home, tmp_path):
    """predict/vc with a registered model: an unknown feature name, or values whose forecast is
    not finite, are 422 naming the field, never model_artifact_missing."""
    from mlflow.models import infer_signature

    import mlflow
    from omniwatch.resources.mlflow import MLflowResource

    registry = MLflowResource(tracking_uri=own_home.mlflow_uri, artifact_root=str(tmp_path / "artifacts"),
                              experiment_name="omniwatch-vc")
    sample = pd.DataFrame({"a": [0.1, 0.2], "b": [0.3, 0.4]})
    model = type("SumModel", (mlflow.pyfunc.PythonModel,), {"predict": _SumModel.predict})()
    with registry.run_context("vc_model"):
        info = mlflow.pyfunc.log_model(name="model", python_model=model,
                                       signature=infer_signature(sample, sample["a"].to_numpy()))
    version = registry.register(info.model_uri, "omniwatch-vc")
    registry.client().set_registered_model_alias("omniwatch-vc", "champion", version)
    with client_for(own_home) as c:
        ok = c.post(f"{P}/predict/vc", json={"entity_id": "cik:1", "as_of_ts": "2024-08-20T00:00:00Z",
                                             "features": {"a": 0.25, "b": 0.5}}, headers=AUTH)
        assert ok.status_code == 200, ok.text
        assert ok.json()["predictions"] == {"p_new_form_d_180d": 0.75}
        r = c.post(f"{P}/predict/vc", json={"entity_id": "cik:1", "features": {"a": 0.1, "bogus": 1.0}}, headers=AUTH)
        assert r.status_code == 422, r.text
        assert {"field": "body.features.bogus", "type": "unknown_feature"}.items() <= r.json()["errors"][0].items()
        r = c.post(f"{P}/predict/vc", json={"entity_id": "cik:1", "features": {"a": 1e308, "b": 1e308}},
                   headers=AUTH)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.features", r.text
