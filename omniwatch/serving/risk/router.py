"""``/api/v2/risk/*``: the limits, what-if checks of orders, kill switches and breakers.

Reads (limits, check, kill-switch list, state) write nothing: a what-if check leaves no
``risk_events`` row, only refusals of real orders do. Triggers and resets need an API key and
are appended to ``risk_controls`` under the key's name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented
from omniwatch.serving.risk.schemas import (
    BreakerResetRequest,
    CheckRequest,
    CheckResponse,
    KillSwitchesResponse,
    KillSwitchRequest,
    KillSwitchResponse,
    LimitsResponse,
    StateResponse,
    StrategyId,
    Track,
)
from omniwatch.serving.schemas import UtcTime

router = APIRouter(prefix="/risk", tags=["risk"])
Actor = Annotated[str, Security(require_api_key)]
READ = documented(401)


@router.get("/limits", response_model=LimitsResponse, responses=READ)
def limits(track: Annotated[Track | None, Query()] = None, strategy_id: Annotated[StrategyId | None, Query()] = None,
           services: Services = Depends(get_services)) -> LimitsResponse:
    """The default limits, the per-scope overrides (``OMNIWATCH_RISK_LIMITS``) and the effective
    set of the scope asked for (default: the liquid track's default strategy, plus every
    configured override)."""
    return services.risk.limits(track, strategy_id)


@router.post("/check", response_model=CheckResponse, responses=documented(401, 404))
def check(body: CheckRequest, services: Services = Depends(get_services)) -> CheckResponse:
    """Would this order pass? 200 either way: ``allowed`` false lists the violations (codes
    ``kill_switch_triggered:{track}:{strategy_id}``, ``daily_loss_exceeded``,
    ``consecutive_loss_exceeded``, ``model_not_validated``, or a limit's name). Nothing is executed
    or recorded. With ``model_version`` (and ``horizon``) the order is judged as that version's
    forecast would place it: through ``adapter`` ``coinbase_live`` it needs the version's
    demonstrated skill at that horizon; an unknown version is 404."""
    return services.risk.check(body)


@router.get("/kill-switch", response_model=KillSwitchesResponse, responses=READ)
def kill_switches(track: Annotated[Track | None, Query()] = None,
                  services: Services = Depends(get_services)) -> KillSwitchesResponse:
    """Every kill switch ever set, triggered or not, with who triggered and reset it, when and why."""
    return services.risk.kill_switches(track)


@router.post("/kill-switch/trigger", response_model=KillSwitchResponse, responses=READ)
def trigger(body: KillSwitchRequest, actor: Actor, services: Services = Depends(get_services)) -> KillSwitchResponse:
    """Halt a strategy (``*``: every strategy of the track): every order is refused, cancels go
    on. Audited under the key's name, in every process at once (the state is in the warehouse)."""
    return services.risk.trigger(body, actor)


@router.post("/kill-switch/reset", response_model=KillSwitchResponse, responses=READ)
def reset(body: KillSwitchRequest, actor: Actor, services: Services = Depends(get_services)) -> KillSwitchResponse:
    """Release a switch; a track-wide one (``*``) and a strategy's own are released separately."""
    return services.risk.reset(body, actor)


@router.get("/state", response_model=StateResponse, responses=READ)
def state(track: Annotated[Track, Query()] = "liquid", strategy_id: Annotated[StrategyId | None, Query()] = None,
          as_of: Annotated[UtcTime | None, Query(description="Decision clock; default: the app's.")] = None,
          services: Services = Depends(get_services)) -> StateResponse:
    """ACTIVE, HALTED or REDUCING, with the switches, the day's PnL against its limit and the run
    of losing trades against its limit."""
    return services.risk.state(track, strategy_id, as_of)


@router.post("/breakers/consecutive-loss/reset", response_model=StateResponse, responses=READ)
def reset_consecutive_losses(body: BreakerResetRequest, actor: Actor,
                             services: Services = Depends(get_services)) -> StateResponse:
    """Keyed reset of the consecutive-loss breaker: the round trips closed so far stop counting."""
    return services.risk.reset_consecutive_losses(body, actor)
