"""Liveness and what the process holds: routed model versions, prediction writes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def health(services: Services = Depends(get_services)) -> HealthResponse:
    """Always 200 while the process serves; models appear once a request has routed to them."""
    w = services.writer
    return HealthResponse(status="ok", models=services.router.state(), rows_written=dict(w.written),
                          rows_pending=w.pending, write_failures=w.failures)
