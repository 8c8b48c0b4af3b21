"""Fixtures for the connector tests: loopback fakes of the venues and event feeds, fresh per test."""

from __future__ import annotations

import pytest

from .fake_venues import FakeVenueServer
from .loopback import LoopbackServer


@pytest.fixture
def venue_server():
    with FakeVenueServer() as server:
        yield server


@pytest.fixture
def events_server():
    """Serves what each test registers with ``serve(path, body, ...)``; the rest answers 404."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def fast_http() -> dict:
    """Client settings that keep retries quick: tiny backoff, short timeout, no rate limit."""
    return {"timeout": 2.0, "max_retries": 2, "backoff_base_s": 0.01,
            "requests_per_second": None}
