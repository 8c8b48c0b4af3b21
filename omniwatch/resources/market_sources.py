"""Connector resources: one abstract resource per source, a live and a replay implementation.

Assets annotate the abstract type (``MarketDataResource``, ``FundingRateResource``,
``OnchainResource``); whether they read the bundled sample or the venues is configuration
(``OMNIWATCH_SOURCE``), chosen once in ``omniwatch.definitions``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from omniwatch import frames
from omniwatch.connectors.replay import ReplaySource
from omniwatch.symbols import to_venue


@dataclass
class SourceBatch:
    """What a connector returned for a window: canonical rows, where from, and what it lacked."""

    frame: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    as_of: pd.Timestamp | None = None   # the replay clock the batch was cut at ("now" for its checks)
    coverage_start: pd.Timestamp | None = None  # where the recording begins (see ReplayResult)


class MarketDataResource(dg.ConfigurableResource, ABC):
    """Hourly bars, trades and level-2 books for track symbols."""

    @abstractmethod
    def fetch_bars(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...

    @abstractmethod
    def fetch_trades(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...

    @abstractmethod
    def fetch_orderbook(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...


class FundingRateResource(dg.ConfigurableResource, ABC):
    """Perpetual-swap funding settlements."""

    @abstractmethod
    def fetch_funding(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...


class OnchainResource(dg.ConfigurableResource, ABC):
    """Daily on-chain network metrics."""

    @abstractmethod
    def fetch_onchain(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> SourceBatch: ...


# ----------------------------------------------------------------------------- replay
class _ReplayClock(dg.ConfigurableResource):
    """Replay-as-live: with ``clock`` set (ISO 8601), only rows available by then are returned,
    so a replayed day arrives hour by hour as it would live (``omniwatch live``)."""

    clock: str | None = None
    _run_clock: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run launched by the replay carries its clock as a tag (omniwatch.launch): the run
        # page shows it, and a re-execution from the UI replays the same hour.
        from omniwatch.launch import REPLAY_CLOCK_TAG

        run = context.dagster_run
        self._run_clock = run.tags.get(REPLAY_CLOCK_TAG) if run is not None else None

    @property
    def replay_clock(self) -> str | None:
        return self.clock or self._run_clock

    def _until_clock(self, result) -> SourceBatch:
        frame = result.frame
        if self.replay_clock and len(frame) and "available_time" in frame:
            cut = pd.Timestamp(self.replay_clock)
            cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
            kept = frame[frame["available_time"] <= cut].reset_index(drop=True)
            notes = [*result.notes, f"replay clock {cut.isoformat()}: {len(frame) - len(kept)} rows not yet available"]
            return SourceBatch(kept, "replay", notes, as_of=cut,
                               coverage_start=getattr(result, "coverage_start", None))
        return SourceBatch(frame, "replay", list(result.notes), coverage_start=getattr(result, "coverage_start", None))


class ReplayMarketDataResource(_ReplayClock, MarketDataResource):
    replay_dir: str

    def fetch_bars(self, symbols, start, end):
        return self._until_clock(ReplaySource(self.replay_dir).bars(symbols, start, end))

    def fetch_trades(self, symbols, start, end):
        return self._until_clock(ReplaySource(self.replay_dir).trades(symbols, start, end))

    def fetch_orderbook(self, symbols, start, end):
        return self._until_clock(ReplaySource(self.replay_dir).orderbook(symbols, start, end))


class ReplayFundingResource(_ReplayClock, FundingRateResource):
    replay_dir: str

    def fetch_funding(self, symbols, start, end):
        return self._until_clock(ReplaySource(self.replay_dir).funding(symbols, start, end))


class ReplayOnchainResource(_ReplayClock, OnchainResource):
    replay_dir: str

    def fetch_onchain(self, symbols, start, end):
        return self._until_clock(ReplaySource(self.replay_dir).onchain(symbols, start, end))


# ----------------------------------------------------------------------------- live
def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    return frames.conform(pd.concat(parts, ignore_index=True), columns) if parts else frames.empty_frame(columns)


class CoinbaseMarketDataResource(MarketDataResource):
    """Coinbase Exchange public REST (candles paged 300 at a time, trades, level-2 book)."""

    base_url: str = "https://api.exchange.coinbase.com"
    timeout_s: float = 10.0
    max_retries: int = 5
    # Coinbase allows 10 public requests per second per IP; stay under it.
    requests_per_second: float = 8.0
    # Redis URL for a rate budget shared by every run process (None: this process's own budget).
    rate_limit_redis_url: str | None = None
    # Trades are served newest first only: a past window costs every page back to it.
    max_trade_pages: int = 50

    def _client(self):
        from omniwatch.connectors.coinbase import CoinbaseExchangeClient

        return CoinbaseExchangeClient(
            base_url=self.base_url, timeout=self.timeout_s, max_retries=self.max_retries,
            requests_per_second=self.requests_per_second, rate_limit_redis_url=self.rate_limit_redis_url,
        )

    def fetch_bars(self, symbols, start, end):
        with self._client() as client:
            parts = [client.fetch_candles(to_venue("coinbase", s).venue_symbol, start, end) for s in symbols]
        return SourceBatch(_concat(parts, frames.MARKET_BAR_COLUMNS), "live")

    def fetch_trades(self, symbols, start, end):
        with self._client() as client:
            parts = [
                client.fetch_trades(to_venue("coinbase", s).venue_symbol, start, end, max_pages=self.max_trade_pages)
                for s in symbols
            ]
        notes = [
            f"{symbol}: trades reach back only to {part['event_time'].min().isoformat()} "
            f"(page limit {self.max_trade_pages}); older trades in the window were not fetched"
            for symbol, part in zip(symbols, parts, strict=True)
            if len(part) and part["event_time"].min() > start + pd.Timedelta(minutes=1)
        ]
        return SourceBatch(_concat(parts, frames.TRADE_COLUMNS), "live", notes)

    def fetch_orderbook(self, symbols, start, end):
        # The venue serves only the current book: a snapshot is stored if "now" is in the window.
        now = pd.Timestamp.now(tz="UTC")
        if not (start <= now < end):
            return SourceBatch(frames.empty_frame(frames.ORDERBOOK_COLUMNS), "live",
                               ["Coinbase serves only the current L2 book; no history for this window"])
        with self._client() as client:
            parts = [client.fetch_book(to_venue("coinbase", s).venue_symbol) for s in symbols]
        return SourceBatch(_concat(parts, frames.ORDERBOOK_COLUMNS), "live")


class BinanceFundingResource(FundingRateResource):
    """Binance USD-M perpetual funding history (``/fapi/v1/fundingRate``)."""

    base_url: str = "https://fapi.binance.com"
    timeout_s: float = 10.0
    max_retries: int = 5
    requests_per_second: float = 2.0
    rate_limit_redis_url: str | None = None

    def fetch_funding(self, symbols, start, end):
        from omniwatch.connectors.binance_funding import BinanceFundingClient

        with BinanceFundingClient(
            base_url=self.base_url, timeout=self.timeout_s, max_retries=self.max_retries,
            requests_per_second=self.requests_per_second, rate_limit_redis_url=self.rate_limit_redis_url,
        ) as client:
            parts = [client.fetch_funding(to_venue("binance_usdm", s).venue_symbol, start, end) for s in symbols]
        return SourceBatch(_concat(parts, frames.FUNDING_COLUMNS), "live")


class CoinMetricsOnchainResource(OnchainResource):
    """Coin Metrics community API, daily asset metrics."""

    base_url: str = "https://community-api.coinmetrics.io/v4"
    timeout_s: float = 10.0
    max_retries: int = 5
    # The community API allows 10 requests per 6 seconds.
    requests_per_second: float = 1.5
    rate_limit_redis_url: str | None = None

    def fetch_onchain(self, symbols, start, end):
        from omniwatch.connectors.coinmetrics import CoinMetricsClient
        from omniwatch.connectors.replay import ONCHAIN_METRICS

        with CoinMetricsClient(
            base_url=self.base_url, timeout=self.timeout_s, max_retries=self.max_retries,
            requests_per_second=self.requests_per_second, rate_limit_redis_url=self.rate_limit_redis_url,
        ) as client:
            parts = [
                client.fetch_asset_metrics(to_venue("coinmetrics", s).venue_symbol, list(ONCHAIN_METRICS), start, end)
                for s in symbols
            ]
        return SourceBatch(_concat(parts, frames.ONCHAIN_COLUMNS), "live")
