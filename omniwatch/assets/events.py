"""The events plane: news (GDELT, RSS) and SEC filings as canonical ``events``, behind checks.

Same discipline as the market plane: each batch is checked before it is written (a failed batch
is not written), every result goes to ``data_quality_audit``, writes are upserts on
(source, source_id), so a re-run never duplicates an event.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch import frames
from omniwatch.assets.catalog import labels, table_metadata
from omniwatch.assets.ingest import checked_write, partition_window
from omniwatch.checks import check_specs_for
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.event_sources import FilingsResource, NewsResource
from omniwatch.resources.market_sources import SourceBatch
from omniwatch.resources.warehouse import WarehouseResource

# 2: CryptoPanic headlines join GDELT and RSS in news_events; GDELT tone is AvgTone/100 (it was /1000).
CODE_VERSION = "2"  # the events assets' Dagster code_version: bump it when what they write changes
ARCHIVE_START = pd.Timestamp("2001-01-01", tz="UTC")  # EDGAR's electronic filings start in the 1990s


def _ingest_events(context: AssetExecutionContext, name: str, batch: SourceBatch,
                   warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp) -> Iterator:
    by_source = batch.frame.groupby("source").size().to_dict() if len(batch.frame) else {}
    return checked_write(context, name, batch, table="events", key=frames.EVENT_KEY, warehouse=warehouse,
                         start=start, end=end, code_version=CODE_VERSION, day_column="available_time",
                         metadata={"by_source": dg.MetadataValue.json({k: int(v) for k, v in by_source.items()})})


@dg.asset(check_specs=check_specs_for("news_events"), partitions_def=daily_partitions,
          backfill_policy=single_run_backfill, kinds={"python", "sql"}, code_version=CODE_VERSION,
          metadata=table_metadata("events"), **labels("shared", "raw"))
def news_events(context: AssetExecutionContext, news: NewsResource, warehouse: WarehouseResource) -> Iterator:
    """News items published in the window (GDELT events export with its own tone; RSS/Atom with a
    VADER lexicon tone); ``available_time`` is the publication time. Stored with track ``liquid``; the VC
    track reads the items linked to its companies."""
    start, end = partition_window(context)
    yield from _ingest_events(context, "news_events", news.fetch_news(start, end), warehouse, start, end)


@dg.asset(check_specs=check_specs_for("sec_filings"), partitions_def=daily_partitions,
          backfill_policy=single_run_backfill, kinds={"python", "sql"}, code_version=CODE_VERSION,
          metadata=table_metadata("events"), **labels("vc", "raw"))
def sec_filings(context: AssetExecutionContext, filings: FilingsResource,
                warehouse: WarehouseResource) -> Iterator:
    """SEC EDGAR filings (Form D private raises and others) accepted in the window;
    ``available_time`` is the SEC acceptance time, never the period date. Track ``vc``."""
    start, end = partition_window(context)
    yield from _ingest_events(context, "sec_filings", filings.fetch_filings(start, end), warehouse, start, end)


@dg.asset(check_specs=check_specs_for("sec_filings_archive"), kinds={"python", "sql"}, code_version=CODE_VERSION,
          metadata=table_metadata("events"), **labels("vc", "raw"))
def sec_filings_archive(context: AssetExecutionContext, filings: FilingsResource,
                        warehouse: WarehouseResource) -> Iterator:
    """Every filing accepted before the daily partitions start: the Form D history back to 2008
    that the VC track's point-in-time features count. One run instead of ~5,700 daily partitions
    (Dagster records about 20-35 ms of events per partition; see the README)."""
    start = ARCHIVE_START
    end = pd.Timestamp(daily_partitions.start).tz_convert("UTC")
    yield from _ingest_events(context, "sec_filings_archive", filings.fetch_filings(start, end), warehouse, start, end)
