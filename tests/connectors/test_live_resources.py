"""The live resources the assets use, over the loopback fake venues (recorded real payloads)."""

from __future__ import annotations

import pandas as pd

from omniwatch import frames
from omniwatch.resources.market_sources import BinanceFundingResource, CoinbaseMarketDataResource


def test_coinbase_resource_returns_canonical_bars_for_track_symbols(venue_server):
    resource = CoinbaseMarketDataResource(base_url=venue_server.url, requests_per_second=100.0)
    batch = resource.fetch_bars(["BTC"], pd.Timestamp("2020-03-09", tz="UTC"), pd.Timestamp("2020-03-16", tz="UTC"))
    assert batch.source == "live"
    assert list(batch.frame.columns) == frames.MARKET_BAR_COLUMNS
    assert set(batch.frame["symbol"]) == {"BTC"} and set(batch.frame["venue_symbol"]) == {"BTC-USD"}
    assert set(batch.frame["quote"]) == {"USD"}
    assert len(batch.frame) == 168  # 7 days of hourly bars, the end bound exclusive
    assert batch.frame["event_time"].is_monotonic_increasing


def test_binance_resource_maps_track_symbols_to_usdm_perpetuals(venue_server):
    resource = BinanceFundingResource(base_url=venue_server.url, requests_per_second=100.0)
    batch = resource.fetch_funding(["BTC"], pd.Timestamp("2026-06-29", tz="UTC"), pd.Timestamp("2026-07-04", tz="UTC"))
    assert list(batch.frame.columns) == frames.FUNDING_COLUMNS
    assert set(batch.frame["venue_symbol"]) == {"BTCUSDT"} and set(batch.frame["venue"]) == {"binance_usdm"}
    assert len(batch.frame) == 10
    assert (batch.frame["available_time"] == batch.frame["event_time"]).all()


def test_live_resources_take_the_shared_rate_budget_from_omniwatch_redis_url(monkeypatch):
    from omniwatch.resources import build_resources
    from omniwatch.settings import Settings

    monkeypatch.setenv("OMNIWATCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    resources = build_resources(Settings(source="live"))
    for name in ("market_data", "funding", "onchain"):
        live = resources[name].process_config_and_initialize()
        assert live.rate_limit_redis_url == "redis://127.0.0.1:6379/0", name
    monkeypatch.delenv("OMNIWATCH_REDIS_URL")
    assert build_resources(Settings(source="live"))["market_data"].rate_limit_redis_url is None


def test_coinbase_resource_over_a_redis_rate_budget(venue_server):
    resource = CoinbaseMarketDataResource(base_url=venue_server.url, requests_per_second=100.0,
                                          rate_limit_redis_url="redis://127.0.0.1:6379/0")
    batch = resource.fetch_bars(["BTC"], pd.Timestamp("2020-03-09", tz="UTC"), pd.Timestamp("2020-03-10", tz="UTC"))
    assert len(batch.frame) == 24
