"""Fixtures for the connector tests: a loopback fake of the venues, fresh for every test."""

from __future__ import annotations

import pytest

from .fake_venues import FakeVenueServer


@pytest.fixture
def venue_server():
    server = FakeVenueServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_http() -> dict:
    """Client settings that keep retries quick: tiny backoff, short timeout, no rate limit."""
    return {"timeout": 2.0, "max_retries": 2, "backoff_base_s": 0.01,
            "requests_per_second": None}
