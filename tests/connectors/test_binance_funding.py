"""Binance USD-M funding connector against the recorded /fapi/v1/fundingRate payload."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from omniwatch.connectors.binance_funding import BinanceFundingClient, parse_funding
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.frames import FUNDING_COLUMNS
from omniwatch.symbols import UnknownInstrumentError

from .fake_venues import FUNDING_FILE, load

FUNDING = "/fapi/v1/fundingRate"


def test_parse_funding_floors_late_stamps_and_keeps_recorded_values():
    recorded = load(FUNDING_FILE)
    frame = parse_funding(FUNDING_FILE.read_text())
    assert list(frame.columns) == FUNDING_COLUMNS and len(frame) == 10
    # 1782835200005 ms: settled 5 ms late; the event is the 16:00:00 settlement.
    assert recorded[2]["fundingTime"] == 1782835200005
    assert frame["event_time"].iloc[2] == pd.Timestamp("2026-06-30 16:00:00", tz="UTC")
    assert (frame["event_time"].dt.microsecond == 0).all()
    assert (frame["event_time"].diff().dropna() == pd.Timedelta(hours=8)).all()
    assert (frame["available_time"] == frame["event_time"]).all()
    assert frame["funding_rate"].tolist() == [float(r["fundingRate"]) for r in recorded]
    assert frame["mark_price"].tolist() == [float(r["markPrice"]) for r in recorded]
    assert set(frame["venue"]) == {"binance_usdm"} and set(frame["symbol"]) == {"BTC"}
    assert set(frame["venue_symbol"]) == {"BTCUSDT"} and set(frame["source"]) == {"live"}


def test_empty_mark_price_is_nan_not_zero():
    row = load(FUNDING_FILE)[0] | {"markPrice": ""}
    frame = parse_funding([row], source="replay")
    assert math.isnan(frame["mark_price"].iloc[0])
    assert frame["funding_rate"].iloc[0] == 0.00006175 and frame["source"].iloc[0] == "replay"


def test_bad_funding_rate_names_the_row():
    rows = load(FUNDING_FILE)
    rows[4]["fundingRate"] = "abc"
    with pytest.raises(MalformedPayloadError, match=r"row 4, field 'fundingRate'"):
        parse_funding(rows)


@pytest.mark.parametrize("limit, pages", [(4, 3), (5, 3)])
def test_fetch_funding_pages_forward_from_last_time_plus_1ms(venue_server, fast_http, limit, pages):
    recorded = load(FUNDING_FILE)
    start = pd.Timestamp(recorded[0]["fundingTime"], unit="ms", tz="UTC")
    end = pd.Timestamp("2026-07-03 00:00:01", tz="UTC")  # the last record is at 00:00:00
    with BinanceFundingClient(venue_server.url, limit=limit, **fast_http) as client:
        frame = client.fetch_funding("BTCUSDT", start, end)

    seen = venue_server.seen(FUNDING)
    assert len(seen) == pages  # with limit=5 the third page is the empty one that ends paging
    expected_starts = [recorded[0]["fundingTime"]] + [
        recorded[i]["fundingTime"] + 1 for i in range(limit - 1, 10, limit)][:pages - 1]
    assert [int(r.params["startTime"]) for r in seen] == expected_starts
    assert {r.params["endTime"] for r in seen} == {str(int(end.timestamp() * 1000) - 1)}
    assert {r.params["limit"] for r in seen} == {str(limit)}
    assert {r.params["symbol"] for r in seen} == {"BTCUSDT"}
    assert len(frame) == 10 and frame["event_time"].is_monotonic_increasing
    assert frame["funding_rate"].tolist() == [float(r["fundingRate"]) for r in recorded]


def test_fetch_funding_respects_the_range(venue_server, fast_http):
    with BinanceFundingClient(venue_server.url, **fast_http) as client:
        frame = client.fetch_funding("BTCUSDT", "2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z")
    assert frame["event_time"].tolist() == [
        pd.Timestamp(f"2026-07-01 {h:02d}:00", tz="UTC") for h in (0, 8, 16)]
    assert len(venue_server.seen(FUNDING)) == 1


def test_unmapped_symbol_fails_before_any_request(venue_server, fast_http):
    with BinanceFundingClient(venue_server.url, **fast_http) as client, \
            pytest.raises(UnknownInstrumentError):
        client.fetch_funding("DOGEUSDT", "2026-07-01", "2026-07-02")
    assert venue_server.requests == []
