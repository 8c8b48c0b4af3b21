"""The Great Expectations OHLCV suite: corrupt bars are named, clean ones pass, and GX stays out
of module import."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from omniwatch import frames
from omniwatch.checks.expectations import build_ohlcv_suite, check_ohlcv_sanity

from . import builders as b

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_checks_does_not_import_great_expectations():
    code = ("import sys, omniwatch.checks, omniwatch.checks.expectations; "
            "print('great_expectations' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_suite_holds_the_ohlcv_rules():
    suite = build_ohlcv_suite()
    kinds = sorted(e.expectation_type for e in suite.expectations)
    assert kinds.count("expect_column_pair_values_a_to_be_greater_than_b") == 5
    assert kinds.count("expect_column_values_to_be_between") == 1


def test_clean_bars_pass():
    result = check_ohlcv_sanity(b.market_bars())
    assert result.passed, result.failures
    assert result.metadata["rows_checked"] == 18 and result.metadata["gx_ran"] is True


def test_high_below_low_and_negative_volume_are_named():
    bars = b.market_bars()
    i = b.row_index(bars, "BTC", "2024-01-01T03:00Z")
    bars.loc[i, "high"] = bars.loc[i, "low"] - 10.0
    bars.loc[b.row_index(bars, "SOL", "2024-01-01T05:00Z"), "volume"] = -1.0
    result = check_ohlcv_sanity(bars)
    assert not result.passed
    assert b.named(result.failures, "BTC", "2024-01-01T03:00Z", "high")
    assert b.named(result.failures, "SOL", "2024-01-01T05:00Z", "volume")
    volume = next(f for f in result.failures if f["column"] == "volume")
    assert volume["value"] == -1.0 and volume["rule"] == "volume >= 0.0"
    # the broken high is below low, open and close: three rules fail on that bar
    assert sorted(f["rule"] for f in result.failures if f["symbol"] == "BTC") == [
        "high >= close", "high >= low", "high >= open"]
    assert result.failed_count == 4


def test_close_above_high_is_named():
    bars = b.market_bars()
    bars.loc[b.row_index(bars, "ETH", "2024-01-01T00:00Z"), "close"] = 1e9
    result = check_ohlcv_sanity(bars)
    assert [(f["symbol"], f["event_time"], f["rule"]) for f in result.failures] == [
        ("ETH", "2024-01-01T00:00:00+00:00", "high >= close")]


def test_nulls_are_left_to_the_null_check():
    bars = b.market_bars()
    bars.loc[0, "close"] = np.nan
    assert check_ohlcv_sanity(bars).passed


def test_empty_frame_passes_without_running_gx():
    result = check_ohlcv_sanity(frames.empty_frame(frames.MARKET_BAR_COLUMNS))
    assert result.passed and result.metadata == {"rows_checked": 0, "gx_ran": False, "listed_failures": 0}


def test_forty_thousand_bars_finish(capsys):
    hours = 13_000
    bars = b.market_bars(hours=hours)
    bars.loc[b.row_index(bars, "SOL", "2025-01-01T00:00Z"), "low"] = 1e9
    started = time.perf_counter()
    result = check_ohlcv_sanity(bars)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n[GX OHLCV suite] {len(bars):,} rows in {elapsed:.2f} s "
              f"(GX validation {result.metadata['gx_seconds']} s)")
    assert result.metadata["rows_checked"] == 3 * hours
    assert result.failed_count == 3  # low above open, close and high on that one bar
    assert {f["symbol"] for f in result.failures} == {"SOL"}


def test_flat_bar_with_equal_prices_passes():
    bars = b.market_bars()
    i = b.row_index(bars, "BTC", "2024-01-01T02:00Z")
    bars.loc[i, ["open", "high", "low", "close"]] = 42_000.0
    bars.loc[i, "volume"] = 0.0
    assert check_ohlcv_sanity(bars).passed
