from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omniwatch.modelops.records import Action, Outcome, Window
from omniwatch.modelops.rollback import consecutive_failures, evaluate_rollback
from omniwatch.modelops.thresholds import RollbackThresholds

T = RollbackThresholds()  # N = 3
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


def windows(*results: bool | None) -> list[tuple[Window, bool | None]]:
    return [(Window(start=DAY0 + timedelta(days=i), end=DAY0 + timedelta(days=i + 1), label=f"d{i}"), r)
            for i, r in enumerate(results)]


def test_consecutive_failures():
    assert consecutive_failures([]) == 0
    assert consecutive_failures([False, False]) == 2
    assert consecutive_failures([False, True, False]) == 1
    assert consecutive_failures([False, None, False, None]) == 2
    assert consecutive_failures([False, False, True, None]) == 0


def rollback(results, *, version="5", previous="4", role="candidate"):
    return evaluate_rollback(version, previous, results, T, model_name="tsmixer", role=role)


def test_three_failures_with_inconclusive_between_roll_back():
    d = rollback(windows(True, False, None, False, False))
    assert (d.action, d.outcome) == (Action.rollback, Outcome.rollback)
    assert d.metrics["windows_failed"] == 3
    assert d.metrics["trigger_rule"] == "consecutive_failed_windows>=3"
    assert d.metrics["failed_windows"] == ["d1", "d3", "d4"]
    assert d.metrics["previous_version"] == "4"
    assert "3" in d.reason and "d1" in d.reason
    assert (d.window.start, d.window.end) == (DAY0 + timedelta(days=1), DAY0 + timedelta(days=5))


def test_two_failures_is_no_action():
    d = rollback(windows(False, True, False, False))
    assert d.outcome == Outcome.no_action and d.metrics["windows_failed"] == 2


def test_candidate_rollback_without_previous_still_withdraws():
    d = rollback(windows(False, False, False), previous=None, role="candidate")
    assert d.outcome == Outcome.rollback and "withdrawn" in d.reason


def test_champion_rollback_needs_previous():
    d = rollback(windows(False, False, False), previous=None, role="champion")
    assert d.outcome == Outcome.skip and "no previous version to return to" in d.reason
    d = rollback(windows(False, False, False), role="champion")
    assert d.outcome == Outcome.rollback and "v4" in d.reason


def test_no_version_skips_and_bad_role_raises():
    assert rollback(windows(False, False, False), version=None).outcome == Outcome.skip
    with pytest.raises(ValueError):
        rollback(windows(False), role="challenger")
