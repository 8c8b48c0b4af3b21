"""Jobs and schedules."""

from __future__ import annotations

import dagster as dg

from omniwatch.partitions import daily_partitions

MARKET_GROUP = "market"

market_plane_job = dg.define_asset_job(
    name="market_plane_job",
    selection=dg.AssetSelection.groups(MARKET_GROUP),
    partitions_def=daily_partitions,
    description="Ingest the market-data plane for a day (or a backfill range) behind its blocking checks.",
)

# Live mode: ingest each finished UTC day half an hour after it ends.
market_plane_schedule = dg.build_schedule_from_partitioned_job(
    market_plane_job, minute_of_hour=30, hour_of_day=0
)

JOBS = [market_plane_job]
SCHEDULES = [market_plane_schedule]
