"""backtest/run and backtest/{run_id}: replay through a named version, costs, metrics, failures."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH

P = "/api/v2"
# The fixture holds only the training span's data: replaying it in sample is the point here.
WINDOW = {"start": "2024-08-10T00:00:00Z", "end": "2024-08-17T00:00:00Z", "allow_in_sample": True}


def _stored(url: str, run_id: str) -> dict:
    t = tables.backtest_runs
    with get_engine(url).connect() as conn:
        return dict(conn.execute(select(t).where(t.c.run_id == run_id)).mappings().one())


def test_a_backtest_reports_costs_metrics_and_lineage_and_is_stored(client, backend):
    r = client.post(f"{P}/backtest/run", json={**WINDOW, "band_bps": 0.5, "horizon": "1h"}, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["model_name"], out["model_version"]) == ("succeeded", "omniwatch-liquid", "1")
    assert out["lineage_coverage"] == 1.0 and len(out["input_digest"]) == 24
    cost = out["cost_breakdown"]
    assert cost["net"] == pytest.approx(cost["gross"] - cost["fees"] - cost["slippage"] - cost["funding"], abs=1e-12)
    assert set(cost["by_target"]) == {"BTC", "ETH", "SOL"} and cost["hours"] == 7 * 24
    pooled = {(m["horizon"], m["strategy"]) : m for m in out["metrics"] if m["symbol"] == "pooled"}
    assert {(1, "model"), (1, "model_sized"), (1, "always_long"), (24, "zero")} <= set(pooled)
    # Sized as execution sizes (the default): the breakdown is the model_sized row.
    assert pooled[(1, "model_sized")]["net_return"] == pytest.approx(cost["net"], abs=1e-12)
    assert out["params"]["model_version"] == "champion" and out["params"]["band_bps"] == 0.5
    assert (out["params"]["sizing"], out["params"]["weight_band"]) == ("horizon", 0.05)
    # The hourly sign rule on request: its breakdown is the model row, and a 24 h forecast held as
    # tranches turns over far less than the same forecast flipped every hour.
    runs = {s: client.post(f"{P}/backtest/run", json={**WINDOW, "horizon": "24h", "sizing": s}, headers=AUTH).json()
            for s in ("sign", "horizon")}
    sign_rows = {(m["horizon"], m["strategy"]): m for m in runs["sign"]["metrics"] if m["symbol"] == "pooled"}
    assert sign_rows[(24, "model")]["net_return"] == pytest.approx(runs["sign"]["cost_breakdown"]["net"], abs=1e-12)
    assert (24, "model_sized") not in sign_rows
    assert runs["horizon"]["cost_breakdown"]["turnover"] < runs["sign"]["cost_breakdown"]["turnover"]
    assert out["in_sample"] is True
    row = _stored(backend.warehouse_url, out["run_id"])
    assert (row["status"], row["model_version"], row["error_code"]) == ("succeeded", "1", None)
    got = client.get(f"{P}/backtest/{out['run_id']}")
    assert got.status_code == 200 and got.json()["cost_breakdown"] == cost
    assert got.json()["metrics"] == out["metrics"]


def test_a_window_inside_the_training_span_is_refused_unless_allowed(client, backend):
    """The fixture's model trained on every snapshot: a window inside is in sample (typed 422,
    recorded); the same window with allow_in_sample answers in_sample: true."""
    inside = {k: v for k, v in WINDOW.items() if k != "allow_in_sample"}
    for path in ("/backtest/run", "/tasks/pnl-attribution"):
        r = client.post(P + path, json=inside, headers=AUTH)
        if path.startswith("/tasks"):  # the task fails with the same typed code
            r = _task(client, r.json()["task_id"])
            assert r["status"] == "failed" and r["error"]["code"] == "in_sample_window", r
            continue
        assert r.status_code == 422 and r.json()["code"] == "in_sample_window", r.text
        context = r.json()["context"]
        assert context["train_start"] < inside["start"] and context["train_end"] >= inside["end"][:10], context
        assert _stored(backend.warehouse_url, context["run_id"])["error_code"] == "in_sample_window"
    # A window wholly before the training span is out of sample: not refused for that (here: no data).
    r = client.post(f"{P}/backtest/run", json={"start": "2023-01-01T00:00:00Z", "end": "2023-02-01T00:00:00Z"},
                    headers=AUTH)
    assert r.json()["code"] == "insufficient_features"


def _task(client, task_id: str) -> dict:
    client.app.state.services.tasks.wait(task_id)
    return client.get(f"{P}/tasks/{task_id}").json()


def test_the_band_defaults_to_the_signal_threshold_of_the_horizon(client):
    out = client.post(f"{P}/backtest/run", json={**WINDOW, "horizon": "4h", "targets": ["BTC"]}, headers=AUTH).json()
    assert out["params"]["band_bps"] == 0.01 and out["params"]["targets"] == ["BTC"]
    assert set(out["cost_breakdown"]["by_target"]) == {"BTC"}


def test_failures_are_typed_and_recorded(client, backend):
    r = client.post(f"{P}/backtest/run", json={"start": "2023-01-01T00:00:00Z", "end": "2023-02-01T00:00:00Z"},
                    headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features"
    run_id = r.json()["context"]["run_id"]
    assert client.get(f"{P}/backtest/{run_id}").json()["status"] == "failed"
    assert _stored(backend.warehouse_url, run_id)["error_code"] == "insufficient_features"
    # The newest hour has no next-hour price yet.
    r = client.post(f"{P}/backtest/run", json={"start": "2024-09-01T00:00:00Z", "end": "2024-09-01T01:00:00Z",
                                                    "allow_in_sample": True},
                    headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_prices"
    r = client.post(f"{P}/backtest/run", json={**WINDOW, "model_version": "99"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"
    assert _stored(backend.warehouse_url, r.json()["context"]["run_id"])["error_code"] == "model_artifact_missing"
    r = client.post(f"{P}/backtest/run", json={**WINDOW, "model_version": "nosuchalias"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "model_artifact_missing"


def test_bad_windows_and_unknown_runs(client):
    r = client.post(f"{P}/backtest/run", json={"start": WINDOW["end"], "end": WINDOW["start"]}, headers=AUTH)
    assert r.status_code == 422 and "end must be after start" in r.json()["detail"]
    r = client.post(f"{P}/backtest/run", json={**WINDOW, "fee_bps": -1}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.fee_bps"
    r = client.get(f"{P}/backtest/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
