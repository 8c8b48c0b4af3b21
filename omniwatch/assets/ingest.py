"""Check, then write: the one way a raw batch reaches the warehouse.

Every blocking check runs on the batch before it is written and every result goes to
``data_quality_audit``. A batch that fails a blocking check is not written (stored rows are
never overwritten by bad input) and the failed check stops downstream steps of the run. Writes
are upserts on the natural key, so re-running a window never duplicates rows.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.checks import run_checks, to_asset_check_result
from omniwatch.resources.market_sources import SourceBatch
from omniwatch.resources.warehouse import WarehouseResource


def partition_window(context: AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's partition (or backfill range) as UTC timestamps, end exclusive."""
    window = context.partition_time_window
    return pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")


def checked_write(
    context: AssetExecutionContext, name: str, batch: SourceBatch, *, table: str, key: Sequence[str],
    warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp,
    thresholds: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
) -> dg.MaterializeResult:
    """Run ``name``'s checks on ``batch``, audit them, upsert into ``table`` unless one blocks."""
    frame = batch.frame
    outcomes = run_checks(name, frame, window_start=start, window_end=end, now=pd.Timestamp.now(tz="UTC"),
                          **(thresholds or {}))
    warehouse.record_checks(name, outcomes, start.to_pydatetime(), end.to_pydatetime(), context.run_id)
    blocked = [o.name for o in outcomes if not o.passed and o.severity == "ERROR"]
    if blocked:
        written = 0
        context.log.error(f"{name}: blocking checks failed ({', '.join(blocked)}); the {len(frame)} fetched "
                          f"rows for {start:%Y-%m-%d}..{end:%Y-%m-%d} were not written")
    else:
        written = warehouse.upsert(table, frame, list(key))
    notes = list(batch.notes) or ["the source covered everything requested"]
    if frame.empty:
        notes.append("no rows: the source holds no data for this window, none were invented")
    result_metadata = {
        "rows_fetched": dg.MetadataValue.int(len(frame)),
        "rows_written": dg.MetadataValue.int(written),
        "written": dg.MetadataValue.bool(not blocked),
        "source": dg.MetadataValue.text(batch.source),
        "window": dg.MetadataValue.text(f"{start.isoformat()} .. {end.isoformat()}"),
        "coverage": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes)),
        **(metadata or {}),
    }
    if blocked:
        result_metadata["blocked_by"] = dg.MetadataValue.json(blocked)
    return dg.MaterializeResult(metadata=result_metadata,
                                check_results=[to_asset_check_result(o) for o in outcomes])
