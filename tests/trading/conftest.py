"""Shared fixtures of the trading tests: a fixed clock and an order request factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from omniwatch.trading.orders import OrderRequest

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture
def make_request() -> Callable[..., OrderRequest]:
    """``make_request(**overrides)``: a 1 BTC market IOC buy of strategy ``s1`` on ``liquid``."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> OrderRequest:
        values: dict[str, Any] = {
            "client_order_id": f"c-{next(counter)}", "track": "liquid", "strategy_id": "s1", "symbol": "BTC",
            "side": "buy", "qty": 1.0, "order_type": "market", "limit_price": None, "time_in_force": "IOC",
            "max_slippage_bps": None,
        }
        values.update(overrides)
        return OrderRequest(**values)

    return make


@pytest.fixture
def put_bars() -> Callable[..., None]:
    """``put_bars(url, symbol, [(event_time, open, high, low, close, volume), ...])``: hourly bars of
    venue ``test``, each available when its hour closes."""
    from datetime import timedelta

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    def put(url: str, symbol: str, rows: list[tuple]) -> None:
        records = [{"symbol": symbol, "venue": "test", "venue_symbol": f"{symbol}-USD", "quote": "USD",
                    "interval": "1h", "event_time": ts, "available_time": ts + timedelta(hours=1),
                    "open": o, "high": h, "low": lo, "close": c, "volume": v, "source": "test"}
                   for ts, o, h, lo, c, v in rows]
        with get_engine(url).begin() as conn:
            conn.execute(tables.market_bars.insert(), records)

    return put


@pytest.fixture
def put_book() -> Callable[..., None]:
    """``put_book(url, symbol, ts, bids=[(price, size)], asks=[(price, size)])``: one L2 snapshot
    (level 0 = best), available at ``ts``."""
    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    def put(url: str, symbol: str, ts: datetime, bids: list[tuple[float, float]],
            asks: list[tuple[float, float]]) -> None:
        records = [{"symbol": symbol, "venue": "test", "venue_symbol": f"{symbol}-USD", "quote": "USD",
                    "event_time": ts, "available_time": ts, "side": side, "level": i, "price": p, "size": s,
                    "source": "test"}
                   for side, levels in (("bid", bids), ("ask", asks)) for i, (p, s) in enumerate(levels)]
        with get_engine(url).begin() as conn:
            conn.execute(tables.orderbook_l2.insert(), records)

    return put
