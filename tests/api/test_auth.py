"""API keys: mutations always need one (constant-time comparison); reads only when closed; scopes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Security
from fastapi.testclient import TestClient

from omniwatch.serving.auth import key_matches, named_key, require_api_key, require_scope
from omniwatch.serving.errors import install_handlers
from omniwatch.settings import Settings

from .conftest import AUTH, KEY, client_for

P = "/api/v2"
MUTATIONS = [("/signals/generate", {}), ("/ingest/events", {"events": []}),
             ("/backtest/run", {"start": "2024-08-01T00:00:00Z", "end": "2024-08-02T00:00:00Z"}),
             ("/tasks/backtest", {"start": "2024-08-01T00:00:00Z", "end": "2024-08-02T00:00:00Z"}),
             ("/tasks/pnl-attribution", {"start": "2024-08-01T00:00:00Z", "end": "2024-08-02T00:00:00Z"})]


def test_key_matching_checks_every_key():
    assert key_matches("b", ["a", "b"]) and not key_matches("c", ["a", "b"]) and not key_matches("a", [])


def test_mutations_need_a_valid_key(client):
    for path, body in MUTATIONS:
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}):
            r = client.post(P + path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json()["code"] == "unauthorized" and r.headers["WWW-Authenticate"] == "ApiKey"
    assert client.post(f"{P}/signals/generate", json={"horizons": ["1h"]}, headers=AUTH).status_code == 200


def test_reads_are_open_by_default(client):
    assert client.get(f"{P}/data-quality/stats").status_code == 200


def test_routes_that_store_rows_need_a_key_even_with_open_reads(client):
    """predict/* stores a prediction and an explanation stores its rows: keyed like mutations."""
    calls = [("post", "/predict/liquid", {"target": "BTC"}), ("post", "/predict/vc", {"entity_id": "cik:1"}),
             ("get", "/predictions/00000000-0000-4000-8000-000000000000/explanation", None)]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        for headers in ({}, {"X-API-Key": "wrong"}):
            r = getattr(client, method)(P + path, headers=headers, **kwargs)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized", (path, headers)
    assert client.post(f"{P}/predict/liquid", json={"target": "BTC"}, headers=AUTH).status_code == 200


def test_closed_reads_need_a_key_too(trained_home):
    with client_for(Settings(home=trained_home), api_open_reads=False) as c:
        assert c.get(f"{P}/data-quality/stats").status_code == 401
        assert c.post(f"{P}/predict/liquid", json={"target": "BTC"}).status_code == 401
        assert c.get(f"{P}/entities/cik:1").status_code == 401
        assert c.get(f"{P}/data-quality/stats", headers=AUTH).status_code == 200
        assert c.get(f"{P}/health").status_code == 200  # liveness stays open


def test_with_no_key_configured_every_mutation_is_refused(trained_home):
    with client_for(Settings(home=trained_home), api_keys=[]) as c:
        r = c.post(f"{P}/signals/generate", json={}, headers=AUTH)
    assert r.status_code == 401 and "no API key is configured" in r.json()["detail"]


def test_keys_come_from_the_environment(monkeypatch):
    from omniwatch.serving.settings import ServingSettings

    monkeypatch.setenv("OMNIWATCH_API_KEYS", " k1, k2 ,")
    monkeypatch.setenv("OMNIWATCH_API_OPEN_READS", "false")
    monkeypatch.setenv("OMNIWATCH_API_PORT", "8123")
    s = ServingSettings()
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    assert not s.api_open_reads and s.api_port == 8123 and "k1" not in repr(s)


def test_no_api_key_may_be_named_system_the_scheduler_s_actor():
    from omniwatch.serving.auth import named_key

    assert named_key("ops:s3cret") == ("ops", "s3cret")
    with pytest.raises(ValueError, match="reserved"):
        named_key("system:s3cret")
    with pytest.raises(ValueError, match="reserved"):
        named_key("SYSTEM:s3cret")


# -- scopes: require_scope("live") on a bare app whose services hold only the keys and settings --
def scoped_client(keys: list[str], scopes: str) -> TestClient:
    """An app with one route behind ``require_scope("live")`` and the real error handlers."""
    from omniwatch.serving.settings import ServingSettings

    serving = ServingSettings(api_keys=keys, api_key_scopes=scopes)
    app = FastAPI()
    install_handlers(app)
    app.state.services = SimpleNamespace(serving=serving,
                                         named_keys=[named_key(k.get_secret_value()) for k in serving.api_keys])

    @app.post("/live")
    async def live(actor: str = Security(require_scope("live"))) -> dict:
        return {"actor": actor}

    @app.post("/keyed")
    async def keyed(actor: str = Security(require_api_key)) -> dict:
        return {"actor": actor}

    return TestClient(app)


def test_only_keys_holding_the_scope_pass_require_scope():
    bare = "bare-secret"
    fingerprint = named_key(bare)[0]
    c = scoped_client(["trader:t-secret", "ops:o-secret", "viewer:v-secret", bare],
                      f"trader=live, ops=admin+live ,{fingerprint}=live,viewer=read")
    for secret, name in (("t-secret", "trader"), ("o-secret", "ops"), (bare, fingerprint)):
        r = c.post("/live", headers={"X-API-Key": secret})
        assert r.status_code == 200 and r.json() == {"actor": name}
    r = c.post("/live", headers={"X-API-Key": "v-secret"})
    assert r.status_code == 403 and r.json()["code"] == "missing_scope"
    assert r.json()["context"] == {"scope": "live", "key": "viewer"} and "v-secret" not in r.text
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = c.post("/live", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    # require_api_key is unchanged: any valid key, scoped or not
    assert c.post("/keyed", headers={"X-API-Key": "v-secret"}).json() == {"actor": "viewer"}


def test_without_scopes_configured_no_key_has_the_live_scope():
    c = scoped_client(["trader:t-secret"], "")
    assert c.post("/live", headers={"X-API-Key": "t-secret"}).status_code == 403
    assert c.post("/keyed", headers={"X-API-Key": "t-secret"}).status_code == 200


def test_key_scopes_come_from_the_environment_and_malformed_entries_are_errors(monkeypatch):
    from omniwatch.serving.auth import parse_key_scopes
    from omniwatch.serving.settings import ServingSettings

    monkeypatch.setenv("OMNIWATCH_API_KEY_SCOPES", "trader=live,trader=admin")
    assert parse_key_scopes(ServingSettings().api_key_scopes) == {"trader": frozenset({"live", "admin"})}
    for bad in ("trader", "=live", "trader=", "trader=live+"):
        with pytest.raises(ValueError, match="name=scope"):
            parse_key_scopes(bad)
