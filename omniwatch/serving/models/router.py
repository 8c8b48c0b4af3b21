"""``/api/v2/models/*``: drift, gate, rollout and rollback decisions, and manual audit notes.

Every POST needs an API key; the audit row's actor is that key's name and its source ``api``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented
from omniwatch.serving.models import service
from omniwatch.serving.models.schemas import (
    DEFAULT_MODEL,
    AdvanceRequest,
    AuditNoteRequest,
    DecisionResponse,
    GateRequest,
    ModelName,
    ModelRequest,
    RolloutStateResponse,
)

router = APIRouter(prefix="/models", tags=["models"])
Actor = Annotated[str, Security(require_api_key)]
MUTATION = documented(401, 404, 422, 503)


@router.post("/drift/evaluate", response_model=DecisionResponse, responses=MUTATION)
def drift(body: ModelRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Compare the champion's training reference with the recent snapshots, forecasts and fill
    slippage (PSI + KS); the decision (drift, no_drift or inconclusive) is audited."""
    return service.evaluate_drift(services.settings, actor, body.model_name)


@router.post("/gate/evaluate", response_model=DecisionResponse, responses=MUTATION)
def gate(body: GateRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Gate a version (default: the challenger) against the champion on walk-forward and shadow
    windows: ``start_rollout`` puts it in rollout at the first stage, ``reject`` retires it."""
    return service.evaluate_gate(services.settings, actor, body.model_name, body.version)


@router.post("/gate/auto-evaluate", response_model=DecisionResponse, responses=MUTATION)
def auto_gate(body: ModelRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Gate the challenger unless it has been gated already (then outcome ``skip``)."""
    return service.auto_evaluate_gate(services.settings, actor, body.model_name)


@router.get("/rollout/state", response_model=RolloutStateResponse, responses=documented(401, 404, 503))
def rollout_state(model_name: Annotated[ModelName, Query()] = DEFAULT_MODEL,
                  services: Services = Depends(get_services)) -> dict:
    """Aliases, each version's status and stage, the stage ladder and the latest decisions."""
    return service.rollout_state(services.settings, model_name)


@router.post("/rollout/advance", response_model=DecisionResponse, responses=MUTATION)
def advance(body: AdvanceRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Move the candidate to the next stage only (10 -> 30 -> 100; 100 promotes it to champion),
    audited as ``manual`` with the reason given. Without a candidate, or at the last stage, the
    answer is outcome ``skip`` (audited too)."""
    return service.advance_rollout(services.settings, actor, body.model_name, body.reason)


@router.post("/rollback/check", response_model=DecisionResponse, responses=MUTATION)
def rollback(body: ModelRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Roll back after N consecutive failed windows (the candidate in rollout, or a recently
    promoted champion against ``previous``); outcome ``skip`` when nothing new was judged."""
    return service.check_rollback(services.settings, actor, body.model_name)


@router.post("/audit/log", response_model=DecisionResponse, responses=MUTATION)
def audit_note(body: AuditNoteRequest, actor: Actor, services: Services = Depends(get_services)) -> DecisionResponse:
    """Append a manual note to the audit log (action ``manual``, outcome ``no_action``)."""
    return service.log_note(services.settings, actor, body.model_name, body.reason, body.version, body.metrics)
