"""Data-quality reads for the API: samples, the audit trail, per-check statistics, cross-table
consistency (bars vs snapshots) and the lineage check of the newest snapshots; and the seed's
human review loop: samples of event links or events drawn for people to judge, their verdicts, and
the precision those verdicts give per table and source.

The comparisons are plain functions (``compare_hours``, ``snapshot_mismatches``); the rest only
queries the warehouse.
"""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, func, select
from sqlalchemy.exc import IntegrityError

from omniwatch.serving.errors import ApiError, ApiErrorCode, not_found
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


# ----------------------------------------------------------------------------- human review loop
# A draw is reproducible: the same seed over the same matching rows (ordered by id) gives the same
# sample. Drawing loads the matching ids only (no row bodies), then ``random.Random(seed).sample``;
# an SQL ``ORDER BY random()`` would differ between SQLite and PostgreSQL and could not be replayed.
EXCERPT = 500
JUDGED = ("correct", "incorrect")


def _candidates(table: str, source: str | None, start: datetime | None, end: datetime | None):
    ev, links = tables.events, tables.event_links
    if table == "events":
        query = select(ev.c.id, ev.c.source).order_by(ev.c.id)
    else:
        query = select(links.c.id, ev.c.source).join(ev, ev.c.id == links.c.event_id).order_by(links.c.id)
    if source is not None:
        query = query.where(ev.c.source == source)
    if start is not None:
        query = query.where(ev.c.event_time >= start)
    if end is not None:
        query = query.where(ev.c.event_time < end)
    return query


def _filters(source: str | None, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {"source": source, "start": start.isoformat() if start else None, "end": end.isoformat() if end else None}


def draw_sample(database_url: str, table: str, drawn_by: str, limit: int, seed: int | None, source: str | None,
                start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """Draw ``limit`` random rows of ``table`` (event_links or events) matching the filters,
    store the sample and its row keys, and return it with the rows a reviewer judges."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    drawn_at = datetime.now(UTC)
    filters = _filters(source, start, end)
    s, rows_t = tables.data_quality_samples, tables.data_quality_sample_rows
    with get_engine(database_url).begin() as conn:
        population = [(r[0], r[1]) for r in conn.execute(_candidates(table, source, start, end))]
        picked = sorted(random.Random(seed).sample(population, min(limit, len(population))))
        sample_id = conn.execute(s.insert().values(
            sample_table=table, drawn_by=drawn_by, seed=seed, filters=filters, population=len(population),
            drawn_at=drawn_at).returning(s.c.id)).scalar_one()
        if picked:
            conn.execute(rows_t.insert(), [{"sample_id": sample_id, "row_key": key, "source": src}
                                           for key, src in picked])
        rows = review_rows(conn, table, [key for key, _ in picked])
    return {"sample_id": sample_id, "table": table, "drawn_at": drawn_at, "drawn_by": drawn_by, "seed": seed,
            "filters": {"source": source, "start": start, "end": end}, "population": len(population),
            "count": len(rows), "rows": rows}


def review_rows(conn, table: str, keys: list[int]) -> list[dict[str, Any]]:
    """What a reviewer needs to judge each row: the event, and for a link the entity it names."""
    if not keys:
        return []
    ev, links, ent = tables.events, tables.event_links, tables.entities
    event_cols = [ev.c.id.label("event_id"), ev.c.source, ev.c.source_id, ev.c.track, ev.c.event_type, ev.c.title,
                  ev.c.url, func.substr(ev.c.body, 1, EXCERPT).label("excerpt"), ev.c.event_time,
                  ev.c.available_time, ev.c.tone]
    if table == "events":
        query = select(ev.c.id.label("row_key"), *event_cols).where(ev.c.id.in_(keys))
    else:
        query = (select(links.c.id.label("row_key"), *event_cols, links.c.id.label("link_id"), links.c.entity_id,
                        ent.c.name.label("entity_name"), ent.c.ticker, ent.c.cik, ent.c.aliases,
                        links.c.confidence, links.c.method)
                 .join(ev, ev.c.id == links.c.event_id).join(ent, ent.c.entity_id == links.c.entity_id)
                 .where(links.c.id.in_(keys)))
    out = []
    for r in conn.execute(query.order_by("row_key")).mappings():
        event = {k: r[k] for k in ("event_id", "source", "source_id", "track", "event_type", "title", "url",
                                   "excerpt", "event_time", "available_time", "tone")}
        link = None
        if table == "event_links":
            link = {k: r[k] for k in ("link_id", "entity_id", "entity_name", "ticker", "cik", "confidence",
                                      "method")} | {"aliases": r["aliases"] or []}
        out.append({"row_key": r["row_key"], "source": r["source"], "event": event, "link": link})
    return out


def _latest(conn, sample_id: int, reviewer: str, keys: list[int]) -> dict[int, dict[str, Any]]:
    rv = tables.data_quality_reviews
    newest = (select(rv.c.row_key, func.max(rv.c.revision).label("revision"))
              .where(rv.c.sample_id == sample_id, rv.c.reviewer == reviewer, rv.c.row_key.in_(keys))
              .group_by(rv.c.row_key).subquery())
    query = select(rv).join(newest, (rv.c.row_key == newest.c.row_key) & (rv.c.revision == newest.c.revision)).where(
        rv.c.sample_id == sample_id, rv.c.reviewer == reviewer)
    return {r["row_key"]: dict(r) for r in conn.execute(query).mappings()}


def _record(conn, sample_id: int, reviewer: str, verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    s, rows_t, rv = tables.data_quality_samples, tables.data_quality_sample_rows, tables.data_quality_reviews
    if conn.execute(select(s.c.id).where(s.c.id == sample_id)).first() is None:
        raise not_found("review sample", str(sample_id))
    keys = [v["row_key"] for v in verdicts]
    held = {r[0] for r in conn.execute(select(rows_t.c.row_key).where(rows_t.c.sample_id == sample_id,
                                                                      rows_t.c.row_key.in_(keys)))}
    missing = [{"field": f"body.verdicts.{i}.row_key", "reason": f"row {v['row_key']} is not in sample {sample_id}",
                "type": "not_in_sample"} for i, v in enumerate(verdicts) if v["row_key"] not in held]
    if missing:
        raise ApiError(422, ApiErrorCode.VALIDATION_ERROR, "; ".join(m["reason"] for m in missing), errors=missing)
    latest = _latest(conn, sample_id, reviewer, keys)
    now = datetime.now(UTC)
    out, new = [], []
    for v in verdicts:
        prior = latest.get(v["row_key"])
        if prior is not None and (prior["verdict"], prior["note"]) == (v["verdict"], v["note"]):
            out.append({**prior, "status": "unchanged"})
            continue
        row = {"sample_id": sample_id, "row_key": v["row_key"], "reviewer": reviewer, "verdict": v["verdict"],
               "note": v["note"], "revision": (prior["revision"] if prior else 0) + 1, "reviewed_at": now}
        new.append(row)
        out.append({**row, "status": "written"})
    if new:
        conn.execute(rv.insert(), new)
    return out


def record_verdicts(database_url: str, sample_id: int, reviewer: str,
                    verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append ``reviewer``'s verdicts on rows of a sample, all or nothing: 404 for an unknown
    sample, 422 naming each row the sample does not hold. A verdict equal (verdict and note) to
    the reviewer's latest on that row is not written again (``unchanged``); a different one is a
    new revision. Two identical requests racing collide on the revision; the loser re-reads."""
    for attempt in range(3):
        try:
            with get_engine(database_url).begin() as conn:
                return _record(conn, sample_id, reviewer, verdicts)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def precision(database_url: str, table: str | None = None, source: str | None = None,
              sample_id: int | None = None) -> list[dict[str, Any]]:
    """correct / judged per table and per source, over each reviewer's latest verdict on each
    sampled row (a row drawn in two samples counts in each; ``unsure`` is not a judgement)."""
    s, rows_t, rv = tables.data_quality_samples, tables.data_quality_sample_rows, tables.data_quality_reviews
    newest = (select(rv.c.sample_id, rv.c.row_key, rv.c.reviewer, func.max(rv.c.revision).label("revision"))
              .group_by(rv.c.sample_id, rv.c.row_key, rv.c.reviewer).subquery())
    query = (select(s.c.sample_table, rows_t.c.source, rv.c.verdict, func.count().label("n"))
             .select_from(newest)
             .join(rv, (rv.c.sample_id == newest.c.sample_id) & (rv.c.row_key == newest.c.row_key)
                   & (rv.c.reviewer == newest.c.reviewer) & (rv.c.revision == newest.c.revision))
             .join(rows_t, (rows_t.c.sample_id == rv.c.sample_id) & (rows_t.c.row_key == rv.c.row_key))
             .join(s, s.c.id == rv.c.sample_id)
             .group_by(s.c.sample_table, rows_t.c.source, rv.c.verdict))
    for column, value in ((s.c.sample_table, table), (rows_t.c.source, source), (s.c.id, sample_id)):
        if value is not None:
            query = query.where(column == value)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for r in _rows(database_url, query):
        per_source = counts.setdefault(r["sample_table"], {}).setdefault(r["source"], {})
        per_source[r["verdict"]] = int(r["n"])
    out = []
    for tbl in sorted(counts):
        sources = [{"source": src, **_precision([c])} for src, c in sorted(counts[tbl].items())]
        out.append({"table": tbl, **_precision(list(counts[tbl].values())), "sources": sources})
    return out


def _precision(counts: list[dict[str, int]]) -> dict[str, Any]:
    total = {v: sum(c.get(v, 0) for c in counts) for v in ("correct", "incorrect", "unsure")}
    judged = total["correct"] + total["incorrect"]
    return {**total, "judged": judged, "precision": total["correct"] / judged if judged else None}
