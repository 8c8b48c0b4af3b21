"""The app factory: no model library at start-up, every route modelled in OpenAPI, health."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import AUTH, client_for, flush

HEAVY = ("torch", "lightgbm", "mlflow", "sklearn", "great_expectations", "dagster")


def test_start_up_imports_no_model_library(tmp_path):
    code = f"""
import os, sys
from pathlib import Path
os.environ["DAGSTER_HOME"] = {str(tmp_path)!r}  # the Dagster task executor: dagster loads with a task
from omniwatch.settings import Settings
from omniwatch.serving.app import create_app
from fastapi.testclient import TestClient
app = create_app(Settings(home=Path({str(tmp_path)!r})))
TestClient(app).get("/openapi.json")
print("LOADED", [m for m in {HEAVY!r} if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout


def test_openapi_models_every_body_and_answer(trained_home, tmp_path):
    from omniwatch.settings import Settings

    with client_for(Settings(home=trained_home)) as c:
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
    ops = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    v2 = [o for o in ops if o[0].startswith("/api/v2/")]
    assert len(v2) == 45  # 29 + risk (7) + execution and metrics/pnl-attribution (7) + alerts (2)
    for path, method, op in v2:
        ok = next(code for code in op["responses"] if code.startswith("2"))
        assert "$ref" in json.dumps(op["responses"][ok]["content"]["application/json"]["schema"]), (path, method)
        if method == "post" and not path.endswith(("/refresh", "/cancel")):  # order actions take no body
            assert "$ref" in json.dumps(op["requestBody"]), (path, method)
        for code in ("422", "503", "404", "401"):
            if code in op["responses"]:
                assert op["responses"][code]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorResponse"}, (path, method, code)
    secured = {p for p, m, o in v2 if o.get("security")}
    assert secured == {"/api/v2/signals/generate", "/api/v2/backtest/run", "/api/v2/tasks/backtest",
                       "/api/v2/tasks/pnl-attribution", "/api/v2/ingest/events", "/api/v2/predict/liquid",
                       "/api/v2/predict/vc", "/api/v2/predictions/{prediction_id}/explanation",
                       "/api/v2/portfolio/score", "/api/v2/portfolio/rebalance",
                       "/api/v2/data-quality/sample", "/api/v2/data-quality/audit",  # the POST review loop
                       *(f"/api/v2/models/{m}" for m in ("drift/evaluate", "gate/evaluate", "gate/auto-evaluate",
                                                          "rollout/advance", "rollback/check", "audit/log")),
                       "/api/v2/risk/kill-switch/trigger", "/api/v2/risk/kill-switch/reset",
                       "/api/v2/risk/breakers/consecutive-loss/reset", "/api/v2/execution/run",
                       "/api/v2/execution/orders", "/api/v2/execution/orders/{order_id}/refresh",
                       "/api/v2/execution/orders/{order_id}/cancel", "/api/v2/alerts/notify"}
    assert all(o.get("deprecated") for p, m, o in ops if not p.startswith("/api/v2"))


def test_health_shows_the_routed_models(client):
    client.post("/api/v2/predict/liquid", json={"target": "BTC"}, headers=AUTH)
    flush(client)
    h = client.get("/api/v2/health").json()
    assert h["rows_written"]["predictions_v2"] >= 1 and h["rows_pending"] == 0
    assert h["status"] == "ok" and h["models"]["omniwatch-liquid"]["champion"] == "1"
    assert "1" in h["models"]["omniwatch-liquid"]["loaded"] and h["write_failures"] == 0


def test_health_is_degraded_while_stored_writes_fail(own_home):
    """The writer's batches fail while predictions_v2 is unavailable: health says degraded with
    the reason, and ok again once a batch is stored."""
    from omniwatch.warehouse.engine import get_engine

    with client_for(own_home) as c:
        with get_engine(own_home.warehouse_url).begin() as conn:
            conn.exec_driver_sql("ALTER TABLE predictions_v2 RENAME TO predictions_v2_away")
        assert c.post("/api/v2/predict/liquid", json={"target": "BTC"}, headers=AUTH).status_code == 200
        flush(c)
        h = c.get("/api/v2/health").json()
        assert h["status"] == "degraded" and h["write_failures"] == 1, h
        assert "prediction writes failing" in h["reasons"][0] and "predictions_v2" in h["reasons"][0]
        assert "INSERT" not in h["reasons"][0] and "request_key" not in h["reasons"][0]  # open route: no SQL
        with get_engine(own_home.warehouse_url).begin() as conn:
            conn.exec_driver_sql("ALTER TABLE predictions_v2_away RENAME TO predictions_v2")
        assert c.post("/api/v2/predict/liquid", json={"target": "ETH"}, headers=AUTH).status_code == 200
        flush(c)
        h = c.get("/api/v2/health").json()
        assert (h["status"], h["reasons"], h["write_failures"]) == ("ok", [], 1), h


def test_docs_and_redoc_load_their_assets_from_this_server_not_a_cdn(client):
    import re

    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert urls and not [u for u in urls if u.startswith("http")], (page, urls)  # nothing from a CDN
        for name in assets:
            url = next(u for u in urls if u.endswith(name))
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 10_000, (page, url)
