"""Tone is on one scale in the events table: VADER's compound score for RSS, GDELT's AvgTone / 100."""

from __future__ import annotations

import pandas as pd
import pytest

from omniwatch.checks import run_checks
from tests.checks.test_events import NOW, _events


def _schema(frame: pd.DataFrame):
    outcomes = run_checks("news_events", frame, NOW - pd.Timedelta(days=2), NOW, NOW)
    return next(o for o in outcomes if o.name == "match_schema")


@pytest.mark.parametrize("value", [1.0, -1.0, 0.0, None])
def test_tone_on_the_pipeline_scale_or_missing_passes(value):
    assert _schema(_events(tone=(0, value))).passed


@pytest.mark.parametrize("value", [-4.38, 1.0001, 100.0])
def test_tone_off_the_scale_fails_the_schema_check_naming_the_event(value):
    outcome = _schema(_events(tone=(1, value)))
    assert not outcome.passed
    named = [f for f in outcome.failures if f.get("column") == "tone"]
    assert named and named[0]["source_id"] == "b" and "[-1, 1]" in named[0]["reason"]
