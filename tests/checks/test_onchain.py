"""On-chain checks: non-negative values and point-in-time stamping."""

from __future__ import annotations

import pandas as pd

from omniwatch import frames
from omniwatch.checks.generic import check_no_duplicate_keys
from omniwatch.checks.onchain import check_onchain_non_negative, check_point_in_time

from . import builders as b


def test_clean_signals_pass():
    signals = b.onchain_signals()
    assert check_onchain_non_negative(signals).passed
    assert check_point_in_time(signals).passed


def test_negative_and_null_values_are_named_with_metric():
    signals = b.onchain_signals()
    i = signals.index[(signals["symbol"] == "ETH") & (signals["metric"] == "TxCnt")][1]
    signals.loc[i, "value"] = -5.0
    signals.loc[signals.index[0], "value"] = float("nan")
    result = check_onchain_non_negative(signals)
    assert not result.passed and result.failed_count == 2
    by_symbol = {f["symbol"]: f for f in result.failures}
    assert by_symbol["ETH"]["event_time"] == "2024-01-02T00:00:00+00:00"
    assert by_symbol["ETH"]["metric"] == "TxCnt" and by_symbol["ETH"]["value"] == -5.0
    assert by_symbol["BTC"]["reason"] == "value is null"
    assert check_onchain_non_negative(signals, allow_null=True).failed_count == 1


def test_available_before_event_breaks_point_in_time():
    signals = b.onchain_signals()
    i = signals.index[(signals["symbol"] == "BTC") & (signals["metric"] == "AdrActCnt")][2]
    signals.loc[i, "available_time"] = signals.loc[i, "event_time"]
    result = check_point_in_time(signals)
    assert not result.passed and result.failed_count == 1
    [hit] = result.failures
    assert (hit["symbol"], hit["event_time"], hit["metric"]) == ("BTC", "2024-01-03T00:00:00+00:00", "AdrActCnt")


def test_duplicate_metric_day_is_named():
    signals = b.onchain_signals()
    signals = pd.concat([signals, signals.iloc[[0]]], ignore_index=True)
    result = check_no_duplicate_keys(signals, "onchain_signals", frames.ONCHAIN_KEY)
    assert {(f["symbol"], f["event_time"], f["metric"]) for f in result.failures} == {
        ("BTC", "2024-01-01T00:00:00+00:00", "AdrActCnt")}
