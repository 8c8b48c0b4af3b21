"""Coin Metrics connector against a v4-format fixture built from real community-API rows."""

from __future__ import annotations

import pandas as pd
import pytest

from omniwatch.connectors.coinmetrics import CoinMetricsClient, parse_asset_metrics
from omniwatch.connectors.http import MalformedPayloadError
from omniwatch.frames import ONCHAIN_COLUMNS

from .fake_venues import METRICS_FILE, load

ASSET_METRICS = "/v4/timeseries/asset-metrics"


def recorded(day: str) -> dict:
    return next(r for r in load(METRICS_FILE)["data"] if r["time"].startswith(day))


def test_fetch_follows_next_page_url_and_keeps_values(venue_server, fast_http):
    with CoinMetricsClient(f"{venue_server.url}/v4", page_size=5, **fast_http) as client:
        frame = client.fetch_asset_metrics("btc", ["AdrActCnt", "PriceUSD"],
                                           "2024-04-10", "2024-04-26")
    seen = venue_server.seen(ASSET_METRICS)
    assert len(seen) == 4  # 16 days in pages of 5
    first = seen[0].params
    assert first["assets"] == "btc" and first["metrics"] == "AdrActCnt,PriceUSD"
    assert first["frequency"] == "1d" and first["page_size"] == "5"
    assert first["start_time"] == "2024-04-10T00:00:00Z" and first["end_time"] == "2024-04-26T00:00:00Z"
    assert first["end_inclusive"] == "false" and "next_page_token" not in first
    tokens = [r.params.get("next_page_token") for r in seen[1:]]
    assert all(tokens) and len(set(tokens)) == 3
    assert all(r.params["metrics"] == "AdrActCnt,PriceUSD" for r in seen[1:])

    assert list(frame.columns) == ONCHAIN_COLUMNS and len(frame) == 32
    days = pd.date_range("2024-04-10", "2024-04-25", freq="D", tz="UTC")
    for metric in ("AdrActCnt", "PriceUSD"):
        part = frame[frame["metric"] == metric]
        assert part["event_time"].tolist() == list(days)
        assert part["value"].tolist() == [float(recorded(d.strftime("%Y-%m-%d"))[metric])
                                          for d in days]
    assert (frame["available_time"] - frame["event_time"] == pd.Timedelta(days=1)).all()
    assert set(frame["provider"]) == {"coinmetrics"} and set(frame["symbol"]) == {"BTC"}
    halving_day = frame[(frame["metric"] == "AdrActCnt")
                        & (frame["event_time"] == pd.Timestamp("2024-04-20", tz="UTC"))]
    assert halving_day["value"].item() == 509709.0


def test_missing_metric_days_are_skipped_not_zero(venue_server, fast_http):
    # PriceUSD starts on 2010-07-18 in Coin Metrics' BTC history.
    with CoinMetricsClient(f"{venue_server.url}/v4", **fast_http) as client:
        frame = client.fetch_asset_metrics("btc", ["PriceUSD", "TxCnt"], "2010-07-14", "2010-07-22")
    price = frame[frame["metric"] == "PriceUSD"]
    assert price["event_time"].min() == pd.Timestamp("2010-07-18", tz="UTC")
    assert len(price) == 4 and (price["value"] > 0).all()
    assert len(frame[frame["metric"] == "TxCnt"]) == 8
    assert price["value"].iloc[0] == float(recorded("2010-07-18")["PriceUSD"])
    assert len(venue_server.seen(ASSET_METRICS)) == 1


def test_parse_skips_null_and_empty_values():
    payload = {"data": [recorded("2024-04-16") | {"PriceUSD": None, "TxCnt": ""}]}
    frame = parse_asset_metrics(payload, ["AdrActCnt", "PriceUSD", "TxCnt"], source="replay")
    assert frame["metric"].tolist() == ["AdrActCnt"]
    assert frame["value"].item() == 941086.0
    assert frame["event_time"].item() == pd.Timestamp("2024-04-16", tz="UTC")
    assert frame["available_time"].item() == pd.Timestamp("2024-04-17", tz="UTC")
    assert frame["source"].item() == "replay"


def test_non_numeric_metric_names_row_and_metric():
    rows = [recorded("2024-04-15"), recorded("2024-04-16") | {"HashRate": "fast"}]
    with pytest.raises(MalformedPayloadError, match=r"row 1, field 'HashRate'") as err:
        parse_asset_metrics({"data": rows}, ["AdrActCnt", "HashRate"])
    assert (err.value.row, err.value.field) == (1, "HashRate")


def test_payload_without_data_array_is_malformed():
    with pytest.raises(MalformedPayloadError, match="'data' array"):
        parse_asset_metrics({"error": {"type": "forbidden"}}, ["AdrActCnt"])
