"""The market-data plane: raw hourly bars, trades, L2 books, funding and on-chain metrics.

Every asset is daily-partitioned with single-run backfills. It fetches its window from the
configured source (replay or live) and hands the batch to ``checked_write`` (checks, audit, then
an upsert of each day whose blocking checks passed; a bad day fails the step, see ingest.py).
``CODE_VERSION`` is the assets' Dagster ``code_version``: bump it when what they write changes.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch import frames
from omniwatch.assets.catalog import labels, table_metadata
from omniwatch.assets.ingest import checked_write, partition_window
from omniwatch.checks import check_specs_for
from omniwatch.freshness import RAW_FRESHNESS
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.liquid import LiquidTrackResource
from omniwatch.resources.market_sources import (
    FundingRateResource,
    MarketDataResource,
    OnchainResource,
    SourceBatch,
)
from omniwatch.resources.warehouse import WarehouseResource

CODE_VERSION = "1"
_COMMON = dict(partitions_def=daily_partitions, backfill_policy=single_run_backfill, code_version=CODE_VERSION,
               freshness_policy=RAW_FRESHNESS, **labels("liquid", "raw"))


def _ingest(context: AssetExecutionContext, name: str, batch: SourceBatch, key: list[str],
            warehouse: WarehouseResource, liquid: LiquidTrackResource) -> Iterator:
    start, end = partition_window(context)
    frame = batch.frame
    thresholds = dict(
        max_gap_ratio=liquid.max_gap_ratio, max_abs_log_return=liquid.max_abs_hourly_log_return,
        max_lag=pd.Timedelta(hours=liquid.max_bar_lag_hours), symbols=liquid.symbols,
    )
    metadata = {
        "symbols": dg.MetadataValue.json(sorted(frame["symbol"].unique().tolist()) if len(frame) else []),
        "first_event_time": dg.MetadataValue.text(frame["event_time"].min().isoformat() if len(frame) else "none"),
        "last_event_time": dg.MetadataValue.text(frame["event_time"].max().isoformat() if len(frame) else "none"),
    }
    return checked_write(context, name, batch, table=name, key=key, warehouse=warehouse, start=start, end=end,
                         code_version=CODE_VERSION, thresholds=thresholds, metadata=metadata)


@dg.asset(check_specs=check_specs_for("market_bars"), metadata=table_metadata("market_bars"),
          kinds={"python", "sql"}, **_COMMON)
def market_bars(
    context: AssetExecutionContext, market_data: MarketDataResource,
    warehouse: WarehouseResource, liquid: LiquidTrackResource,
) -> Iterator:
    """Hourly OHLCV bars per liquid symbol (Binance spot USDT in replay, Coinbase USD live);
    ``event_time`` is the bar's open, ``available_time`` its close."""
    start, end = partition_window(context)
    batch = market_data.fetch_bars(liquid.symbols, start, end)
    yield from _ingest(context, "market_bars", batch, frames.MARKET_BAR_KEY, warehouse, liquid)


@dg.asset(check_specs=check_specs_for("trades_ticks"), metadata=table_metadata("trades_ticks"),
          kinds={"python", "sql"}, **_COMMON)
def trades_ticks(
    context: AssetExecutionContext, market_data: MarketDataResource,
    warehouse: WarehouseResource, liquid: LiquidTrackResource,
) -> Iterator:
    """Individual trades (Coinbase Exchange). The bundled sample holds no trade history, so in
    replay this stores only recorded trades that fall in the window, and says so."""
    start, end = partition_window(context)
    batch = market_data.fetch_trades(liquid.symbols, start, end)
    yield from _ingest(context, "trades_ticks", batch, frames.TRADE_KEY, warehouse, liquid)


@dg.asset(check_specs=check_specs_for("orderbook_l2"), metadata=table_metadata("orderbook_l2"),
          kinds={"python", "sql"}, **_COMMON)
def orderbook_l2(
    context: AssetExecutionContext, market_data: MarketDataResource,
    warehouse: WarehouseResource, liquid: LiquidTrackResource,
) -> Iterator:
    """Level-2 order-book snapshots, one row per side and price level. Venues serve only the
    current book, so history exists only where snapshots were recorded."""
    start, end = partition_window(context)
    batch = market_data.fetch_orderbook(liquid.symbols, start, end)
    yield from _ingest(context, "orderbook_l2", batch, frames.ORDERBOOK_KEY, warehouse, liquid)


@dg.asset(check_specs=check_specs_for("funding_rates"), metadata=table_metadata("funding_rates"),
          kinds={"python", "sql"}, **_COMMON)
def funding_rates(
    context: AssetExecutionContext, funding: FundingRateResource,
    warehouse: WarehouseResource, liquid: LiquidTrackResource,
) -> Iterator:
    """Perpetual-swap funding settlements (Binance USD-M, every 8 h); gaps are reported, never filled."""
    start, end = partition_window(context)
    batch = funding.fetch_funding(liquid.symbols, start, end)
    yield from _ingest(context, "funding_rates", batch, frames.FUNDING_KEY, warehouse, liquid)


@dg.asset(check_specs=check_specs_for("onchain_signals"), metadata=table_metadata("onchain_signals"),
          kinds={"python", "sql"}, **_COMMON)
def onchain_signals(
    context: AssetExecutionContext, onchain: OnchainResource,
    warehouse: WarehouseResource, liquid: LiquidTrackResource,
) -> Iterator:
    """Daily on-chain metrics (Coin Metrics community data), long format; a day's value becomes
    available when the day ends."""
    start, end = partition_window(context)
    batch = onchain.fetch_onchain(liquid.symbols, start, end)
    yield from _ingest(context, "onchain_signals", batch, frames.ONCHAIN_KEY, warehouse, liquid)
