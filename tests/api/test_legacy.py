"""The v1 paths answer 410 Gone, naming a v2 successor only where one serves the same method."""

from __future__ import annotations

import pytest
from starlette.testclient import WebSocketDenialResponse

from omniwatch.serving.legacy import SUCCESSORS, WS_SUCCESSOR

CASES = [("/api/predictions", "post", "/api/v2/predict/liquid"), ("/api/predictions/BTC/latest", "get", None),
         ("/api/prices", "get", "/api/v2/data-quality/sample?table=market_bars"), ("/api/prices", "post", None),
         ("/api/news/123", "get", None), ("/api/news", "post", "/api/v2/ingest/events"),
         ("/api/indicators/rsi", "get", "/api/v2/data-quality/sample?table=feature_snapshots"),
         ("/api/indicators", "delete", None), ("/ws", "get", "/stream/signals")]


@pytest.mark.parametrize(("path", "method", "use"), CASES)
def test_legacy_paths_are_gone(client, path, method, use):
    r = getattr(client, method)(path)
    assert r.status_code == 410 and r.json()["code"] == "gone", (method, path)
    assert (r.json().get("context") or {}).get("use") == use
    assert (r.headers.get("Link") is not None) == (use is not None)


def test_every_successor_exists_and_serves_the_same_method(client):
    paths = client.app.openapi()["paths"]
    for successors in SUCCESSORS.values():
        for method, use in successors.items():
            assert method.lower() in paths.get(use.split("?")[0], {}), (method, use)


def test_the_legacy_websocket_is_refused_with_410_naming_its_successor(client):
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/ws"):
            pass
    assert denied.value.status_code == 410 and denied.value.json()["code"] == "gone"
    assert denied.value.json()["context"] == {"use": "/stream/signals"}
    assert denied.value.headers["Link"] == '</stream/signals>; rel="successor-version"'
    with client.websocket_connect(WS_SUCCESSOR) as successor:  # it serves: reads are open here
        assert successor.receive_json()["type"] == "subscribed"
