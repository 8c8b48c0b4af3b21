"""POST /api/v2/alerts/notify over HTTP against a real warehouse (SQLite and PostgreSQL): the
webhook payload Alertmanager sends is stored once per alert state under the key's name, its
repeats are duplicates, malformed payloads are 422 naming the field, and the key may come as
X-API-Key or as the bearer token Alertmanager's http_config sends."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from graph.helpers import fresh_sqlite_warehouse
from sqlalchemy import func, select

from omniwatch.serving.alerts.schemas import EXAMPLE
from omniwatch.serving.app import create_app
from omniwatch.serving.settings import ServingSettings
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

NOTIFY, LIST = "/api/v2/alerts/notify", "/api/v2/alerts"
BEARER = {"Authorization": "Bearer am-secret"}


def client(url: str, home: Path) -> TestClient:
    serving = ServingSettings(api_keys=["alertmanager:am-secret", "ops:ops-secret"])
    return TestClient(create_app(Settings(home=home, database_url=url), serving), raise_server_exceptions=False)


@pytest.fixture
def api(warehouse_url, tmp_path) -> Iterator[TestClient]:
    """Storage on each backend."""
    with client(warehouse_url, tmp_path / "home") as c:
        yield c


@pytest.fixture
def sqlite_api(tmp_path) -> Iterator[TestClient]:
    """Keys and validation do not depend on the backend: SQLite only."""
    with client(fresh_sqlite_warehouse(tmp_path / "home" / "warehouse.db"), tmp_path / "home") as c:
        yield c


def rows(c: TestClient) -> int:
    t = tables.alert_notifications
    with get_engine(c.app.state.services.database_url).connect() as conn:
        return conn.execute(select(func.count()).select_from(t)).scalar_one()


def payload(**alert_changes) -> dict:
    body = copy.deepcopy(EXAMPLE)
    body["alerts"][0].update(alert_changes)
    body["status"] = body["alerts"][0]["status"]
    return body


def test_each_alert_state_is_stored_once_and_repeats_are_duplicates(api):
    r = api.post(NOTIFY, json=EXAMPLE, headers=BEARER)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["received"], got["stored"], got["duplicates"]) == (1, 1, 0)
    alert = got["alerts"][0]
    assert (alert["alertname"], alert["severity"], alert["route"], alert["status"]) == (
        "SignalLatencyP99Degraded", "P2", "signals/generate", "firing")
    assert alert["ends_at"] is None  # Go's zero time: no end yet
    assert alert["received_by"] == "alertmanager" and alert["receiver"] == "omniwatch-p2"
    assert alert["starts_at"].startswith("2026-12-07T09:00:00") and alert["labels"]["service"] == "omniwatch-api"

    # Alertmanager's repeat (repeat_interval) of the same firing alert: no new row.
    again = api.post(NOTIFY, json=EXAMPLE, headers={"X-API-Key": "ops-secret"}).json()
    assert (again["stored"], again["duplicates"]) == (0, 1) and again["alerts"][0]["received_by"] == "alertmanager"
    # Its resolution is a new state.
    resolved = api.post(NOTIFY, json=payload(status="resolved", endsAt="2026-12-07T09:40:00Z"), headers=BEARER)
    assert resolved.json()["stored"] == 1 and resolved.json()["alerts"][0]["ends_at"].startswith("2026-12-07T09:40")
    assert rows(api) == 2

    listed = api.get(LIST).json()["alerts"]
    assert [a["status"] for a in listed] == ["resolved", "firing"]  # newest first
    assert [a["status"] for a in api.get(LIST, params={"status": "firing"}).json()["alerts"]] == ["firing"]
    assert api.get(LIST, params={"alertname": "ApiAvailabilityLow"}).json()["alerts"] == []


def test_several_alerts_and_unknown_fields_of_a_newer_alertmanager(sqlite_api):
    api = sqlite_api
    body = copy.deepcopy(EXAMPLE)
    second = {**copy.deepcopy(EXAMPLE["alerts"][0]), "fingerprint": "0a1b2c3d4e5f6071",
              "labels": {"alertname": "DataFreshnessStale", "severity": "P2", "source": "market_bars"}}
    body["alerts"].append(second)
    body["alerts"].append(copy.deepcopy(EXAMPLE["alerts"][0]))  # listed twice: one alert
    body["someFutureField"] = {"x": 1}
    body["alerts"][1]["anotherNewField"] = True
    got = api.post(NOTIFY, json=body, headers=BEARER).json()
    assert (got["received"], got["stored"], got["duplicates"]) == (3, 2, 1)
    assert {a["alertname"] for a in got["alerts"]} == {"SignalLatencyP99Degraded", "DataFreshnessStale"}
    assert next(a for a in got["alerts"] if a["alertname"] == "DataFreshnessStale")["route"] is None


def test_the_key_is_required_as_x_api_key_or_bearer(sqlite_api):
    api = sqlite_api
    assert api.post(NOTIFY, json=EXAMPLE).status_code == 401
    assert api.post(NOTIFY, json=EXAMPLE, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.post(NOTIFY, json=EXAMPLE, headers={"Authorization": "Basic YW06YW0tc2VjcmV0"}).status_code == 401
    assert rows(api) == 0
    assert api.post(NOTIFY, json=EXAMPLE, headers={"Authorization": "bearer ops-secret"}).json()["alerts"][0][
        "received_by"] == "ops"


MALFORMED = [
    (payload(labels={"severity": "P1"}), "body.alerts.0"),                       # no alertname
    ({**EXAMPLE, "version": "3"}, "body.version"),
    (payload(fingerprint="not-hex!"), "body.alerts.0.fingerprint"),
    (payload(status="pending"), "body.alerts.0.status"),
    (payload(startsAt="0001-01-01T00:00:00Z"), "body.alerts.0.startsAt"),        # a start must be real
    (payload(startsAt="yesterday"), "body.alerts.0.startsAt"),
    ({**EXAMPLE, "alerts": []}, "body.alerts"),
    ({k: v for k, v in EXAMPLE.items() if k != "receiver"}, "body.receiver"),
]


def test_malformed_payloads_are_422_naming_the_field(sqlite_api):
    for body, field in MALFORMED:
        r = sqlite_api.post(NOTIFY, json=body, headers=BEARER)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (field, r.text)
        assert any(e["field"] == field for e in r.json()["errors"]), (field, r.json())
    r = sqlite_api.post(NOTIFY, content=b"{not json", headers={**BEARER, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert rows(sqlite_api) == 0
