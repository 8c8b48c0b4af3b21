"""The events plane: news (GDELT, RSS) and SEC filings as canonical ``events``, behind checks.

Same discipline as the market plane: each batch is checked before it is written (a failed batch
is not written), every result goes to ``data_quality_audit``, writes are upserts on
(source, source_id), so a re-run never duplicates an event.
"""

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch import frames
from omniwatch.checks import check_specs_for, run_checks, to_asset_check_result
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.event_sources import FilingsResource, NewsResource
from omniwatch.resources.market_sources import SourceBatch
from omniwatch.resources.warehouse import WarehouseResource

ARCHIVE_START = pd.Timestamp("2001-01-01", tz="UTC")  # EDGAR's electronic filings start in the 1990s


def _window(context: AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    w = context.partition_time_window
    return pd.Timestamp(w.start).tz_convert("UTC"), pd.Timestamp(w.end).tz_convert("UTC")


def _ingest_events(context: AssetExecutionContext, name: str, batch: SourceBatch,
                   warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp) -> dg.MaterializeResult:
    frame = batch.frame
    outcomes = run_checks(name, frame, window_start=start, window_end=end, now=pd.Timestamp.now(tz="UTC"))
    warehouse.record_checks(name, outcomes, start.to_pydatetime(), end.to_pydatetime(), context.run_id)
    blocked = [o.name for o in outcomes if not o.passed and o.severity == "ERROR"]
    written = 0 if blocked else warehouse.upsert("events", frame, frames.EVENT_KEY)
    by_source = frame.groupby("source").size().to_dict() if len(frame) else {}
    metadata = {
        "rows_fetched": dg.MetadataValue.int(len(frame)),
        "rows_written": dg.MetadataValue.int(written),
        "written": dg.MetadataValue.bool(not blocked),
        "by_source": dg.MetadataValue.json({k: int(v) for k, v in by_source.items()}),
        "source": dg.MetadataValue.text(batch.source),
        "window": dg.MetadataValue.text(f"{start.isoformat()} .. {end.isoformat()}"),
        "coverage": dg.MetadataValue.md("\n".join(f"- {n}" for n in batch.notes) or "- complete"),
    }
    if blocked:
        metadata["blocked_by"] = dg.MetadataValue.json(blocked)
        context.log.error(f"{name}: blocking checks failed ({', '.join(blocked)}); nothing written")
    return dg.MaterializeResult(metadata=metadata, check_results=[to_asset_check_result(o) for o in outcomes])


@dg.asset(check_specs=check_specs_for("news_events"), partitions_def=daily_partitions,
          backfill_policy=single_run_backfill, kinds={"python", "sql"})
def news_events(context: AssetExecutionContext, news: NewsResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """News items published in the window (GDELT events export with its own tone; RSS/Atom with a
    VADER lexicon tone); ``available_time`` is the publication time. Track ``liquid``."""
    start, end = _window(context)
    return _ingest_events(context, "news_events", news.fetch_news(start, end), warehouse, start, end)


@dg.asset(check_specs=check_specs_for("sec_filings"), partitions_def=daily_partitions,
          backfill_policy=single_run_backfill, kinds={"python", "sql"})
def sec_filings(context: AssetExecutionContext, filings: FilingsResource,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    """SEC EDGAR filings (Form D private raises and others) accepted in the window;
    ``available_time`` is the SEC acceptance time, never the period date. Track ``vc``."""
    start, end = _window(context)
    return _ingest_events(context, "sec_filings", filings.fetch_filings(start, end), warehouse, start, end)


@dg.asset(check_specs=check_specs_for("sec_filings_archive"), kinds={"python", "sql"})
def sec_filings_archive(context: AssetExecutionContext, filings: FilingsResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every filing accepted before the daily partitions start: the Form D history back to 2008
    that the VC track's point-in-time features count. One run instead of ~5,700 daily partitions
    (Dagster records about 20-35 ms of events per partition; see the README)."""
    start = ARCHIVE_START
    end = pd.Timestamp(daily_partitions.start).tz_convert("UTC")
    return _ingest_events(context, "sec_filings_archive", filings.fetch_filings(start, end), warehouse, start, end)
