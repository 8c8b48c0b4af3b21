"""The replay source: canonical frames from a folder laid out like the bundled sample.

``OMNIWATCH_REPLAY_DIR`` (default ``omniwatch/sample``) holds the sources' own file formats:
``binance_spot_1h/{SYM}USDT_1h.csv[.gz]``, ``funding/binance_usdm_funding_8h_BTC_ETH_SOL.csv[.gz]``,
``onchain/coinmetrics_community_{asset}_daily.csv[.gz]``, and optionally recorded Coinbase
Exchange payloads ``coinbase_exchange/trades/{PRODUCT}.json`` and
``coinbase_exchange/book/{PRODUCT}/{YYYYmmddTHHMMSSZ}.json``. Any folder with files of the same
names and format (for example with later months) replaces it. Nothing is invented: a source with
no file for a symbol or window yields no rows and a coverage note saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from omniwatch import frames
from omniwatch.symbols import from_venue, to_venue

SOURCE = "replay"
ONCHAIN_METRICS = ("AdrActCnt", "TxCnt", "FeeTotUSD", "IssTotUSD", "HashRate", "BlkCnt", "DiffMean")


@dataclass
class ReplayResult:
    """Rows for a window plus plain-language notes on what the source did not have."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # Where the recording begins (the newest of the symbols' first bars): hours before it are
    # outside the source's coverage, not gaps in its feed.
    coverage_start: pd.Timestamp | None = None


def _find(root: Path, relative: str) -> Path | None:
    for candidate in (root / relative, root / f"{relative}.gz"):
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=32)
def _read_csv(path: str, mtime: float) -> pd.DataFrame:  # mtime: cache key only
    return pd.read_csv(path, dtype=str)


def _load(path: Path) -> pd.DataFrame:
    return _read_csv(str(path), path.stat().st_mtime)


def _stamp(text: str) -> pd.Timestamp:
    """A snapshot file's time from its name (``20240416T010000Z``), as UTC."""
    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["event_time"] >= start) & (frame["event_time"] < end)]


class ReplaySource:
    """Reads the replay folder; ``start`` inclusive, ``end`` exclusive, both UTC."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"replay folder {self.root} does not exist (OMNIWATCH_REPLAY_DIR)")

    def bars(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> ReplayResult:
        parts, notes, firsts = [], [], []
        for symbol in symbols:
            inst = to_venue("binance", symbol)
            path = _find(self.root, f"binance_spot_1h/{inst.venue_symbol}_1h.csv")
            if path is None:
                notes.append(f"no hourly bars file for {symbol} ({inst.venue_symbol}) in {self.root}")
                continue
            raw = _load(path)
            event_time = pd.to_datetime(raw["timestamp"], utc=True)
            frame = pd.DataFrame({
                "symbol": inst.symbol, "venue": inst.venue, "venue_symbol": inst.venue_symbol,
                "quote": inst.quote, "interval": "1h", "event_time": event_time,
                "available_time": event_time + pd.Timedelta(hours=1),
                **{c: pd.to_numeric(raw[c], errors="coerce") for c in ("open", "high", "low", "close", "volume")},
                "source": SOURCE,
            })
            parts.append(_window(frame, start, end))
            if len(event_time):
                firsts.append(event_time.min())
        result = self._result(parts, frames.MARKET_BAR_COLUMNS, notes)
        result.coverage_start = max(firsts) if firsts else None
        return result

    def funding(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> ReplayResult:
        path = _find(self.root, "funding/binance_usdm_funding_8h_BTC_ETH_SOL.csv")
        if path is None:
            return ReplayResult(frames.empty_frame(frames.FUNDING_COLUMNS),
                                [f"no funding file in {self.root}"])
        raw = _load(path)
        wanted = {to_venue("binance_usdm", s).venue_symbol for s in symbols}
        raw = raw[raw["symbol"].isin(wanted)]
        insts = [from_venue("binance_usdm", v) for v in raw["symbol"]]
        event_time = pd.to_datetime(raw["funding_time_utc"], utc=True)
        frame = pd.DataFrame({
            "symbol": [i.symbol for i in insts], "venue": "binance_usdm",
            "venue_symbol": raw["symbol"].to_numpy(), "event_time": event_time.to_numpy(),
            # A settled rate is published at settlement.
            "available_time": event_time.to_numpy(),
            "funding_rate": pd.to_numeric(raw["funding_rate"], errors="coerce").to_numpy(),
            "mark_price": float("nan"), "source": SOURCE,
        })
        frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
        frame["available_time"] = pd.to_datetime(frame["available_time"], utc=True)
        frame = _window(frame, start, end)
        notes = [f"no funding settlements for {s} in the window"
                 for s in symbols if s not in set(frame["symbol"])]
        return self._result([frame], frames.FUNDING_COLUMNS, notes)

    def onchain(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> ReplayResult:
        parts, notes = [], []
        for symbol in symbols:
            asset = to_venue("coinmetrics", symbol).venue_symbol
            path = _find(self.root, f"onchain/coinmetrics_community_{asset}_daily.csv")
            if path is None:
                notes.append(f"no on-chain file for {symbol} in {self.root}: reported missing")
                continue
            raw = _load(path)
            event_time = pd.to_datetime(raw["date"], utc=True)
            for metric in ONCHAIN_METRICS:
                if metric not in raw:
                    continue
                frame = pd.DataFrame({
                    "symbol": symbol, "provider": "coinmetrics", "metric": metric,
                    "event_time": event_time,
                    # A day's value is only known once the day has ended.
                    "available_time": event_time + pd.Timedelta(days=1),
                    "value": pd.to_numeric(raw[metric], errors="coerce"), "source": SOURCE,
                })
                # Empty cells are missing values (e.g. ETH hash rate after the Merge), not zeros.
                parts.append(_window(frame.dropna(subset=["value"]), start, end))
        return self._result(parts, frames.ONCHAIN_COLUMNS, notes)

    def trades(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> ReplayResult:
        from omniwatch.connectors.coinbase import parse_trades

        parts, notes = [], []
        for symbol in symbols:
            product = to_venue("coinbase", symbol).venue_symbol
            path = self.root / "coinbase_exchange" / "trades" / f"{product}.json"
            if not path.exists():
                notes.append(f"the replay source holds no trade history for {symbol} ({product})")
                continue
            parts.append(_window(parse_trades(json.loads(path.read_text()), product, SOURCE), start, end))
        return self._result(parts, frames.TRADE_COLUMNS, notes)

    def orderbook(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> ReplayResult:
        from omniwatch.connectors.coinbase import parse_book

        parts, notes = [], []
        for symbol in symbols:
            product = to_venue("coinbase", symbol).venue_symbol
            folder = self.root / "coinbase_exchange" / "book" / product
            snaps = sorted(folder.glob("*.json")) if folder.is_dir() else []
            found = 0
            for snap in snaps:
                when = _stamp(snap.stem)
                if start <= when < end:
                    parts.append(parse_book(json.loads(snap.read_text()), product, when, SOURCE))
                    found += 1
            if not found:
                notes.append(f"the replay source holds no L2 book snapshots for {symbol} ({product}) in the window")
        return self._result(parts, frames.ORDERBOOK_COLUMNS, notes)

    @staticmethod
    def _result(parts: list[pd.DataFrame], columns: list[str], notes: list[str]) -> ReplayResult:
        parts = [p for p in parts if not p.empty]
        if not parts:
            return ReplayResult(frames.empty_frame(columns), notes)
        frame = pd.concat(parts, ignore_index=True)
        return ReplayResult(frames.conform(frame, columns), notes)
