"""Partitioning shared by the raw planes: one partition per UTC day.

Starts where the bundled sample starts (``OMNIWATCH_PARTITIONS_START``) and runs on to yesterday,
so live ingestion continues past the sample; a day becomes a partition once it has ended.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.settings import get_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().partitions_start.isoformat(), timezone="UTC"
)

# One run covers a whole backfill range: the assets read and write windows, not single days.
single_run_backfill = dg.BackfillPolicy.single_run()
