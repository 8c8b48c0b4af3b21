"""Checks of daily on-chain signals: non-negative values and point-in-time stamping.

On-chain metrics (active addresses, transaction counts, fees, hash rate) are counts or sums and
cannot be negative. Point-in-time features filter on ``available_time``; a row whose
``available_time`` is not after its ``event_time`` claims we knew a day's total before the day
ended, which would leak the future into every feature snapshot built from it.
"""

from __future__ import annotations

import pandas as pd

from omniwatch.checks.common import missing_columns, row_failures
from omniwatch.checks.generic import check_values_signed
from omniwatch.checks.outcome import CheckOutcome, failure, iso, make_outcome


def check_onchain_non_negative(frame: pd.DataFrame, *, allow_null: bool = False) -> CheckOutcome:
    """Every on-chain ``value`` is >= 0 (and present unless ``allow_null``); failures name the
    symbol, day and metric."""
    return check_values_signed(
        frame,
        "are_non_negative",
        "every on-chain value is present and >= 0",
        ["value"],
        strictly_positive=False,
        allow_null=allow_null,
    )


def check_point_in_time(frame: pd.DataFrame) -> CheckOutcome:
    """Every row has ``available_time > event_time`` (both present); failures name the symbol,
    metric, event time and the offending available time."""
    name = "are_point_in_time"
    description = "every on-chain row becomes available strictly after its event time"
    if missing := missing_columns(frame, ["event_time", "available_time"]):
        failures = [failure(column=c, reason="column missing") for c in missing]
        return make_outcome(name, description, failures, metadata={"rows_checked": len(frame)})
    data = frame.reset_index(drop=True)
    ok = data["available_time"] > data["event_time"]
    mask = ~ok.fillna(False).to_numpy(dtype=bool)

    def reason(row: pd.Series) -> str:
        if pd.isna(row["available_time"]) or pd.isna(row["event_time"]):
            return "event_time or available_time is null"
        return f"available_time {iso(row['available_time'])} is not after event_time"

    count, failures = row_failures(data, mask, "available_time", reason, extra_columns=["metric"])
    return make_outcome(name, description, failures, failed_count=count, metadata={"rows_checked": len(data)})
