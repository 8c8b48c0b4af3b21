"""Data-quality reads for the API: samples, the audit trail, per-check statistics, cross-table
consistency (bars vs snapshots) and the lineage check of the newest snapshots.

The comparisons are plain functions (``compare_hours``, ``snapshot_mismatches``); the rest only
queries the warehouse.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, func, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

HOUR = timedelta(hours=1)
TIME_COLUMN = {"feature_snapshots": "as_of_ts"}


def _rows(database_url: str, query) -> list[dict[str, Any]]:
    with get_engine(database_url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def sample(database_url: str, table_name: str, target: str | None, start: datetime | None,
           end: datetime | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of a raw or feature table, optionally one target and a window."""
    t: Table = tables.metadata.tables[table_name]
    time_col = t.c[TIME_COLUMN.get(table_name, "event_time")]
    query = select(t).order_by(time_col.desc(), t.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where((t.c.target if "target" in t.c else t.c.symbol) == target)
    if start is not None:
        query = query.where(time_col >= start)
    if end is not None:
        query = query.where(time_col < end)
    return _rows(database_url, query)


def audit(database_url: str, asset_key: str | None, check_name: str | None, passed: bool | None,
          blocking: bool | None, limit: int) -> list[dict[str, Any]]:
    t = tables.data_quality_audit
    query = select(t).order_by(t.c.checked_at.desc(), t.c.id.desc()).limit(limit)
    for column, value in ((t.c.asset_key, asset_key), (t.c.check_name, check_name), (t.c.passed, passed),
                          (t.c.blocking, blocking)):
        if value is not None:
            query = query.where(column == value)
    return _rows(database_url, query)


def stats(database_url: str, asset_key: str | None) -> list[dict[str, Any]]:
    """Per (asset, check): results, failures, blocking failures, pass rate, last times."""
    t = tables.data_quality_audit
    failed = t.c.passed.is_(False)
    query = select(
        t.c.asset_key, t.c.check_name, func.count().label("results"),
        func.sum(case((failed, 1), else_=0)).label("failures"),
        func.sum(case((failed & t.c.blocking.is_(True), 1), else_=0)).label("blocking_failures"),
        func.max(t.c.checked_at).label("last_checked_at"),
        func.max(case((failed, t.c.checked_at), else_=None)).label("last_failure_at"),
    ).group_by(t.c.asset_key, t.c.check_name).order_by(t.c.asset_key, t.c.check_name)
    if asset_key is not None:
        query = query.where(t.c.asset_key == asset_key)
    out = []
    for r in _rows(database_url, query):
        results, failures = int(r["results"]), int(r["failures"] or 0)
        out.append({**r, "results": results, "failures": failures,
                    "blocking_failures": int(r["blocking_failures"] or 0),
                    "pass_rate": (results - failures) / results if results else 1.0,
                    "last_checked_at": r["last_checked_at"], "last_failure_at": r["last_failure_at"]})
    return out



def compare_hours(bar_closes: set[datetime], snapshot_times: set[datetime]) -> dict[str, int]:
    """Every bar's close should have a snapshot and every snapshot a bar (one per hour)."""
    return {"bars": len(bar_closes), "snapshots": len(snapshot_times),
            "bars_without_snapshot": len(bar_closes - snapshot_times),
            "snapshots_without_bar": len(snapshot_times - bar_closes)}


def consistency(database_url: str, targets: list[str], start: datetime | None,
                end: datetime | None) -> tuple[datetime, datetime, list[dict[str, Any]]]:
    """Bars vs feature snapshots per target over ``[start, end)`` (default: the newest 7 days)."""
    bars, snaps = tables.market_bars, tables.feature_snapshots
    if end is None:
        with get_engine(database_url).connect() as conn:
            newest = conn.execute(select(func.max(bars.c.event_time)).where(bars.c.symbol.in_(targets))).scalar()
        end = newest + 2 * HOUR if newest is not None else datetime.now().astimezone()
    start = start or end - timedelta(days=7)
    out = []
    with get_engine(database_url).connect() as conn:
        for target in targets:
            closes = {r[0] + HOUR for r in conn.execute(select(bars.c.event_time).distinct().where(
                bars.c.symbol == target, bars.c.interval == "1h", bars.c.event_time >= start - HOUR,
                bars.c.event_time < end - HOUR))}
            times = {r[0] for r in conn.execute(select(snaps.c.as_of_ts).distinct().where(
                snaps.c.track == "liquid", snaps.c.target == target, snaps.c.as_of_ts >= start,
                snaps.c.as_of_ts < end))}
            counts = compare_hours(closes, times)
            last_bar, last_snap = max(closes, default=None), max(times, default=None)
            lag = (last_bar - last_snap) / HOUR if last_bar and last_snap else None
            out.append({"target": target, **counts, "latest_bar_close": last_bar, "latest_snapshot_as_of": last_snap,
                        "lag_hours": lag, "consistent": counts["bars_without_snapshot"] == 0
                        and counts["snapshots_without_bar"] == 0})
    return start, end, out


def snapshot_mismatches(newer: dict, older: dict, lineage: dict[str, dict], strict: bool) -> list[str]:
    """Keys on which two consecutive snapshots of one target disagree in structure or lineage.

    Always: the feature key sets, a recorded lineage for each, the feature code version of both
    lineages, event_time <= as_of_ts. Strict: also masks, nulls, and the data version.
    """
    keys: list[str] = []
    fa, fb = newer["features"] or {}, older["features"] or {}
    keys += [f"features.{k}" for k in sorted(set(fa) ^ set(fb))]
    for name, snap in (("newer", newer), ("older", older)):
        if snap["lineage_id"] not in lineage:
            keys.append(f"lineage_id.{name}")
        if snap["event_time"] > snap["as_of_ts"]:
            keys.append(f"event_time.{name}")
    la, lb = lineage.get(newer["lineage_id"]), lineage.get(older["lineage_id"])
    if la and lb and la["code_version"] != lb["code_version"]:
        keys.append("code_version")
    if strict:
        ma, mb = newer["feature_mask"] or {}, older["feature_mask"] or {}
        keys += [f"feature_mask.{k}" for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)]
        keys += [f"null.{k}" for k in sorted(set(fa) & set(fb)) if fa[k] is None or fb[k] is None]
        if newer["data_version"] != older["data_version"]:
            keys.append("data_version")
    return keys


def latest_pairs(database_url: str, track: str, target: str | None, data_version: str | None) -> dict[str, list[dict]]:
    """The two newest snapshots per target (newest first), optionally of one data version."""
    t = tables.feature_snapshots
    with get_engine(database_url).connect() as conn:
        query = select(t.c.target).distinct().where(t.c.track == track)
        targets = [target] if target is not None else sorted(r[0] for r in conn.execute(query))
        out = {}
        for tgt in targets:
            q = select(t).where(t.c.track == track, t.c.target == tgt)
            if data_version is not None:
                q = q.where(t.c.data_version == data_version)
            newest = q.order_by(t.c.as_of_ts.desc(), t.c.id.desc()).limit(2)
            out[tgt] = [dict(r) for r in conn.execute(newest).mappings()]
    return out


def lineages(database_url: str, ids: set[str]) -> dict[str, dict]:
    t = tables.feature_lineage
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(select(t).where(t.c.lineage_id.in_(list(ids)))).mappings()
        return {r["lineage_id"]: dict(r) for r in rows}
