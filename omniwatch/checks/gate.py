"""The data-quality gate for consumers that run in a separate run from ingestion.

A blocking asset check only stops downstream steps of its own run (dagster issue #25112). Training
and feature builds launched later therefore ask the audit trail: for every day of their input
window, the latest recorded result of each blocking check on each input asset decides. A day
whose latest result failed blocks the window; a later passing re-run of that day clears it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def blocking_failures(
    audit: pd.DataFrame, assets: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
) -> list[dict]:
    """Failed blocking results that are still the latest word on some day of ``[start, end)``.

    ``audit`` holds ``data_quality_audit`` rows (asset_key, check_name, partition_start,
    partition_end, passed, blocking, checked_at, failed_count, run_id, details).
    """
    if audit.empty:
        return []
    rows = audit[audit["asset_key"].isin(list(assets)) & audit["blocking"].astype(bool)].copy()
    if rows.empty:
        return []
    # Rows stored before the checks were renamed repeat their asset (market_bars_have_sane_ohlcv);
    # read them under today's name (have_sane_ohlcv), so a passing re-run of a day clears a
    # failure recorded under the old name.
    rows["check_name"] = [name.removeprefix(f"{asset}_")
                          for asset, name in zip(rows["asset_key"], rows["check_name"], strict=True)]
    rows["p_start"] = pd.to_datetime(rows["partition_start"], utc=True)
    rows["p_end"] = pd.to_datetime(rows["partition_end"], utc=True)
    rows = rows[(rows["p_start"] < end) & (rows["p_end"] > start)]
    days = pd.date_range(start.floor("D"), end - pd.Timedelta(seconds=1), freq="D")
    failures: dict[tuple, dict] = {}
    for (asset, check), group in rows.sort_values(["checked_at", "id"]).groupby(["asset_key", "check_name"]):
        latest_passed: dict[pd.Timestamp, tuple[bool, dict]] = {}
        for rec in group.itertuples(index=False):
            for day in days[(days >= rec.p_start.floor("D")) & (days < rec.p_end)]:
                latest_passed[day] = (bool(rec.passed), rec._asdict())
        for day, (passed, rec) in latest_passed.items():
            if not passed:
                key = (asset, check, rec["run_id"])
                entry = failures.setdefault(key, {
                    "asset_key": asset, "check_name": check, "run_id": rec["run_id"],
                    "failed_count": int(rec["failed_count"]), "days": [],
                })
                entry["days"].append(day.date().isoformat())
    return list(failures.values())
