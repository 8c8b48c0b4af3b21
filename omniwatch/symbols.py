"""Explicit mapping from venue instruments to the liquid track's symbols.

The liquid track speaks of ``BTC``, ``ETH`` and ``SOL``. Venues quote them as ``BTCUSDT``
(Binance spot and USD-M futures), ``BTC-USD`` (Coinbase Exchange) or ``btc`` (Coin Metrics).
The mapping is a table, not string surgery, so an unknown instrument is an error rather
than a silently mangled symbol; venue and quote are kept in every stored row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    venue: str
    venue_symbol: str
    symbol: str
    quote: str | None


_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("binance", "BTCUSDT", "BTC", "USDT"),
    Instrument("binance", "ETHUSDT", "ETH", "USDT"),
    Instrument("binance", "SOLUSDT", "SOL", "USDT"),
    Instrument("binance_usdm", "BTCUSDT", "BTC", "USDT"),
    Instrument("binance_usdm", "ETHUSDT", "ETH", "USDT"),
    Instrument("binance_usdm", "SOLUSDT", "SOL", "USDT"),
    Instrument("coinbase", "BTC-USD", "BTC", "USD"),
    Instrument("coinbase", "ETH-USD", "ETH", "USD"),
    Instrument("coinbase", "SOL-USD", "SOL", "USD"),
    Instrument("coinbase", "BTC-EUR", "BTC", "EUR"),
    Instrument("coinbase", "ETH-EUR", "ETH", "EUR"),
    Instrument("coinbase", "SOL-EUR", "SOL", "EUR"),
    Instrument("coinmetrics", "btc", "BTC", None),
    Instrument("coinmetrics", "eth", "ETH", None),
    Instrument("coinmetrics", "sol", "SOL", None),
)

_BY_VENUE_SYMBOL = {(i.venue, i.venue_symbol): i for i in _INSTRUMENTS}
_BY_SYMBOL = {}
for _i in _INSTRUMENTS:
    # The first listed instrument per (venue, symbol) is the default one we request.
    _BY_SYMBOL.setdefault((_i.venue, _i.symbol), _i)


class UnknownInstrumentError(ValueError):
    """A venue instrument or track symbol that the mapping table does not know."""


def from_venue(venue: str, venue_symbol: str) -> Instrument:
    """The instrument for a venue's own symbol (``("binance", "BTCUSDT")`` -> BTC/USDT)."""
    try:
        return _BY_VENUE_SYMBOL[(venue, venue_symbol)]
    except KeyError:
        raise UnknownInstrumentError(
            f"no mapping for instrument {venue_symbol!r} on venue {venue!r}; "
            f"add it to omniwatch/symbols.py"
        ) from None


def to_venue(venue: str, symbol: str) -> Instrument:
    """The default instrument a venue lists for a track symbol (``("coinbase", "BTC")`` -> BTC-USD)."""
    try:
        return _BY_SYMBOL[(venue, symbol.upper())]
    except KeyError:
        raise UnknownInstrumentError(
            f"venue {venue!r} has no instrument mapped for symbol {symbol!r}"
        ) from None


# How news text names each liquid asset. Names match case-insensitively as whole words; tickers
# only in upper case ("SOL", "$SOL"), because "sol" and "eth" are ordinary words elsewhere.
NEWS_NAMES: dict[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "bitcoins"),
    "ETH": ("ethereum", "ether"),
    "SOL": ("solana",),
}
NEWS_TICKERS: dict[str, tuple[str, ...]] = {"BTC": ("BTC", "XBT"), "ETH": ("ETH",), "SOL": ("SOL",)}
