"""Liveness and what the process holds: routed model versions, prediction writes."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from omniwatch.serving.deps import Services, get_services

router = APIRouter(tags=["health"])


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: stored writes are failing (see reasons).")
    reasons: list[str] = Field(default_factory=list, description="Why the status is degraded.")
    models: dict[str, dict[str, Any]]
    rows_written: dict[str, int] = Field(description="Rows the background writer stored, per table.")
    rows_pending: int
    write_failures: int


@router.get("/health", response_model=HealthResponse)
def health(services: Services = Depends(get_services)) -> HealthResponse:
    """Always 200 while the process serves; ``degraded`` while the prediction writer's batches fail
    (from a failed batch until one succeeds). Models appear once a request has routed to them."""
    w = services.writer
    reasons = [f"prediction writes failing ({w.failures} rows lost so far): {w.failing}"] if w.failing else []
    return HealthResponse(status="degraded" if reasons else "ok", reasons=reasons, models=services.router.state(),
                          rows_written=dict(w.written), rows_pending=w.pending, write_failures=w.failures)
