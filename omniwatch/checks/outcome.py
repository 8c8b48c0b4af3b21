"""The typed result every data-quality check returns, and its translation to Dagster.

A check is a pure function over a pandas frame that tests one property and returns a
:class:`CheckOutcome`. The outcome names what failed and where (symbol, event time, column,
value, reason) so that the Dagster UI, via :func:`to_asset_check_result`, shows the exact rows
instead of a bare "failed". Only the first :data:`MAX_LISTED_FAILURES` failures are listed;
``failed_count`` always holds the full count.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from omniwatch.jsonsafe import json_safe

if TYPE_CHECKING:
    from dagster import AssetCheckResult, AssetKey

MAX_LISTED_FAILURES = 50
FAILURE_FIELDS = ("symbol", "event_time", "column", "value", "reason")


class Severity(enum.StrEnum):
    """ERROR outcomes block downstream steps when the check is declared blocking; WARN reports."""

    ERROR = "ERROR"
    WARN = "WARN"


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict on one batch.

    ``failures`` holds at most :data:`MAX_LISTED_FAILURES` small JSON-able dicts with at least the
    keys of :data:`FAILURE_FIELDS`; ``failed_count`` is the full number of failing items (rows,
    cells or missing bars, as the check's description says). ``metadata`` holds JSON-able figures.
    """

    name: str
    passed: bool
    severity: Severity
    description: str
    failed_count: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def iso(value: Any) -> str | None:
    """ISO-8601 text of a timestamp (None for missing), for failure dicts and metadata."""
    if value is None or value is pd.NaT:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    return str(value)


def _evidence(value: Any) -> Any:
    """A failing cell as JSON: an infinite number stays visible as "inf"/"-inf" (``json_safe``
    would make it null, which reads as a missing value, the opposite finding)."""
    if isinstance(value, (float, np.floating)) and np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return json_safe(value)


def failure(
    *,
    symbol: Any = None,
    event_time: Any = None,
    column: str | None = None,
    value: Any = None,
    reason: str,
    **extra: Any,
) -> dict[str, Any]:
    """A failure entry with the standard keys (symbol, event_time ISO, column, value, reason) and
    any extra JSON-able detail (venue_symbol, end_time, ...)."""
    entry: dict[str, Any] = {
        "symbol": json_safe(symbol),
        "event_time": iso(event_time),
        "column": column,
        "value": _evidence(value),
        "reason": reason,
    }
    entry.update({k: json_safe(v) for k, v in extra.items()})
    return entry


def make_outcome(
    name: str,
    description: str,
    failures: Sequence[dict[str, Any]],
    *,
    failed_count: int | None = None,
    severity: Severity = Severity.ERROR,
    passed: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> CheckOutcome:
    """Build a :class:`CheckOutcome`, capping the listed failures and making metadata JSON-able.

    ``passed`` defaults to "no failures"; ``failed_count`` defaults to ``len(failures)``.
    """
    count = len(failures) if failed_count is None else int(failed_count)
    meta = {str(k): json_safe(v) for k, v in (metadata or {}).items()}
    meta.setdefault("listed_failures", min(len(failures), MAX_LISTED_FAILURES))
    return CheckOutcome(
        name=name,
        passed=(count == 0) if passed is None else bool(passed),
        severity=Severity(severity),
        description=description,
        failed_count=count,
        failures=[dict(f) for f in list(failures)[:MAX_LISTED_FAILURES]],
        metadata=meta,
    )


def failures_markdown(failures: Iterable[Mapping[str, Any]], limit: int = MAX_LISTED_FAILURES) -> str:
    """A markdown table of failures (standard columns first, then any extras)."""
    rows = list(failures)[:limit]
    if not rows:
        return "No failures."
    extras = sorted({k for r in rows for k in r} - set(FAILURE_FIELDS))
    columns = [*FAILURE_FIELDS, *extras]

    def cell(v: Any) -> str:
        text = "" if v is None else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def to_asset_check_result(
    outcome: CheckOutcome, asset_key: AssetKey | str | Sequence[str] | None = None
) -> AssetCheckResult:
    """Translate an outcome into a ``dagster.AssetCheckResult`` named after the check.

    Metadata carries ``failed_count``, a markdown table of the listed failures (``failures``) and
    every figure from the outcome's metadata, so the UI shows which symbols and timestamps failed.
    """
    import dagster as dg  # imported here so the check functions stay usable without Dagster loaded

    metadata: dict[str, Any] = {
        "failed_count": dg.MetadataValue.int(outcome.failed_count),
        "failures": dg.MetadataValue.md(failures_markdown(outcome.failures)),
    }
    for key, value in outcome.metadata.items():
        if isinstance(value, (dict, list)):
            metadata[key] = dg.MetadataValue.json(value)
        elif value is None:
            metadata[key] = dg.MetadataValue.null()
        elif isinstance(value, bool):
            metadata[key] = dg.MetadataValue.bool(value)
        else:
            metadata[key] = value
    return dg.AssetCheckResult(
        passed=outcome.passed,
        asset_key=asset_key,
        check_name=outcome.name,
        severity=dg.AssetCheckSeverity(outcome.severity.value),
        description=outcome.description,
        metadata=metadata,
    )
