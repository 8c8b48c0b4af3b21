"""Blocking checks on events: each corruption fails its check and names the event."""

from __future__ import annotations

import pandas as pd
import pytest

from omniwatch.checks import run_checks

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def _events(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "source": ["rss", "rss", "edgar"], "source_id": ["a", "b", "0001-24-000001"],
        "track": ["liquid", "liquid", "vc"],
        "event_type": ["news", "news", "D"], "title": ["Bitcoin rallies", "Ether slips", "Form D: Femasys Inc"],
        "body": ["", "", ""], "url": ["u1", "u2", "u3"],
        "event_time": pd.to_datetime(["2024-12-30T10:00Z", "2024-12-30T11:00Z", "2024-12-30T00:00Z"], utc=True),
        "available_time": pd.to_datetime(["2024-12-30T10:05Z", "2024-12-30T11:02Z", "2024-12-30T16:30Z"], utc=True),
        "tone": [0.4, -0.2, None], "payload": [{}, {}, {"cik": "0001339005"}],
    })
    for column, (row, value) in overrides.items():
        frame.loc[row, column] = value
    return frame


def _run(frame: pd.DataFrame) -> dict:
    outcomes = run_checks("news_events", frame, NOW - pd.Timedelta(days=2), NOW, NOW)
    return {o.name.removeprefix("news_events_"): o for o in outcomes}


def test_clean_events_pass_every_check():
    assert all(o.passed for o in _run(_events()).values())


@pytest.mark.parametrize(("column", "row", "value", "check"), [
    ("source_id", 1, "a", "have_no_duplicate_source_ids"),
    ("title", 0, "  ", "have_text"),
    ("available_time", 2, pd.Timestamp("2025-02-01", tz="UTC"), "have_no_future_timestamps"),
    ("event_time", 1, pd.NaT, "have_parseable_dates"),
    ("source", 0, "twitter", "match_schema"),
])
def test_each_corruption_fails_its_check_and_names_the_event(column, row, value, check):
    frame = _events(**{column: (row, value)})
    outcome = _run(frame)[check]
    assert not outcome.passed and outcome.failed_count >= 1
    named = {f.get("source_id") for f in outcome.failures}
    assert frame.loc[row, "source_id"] in named


def test_sec_filings_have_the_same_checks():
    outcomes = run_checks("sec_filings", _events(), NOW, NOW, NOW)
    assert [o.name for o in outcomes][0] == "match_schema" and all(o.passed for o in outcomes)
