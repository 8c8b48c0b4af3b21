"""Resources, chosen once from the settings (STYLE.md rule 5)."""

from __future__ import annotations

from typing import Any

from omniwatch.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    """The resource dict for this environment: replay or live connectors, the warehouse URL."""
    from omniwatch.resources.liquid import LiquidTrackResource
    from omniwatch.resources.market_sources import (
        BinanceFundingResource,
        CoinbaseMarketDataResource,
        CoinMetricsOnchainResource,
        ReplayFundingResource,
        ReplayMarketDataResource,
        ReplayOnchainResource,
    )
    from omniwatch.resources.warehouse import WarehouseResource

    if settings.source == "live":
        http = dict(timeout_s=settings.http_timeout_s, max_retries=settings.http_max_retries)
        sources: dict[str, Any] = {
            "market_data": CoinbaseMarketDataResource(
                base_url=settings.coinbase_base_url,
                requests_per_second=settings.coinbase_requests_per_second, **http),
            "funding": BinanceFundingResource(
                base_url=settings.binance_futures_base_url,
                requests_per_second=settings.binance_requests_per_second, **http),
            "onchain": CoinMetricsOnchainResource(
                base_url=settings.coinmetrics_base_url,
                requests_per_second=settings.coinmetrics_requests_per_second, **http),
        }
    else:
        replay_dir = str(settings.replay_dir.resolve())
        sources = {
            "market_data": ReplayMarketDataResource(replay_dir=replay_dir),
            "funding": ReplayFundingResource(replay_dir=replay_dir),
            "onchain": ReplayOnchainResource(replay_dir=replay_dir),
        }
    return {
        **sources,
        "warehouse": WarehouseResource(database_url=settings.warehouse_url),
        "liquid": LiquidTrackResource(
            symbols=settings.liquid_symbols,
            max_gap_ratio=settings.max_gap_ratio,
            max_abs_hourly_log_return=settings.max_abs_hourly_log_return,
            max_bar_lag_hours=settings.max_bar_lag_hours,
        ),
    }
