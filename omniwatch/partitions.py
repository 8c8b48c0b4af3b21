"""Partitioning shared by the raw planes: one partition per UTC day.

Starts where the data starts (``OMNIWATCH_PARTITIONS_START``). Where it ends depends on the source:

- replay: the last day of the replay data, so a fully loaded replay reads 100% filled. For the
  bundled sample that is ``SAMPLE_END`` (2025-09-26, inclusive; no file is read). For another
  ``OMNIWATCH_REPLAY_DIR`` it is the last bar's day in ``binance_spot_1h/*.csv.gz`` (read once at load).
- live: today included (``end_offset=1``), so the hourly refresh can materialize the day in progress.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from omniwatch.settings import BUNDLED_SAMPLE_DIR, SAMPLE_END, Settings, get_settings


def replay_last_day(replay_dir: Path) -> dt.date:
    """The last UTC day holding a bar in the replay folder (the sample's constant for the bundled one)."""
    if Path(replay_dir).resolve() == BUNDLED_SAMPLE_DIR.resolve():
        return SAMPLE_END
    import pandas as pd

    files = sorted(Path(replay_dir).glob("binance_spot_1h/*.csv.gz"))
    if not files:
        return SAMPLE_END
    last = max(pd.to_datetime(pd.read_csv(f, usecols=["timestamp"])["timestamp"], utc=True).max() for f in files)
    return last.date()


def build_daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    start = settings.partitions_start.isoformat()
    if settings.source == "replay":
        end = replay_last_day(settings.replay_dir) + dt.timedelta(days=1)  # end_date is exclusive
        return dg.DailyPartitionsDefinition(start_date=start, end_date=end.isoformat(), timezone="UTC")
    return dg.DailyPartitionsDefinition(start_date=start, end_offset=1, timezone="UTC")


daily_partitions = build_daily_partitions(get_settings())

# One run covers a whole backfill range: the assets read and write windows, not single days.
single_run_backfill = dg.BackfillPolicy.single_run()
