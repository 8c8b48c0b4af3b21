"""Checks that apply to every canonical table: unique natural keys, no nulls where values are
required, and values with the right sign.

Warehouse writes are upserts on the natural key, so two rows with one key in a batch would
silently overwrite each other; a null or negative price would flow into features and backtests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from omniwatch.checks.common import missing_columns, row_failures
from omniwatch.checks.outcome import CheckOutcome, failure, make_outcome


def _missing_column_outcome(name: str, description: str, missing: list[str], rows: int) -> CheckOutcome:
    failures = [failure(column=c, reason="column needed by this check is missing") for c in missing]
    return make_outcome(name, description, failures, metadata={"rows_checked": rows, "missing_columns": missing})


def check_no_duplicate_keys(frame: pd.DataFrame, asset_name: str, key: Sequence[str]) -> CheckOutcome:
    """No two rows share the natural ``key``. ``failed_count`` counts every row whose key occurs
    more than once; each failure names the symbol, event time and how often the key occurs."""
    name = "have_no_duplicate_keys"
    description = f"each {asset_name} row has a unique natural key ({', '.join(key)})"
    if missing := missing_columns(frame, key):
        return _missing_column_outcome(name, description, missing, len(frame))
    data = frame.reset_index(drop=True)
    occurrences = data.groupby(list(key), dropna=False, sort=False)[key[0]].transform("size")
    data = data.assign(_occurrences=occurrences.to_numpy())
    dup_mask = (data["_occurrences"] > 1).to_numpy()
    duplicated_keys = int(data.loc[dup_mask, list(key)].drop_duplicates().shape[0])
    extra = [c for c in key if c not in ("symbol", "event_time")]
    count, failures = row_failures(
        data,
        dup_mask,
        "event_time" if "event_time" in key else key[-1],
        lambda r: f"natural key occurs {int(r['_occurrences'])} times",
        value_column=key[-1],
        extra_columns=extra,
    )
    return make_outcome(
        name,
        description,
        failures,
        failed_count=count,
        metadata={"rows_checked": len(data), "key": list(key), "duplicated_keys": duplicated_keys},
    )


def _null_reason(column: str) -> Callable[[pd.Series], str]:
    return lambda _row: f"{column} is null"


def check_required_not_null(
    frame: pd.DataFrame, asset_name: str, required_columns: Sequence[str]
) -> CheckOutcome:
    """No nulls in ``required_columns``. ``failed_count`` counts null cells; each failure names the
    row's symbol and event time and the null column."""
    name = "have_no_null_required_values"
    description = f"{asset_name} has no nulls in {', '.join(required_columns)}"
    present = [c for c in required_columns if c in frame.columns]
    data = frame.reset_index(drop=True)
    failures, total, per_column = [], 0, {}
    for column in present:
        count, found = row_failures(
            data, data[column].isna(), column, _null_reason(column)
        )
        per_column[column] = count
        total += count
        failures.extend(found)
    failures.sort(key=lambda f: (str(f["symbol"]), str(f["event_time"]), str(f["column"])))
    for column in missing_columns(frame, required_columns):
        failures.insert(0, failure(column=column, reason="required column is missing"))
        total += 1
    return make_outcome(
        name,
        description,
        failures,
        failed_count=total,
        metadata={"rows_checked": len(data), "null_counts": {k: v for k, v in per_column.items() if v}},
    )


def check_values_signed(
    frame: pd.DataFrame,
    name: str,
    description: str,
    columns: Sequence[str],
    *,
    strictly_positive: bool,
    allow_null: bool = False,
) -> CheckOutcome:
    """Every value in ``columns`` is > 0 (``strictly_positive``) or >= 0; nulls fail unless
    ``allow_null``. ``failed_count`` counts failing cells."""
    if missing := missing_columns(frame, columns):
        return _missing_column_outcome(name, description, missing, len(frame))
    data = frame.reset_index(drop=True)
    op = ">" if strictly_positive else ">="
    failures, total, per_column = [], 0, {}
    for column in columns:
        values = pd.to_numeric(data[column], errors="coerce").astype("float64")
        raw_null = data[column].isna().to_numpy()
        bad = (values <= 0) if strictly_positive else (values < 0)
        bad = bad.fillna(False).to_numpy(dtype=bool)
        unparsable = values.isna().to_numpy() & ~raw_null
        mask = bad | unparsable | (raw_null if not allow_null else np.zeros(len(data), dtype=bool))

        def reason(r: pd.Series, c: str = column) -> str:
            return f"{c} is null" if pd.isna(r[c]) else f"{c} {r[c]} is not {op} 0"

        count, found = row_failures(data, mask, column, reason, extra_columns=["venue_symbol", "metric"])
        per_column[column] = count
        total += count
        failures.extend(found)
    failures.sort(key=lambda f: (str(f["symbol"]), str(f["event_time"]), str(f["column"])))
    return make_outcome(
        name,
        description,
        failures,
        failed_count=total,
        metadata={
            "rows_checked": len(data),
            "rule": f"value {op} 0" + ("" if allow_null else ", not null"),
            "failing_by_column": per_column,
        },
    )
