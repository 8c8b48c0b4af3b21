"""Data-quality reads (samples, audit trail, statistics, consistency, lineage check) and the
seed's human review loop: POST sample draws rows for people to judge, POST audit records their
verdicts, GET precision says how often the pipeline was right."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.data_quality import service as dq
from omniwatch.serving.data_quality.schemas import (
    AuditRequest,
    AuditResponse,
    AuditResultResponse,
    AuditRow,
    CheckStats,
    ConsistencyResponse,
    LineageCheckRequest,
    LineageCheckResponse,
    LineageTarget,
    PrecisionResponse,
    ReviewSampleResponse,
    ReviewTable,
    SampleDrawRequest,
    SampleResponse,
    SampleTable,
    Source,
    StatsResponse,
    TargetConsistency,
)
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import ApiError, documented, not_found
from omniwatch.serving.schemas import Symbol, UtcTime

router = APIRouter(prefix="/data-quality", tags=["data-quality"])
Key = Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Limit = Annotated[int, Query(ge=1, le=500)]
Actor = Annotated[str, Security(require_api_key)]


@router.get("/sample", response_model=SampleResponse, responses=documented(401, 422))
def sample(table: SampleTable = "feature_snapshots", target: Annotated[Symbol | None, Query()] = None,
           start: Annotated[UtcTime | None, Query()] = None, end: Annotated[UtcTime | None, Query()] = None,
           limit: Limit = 20, services: Services = Depends(get_services)) -> SampleResponse:
    """The newest rows of a raw or feature table, to look at what the checks saw."""
    rows = dq.sample(services.database_url, table, target, start, end, limit)
    return SampleResponse(table=table, count=len(rows), rows=rows)


@router.get("/audit", response_model=AuditResponse, responses=documented(401, 422))
def audit(asset_key: Key | None = None, check_name: Key | None = None, passed: bool | None = None,
          blocking: bool | None = None, limit: Limit = 100,
          services: Services = Depends(get_services)) -> AuditResponse:
    """Check results from data_quality_audit, newest first."""
    rows = dq.audit(services.database_url, asset_key, check_name, passed, blocking, limit)
    return AuditResponse(count=len(rows), rows=[AuditRow.model_validate(r) for r in rows])


@router.get("/stats", response_model=StatsResponse, responses=documented(401, 422))
def stats(asset_key: Key | None = None, services: Services = Depends(get_services)) -> StatsResponse:
    """Per asset and check: results, failures, pass rate, last check and last failure."""
    checks = dq.stats(services.database_url, asset_key)
    return StatsResponse(results=sum(c["results"] for c in checks), failures=sum(c["failures"] for c in checks),
                         checks=[CheckStats.model_validate(c) for c in checks])


@router.get("/consistency", response_model=ConsistencyResponse, responses=documented(401, 422))
def consistency(targets: Annotated[list[Symbol] | None, Query(max_length=64)] = None,
                start: Annotated[UtcTime | None, Query()] = None, end: Annotated[UtcTime | None, Query()] = None,
                services: Services = Depends(get_services)) -> ConsistencyResponse:
    """Hourly bars vs feature snapshots per target: each bar close should have exactly one
    snapshot hour and each snapshot a bar (default window: the newest 7 days of bars)."""
    if start is not None and end is not None and end <= start:
        raise ApiError(422, "validation_error", "end must be after start")
    start, end, rows = dq.consistency(services.database_url, targets or list(services.settings.liquid_symbols),
                                      start, end)
    return ConsistencyResponse(start=start, end=end, consistent=all(r["consistent"] for r in rows),
                               targets=[TargetConsistency.model_validate(r) for r in rows])


@router.post("/lineage/check", response_model=LineageCheckResponse, responses=documented(401, 404, 422))
def lineage_check(body: LineageCheckRequest, services: Services = Depends(get_services)) -> LineageCheckResponse:
    """Compare the two newest snapshots of each target (or of ``target``): feature keys, recorded
    lineage, feature code version, point in time; strict adds masks, nulls and data version.
    Read-only: nothing is written."""
    pairs = dq.latest_pairs(services.database_url, body.track, body.target, body.data_version)
    if body.target is not None and not pairs[body.target]:
        raise not_found("target with snapshots", body.target)
    snaps = [s for pair in pairs.values() for s in pair]
    lineage = dq.lineages(services.database_url, {s["lineage_id"] for s in snaps})
    targets, keys = [], []
    for target, pair in pairs.items():
        if len(pair) == 2:
            found = dq.snapshot_mismatches(pair[0], pair[1], lineage, body.strict)
        else:  # one snapshot only: nothing to compare it with
            found = ["snapshots.count"]
        keys += [f"{target}:{k}" for k in found]
        targets.append({"target": target, "snapshot_ids": [s["id"] for s in pair],
                        "as_of": [s["as_of_ts"] for s in pair],
                        "data_versions": [s["data_version"] for s in pair],
                        "mismatch_keys": found, "ok": not found})
    return LineageCheckResponse(ok=not keys, strict=body.strict, data_version=body.data_version,
                                mismatch_keys=keys, targets=[LineageTarget.model_validate(t) for t in targets])


# ----------------------------------------------------------------------------- human review loop
@router.post("/sample", response_model=ReviewSampleResponse, responses=documented(401, 422))
def draw_sample(body: SampleDrawRequest, actor: Actor,
                services: Services = Depends(get_services)) -> ReviewSampleResponse:
    """Draw a random sample of ``event_links`` (does the link name the right company?) or
    ``events`` (a real event, correctly dated and toned?) for people to judge, store it (drawn_at
    and drawn_by, the key's name, are the server's) and return each row with what a reviewer needs.
    The same seed over the same matching rows draws the same sample; without one the server picks
    it and returns it. Filters: the event's source and an event_time window ``[start, end)``."""
    drawn = dq.draw_sample(services.database_url, body.table, actor, body.limit, body.seed, body.source,
                           body.start, body.end)
    return ReviewSampleResponse.model_validate(drawn)


@router.post("/audit", response_model=AuditResultResponse, responses=documented(401, 404, 422))
def record_verdicts(body: AuditRequest, actor: Actor,
                    services: Services = Depends(get_services)) -> AuditResultResponse:
    """Record verdicts (correct | incorrect | unsure, optional note) on rows of a drawn sample. The
    reviewer is the key's name and reviewed_at the server's time. All or nothing: an unknown sample
    is 404, a row the sample does not hold 422 naming it. Append only and idempotent: a verdict
    equal (verdict and note) to the reviewer's latest on that row writes nothing (``unchanged``); a
    different one is a new revision, and precision reads each reviewer's latest."""
    verdicts = dq.record_verdicts(services.database_url, body.sample_id, actor,
                                  [v.model_dump() for v in body.verdicts])
    written = sum(v["status"] == "written" for v in verdicts)
    tables = dq.precision(services.database_url, sample_id=body.sample_id)
    return AuditResultResponse.model_validate({
        "sample_id": body.sample_id, "reviewer": actor, "received": len(verdicts), "written": written,
        "unchanged": len(verdicts) - written, "verdicts": verdicts, "precision": {"tables": tables}})


@router.get("/precision", response_model=PrecisionResponse, responses=documented(401, 422))
def precision(table: ReviewTable | None = None, source: Annotated[Source | None, Query()] = None,
              sample_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
              services: Services = Depends(get_services)) -> PrecisionResponse:
    """Precision of the reviewed rows, correct / judged (judged = correct + incorrect), per table
    and per source, over each reviewer's latest verdict on each sampled row."""
    return PrecisionResponse.model_validate({"tables": dq.precision(services.database_url, table, source, sample_id)})
