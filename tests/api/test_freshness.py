"""Stale features: every answer says how old its snapshot is, and one older than
OMNIWATCH_MAX_SNAPSHOT_AGE is refused (503 stale_features). The reference time is the request's
as_of_ts, else the replay frontier (newest bar available_time), else the wall clock when live."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy import func, select

from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for

P = "/api/v2"


def _frontier(url: str):
    with get_engine(url).connect() as conn:
        return conn.execute(select(func.max(tables.market_bars.c.available_time))).scalar()  # aware UTC


def _newest_snapshot(url: str, target: str = "BTC"):
    t = tables.feature_snapshots
    with get_engine(url).connect() as conn:
        return conn.execute(select(func.max(t.c.as_of_ts)).where(t.c.target == target)).scalar()


def _iso(ts) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_fresh_snapshot_answers_with_its_age_against_the_data_clock(client, backend):
    body = client.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).json()
    snap = pd.Timestamp(body["snapshot"]["as_of_ts"])
    expected = max(0.0, (pd.Timestamp(_frontier(backend.warehouse_url)) - snap).total_seconds())
    assert abs(body["snapshot_age_seconds"] - expected) < 1e-6
    assert body["snapshot_age_seconds"] <= backend.max_snapshot_age.total_seconds()
    signals = client.post(f"{P}/signals/generate", json={"targets": ["BTC"], "horizons": ["1h"]}, headers=AUTH).json()
    assert abs(signals["signals"][0]["snapshot_age_seconds"] - expected) < 1e-6
    rebal = client.post(f"{P}/portfolio/rebalance", json={"targets": ["BTC"]}, headers=AUTH).json()
    assert abs(rebal["assets"][0]["snapshot_age_seconds"] - expected) < 1e-6
    score = client.post(f"{P}/portfolio/score", json={"weights": {"BTC": 0.1}}, headers=AUTH).json()
    assert abs(score["assets"][0]["snapshot_age_seconds"] - expected) < 1e-6


def test_a_snapshot_behind_the_bars_by_more_than_the_limit_is_stale(own_home):
    """The feature pipeline lags: bars arrived five hours past the newest snapshot."""
    url = own_home.warehouse_url
    newest = _newest_snapshot(url)
    b = tables.market_bars
    with get_engine(url).begin() as conn:
        last = dict(conn.execute(select(b).order_by(b.c.available_time.desc()).limit(1)).mappings().one())
        bar = {k: v for k, v in last.items() if k not in ("id", "ingested_at")}
        bar["event_time"] = newest + timedelta(hours=4)
        bar["available_time"] = newest + timedelta(hours=5)
        conn.execute(b.insert().values(**bar))
    with client_for(own_home, data_clock_ttl_s=0) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH)
        assert r.status_code == 503, r.text
        err = r.json()
        assert err["code"] == "stale_features"
        assert err["context"] == {"snapshot_as_of": newest.isoformat(), "age_seconds": 5 * 3600.0,
                                  "max_age_seconds": 7200.0, "target": "BTC"}
        r = c.post(f"{P}/signals/generate", json={"targets": ["BTC", "ETH"]}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "stale_features"
        r = c.post(f"{P}/portfolio/score", json={"weights": {"BTC": 0.1}}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "stale_features"
        assert r.json()["context"]["target"] == "BTC"
        r = c.post(f"{P}/portfolio/rebalance", json={}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "stale_features"


def test_an_explicit_as_of_far_after_the_newest_snapshot_is_stale(client, backend):
    newest = _newest_snapshot(backend.warehouse_url)
    r = client.post(f"{P}/predict/liquid",
                    json={"target": "BTC", "as_of_ts": _iso(newest + timedelta(days=30))}, headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "stale_features"
    ctx = r.json()["context"]
    assert ctx["snapshot_as_of"] == newest.isoformat() and ctx["age_seconds"] == 30 * 86400.0
    # Within the limit: the newest snapshot we had then answers, and says its age.
    r = client.post(f"{P}/predict/liquid",
                    json={"target": "BTC", "as_of_ts": _iso(newest + timedelta(hours=1))}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["snapshot_age_seconds"] == 3600.0
    assert pd.Timestamp(r.json()["snapshot"]["as_of_ts"]) == pd.Timestamp(newest)


def test_the_environment_sets_the_limit(trained_home, monkeypatch):
    newest = _newest_snapshot(Settings(home=trained_home).warehouse_url)
    at = {"target": "BTC", "as_of_ts": _iso(newest + timedelta(hours=1))}
    monkeypatch.setenv("OMNIWATCH_MAX_SNAPSHOT_AGE", "30m")
    with client_for(Settings(home=trained_home)) as c:
        r = c.post(f"{P}/predict/liquid", json=at, headers=AUTH)
    assert r.status_code == 503 and r.json()["context"]["max_age_seconds"] == 1800.0
    monkeypatch.setenv("OMNIWATCH_MAX_SNAPSHOT_AGE", "PT3H")
    with client_for(Settings(home=trained_home)) as c:
        assert c.post(f"{P}/predict/liquid", json=at, headers=AUTH).status_code == 200


def test_live_mode_measures_against_the_wall_clock(trained_home):
    """The bundled sample is over a year old: live, it is stale."""
    with client_for(Settings(home=trained_home, source="live")) as c:
        r = c.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "stale_features"
    assert r.json()["context"]["age_seconds"] > 86400
