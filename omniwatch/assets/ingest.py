"""Check, then write: the one way a raw batch reaches the warehouse, one day at a time.

A run may cover one daily partition (the hourly live refresh) or a range (single-run
backfills). The batch is split by day; each day's rows are checked, every result goes to
``data_quality_audit``, and a day is upserted only if none of its blocking checks failed. Writes
are upserts on the natural key, so re-running a window never duplicates rows.

What Dagster records follows the days: when every day passed, one ``MaterializeResult`` covers
the range; when some day failed, only the good days get an ``AssetMaterialization`` of their
own partition, the check results are recorded, and the step then fails naming the bad days, so
the UI shows those partitions failed (not materialized) and downstream steps of the run do not
execute. Each materialization carries a ``DataVersion``: a content hash of the rows written.

Events keep ``first_seen_at``, when our connector first saw the item: taken from the fetch time the
connector records in ``payload['fetched_at']``, and never moved later by a re-fetch (the upsert
keeps the earliest value), so point-in-time features can count an item from when we had it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)

from omniwatch import progress
from omniwatch.assets.catalog import row_count
from omniwatch.checks import run_checks, to_asset_check_result
from omniwatch.checks.outcome import CheckOutcome, make_outcome
from omniwatch.resources.market_sources import SourceBatch
from omniwatch.resources.warehouse import WarehouseResource

DAY = pd.Timedelta(days=1)
EMPTY_CONTENT = "empty"
FIRST_SEEN = "first_seen_at"


def partition_window(context: AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's partition (or backfill range) as UTC timestamps, end exclusive."""
    window = context.partition_time_window
    return pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")


def content_hash(frame: pd.DataFrame, key: Sequence[str]) -> str:
    """Order-independent hash of a batch's values (the ``DataVersion`` of what was written)."""
    if frame.empty:
        return EMPTY_CONTENT
    data = frame.drop(columns=[c for c in ("ingested_at", "id") if c in frame.columns])
    data = data.sort_values(list(key), kind="stable").reset_index(drop=True)
    data = data.astype({c: "string" for c in data.columns if data[c].dtype == object})
    row_hashes = pd.util.hash_pandas_object(data, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256(row_hashes.tobytes() + ",".join(data.columns).encode()).hexdigest()
    return digest[:24]


def combine_versions(versions: Sequence[str]) -> str:
    """One version for several days (a range run): a hash of the days' versions in day order."""
    if len(versions) == 1:
        return versions[0]
    return hashlib.sha256("|".join(versions).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class DayResult:
    partition: str | None
    start: pd.Timestamp
    end: pd.Timestamp
    outcomes: list[CheckOutcome]
    blocked: list[str]
    fetched: int
    written: int
    content: str


def _day_batches(context: AssetExecutionContext, frame: pd.DataFrame, column: str,
                 start: pd.Timestamp, end: pd.Timestamp
                 ) -> list[tuple[str | None, pd.Timestamp, pd.Timestamp, pd.DataFrame]]:
    """The batch split by day of ``column``; rows that fall in no day (unparseable or outside the
    window) go with the first day, so its checks see them rather than losing them."""
    if not context.has_partition_key_range or (end - start) <= DAY:
        key = context.partition_key if context.has_partition_key else None
        return [(key, start, end, frame)]
    days = list(pd.date_range(start, end - DAY, freq="D"))
    times = pd.to_datetime(frame[column], utc=True) if len(frame) else pd.Series([], dtype="datetime64[ns, UTC]")
    placed = pd.Series(False, index=frame.index)
    out = []
    for day in days:
        mask = (times >= day) & (times < day + DAY)
        placed |= mask
        out.append((day.strftime("%Y-%m-%d"), day, day + DAY, mask))
    batches = []
    for i, (key, s, e, mask) in enumerate(out):
        if i == 0:
            mask = mask | ~placed
        batches.append((key, s, e, frame[mask.to_numpy()].reset_index(drop=True)))
    return batches


def _range_passes(name: str, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp,
                  thresholds: dict[str, Any] | None) -> dict[str, CheckOutcome]:
    """The frame-only checks the whole range passes, run once (the great-expectations suite costs
    ~0.3 s a call: per day it would dominate a backfill). A day inside the range passes them too;
    a check the range fails is run again day by day, so the failure is pinned on its days."""
    from omniwatch.checks.registry import frame_only_checks

    only = frame_only_checks(name)
    outcomes = run_checks(name, frame, window_start=start, window_end=end, now=now, **(thresholds or {}))
    return {o.name: o for o in outcomes if o.name in only and o.passed}


def _for_day(outcome: CheckOutcome, rows: int) -> CheckOutcome:
    meta = {**outcome.metadata, "rows_checked": rows, "checked_over": "the run's whole range (passed there)"}
    return make_outcome(outcome.name, outcome.description, [], failed_count=0, severity=outcome.severity,
                        passed=True, metadata=meta)


def merge_outcomes(days: Sequence[DayResult]) -> list[CheckOutcome]:
    """One outcome per check over all days: passed only if every day passed, failures of every
    day listed, ``failed_days`` naming them."""
    merged = []
    for i, first in enumerate(days[0].outcomes):
        per_day = [(d.partition, d.outcomes[i]) for d in days]
        if len(per_day) == 1:
            merged.append(first)
            continue
        failed = [(p, o) for p, o in per_day if not o.passed]
        meta = dict((failed[0][1] if failed else per_day[-1][1]).metadata)
        meta["failed_days"] = [p for p, _ in failed]
        meta["days_checked"] = len(per_day)
        merged.append(make_outcome(
            first.name, first.description, [f for _, o in failed for f in o.failures],
            failed_count=sum(o.failed_count for _, o in per_day), severity=first.severity,
            passed=not failed, metadata=meta,
        ))
    return merged


def checked_write(
    context: AssetExecutionContext, name: str, batch: SourceBatch, *, table: str, key: Sequence[str],
    warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp, code_version: str,
    thresholds: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
    day_column: str = "event_time",
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
    """Check and upsert ``batch`` into ``table`` day by day; yield what Dagster should record."""
    # "now" for freshness and gaps: the replay clock when replaying as live, else the wall clock.
    now = batch.as_of if batch.as_of is not None else pd.Timestamp.now(tz="UTC")
    days: list[DayResult] = []
    good_frames: list[pd.DataFrame] = []
    batches = _day_batches(context, batch.frame, day_column, start, end)
    reuse = _range_passes(name, batch.frame, start, end, now, thresholds) if len(batches) > 1 else {}
    for i, (partition, s, e, frame) in enumerate(batches, 1):
        # Hours before the source's recording begins are outside its coverage, not gaps.
        checked_from = max(s, batch.coverage_start) if batch.coverage_start is not None else s
        day_reuse = {n: _for_day(o, len(frame)) for n, o in reuse.items()}
        outcomes = run_checks(name, frame, window_start=checked_from, window_end=e, now=now, reuse=day_reuse,
                              **(thresholds or {}))
        blocked = [o.name for o in outcomes if not o.passed and o.severity == "ERROR"]
        days.append(DayResult(partition, s, e, outcomes, blocked, len(frame), 0 if blocked else len(frame),
                              content_hash(frame, key)))
        if blocked:
            context.log.error(f"{name}: blocking checks failed for {s:%Y-%m-%d} ({', '.join(blocked)}); its "
                              f"{len(frame)} fetched rows were not written")
        else:
            good_frames.append(frame)
        if len(batches) > 1:
            progress.report(f"{name} days", i, len(batches))
    # One audit write and one upsert for the run (per-day statements cost seconds over a backfill);
    # the checks above decided day by day what may be written.
    warehouse.record_checks_many(name, [(d.outcomes, d.start.to_pydatetime(), d.end.to_pydatetime()) for d in days],
                                 context.run_id)
    good = [f for f in good_frames if len(f)]
    if good:
        upsert_keeping_first_seen(warehouse, table, pd.concat(good, ignore_index=True) if len(good) > 1 else good[0],
                                  list(key))

    notes = list(batch.notes) or ["the source covered everything requested"]
    if batch.frame.empty:
        notes.append("no rows: the source holds no data for this window, none were invented")
    common = {
        "source": dg.MetadataValue.text(batch.source),
        "coverage": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes)),
        **(metadata or {}),
    }
    checks = [to_asset_check_result(o) for o in merge_outcomes(days)]
    partitioned = context.has_partition_key or context.has_partition_key_range
    good = [d for d in days if not d.blocked]
    bad = [d for d in days if d.blocked]
    if not bad:
        for d in days:
            if d.partition is not None and len(days) > 1:
                context.add_asset_metadata(_day_metadata(d, partitioned), partition_key=d.partition)
        yield dg.MaterializeResult(
            metadata={
                "rows_fetched": dg.MetadataValue.int(len(batch.frame)),
                "rows_written": dg.MetadataValue.int(sum(d.written for d in days)),
                "written": dg.MetadataValue.bool(True),
                "window": dg.MetadataValue.text(f"{start.isoformat()} .. {end.isoformat()}"),
                **({} if len(days) > 1 else {"content_hash": dg.MetadataValue.text(days[0].content)}),
                # A range's total; each day's own count is in its partition's metadata above.
                **row_count(sum(d.written for d in days), partitioned=partitioned),
                **common,
            },
            check_results=checks,
            data_version=dg.DataVersion(combine_versions([d.content for d in days])),
        )
        return

    # Some day failed: record the good days as their own partitions, then fail the step.
    for d in good:
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=d.partition,
            metadata={**_day_metadata(d, partitioned), "written": dg.MetadataValue.bool(True), **common},
            tags={DATA_VERSION_TAG: d.content, CODE_VERSION_TAG: code_version,
                  DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
        )
    yield from checks
    failed = {d.start.strftime("%Y-%m-%d"): d.blocked for d in bad}
    raise dg.Failure(
        description=(f"{name}: blocking checks failed on {', '.join(failed)}; those days were not written "
                     f"(good days written: {len(good)})"),
        metadata={"error_code": "blocked_by_data_quality", "failed_days": dg.MetadataValue.json(failed),
                  "rows_written": dg.MetadataValue.int(sum(d.written for d in good))},
    )


def with_first_seen(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus ``first_seen_at`` from each row's ``payload['fetched_at']`` when ``table``
    has that column (NaT where the connector recorded no fetch time, e.g. EDGAR)."""
    from omniwatch.warehouse import tables

    if FIRST_SEEN not in tables.metadata.tables[table].c or "payload" not in frame or FIRST_SEEN in frame:
        return frame
    fetched = [p.get("fetched_at") if isinstance(p, dict) else None for p in frame["payload"]]
    return frame.assign(**{FIRST_SEEN: pd.to_datetime(pd.Series(fetched, index=frame.index, dtype=object),
                                                      utc=True, format="ISO8601")})


def upsert_keeping_first_seen(warehouse: WarehouseResource, table: str, frame: pd.DataFrame,
                              key: Sequence[str]) -> int:
    """Upsert ``frame`` on ``key``; a table with ``first_seen_at`` keeps the earliest value.

    One transaction: the upsert inserts new rows with their ``first_seen_at`` and updates every
    other column of existing ones; then an existing row's ``first_seen_at`` is lowered where this
    batch saw it earlier (a backfill of an older recording) and set where it was NULL. A re-fetch
    therefore never moves first sight later. (This belongs in ``WarehouseResource.upsert`` as a
    keep-earliest option; it lives here until the resource has one.)
    """
    import sqlalchemy as sa

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.upsert import frame_records, upsert_rows

    frame = with_first_seen(table, frame)
    if FIRST_SEEN not in frame:
        return warehouse.upsert(table, frame, key)
    t = tables.metadata.tables[table]
    columns = [c for c in frame.columns if c in t.c]
    rows = frame_records(frame, columns)
    seen = [{**{f"k_{c}": r[c] for c in key}, "seen": r[FIRST_SEEN]} for r in rows if r[FIRST_SEEN] is not None]
    new_seen = sa.bindparam("seen", type_=t.c[FIRST_SEEN].type)
    lower = (sa.update(t)
             .where(*[t.c[c] == sa.bindparam(f"k_{c}") for c in key])
             .where(sa.or_(t.c[FIRST_SEEN].is_(None), t.c[FIRST_SEEN] > new_seen))
             .values({FIRST_SEEN: new_seen}))
    with warehouse.engine().begin() as conn:
        written = upsert_rows(conn, t, rows, key, update=[c for c in columns if c not in key and c != FIRST_SEEN])
        if seen:
            conn.execute(lower, seen)
    return written


def _day_metadata(d: DayResult, partitioned: bool) -> dict[str, Any]:
    return {
        "rows_fetched": dg.MetadataValue.int(d.fetched),
        "rows_written": dg.MetadataValue.int(d.written),
        "window": dg.MetadataValue.text(f"{d.start.isoformat()} .. {d.end.isoformat()}"),
        "content_hash": dg.MetadataValue.text(d.content),
        **row_count(d.written, partitioned=partitioned),
    }
