"""signals/generate, portfolio/score and portfolio/rebalance through HTTP (both backends)."""

from __future__ import annotations

from sqlalchemy import func, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, flush

P = "/api/v2"


def test_signals_are_generated_from_predictions_and_stored_idempotently(client, backend):
    body = {"targets": ["BTC", "ETH"], "strategy_id": f"test_{backend.warehouse_url[:6]}"}
    r = client.post(f"{P}/signals/generate", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["signals"]) == 6 and out["skipped"] == []
    assert all(s["direction"] in (-1, 1) for s in out["signals"])  # thresholds of 0.01 bps in tests
    for s in out["signals"]:
        assert s["direction"] == (1 if s["prediction_bps"] > 0 else -1) and 0 < s["strength"] <= 1
    flush(client)
    t = tables.signal_candidates
    with get_engine(backend.warehouse_url).connect() as conn:
        rows = conn.execute(select(t).where(t.c.strategy_id == body["strategy_id"])).mappings().all()
    assert {r["signal_id"] for r in rows} == {s["signal_id"] for s in out["signals"]}
    assert {r["prediction_id"] for r in rows} == {s["prediction_id"] for s in out["signals"]}
    again = client.post(f"{P}/signals/generate", json=body, headers=AUTH).json()
    flush(client)
    with get_engine(backend.warehouse_url).connect() as conn:
        n = conn.execute(select(func.count()).where(t.c.strategy_id == body["strategy_id"])).scalar()
        cited = conn.execute(select(t.c.prediction_id).where(t.c.strategy_id == body["strategy_id"])).scalars().all()
    assert n == 6 and {s["signal_id"] for s in again["signals"]} == {s["signal_id"] for s in out["signals"]}
    assert set(cited) == {s["prediction_id"] for s in again["signals"]}  # the newest prediction is cited


def test_targets_without_snapshots_are_skipped_and_none_at_all_is_insufficient(client):
    r = client.post(f"{P}/signals/generate", json={"targets": ["BTC", "XRP"], "horizons": ["1h"]}, headers=AUTH)
    assert r.status_code == 200
    assert [s["target"] for s in r.json()["signals"]] == ["BTC"]
    assert r.json()["skipped"][0]["target"] == "XRP" and r.json()["skipped"][0]["code"] == "insufficient_features"
    r = client.post(f"{P}/signals/generate", json={"targets": ["XRP"]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features"


def test_portfolio_score_uses_the_newest_forecasts(client):
    r = client.post(f"{P}/portfolio/score", json={"weights": {"BTC": 0.3, "ETH": -0.2}, "horizon": "4h"}, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assets = {a["target"]: a for a in out["assets"]}
    assert abs(out["expected_return_bps"] - sum(a["weight"] * a["prediction_bps"] for a in assets.values())) < 1e-9
    assert abs(out["gross_exposure"] - 0.5) < 1e-12 and abs(out["net_exposure"] - 0.1) < 1e-12
    assert all(a["vol_annual"] > 0 for a in assets.values())
    r = client.post(f"{P}/portfolio/score", json={"weights": {"BTC": 2.0}}, headers=AUTH)
    assert "max_weight_per_asset:BTC" in r.json()["limit_breaches"]
    r = client.post(f"{P}/portfolio/score", json={"weights": {"XRP": 0.1}}, headers=AUTH)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_features"
    r = client.post(f"{P}/portfolio/score", json={"weights": {"BTC": 11}}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.weights.BTC"


def test_rebalance_gives_weights_inside_the_limits(client):
    r = client.post(f"{P}/portfolio/rebalance", json={"horizon": "24h", "current_weights": {"BTC": 0.05}},
                    headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    limits = out["limits"]
    assert set(out["target_weights"]) == {"BTC", "ETH", "SOL"}
    assert all(abs(w) <= limits["max_weight_per_asset"] + 1e-12 for w in out["target_weights"].values())
    assert out["gross_exposure"] <= limits["max_gross_leverage"] + 1e-12
    assert abs(out["net_exposure"]) <= limits["max_net_exposure"] + 1e-12
    assert out["vol_annual_upper"] <= limits["target_annual_vol"] + 1e-12
    for a in out["assets"]:
        assert a["direction"] == (1 if a["prediction_bps"] > 0 else -1)
        assert abs(a["trade"] - (a["weight"] - (0.05 if a["target"] == "BTC" else 0.0))) < 1e-12


def test_portfolio_routes_store_predictions_so_they_need_a_key(client):
    for path, body in (("/portfolio/score", {"weights": {"BTC": 0.1}}), ("/portfolio/rebalance", {})):
        assert client.post(P + path, json=body).status_code == 401
        assert client.post(P + path, json=body, headers={"X-API-Key": "wrong"}).status_code == 401
