"""Shared helpers: time arguments and range compression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from omniwatch.checks.common import compress_ranges, expected_grid, to_timedelta, utc


def test_time_arguments_become_utc_timestamps():
    assert utc("2024-01-01T02:00+02:00") == pd.Timestamp("2024-01-01T00:00Z")
    assert utc(datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is not None
    assert str(utc("2024-01-01").tz) == "UTC"


def test_durations_accept_interval_labels_numbers_and_timedeltas():
    assert to_timedelta("1d") == pd.Timedelta(days=1)
    assert to_timedelta("15m") == pd.Timedelta(minutes=15)
    assert to_timedelta(2) == pd.Timedelta(hours=2)
    assert to_timedelta(timedelta(minutes=90)) == to_timedelta("90min")


def test_missing_times_fold_into_contiguous_ranges():
    step = pd.Timedelta(hours=1)
    times = pd.to_datetime(["2024-01-01T01:00Z", "2024-01-01T02:00Z", "2024-01-01T05:00Z"])
    assert compress_ranges(times, step) == [
        (times[0], times[1], 2), (times[2], times[2], 1)]
    assert compress_ranges([], step) == []


def test_expected_grid_aligns_to_utc_midnight():
    grid = expected_grid(utc("2024-01-01T03:00Z"), utc("2024-01-02T00:00Z"), pd.Timedelta(hours=8))
    assert list(grid.strftime("%H")) == ["08", "16", "00"]
