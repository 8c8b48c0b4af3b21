"""Only MLflow's RESOURCE_DOES_NOT_EXIST means "not registered": a transient registry error fails
the caller (a sensor tick, a registration), it never reads as "no champion". Real HTTP: MLflow's
REST client against a loopback server answering with MLflow's own error payloads."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from mlflow.exceptions import MlflowException

from omniwatch.resources.mlflow import MLflowResource
from omniwatch.resources.modelops import ModelOpsResource


class _Registry(BaseHTTPRequestHandler):
    answer: tuple[int, dict] = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try again"})
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        status, body = type(self).answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Registry.seen = []
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield uri, MLflowResource(tracking_uri=uri, artifact_root=str(tmp_path / "artifacts"))
    finally:
        server.shutdown()


def test_an_unregistered_model_has_no_aliases(registry):
    _, mlflow = registry
    _Registry.answer = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model not found"})
    assert mlflow.aliases("omniwatch-liquid") == {}
    assert mlflow.alias_version("omniwatch-liquid", "champion") is None
    assert any("registered-models/get" in p for p in _Registry.seen)


def test_a_transient_registry_error_is_raised_not_read_as_no_champion(registry):
    _, mlflow = registry
    _Registry.answer = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try again"})
    with pytest.raises(MlflowException) as raised:
        mlflow.alias_version("omniwatch-liquid", "champion")
    assert raised.value.error_code != "RESOURCE_DOES_NOT_EXIST"  # MLflow reports it as INTERNAL_ERROR


def test_registration_fails_instead_of_making_an_untested_version_champion(registry, sqlite_url):
    from omniwatch.registry import record_registration

    _, mlflow = registry
    _Registry.answer = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try again"})
    with pytest.raises(MlflowException):
        record_registration(mlflow, sqlite_url, "omniwatch-liquid", "runs:/x/model", run_id="x", track="liquid",
                            train_lineage_id="l", data_version="d", metrics={}, actor="test")


def test_the_gate_sensor_tick_fails_on_a_transient_registry_error(registry, sqlite_url):
    from omniwatch.sensors.modelops import build_modelops_sensors
    from omniwatch.settings import Settings
    from omniwatch.warehouse.migrate import upgrade

    uri, _ = registry
    upgrade(sqlite_url)
    settings = Settings(database_url=sqlite_url, mlflow_tracking_uri=uri)
    gate = next(s for s in build_modelops_sensors(dg.DefaultSensorStatus.STOPPED) if s.name == "gate_sensor")
    _Registry.answer = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try again"})
    context = dg.build_sensor_context(resources={"modelops": ModelOpsResource.from_settings(settings)})
    with pytest.raises(MlflowException):
        gate(context)
    _Registry.answer = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})
    context = dg.build_sensor_context(resources={"modelops": ModelOpsResource.from_settings(settings)})
    assert "no new challenger" in gate(context).skip_message
    # Before the first registration the other sensors skip too (a fresh deployment's first ticks).
    for sensor in build_modelops_sensors(dg.DefaultSensorStatus.STOPPED):
        if sensor.name in ("rollout_sensor", "rollback_sensor"):
            context = dg.build_sensor_context(resources={"modelops": ModelOpsResource.from_settings(settings)})
            assert "not registered yet" in sensor(context).skip_message


def test_version_with_fingerprint_finds_the_trained_version_among_others(tmp_path):
    """A retraining is skipped when any registered version carries its fingerprint (a drill copy
    or a later training in between does not hide it)."""
    from mlflow.pyfunc import PythonModel

    import mlflow as mlflow_lib
    from omniwatch.registry import FINGERPRINT_TAG, version_with_fingerprint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MLflowResource(tracking_uri=uri, artifact_root=str(tmp_path / "artifacts"))
    assert version_with_fingerprint(mlflow, "omniwatch-vc", "abc") is None  # nothing registered yet

    class Constant(PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    for fingerprint in ("abc", None, "def"):
        with mlflow.run_context("m", experiment="e"):
            info = mlflow_lib.pyfunc.log_model(name="model", python_model=Constant())
        version = mlflow.register(info.model_uri, "omniwatch-vc")
        if fingerprint:
            mlflow.set_version_tags("omniwatch-vc", version, {FINGERPRINT_TAG: fingerprint})
    assert version_with_fingerprint(mlflow, "omniwatch-vc", "abc") == "1"
    assert version_with_fingerprint(mlflow, "omniwatch-vc", "def") == "3"
    assert version_with_fingerprint(mlflow, "omniwatch-vc", "xyz") is None
