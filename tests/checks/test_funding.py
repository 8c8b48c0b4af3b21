"""Funding-rate checks: bounds (blocking) and settlement coverage (report-only)."""

from __future__ import annotations

import pandas as pd

from omniwatch import frames
from omniwatch.checks.funding import check_funding_coverage, check_funding_rate_bounds
from omniwatch.checks.generic import check_no_duplicate_keys
from omniwatch.checks.outcome import Severity

from . import builders as b


def test_rates_within_bounds_pass():
    assert check_funding_rate_bounds(b.funding_rates()).passed


def test_out_of_bounds_and_null_rates_are_named():
    rates = b.funding_rates()
    rates.loc[b.row_index(rates, "ETH", "2024-01-01T16:00Z"), "funding_rate"] = -0.075
    rates.loc[b.row_index(rates, "BTC", "2024-01-02T08:00Z"), "funding_rate"] = float("nan")
    result = check_funding_rate_bounds(rates)
    assert not result.passed and result.failed_count == 2
    assert [(f["symbol"], f["event_time"], f["value"]) for f in result.failures] == [
        ("BTC", "2024-01-02T08:00:00+00:00", None), ("ETH", "2024-01-01T16:00:00+00:00", -0.075)]


def test_duplicate_settlement_is_named():
    rates = b.funding_rates()
    rates = pd.concat([rates, rates.iloc[[3]]], ignore_index=True)
    result = check_no_duplicate_keys(rates, "funding_rates", frames.FUNDING_KEY)
    assert {(f["symbol"], f["event_time"]) for f in result.failures} == {("BTC", "2024-01-02T00:00:00+00:00")}


def test_full_coverage_passes_even_with_millisecond_late_stamps():
    rates = b.funding_rates()
    rates["event_time"] = rates["event_time"] + pd.Timedelta(milliseconds=5)
    result = check_funding_coverage(rates, "2024-01-01T00:00Z", "2024-01-04T00:00Z", "2024-01-03T23:00Z")
    assert result.passed, result.failures
    assert result.metadata["expected_per_series"] == 9 and result.severity is Severity.WARN


def sol_gap_sample() -> pd.DataFrame:
    """Nov 2024 - Feb 2025 funding for three symbols; SOL has no rows from 2024-12-04 00:00 until
    2025-02-01 00:00, as in the bundled real sample."""
    rates = b.funding_rates(start=b.ts("2024-11-01T00:00Z"), periods=3 * 120)
    gap = (rates["symbol"] == "SOL") & (rates["event_time"] >= b.ts("2024-12-04T00:00Z")) & (
        rates["event_time"] < b.ts("2025-02-01T00:00Z"))
    return rates.loc[~gap].reset_index(drop=True)


def test_sol_gap_is_reported_as_missing_with_warn_severity():
    rates = sol_gap_sample()
    result = check_funding_coverage(rates, "2024-11-01T00:00Z", "2025-03-01T00:00Z", "2026-01-01T00:00Z")
    assert not result.passed and result.severity is Severity.WARN
    [gap] = result.failures
    assert gap["symbol"] == "SOL"
    assert gap["event_time"] == "2024-12-04T00:00:00+00:00" and gap["end_time"] == "2025-01-31T16:00:00+00:00"
    assert gap["value"] == 59 * 3 == result.failed_count  # 28 December days + 31 January days
    assert result.metadata["missing_by_series"] == {"BTC": 0, "ETH": 0, "SOL": 177}
    assert len(rates) == 3 * 360 - 177  # reported, not filled


def test_coverage_counts_only_settlements_that_happened():
    rates = b.funding_rates(periods=3)  # 00:00, 08:00, 16:00 on 2024-01-01
    assert check_funding_coverage(rates, "2024-01-01T00:00Z", "2024-01-02T00:00Z", "2024-01-01T20:00Z").passed
    late = check_funding_coverage(rates, "2024-01-01T00:00Z", "2024-01-03T00:00Z", "2024-01-02T08:00Z")
    assert [(f["symbol"], f["event_time"], f["value"]) for f in late.failures] == [
        (s, "2024-01-02T00:00:00+00:00", 2) for s in b.SYMBOLS]


def test_empty_batch_reports_every_settlement_missing():
    empty = frames.empty_frame(frames.FUNDING_COLUMNS)
    result = check_funding_coverage(empty, "2024-01-01T00:00Z", "2024-01-02T00:00Z", "2024-01-05T00:00Z")
    assert not result.passed and result.failed_count == 3 and result.severity is Severity.WARN
