"""The risk API's calls into ``omniwatch.trading.risk_store``, and the 423 answer of a refusal.

The decision clock is the app's reference clock (the replay frontier, or the wall clock when
live), the same one execution decides at, so ``risk/check`` answers what an order would get.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from omniwatch.serving.errors import ApiError, ApiErrorCode, not_found
from omniwatch.serving.risk.schemas import (
    BreakerResetRequest,
    CheckRequest,
    CheckResponse,
    EffectiveLimits,
    KillSwitchesResponse,
    KillSwitchRequest,
    LimitsResponse,
)
from omniwatch.trading import ledger
from omniwatch.trading.orders import OrderRequest
from omniwatch.trading.risk import KillSwitch, RiskDecision
from omniwatch.trading.risk_store import TRADED_MODEL, BreakerStatus, RiskGuard, model_standing


def risk_refused(decision: RiskDecision) -> ApiError:
    """HTTP 423 for an order risk refused: ``code`` is the first violation's (kill switch, then
    breakers, then limits), ``context`` the state and every violation."""
    first = decision.violations[0]
    return ApiError(423, first.code, "; ".join(v.message for v in decision.violations), {
        "state": decision.state.value, "codes": decision.codes,
        "violations": [v.model_dump(mode="json") for v in decision.violations]})


class RiskService:
    def __init__(self, guard: RiskGuard, clock: Callable[[], datetime], default_strategy: str):
        self.guard, self.clock, self.default_strategy = guard, clock, default_strategy

    def limits(self, track: str | None, strategy_id: str | None) -> LimitsResponse:
        """The defaults, the overrides, and the effective set of the asked scope (default: the
        liquid track's default strategy) and of every configured override."""
        settings = self.guard.settings
        scopes = [(track or "liquid", strategy_id or self.default_strategy)]
        if track is None and strategy_id is None:
            scopes += [(k.partition(":")[0], k.partition(":")[2]) for k in settings.overrides]
        return LimitsResponse(defaults=settings.defaults, overrides=dict(settings.overrides), effective=[
            EffectiveLimits(track=t, strategy_id=s, sources=settings.sources(t, s), limits=settings.limits_for(t, s))
            for t, s in dict.fromkeys(scopes)])

    def check(self, body: CheckRequest) -> CheckResponse:
        now = body.as_of or self.clock()
        strategy = body.strategy_id or self.default_strategy
        price = body.price or body.limit_price or ledger.latest_closes(self.guard.url, [body.symbol], now).get(
            body.symbol)
        if price is None:
            reason = f"no price given and no stored bar of {body.symbol!r} at {now.isoformat()} to price the order"
            raise ApiError(422, ApiErrorCode.VALIDATION_ERROR, f"body.price: {reason}",
                           errors=[{"field": "body.price", "reason": reason, "type": "missing"}])
        order = OrderRequest(
            client_order_id=f"risk-check-{uuid.uuid4()}", track=body.track, strategy_id=strategy, symbol=body.symbol,
            side=body.side, qty=body.qty, order_type=body.order_type, limit_price=body.limit_price,
            time_in_force=body.time_in_force, max_slippage_bps=body.max_slippage_bps)
        model = None
        if body.model_version is not None:
            model = model_standing(self.guard.url, TRADED_MODEL, body.model_version, body.horizon)
            if not model.registered:
                raise not_found("model version", f"{TRADED_MODEL} v{body.model_version}")
        decision = self.guard.check(order, price, now, record=False, adapter=body.adapter, model=model)
        return CheckResponse(**decision.model_dump(), as_of=now, limits=self.guard.limits(body.track, strategy))

    def kill_switches(self, track: str | None) -> KillSwitchesResponse:
        return KillSwitchesResponse(kill_switches=self.guard.kill_switches(track))

    def trigger(self, body: KillSwitchRequest, actor: str) -> KillSwitch:
        return self.guard.trigger_kill_switch(body.track, body.strategy_id, actor, body.reason, self.clock())

    def reset(self, body: KillSwitchRequest, actor: str) -> KillSwitch:
        return self.guard.reset_kill_switch(body.track, body.strategy_id, actor, body.reason, self.clock())

    def state(self, track: str, strategy_id: str | None, as_of: datetime | None = None) -> BreakerStatus:
        return self.guard.status(track, strategy_id or self.default_strategy, as_of or self.clock())

    def reset_consecutive_losses(self, body: BreakerResetRequest, actor: str) -> BreakerStatus:
        return self.guard.reset_consecutive_losses(body.track, body.strategy_id, actor, body.reason, self.clock())
