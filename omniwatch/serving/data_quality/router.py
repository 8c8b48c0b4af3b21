"""Data-quality reads: samples, audit trail, statistics, consistency, lineage check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from omniwatch.serving.data_quality import service as dq
from omniwatch.serving.data_quality.schemas import (
    AuditResponse,
    AuditRow,
    CheckStats,
    ConsistencyResponse,
    LineageCheckRequest,
    LineageCheckResponse,
    LineageTarget,
    SampleResponse,
    SampleTable,
    StatsResponse,
    TargetConsistency,
)
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import ApiError, documented, not_found
from omniwatch.serving.schemas import Symbol, UtcTime

router = APIRouter(prefix="/data-quality", tags=["data-quality"])
Key = Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Limit = Annotated[int, Query(ge=1, le=500)]


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
