"""The v1 paths answer 410 Gone with the v2 path to use; /ws refuses the handshake with 410."""

from __future__ import annotations

import pytest
from starlette.testclient import WebSocketDenialResponse

CASES = [("/api/predictions", "/api/v2/predict/liquid"), ("/api/predictions/BTC/latest", "/api/v2/predict/liquid"),
         ("/api/prices", "/api/v2/data-quality/sample?table=market_bars"),
         ("/api/news/123", "/api/v2/ingest/events"),
         ("/api/indicators/rsi", "/api/v2/data-quality/sample?table=feature_snapshots"), ("/ws", "/stream/events")]


@pytest.mark.parametrize(("path", "use"), CASES)
def test_legacy_paths_are_gone(client, path, use):
    methods = ("get",) if path == "/ws" else ("get", "post", "delete")
    for method in methods:
        r = getattr(client, method)(path)
        assert r.status_code == 410, (method, path)
        assert r.json()["code"] == "gone" and r.json()["context"]["use"] == use


def test_the_legacy_websocket_is_refused_with_410(client):
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/ws"):
            pass
    assert denied.value.status_code == 410 and denied.value.json()["context"]["use"] == "/stream/events"
