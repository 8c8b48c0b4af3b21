"""The skill flag end to end over real HTTP: a version without demonstrated skill is served (its
predictions and signals say so), trades on paper, and risk refuses its live orders with
``model_not_validated``, recorded in ``risk_events``; a version with skill passes the same check."""

from __future__ import annotations

import socket

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update

from omniwatch.modelops.skill import SkillRecord, SkillStatus, assess_horizon
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import KEY, client_for

P = "/api/v2"
TRADER = {"X-API-Key": "sekrit-trader"}


def set_skill(settings, version: str, demonstrated: bool | set[str]) -> None:
    """Give ``version`` a verdict as registration records it (warehouse row and MLflow version
    tags): skill at every horizon, none, or at the horizons named."""
    import pandas as pd

    from omniwatch.modelops.skill import skill_tags
    from omniwatch.resources.mlflow import MLflowResource

    horizons = ("1h", "4h", "24h")
    skilful = set(horizons) if demonstrated is True else set() if demonstrated is False else demonstrated

    def rows(sharpe: float) -> pd.DataFrame:
        return pd.DataFrame({"strategy": ["model", "model_sized", "always_long", "always_short"],
                             "sharpe": [0.1, sharpe, 0.6, -0.6], "hit_rate": [0.5, 0.52, 0.51, 0.49],
                             "rank_ic_null_z": [3.0, None, None, None], "rank_ic_mean": [0.05, None, None, None],
                             "turnover_annual": [3700.0, 120.0, 0.0, 0.0]}).set_index("strategy")

    by = {h: assess_horizon(rows(1.2 if h in skilful else -1.9), h, 2.0) for h in horizons}
    record = SkillRecord(traded_horizon="24h", status=by["24h"].status, reason=by["24h"].reason, by_horizon=by)
    assert {h for h, v in by.items() if v.status == SkillStatus.DEMONSTRATED} == skilful
    r = tables.model_registry
    stored = {"skill": record.model_dump(mode="json")}
    with get_engine(settings.warehouse_url).begin() as conn:
        metrics = conn.execute(select(r.c.metrics).where(r.c.version == version)).scalar_one()
        conn.execute(update(r).where(r.c.version == version).values(metrics={**(metrics or {}), **stored}))
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    mlflow.set_version_tags("omniwatch-liquid", version, skill_tags(stored))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_env(monkeypatch):
    """Live trading switched on and keyed, the venue an address nobody listens on: an order that
    got past risk would be a 503 venue_unavailable, never a 423."""
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    monkeypatch.setenv("OMNIWATCH_LIVE_TRADING", "1")
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_KEY_NAME", "organizations/test/apiKeys/test")
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_PRIVATE_KEY", key)
    monkeypatch.setenv("OMNIWATCH_COINBASE_ADVANCED_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OMNIWATCH_COINBASE_MAX_RETRIES", "0")


def _count(url: str, *where) -> int:
    t = tables.risk_events
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())


def test_risk_check_refuses_live_orders_from_an_unvalidated_version_only(own_home):
    url = own_home.warehouse_url
    set_skill(own_home, "1", demonstrated=False)
    order = {"symbol": "BTC", "side": "buy", "qty": 0.01, "price": 60_000.0}
    with client_for(own_home) as c:
        live = c.post(f"{P}/risk/check", json={**order, "adapter": "coinbase_live", "model_version": "1"}).json()
        assert live["allowed"] is False and [v["code"] for v in live["violations"]] == ["model_not_validated"]
        v = live["violations"][0]
        assert v["detail"]["model_version"] == "1" and v["detail"]["horizon"] == "24h"
        assert "not above the better constant sign" in v["detail"]["skill_reason"]
        assert live["state"] == "ACTIVE"
        # Paper orders from it, and live orders no model placed, are not judged by skill.
        assert c.post(f"{P}/risk/check", json={**order, "model_version": "1"}).json()["allowed"] is True
        assert c.post(f"{P}/risk/check", json={**order, "adapter": "coinbase_live"}).json()["allowed"] is True
        # The verdict is per horizon: skill at 1 h only lets a 1 h live order pass, not a 24 h one.
        set_skill(own_home, "1", demonstrated={"1h"})
        live = {**order, "adapter": "coinbase_live", "model_version": "1"}
        ok = c.post(f"{P}/risk/check", json={**live, "horizon": "1h"}).json()
        assert ok["allowed"] is True and ok["violations"] == []
        refused = c.post(f"{P}/risk/check", json={**live, "horizon": "24h"}).json()
        assert [v["code"] for v in refused["violations"]] == ["model_not_validated"]
        unknown = c.post(f"{P}/risk/check", json={**order, "adapter": "coinbase_live", "model_version": "99"})
        assert unknown.status_code == 404 and "99" in unknown.json()["detail"]
    assert _count(url) == 0  # a what-if writes nothing


def test_execution_refuses_live_orders_of_an_unvalidated_champion_and_paper_still_trades(own_home, live_env):
    url = own_home.warehouse_url
    set_skill(own_home, "1", demonstrated={"1h"})  # skill at 1 h only: none at the traded 24 h
    knobs = dict(sizing_weight_band=0.0, api_keys=[KEY, f"trader:{TRADER['X-API-Key']}"],
                 api_key_scopes="trader=live")
    with client_for(own_home, **knobs) as c:
        # Served for monitoring, flagged in every answer.
        pred = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=TRADER).json()
        assert pred["model_version"] == "1" and pred["skill"]["status"] == "no_demonstrated_skill"
        assert pred["skill"]["by_horizon"] == {"1h": "demonstrated", "4h": "no_demonstrated_skill",
                                               "24h": "no_demonstrated_skill"}
        state = c.get(f"{P}/models/rollout/state").json()
        v1 = next(v for v in state["versions"] if v["version"] == "1")
        assert v1["skill"] == "no_demonstrated_skill" and "constant sign" in v1["skill_reason"]

        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "adapter": "coinbase_live",
                                               "strategy_id": "live_probe"}, headers=TRADER)
        assert r.status_code == 423, r.text
        body = r.json()
        assert body["code"] == "model_not_validated" and body["context"]["codes"] == ["model_not_validated"]
        denied = [d for d in body["context"]["decisions"] if d["action"] == "denied"]
        assert denied and all(d["order"]["status"] == "denied" and d["order"]["adapter"] == "coinbase_live"
                              for d in denied)
        assert _count(url, tables.risk_events.c.code == "model_not_validated") == len(denied)

        paper = c.post(f"{P}/execution/run", json={"horizon": "24h", "adapter": "paper",
                                                   "strategy_id": "paper_probe"}, headers=TRADER)
        assert paper.status_code == 200, paper.text
        assert any(d["action"] == "trade" and d["order"]["status"] in ("filled", "partially_filled")
                   for d in paper.json()["decisions"])
        signals = c.post(f"{P}/signals/generate", json={}, headers=TRADER).json()["signals"]
        by_horizon = {(s["horizon"], s["model_skill"]) for s in signals}
        assert by_horizon == {("1h", "demonstrated"), ("4h", "no_demonstrated_skill"),
                              ("24h", "no_demonstrated_skill")}
