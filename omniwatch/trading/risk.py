"""Risk rules as plain functions of typed inputs: one limits set, kill switches, two breakers and
the trading state they put a strategy in.

The rules here decide; ``omniwatch.trading.risk_store`` reads the persisted switches and the
ledger figures, calls :func:`check_order` and records what it refused. Every rule is testable on
hand-built inputs, as the model-ops rules are.

Definitions (the README repeats them):

- **Limits** (:class:`RiskLimits`, one set per track and strategy, also the set portfolio/rebalance
  keeps): ``max_order_notional_usd`` caps ``qty * price`` of every order; ``max_position_notional_usd``
  caps ``|qty * mark|`` of one symbol after the order; ``max_gross_exposure_usd`` caps
  ``sum |qty * mark|`` over symbols; ``max_weight_per_asset``, ``max_gross_leverage`` and
  ``max_net_exposure`` are the same three as fractions of ``capital_usd`` (net: ``|sum qty * mark|``).
  An exposure limit refuses an order only when the exposure after it is above the limit **and**
  above the exposure before it: an order that brings an over-limit book back is always allowed.
  ``target_annual_vol`` and ``min_trade_weight`` bind the rebalance (they need volatilities and
  a target book), not single orders. A value equal to its limit passes.
- **Kill switch** per track and strategy, or per track for all strategies (strategy ``*``): while
  triggered the strategy is HALTED. Code ``kill_switch_triggered:{track}:{strategy_id}``, naming the
  switch (``*`` for the track-wide one).
- **Daily loss**: the calendar UTC day's PnL after costs (realised PnL of the day's fills and
  funding, plus the change of the marked PnL of open positions since 00:00 UTC; see
  ``ledger.day_pnl``). The limit is ``daily_loss_limit_fraction * capital_usd``, or
  ``daily_loss_limit_usd`` when that is set and smaller. The breaker trips when the loss is larger
  than the limit (``day_pnl < -limit``) and holds REDUCING until 00:00 UTC, even if marks recover.
- **Consecutive losses**: the trailing run of closed round trips with PnL after costs below zero
  (a round trip at zero or above ends the run). ``max_consecutive_losses`` of them in a row trip
  the breaker (REDUCING) until a winning trade ends the run or a keyed reset, which leaves the
  trades closed before it out of the count.

- **Model validation**: a live order (adapter ``coinbase_live``) placed for a model version's
  forecast needs that version to have demonstrated skill at the order's horizon
  (``omniwatch.modelops.skill``, judged at registration); otherwise it is refused
  ``model_not_validated``. Paper orders from the same version go on (the version is served for
  monitoring), and orders with no model behind them (a person's ``execution/orders``, the way to
  flatten a live position by hand) are not judged by this rule. It refuses reducing orders too,
  as a kill switch does: the model's forecasts are not evidence for any live trade. It is not a
  trading state: the strategy stays ACTIVE for orders this rule does not judge.

States: HALTED (any kill switch covering the strategy), else REDUCING (a breaker tripped), else
ACTIVE. HALTED refuses every order: only cancels go on, and cancels never pass through
:func:`check_order` (taking risk off is never refused). REDUCING allows only orders that shrink the
symbol's open position towards zero without flipping it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from omniwatch.errors import ErrorCode
from omniwatch.trading.orders import OrderRequest

ALL_STRATEGIES = "*"  # the strategy scope of a track-wide kill switch
EPS = 1e-9


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"      # only cancels
    REDUCING = "REDUCING"  # only orders that reduce a position


class RiskRule(StrEnum):
    """What refused an order; the code of a limit is its rule's name."""

    KILL_SWITCH = "kill_switch"
    DAILY_LOSS = "daily_loss"
    CONSECUTIVE_LOSS = "consecutive_loss"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_NOTIONAL = "max_position_notional"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_WEIGHT_PER_ASSET = "max_weight_per_asset"
    MAX_GROSS_LEVERAGE = "max_gross_leverage"
    MAX_NET_EXPOSURE = "max_net_exposure"
    MODEL_NOT_VALIDATED = "model_not_validated"


LIVE_ADAPTERS = frozenset({"coinbase_live"})  # adapters that put real money at risk


@dataclass(frozen=True)
class ModelStanding:
    """The model version behind an order and its skill verdict at the order's horizon."""

    model_name: str
    version: str
    horizon: str
    demonstrated: bool
    reason: str
    registered: bool = True  # False: the registry does not know the version (it has demonstrated nothing)


@dataclass(frozen=True)
class RiskLimits:
    """The one limits set of a track and strategy (weights are fractions of ``capital_usd``)."""

    target_annual_vol: float
    max_weight_per_asset: float
    max_gross_leverage: float
    max_net_exposure: float
    min_trade_weight: float
    capital_usd: float = 100_000.0
    max_order_notional_usd: float = 50_000.0
    max_position_notional_usd: float = 50_000.0
    max_gross_exposure_usd: float = 100_000.0
    daily_loss_limit_fraction: float = 0.02
    daily_loss_limit_usd: float | None = None
    max_consecutive_losses: int = 5


class LimitOverrides(BaseModel):
    """Per track/strategy changes to the default limits (``OMNIWATCH_RISK_LIMITS``); a typo fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_annual_vol: float | None = Field(default=None, gt=0)
    max_weight_per_asset: float | None = Field(default=None, gt=0)
    max_gross_leverage: float | None = Field(default=None, gt=0)
    max_net_exposure: float | None = Field(default=None, gt=0)
    min_trade_weight: float | None = Field(default=None, ge=0)
    capital_usd: float | None = Field(default=None, gt=0)
    max_order_notional_usd: float | None = Field(default=None, gt=0)
    max_position_notional_usd: float | None = Field(default=None, gt=0)
    max_gross_exposure_usd: float | None = Field(default=None, gt=0)
    daily_loss_limit_fraction: float | None = Field(default=None, gt=0)
    daily_loss_limit_usd: float | None = Field(default=None, gt=0)
    max_consecutive_losses: int | None = Field(default=None, ge=1)


def scope_key(track: str, strategy_id: str) -> str:
    return f"{track}:{strategy_id}"


@dataclass(frozen=True)
class RiskSettings:
    """Default limits and the overrides keyed ``track:*`` (a whole track) or ``track:strategy_id``;
    the strategy's key wins over the track's, which wins over the defaults."""

    defaults: RiskLimits
    overrides: Mapping[str, LimitOverrides] = field(default_factory=dict)

    def sources(self, track: str, strategy_id: str) -> list[str]:
        keys = [scope_key(track, ALL_STRATEGIES), scope_key(track, strategy_id)]
        return ["defaults", *dict.fromkeys(k for k in keys if k in self.overrides)]

    def limits_for(self, track: str, strategy_id: str) -> RiskLimits:
        limits = self.defaults
        for key in self.sources(track, strategy_id)[1:]:
            limits = replace(limits, **self.overrides[key].model_dump(exclude_none=True))
        return limits


@dataclass(frozen=True)
class KillSwitch:
    """The latest state of one switch (``strategy_id`` ``*``: every strategy of the track)."""

    track: str
    strategy_id: str
    triggered: bool
    triggered_by: str | None = None
    triggered_at: datetime | None = None
    reason: str | None = None
    reset_by: str | None = None
    reset_at: datetime | None = None


@dataclass(frozen=True)
class BreakerState:
    """What the warehouse remembers for one strategy: the triggered switches covering it and
    whether the daily-loss breaker already tripped this UTC day."""

    kill_switches: tuple[KillSwitch, ...] = ()
    daily_loss_tripped: bool = False


@dataclass(frozen=True)
class RiskContext:
    """The ledger's figures at decision time. ``positions``: symbol -> signed base quantity before
    the order; ``marks``: the price of every open symbol (the order's own symbol is priced at the
    order's price); ``closed_trade_pnls``: the round trips counted by the breaker, oldest first."""

    positions: Mapping[str, float]
    marks: Mapping[str, float]
    day_pnl: float
    closed_trade_pnls: Sequence[float] = ()


class RiskViolation(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: RiskRule
    code: str = Field(description="kill_switch_triggered:{track}:{strategy_id}, daily_loss_exceeded, "
                                  "consecutive_loss_exceeded, or the limit's name.")
    track: str
    strategy_id: str = Field(description="The strategy the rule applies to (a kill switch's scope: `*` for all).")
    message: str
    value: float | None = Field(default=None, description="The metric the rule measured (USD, count or weight).")
    threshold: float | None = Field(default=None, description="The limit it was compared with.")
    detail: dict[str, Any] = Field(default_factory=dict)


class RiskDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    allowed: bool
    state: TradingState
    track: str
    strategy_id: str
    symbol: str
    side: str
    qty: float
    price: float
    notional: float = Field(description="qty * price, USD.")
    reducing: bool = Field(description="The order reduces the symbol's position without flipping it.")
    violations: list[RiskViolation]

    @property
    def codes(self) -> list[str]:
        return [v.code for v in self.violations]


def daily_loss_limit(limits: RiskLimits) -> float:
    """The USD loss the day may reach: the fraction of capital, or the USD cap when smaller."""
    by_fraction = limits.daily_loss_limit_fraction * limits.capital_usd
    return by_fraction if limits.daily_loss_limit_usd is None else min(by_fraction, limits.daily_loss_limit_usd)


def daily_loss_exceeded(day_pnl: float, limits: RiskLimits) -> bool:
    return -day_pnl > daily_loss_limit(limits) + EPS


def consecutive_losses(pnls: Sequence[float]) -> int:
    """Losing round trips (PnL < 0) at the end of ``pnls``; any other trade ends the run."""
    n = 0
    for pnl in reversed(pnls):
        if pnl >= 0:
            break
        n += 1
    return n


def is_reducing(position_qty: float, side: str, qty: float) -> bool:
    """True when the order shrinks the open position towards zero without crossing it."""
    if abs(position_qty) <= EPS:
        return False
    opposite = (side == "sell") == (position_qty > 0)
    return opposite and qty <= abs(position_qty) * (1 + EPS)


def trading_state(kill_switched: bool, daily_loss: bool, consecutive_loss: bool) -> TradingState:
    if kill_switched:
        return TradingState.HALTED
    if daily_loss or consecutive_loss:
        return TradingState.REDUCING
    return TradingState.ACTIVE


@dataclass(frozen=True)
class Exposure:
    by_symbol: dict[str, float]  # signed notional, USD
    gross: float
    net: float


def exposure(positions: Mapping[str, float], marks: Mapping[str, float]) -> Exposure:
    """Signed notionals of the open positions at ``marks``; a missing mark is an error, not 0."""
    missing = sorted(s for s, q in positions.items() if abs(q) > EPS and s not in marks)
    if missing:
        raise ValueError(f"no mark for the open position(s) {', '.join(missing)}")
    by = {s: q * marks[s] for s, q in positions.items() if abs(q) > EPS}
    return Exposure(by, math.fsum(abs(v) for v in by.values()), math.fsum(by.values()))


def _violation(order: OrderRequest, rule: RiskRule, message: str, value: float | None, threshold: float | None,
               **detail: Any) -> RiskViolation:
    return RiskViolation(rule=rule, code=rule.value, track=order.track, strategy_id=order.strategy_id,
                         message=message, value=value, threshold=threshold, detail=detail)


def limit_violations(order: OrderRequest, price: float, context: RiskContext,
                     limits: RiskLimits) -> list[RiskViolation]:
    """The limits ``order`` breaks at ``price``; exposure limits only where the order adds to a breach."""
    notional = order.qty * price
    out = []
    if notional > limits.max_order_notional_usd + EPS:
        out.append(_violation(order, RiskRule.MAX_ORDER_NOTIONAL,
                              f"order notional {notional:.2f} USD is above {limits.max_order_notional_usd:.2f} USD",
                              notional, limits.max_order_notional_usd))
    marks = {**context.marks, order.symbol: price}
    before = exposure(context.positions, marks)
    after_qty = context.positions.get(order.symbol, 0.0) + order.qty * (1 if order.side == "buy" else -1)
    after = exposure({**context.positions, order.symbol: after_qty}, marks)
    pos_before, pos_after = abs(before.by_symbol.get(order.symbol, 0.0)), abs(after.by_symbol.get(order.symbol, 0.0))
    cap = limits.capital_usd
    checks = [
        (RiskRule.MAX_POSITION_NOTIONAL, pos_before, pos_after, limits.max_position_notional_usd, "USD"),
        (RiskRule.MAX_GROSS_EXPOSURE, before.gross, after.gross, limits.max_gross_exposure_usd, "USD"),
        (RiskRule.MAX_WEIGHT_PER_ASSET, pos_before / cap, pos_after / cap, limits.max_weight_per_asset, "of capital"),
        (RiskRule.MAX_GROSS_LEVERAGE, before.gross / cap, after.gross / cap, limits.max_gross_leverage, "of capital"),
        (RiskRule.MAX_NET_EXPOSURE, abs(before.net) / cap, abs(after.net) / cap, limits.max_net_exposure,
         "of capital"),
    ]
    for rule, pre, post, limit, unit in checks:
        if post > limit + EPS and post > pre + EPS:
            out.append(_violation(order, rule, f"{rule.value} after the order would be {post:.6g} {unit}, above "
                                  f"{limit:.6g} (before: {pre:.6g})", post, limit, symbol=order.symbol,
                                  before=pre, capital_usd=cap))
    return out


def breaker_violations(order: OrderRequest, context: RiskContext, limits: RiskLimits,
                       state: BreakerState) -> list[RiskViolation]:
    """The tripped breakers, as violations (they refuse only orders that do not reduce)."""
    out = []
    loss_limit = daily_loss_limit(limits)
    if state.daily_loss_tripped or daily_loss_exceeded(context.day_pnl, limits):
        out.append(RiskViolation(
            rule=RiskRule.DAILY_LOSS, code=ErrorCode.DAILY_LOSS_EXCEEDED.value, track=order.track,
            strategy_id=order.strategy_id, value=-context.day_pnl, threshold=loss_limit,
            message=f"today's loss {-context.day_pnl:.2f} USD passed the {loss_limit:.2f} USD limit "
                    "(REDUCING until 00:00 UTC)",
            detail={"day_pnl": context.day_pnl, "latched": state.daily_loss_tripped,
                    "daily_loss_limit_fraction": limits.daily_loss_limit_fraction,
                    "daily_loss_limit_usd": limits.daily_loss_limit_usd, "capital_usd": limits.capital_usd}))
    losses = consecutive_losses(context.closed_trade_pnls)
    if losses >= limits.max_consecutive_losses:
        out.append(RiskViolation(
            rule=RiskRule.CONSECUTIVE_LOSS, code=ErrorCode.CONSECUTIVE_LOSS_EXCEEDED.value, track=order.track,
            strategy_id=order.strategy_id, value=float(losses), threshold=float(limits.max_consecutive_losses),
            message=f"{losses} losing round trips in a row (limit {limits.max_consecutive_losses}); REDUCING until "
                    "a win or a keyed reset",
            detail={"losing_pnls": list(context.closed_trade_pnls[-losses:])}))
    return out


def kill_switch_violations(order: OrderRequest, state: BreakerState) -> list[RiskViolation]:
    return [RiskViolation(
        rule=RiskRule.KILL_SWITCH, code=ErrorCode.kill_switch(s.track, s.strategy_id), track=s.track,
        strategy_id=s.strategy_id,
        message=f"kill switch {s.track}:{s.strategy_id} triggered by {s.triggered_by}: {s.reason}",
        detail={"order_strategy_id": order.strategy_id, "triggered_by": s.triggered_by,
                "triggered_at": s.triggered_at.isoformat() if s.triggered_at else None, "reason": s.reason})
        for s in state.kill_switches if s.triggered and s.track == order.track
        and s.strategy_id in (order.strategy_id, ALL_STRATEGIES)]


def model_violations(order: OrderRequest, adapter: str, model: ModelStanding | None) -> list[RiskViolation]:
    """A live order from a version without demonstrated skill at its horizon: ``model_not_validated``."""
    if adapter not in LIVE_ADAPTERS or model is None or model.demonstrated:
        return []
    return [RiskViolation(
        rule=RiskRule.MODEL_NOT_VALIDATED, code=ErrorCode.MODEL_NOT_VALIDATED.value, track=order.track,
        strategy_id=order.strategy_id,
        message=f"{model.model_name} v{model.version} has no demonstrated skill at {model.horizon}: live orders "
                f"from it are refused (paper trading goes on). {model.reason}",
        detail={"model_name": model.model_name, "model_version": model.version, "horizon": model.horizon,
                "adapter": adapter, "skill_reason": model.reason})]


def check_order(order: OrderRequest, price: float, context: RiskContext, limits: RiskLimits,
                state: BreakerState, *, adapter: str = "paper", model: ModelStanding | None = None) -> RiskDecision:
    """Allowed or not, the state, and every violation: a kill switch refuses any order; a
    tripped breaker refuses orders that do not reduce; the limits refuse what they bind; a live
    order from a model version without demonstrated skill is refused (``model``: the version
    behind the order, None for an order no model placed)."""
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"price must be a positive number, not {price!r}")
    switches = kill_switch_violations(order, state)
    breakers = breaker_violations(order, context, limits, state)
    reducing = is_reducing(context.positions.get(order.symbol, 0.0), order.side, order.qty)
    violations = (switches + model_violations(order, adapter, model) + ([] if reducing else breakers)
                  + limit_violations(order, price, context, limits))
    tripped = {b.rule for b in breakers}
    state_now = trading_state(bool(switches), RiskRule.DAILY_LOSS in tripped, RiskRule.CONSECUTIVE_LOSS in tripped)
    return RiskDecision(
        allowed=not violations, state=state_now,
        track=order.track, strategy_id=order.strategy_id, symbol=order.symbol, side=order.side, qty=order.qty,
        price=price, notional=order.qty * price, reducing=reducing, violations=violations)

