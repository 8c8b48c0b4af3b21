"""Coinbase Exchange connector against the loopback fake serving recorded Coinbase payloads."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from omniwatch.connectors.coinbase import CoinbaseExchangeClient, parse_book, parse_candles, parse_trades
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.frames import MARKET_BAR_COLUMNS, ORDERBOOK_COLUMNS, TRADE_COLUMNS

from .fake_venues import BOOK_FILE, CANDLES_FILE, TRADES_FILE, load
from .loopback import Fault

CANDLES = "/products/BTC-USD/candles"
TRADES = "/products/BTC-EUR/trades"
BOOK = "/products/BTC-USD/book"
UTC = "UTC"


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz=UTC)


@pytest.fixture
def client(venue_server, fast_http):
    with CoinbaseExchangeClient(venue_server.url, **fast_http) as c:
        yield c


# -- candles ---------------------------------------------------------------------------------
def test_candles_page_in_300_bar_windows_and_match_recorded_values(client, venue_server):
    start, end = ts("2020-03-01"), ts("2020-03-20")  # 456 hours -> two windows
    frame = client.fetch_candles("BTC-USD", start, end, granularity=3600)

    seen = venue_server.seen(CANDLES)
    assert [(r.params["start"], r.params["end"], r.params["granularity"]) for r in seen] == [
        ("2020-03-01T00:00:00Z", "2020-03-13T12:00:00Z", "3600"),
        ("2020-03-13T12:00:00Z", "2020-03-20T00:00:00Z", "3600"),
    ]
    recorded = load(CANDLES_FILE)
    # Both windows include their ends, so the 2020-03-13 12:00 bar came back twice...
    served = sum(1 for r in recorded for q in seen
                 if ts(q.params["start"]).timestamp() <= r[0] <= ts(q.params["end"]).timestamp())
    assert served == len(recorded) + 1
    # ...and the result holds it once, ascending.
    assert len(frame) == len(recorded) == 169
    assert frame["event_time"].is_unique and frame["event_time"].is_monotonic_increasing
    assert list(frame.columns) == MARKET_BAR_COLUMNS

    expected = {pd.Timestamp(r[0], unit="s", tz=UTC): r for r in recorded}
    for row in frame.itertuples():
        t, low, high, open_, close, volume = expected[row.event_time]
        assert (row.low, row.high, row.open, row.close, row.volume) == (low, high, open_, close, volume)
    assert (frame["available_time"] - frame["event_time"] == pd.Timedelta(hours=1)).all()
    first = frame.iloc[0]
    assert first["event_time"] == ts("2020-03-09 00:00") and first["open"] == 8024.86
    assert set(frame["interval"]) == {"1h"} and set(frame["venue"]) == {"coinbase"}
    assert set(frame["symbol"]) == {"BTC"} and set(frame["quote"]) == {"USD"}
    assert set(frame["source"]) == {"live"}


def test_candles_drop_the_bar_still_forming_and_bars_before_start(client, venue_server):
    # Unaligned start: the window starts at the bar boundary, the 09:00 bar is left out.
    frame = client.fetch_candles("BTC-USD", ts("2020-03-09 09:20"), ts("2020-03-17"),
                                 now=ts("2020-03-16 00:30"))
    assert len(venue_server.seen(CANDLES)) == 1  # 183 hours fit one window
    assert venue_server.seen(CANDLES)[0].params["start"] == "2020-03-09T09:00:00Z"
    assert frame["event_time"].min() == ts("2020-03-09 10:00")
    # The 2020-03-16 00:00 bar closes at 01:00, after "now": not a finished bar yet.
    assert frame["event_time"].max() == ts("2020-03-15 23:00")
    assert (frame["available_time"] <= ts("2020-03-16 00:30")).all()


def test_candle_row_of_wrong_length_names_the_row(client, venue_server):
    rows = load(CANDLES_FILE)[:3]
    rows[1] = rows[1][:5]
    venue_server.inject(CANDLES, Fault(body=json.dumps(rows).encode()))
    with pytest.raises(MalformedPayloadError, match=r"candle row 1: expected 6 fields") as err:
        client.fetch_candles("BTC-USD", ts("2020-03-15"), ts("2020-03-16"))
    assert err.value.row == 1
    assert len(venue_server.seen(CANDLES)) == 1  # a bad payload is not retried


def test_non_numeric_candle_value_names_row_and_field():
    rows = load(CANDLES_FILE)[:4]
    rows[2] = [rows[2][0], rows[2][1], rows[2][2], rows[2][3], "n/a", rows[2][5]]
    with pytest.raises(MalformedPayloadError, match=r"row 2, field 'close'") as err:
        parse_candles(rows, "BTC-USD")
    assert (err.value.row, err.value.field) == (2, "close")


def test_truncated_json_is_a_malformed_payload_naming_the_url(client, venue_server):
    body = CANDLES_FILE.read_bytes()[:700]
    venue_server.inject(CANDLES, Fault(body=body))
    with pytest.raises(MalformedPayloadError, match="not valid JSON") as err:
        client.fetch_candles("BTC-USD", ts("2020-03-15"), ts("2020-03-16"))
    assert f"{venue_server.url}{CANDLES}?granularity=3600" in str(err.value)
    assert "[1584316800, 5236.01" in str(err.value)  # a snippet of what came back
    assert len(venue_server.seen(CANDLES)) == 1


# -- trades ----------------------------------------------------------------------------------
def test_trades_page_backwards_with_cb_after_until_start(client, venue_server):
    recorded = sorted(load(TRADES_FILE), key=lambda r: -r["trade_id"])  # newest first
    start = ts(recorded[45]["time"])
    frame = client.fetch_trades("BTC-EUR", start, max_pages=10, limit=20)

    seen = venue_server.seen(TRADES)
    # Page 3 (rows 40..59) reaches trades older than start, so paging stops there.
    assert [r.params.get("after") for r in seen] == [
        None, str(recorded[19]["trade_id"]), str(recorded[39]["trade_id"])]
    assert all(r.params["limit"] == "20" for r in seen)
    expected = [r for r in recorded if ts(r["time"]) >= start]
    assert 45 < len(expected) < 60
    assert len(frame) == len(expected)
    assert list(frame.columns) == TRADE_COLUMNS
    assert frame["event_time"].is_monotonic_increasing
    by_id = {str(r["trade_id"]): r for r in expected}
    assert set(frame["trade_id"]) == set(by_id)
    for row in frame.itertuples():
        rec = by_id[row.trade_id]
        assert (row.price, row.size, row.side) == (float(rec["price"]), float(rec["size"]), rec["side"])
        assert row.event_time == ts(rec["time"]) == row.available_time
    assert set(frame["quote"]) == {"EUR"} and set(frame["symbol"]) == {"BTC"}


def test_trades_stop_at_max_pages_and_say_so(client, venue_server, caplog):
    recorded = sorted(load(TRADES_FILE), key=lambda r: -r["trade_id"])
    with caplog.at_level(logging.WARNING):
        frame = client.fetch_trades("BTC-EUR", ts("2020-01-01"), end=ts(recorded[5]["time"]),
                                    max_pages=2, limit=30)
    assert len(venue_server.seen(TRADES)) == 2
    assert "stopped after 2 pages" in caplog.text
    assert (frame["event_time"] < ts(recorded[5]["time"])).all()  # end is exclusive
    assert len(frame) == sum(1 for r in recorded[:60] if ts(r["time"]) < ts(recorded[5]["time"]))


# -- level-2 book ----------------------------------------------------------------------------
def test_book_has_50_levels_per_side_with_sequence_and_server_date(client, venue_server):
    before = pd.Timestamp.now(tz=UTC).floor("s")
    frame = client.fetch_book("BTC-USD")
    after = pd.Timestamp.now(tz=UTC)

    assert venue_server.seen(BOOK)[0].params == {"level": "2"}
    assert list(frame.columns) == ORDERBOOK_COLUMNS
    bids, asks = frame[frame["side"] == "bid"], frame[frame["side"] == "ask"]
    assert len(bids) == len(asks) == 50
    assert bids["level"].tolist() == asks["level"].tolist() == list(range(50))
    assert bids["price"].iloc[0] < asks["price"].iloc[0]
    assert bids["price"].is_monotonic_decreasing and asks["price"].is_monotonic_increasing
    assert set(frame["sequence"]) == {115151757}
    recorded = load(BOOK_FILE)
    assert bids["price"].tolist() == [float(p) for p, _, _ in recorded["bids"]]
    assert asks["size"].tolist() == [float(s) for _, s, _ in recorded["asks"]]
    assert asks["num_orders"].tolist() == [n for _, _, n in recorded["asks"]]
    # No "time" in this recorded payload: the HTTP Date header (whole seconds) is the snapshot.
    snapshot = frame["event_time"].iloc[0]
    assert before <= snapshot <= after and snapshot.microsecond == 0
    assert (frame["event_time"] == snapshot).all() and (frame["available_time"] == snapshot).all()


def test_book_prefers_the_payload_time(client, venue_server):
    payload = load(BOOK_FILE) | {"time": "2020-03-05T12:34:56.789Z"}
    venue_server.inject(BOOK, Fault(body=json.dumps(payload).encode()))
    frame = client.fetch_book("BTC-USD")
    assert set(frame["event_time"]) == {ts("2020-03-05 12:34:56.789")}


def test_book_level_of_wrong_shape_names_side_and_level():
    payload = load(BOOK_FILE)
    payload["asks"][7] = ["9740.1", "0.5"]
    with pytest.raises(MalformedPayloadError, match=r"book asks\[7\]") as err:
        parse_book(payload, "BTC-USD", "2020-03-05T00:00:00Z")
    assert err.value.row == 7


def test_trade_without_price_names_the_row_and_field():
    rows = load(TRADES_FILE)[:3]
    del rows[2]["price"]
    with pytest.raises(MalformedPayloadError, match=r"trade row 2: missing field\(s\) \['price'\]"):
        parse_trades(rows, "BTC-EUR")


def test_empty_range_makes_no_request(client, venue_server):
    frame = client.fetch_candles("BTC-USD", ts("2020-03-10"), ts("2020-03-10"))
    assert frame.empty and list(frame.columns) == MARKET_BAR_COLUMNS
    assert venue_server.requests == []
