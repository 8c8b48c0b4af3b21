"""CheckOutcome construction and its translation into a Dagster AssetCheckResult."""

from __future__ import annotations

import json
import math

import dagster as dg
import numpy as np
import pandas as pd

from omniwatch.checks.outcome import (
    MAX_LISTED_FAILURES,
    CheckOutcome,
    Severity,
    failure,
    failures_markdown,
    json_safe,
    make_outcome,
    to_asset_check_result,
)


def _failures(n: int) -> list[dict]:
    return [failure(symbol="BTC", event_time=pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=i),
                    column="close", value=float(i), reason="bad") for i in range(n)]


def test_outcome_caps_listed_failures_but_keeps_the_full_count():
    result = make_outcome("x_is_fine", "desc", _failures(120))
    assert not result.passed
    assert result.failed_count == 120
    assert len(result.failures) == MAX_LISTED_FAILURES
    assert result.failures[0]["event_time"] == "2024-01-01T00:00:00+00:00"


def test_outcome_without_failures_passes_and_is_frozen():
    result = make_outcome("x_is_fine", "desc", [], metadata={"rows_checked": np.int64(3)})
    assert result.passed and result.failed_count == 0
    assert result.metadata["rows_checked"] == 3 and type(result.metadata["rows_checked"]) is int
    try:
        result.passed = False  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("CheckOutcome must be frozen")


def test_json_safe_makes_cells_json_serialisable():
    values = {"nan": float("nan"), "nat": pd.NaT, "ts": pd.Timestamp("2024-01-01", tz="UTC"),
              "np": np.float64(1.5), "inf": math.inf, "nested": {"a": [np.int64(1), None]}}
    safe = json_safe(values)
    json.dumps(safe, allow_nan=False)
    assert safe["nan"] is None and safe["nat"] is None and safe["ts"] == "2024-01-01T00:00:00+00:00"


def test_asset_check_result_carries_severity_table_and_count():
    result = make_outcome("market_bars_are_fine", "desc", _failures(3), metadata={"ratio": 0.5, "by": {"BTC": 1}})
    check = to_asset_check_result(result, asset_key="market_bars")
    assert isinstance(check, dg.AssetCheckResult)
    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.check_name == "market_bars_are_fine"
    assert check.asset_key == dg.AssetKey("market_bars")
    assert check.metadata["failed_count"].value == 3
    table = check.metadata["failures"].value
    assert "| symbol | event_time | column | value | reason |" in table
    assert "| BTC | 2024-01-01T02:00:00+00:00 | close | 2.0 | bad |" in table
    assert check.metadata["by"].value == {"BTC": 1}


def test_warn_outcome_maps_to_warn_severity():
    result = make_outcome("coverage", "desc", _failures(1), severity=Severity.WARN)
    assert isinstance(result, CheckOutcome)
    assert to_asset_check_result(result).severity == dg.AssetCheckSeverity.WARN


def test_markdown_escapes_pipes_and_says_when_empty():
    assert failures_markdown([]) == "No failures."
    table = failures_markdown([failure(reason="a|b")])
    assert "a\\|b" in table


def test_an_infinite_failing_value_stays_visible_not_null():
    from omniwatch.checks.outcome import failure

    assert failure(value=float("inf"), reason="r")["value"] == "inf"
    assert failure(value=np.float64("-inf"), reason="r")["value"] == "-inf"
    assert failure(value=float("nan"), reason="r")["value"] is None
