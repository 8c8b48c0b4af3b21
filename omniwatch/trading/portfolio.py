"""Portfolio rules as plain functions of data and thresholds: risk limits, scores, rebalances.

Portfolio scores and rebalances are decided here (signals in ``trading.signals``); the routes only fetch predictions,
call these and persist or return the result, so each rule is testable on tiny typed inputs.
Predictions are in basis points of log return; weights are fractions of capital.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# One limits set for rebalances and orders (``trading.risk``); re-exported for the callers of this module.
from omniwatch.trading.risk import RiskLimits as RiskLimits
from omniwatch.trading.signals import decide_signal

HOURS_PER_YEAR = 24 * 365


def annual_vol(hourly_vol: float | None) -> float | None:
    """Annualised volatility of 24/7 hourly returns; None when unknown or not positive."""
    if hourly_vol is None or not math.isfinite(hourly_vol) or hourly_vol <= 0:
        return None
    return hourly_vol * math.sqrt(HOURS_PER_YEAR)


def limit_breaches(weights: dict[str, float], vols: dict[str, float | None], limits: RiskLimits) -> list[str]:
    """Names of the limits ``weights`` break (``max_weight_per_asset:BTC`` per asset)."""
    eps = 1e-9
    out = [f"max_weight_per_asset:{t}" for t, w in sorted(weights.items())
           if abs(w) > limits.max_weight_per_asset + eps]
    if sum(abs(w) for w in weights.values()) > limits.max_gross_leverage + eps:
        out.append("max_gross_leverage")
    if abs(sum(weights.values())) > limits.max_net_exposure + eps:
        out.append("max_net_exposure")
    if vol_upper(weights, vols) > limits.target_annual_vol + eps:
        out.append("target_annual_vol")
    if any(w != 0 and vols.get(t) is None for t, w in weights.items()):
        out.append("unknown_volatility")
    return out


def vol_upper(weights: dict[str, float], vols: dict[str, float | None]) -> float:
    """``sum |w| vol``: portfolio volatility if every pair were perfectly correlated (a bound)."""
    return sum(abs(w) * (vols.get(t) or 0.0) for t, w in weights.items())


@dataclass(frozen=True)
class PortfolioScore:
    expected_return_bps: float
    contributions_bps: dict[str, float]
    gross_exposure: float
    net_exposure: float
    vol_annual_upper: float | None
    breaches: list[str]


def score_portfolio(weights: dict[str, float], predictions_bps: dict[str, float],
                    vols: dict[str, float | None], limits: RiskLimits) -> PortfolioScore:
    """Expected return of a weight vector under the model's forecasts, and the limits it breaks."""
    contrib = {t: w * predictions_bps[t] for t, w in weights.items()}
    known = all(vols.get(t) is not None for t, w in weights.items() if w != 0)
    return PortfolioScore(sum(contrib.values()), contrib, sum(abs(w) for w in weights.values()),
                          sum(weights.values()), vol_upper(weights, vols) if known else None,
                          limit_breaches(weights, vols, limits))


@dataclass(frozen=True)
class AssetInput:
    target: str
    prediction_bps: float
    threshold_bps: float
    vol_annual: float | None


@dataclass(frozen=True)
class RebalanceDecision:
    raw_weights: dict[str, float]
    weights: dict[str, float]
    trades: dict[str, float]
    directions: dict[str, int]
    binding: list[str] = field(default_factory=list)


def rebalance(assets: list[AssetInput], limits: RiskLimits, current: dict[str, float]) -> RebalanceDecision:
    """Target weights: each asset with a signal gets an equal share of the volatility budget
    (``direction * target_vol / n / vol``), then the per-asset cap, then gross and net caps scale
    the whole book; trades smaller than ``min_trade_weight`` are skipped when skipping them keeps
    the book inside the limits. Assets of unknown volatility get no position."""
    book = target_book(assets, limits)
    weights, trades = settle(book.weights, current, {a.target: a.vol_annual for a in assets}, limits)
    return RebalanceDecision(book.raw_weights, weights, trades, book.directions, book.binding)


def target_book(assets: list[AssetInput], limits: RiskLimits) -> RebalanceDecision:
    """The capped target weights of :func:`rebalance`, before small trades are skipped (no trades)."""
    directions = {a.target: decide_signal(a.prediction_bps, a.threshold_bps).direction for a in assets}
    active = {a.target: a.vol_annual for a in assets if directions[a.target] != 0 and a.vol_annual is not None}
    budget = limits.target_annual_vol / len(active) if active else 0.0
    raw = dict.fromkeys(directions, 0.0)
    for t, vol in active.items():
        raw[t] = directions[t] * budget / vol
    weights, binding = dict(raw), []
    for t, w in weights.items():
        if abs(w) > limits.max_weight_per_asset:
            weights[t] = math.copysign(limits.max_weight_per_asset, w)
            binding.append(f"max_weight_per_asset:{t}")
    gross = sum(abs(w) for w in weights.values())
    if gross > limits.max_gross_leverage:
        weights = {t: w * limits.max_gross_leverage / gross for t, w in weights.items()}
        binding.append("max_gross_leverage")
    net = sum(weights.values())
    if abs(net) > limits.max_net_exposure:
        weights = {t: w * limits.max_net_exposure / abs(net) for t, w in weights.items()}
        binding.append("max_net_exposure")
    return RebalanceDecision(raw, weights, {}, directions, binding)


def settle(weights: dict[str, float], current: dict[str, float], vols: dict[str, float | None],
           limits: RiskLimits) -> tuple[dict[str, float], dict[str, float]]:
    """(weights, trades): trades below ``min_trade_weight`` skipped if the book stays inside the limits."""
    quiet = {t: (current.get(t, 0.0) if abs(w - current.get(t, 0.0)) < limits.min_trade_weight else w)
             for t, w in weights.items()}
    if quiet != weights and not limit_breaches(quiet, vols, limits):
        weights = quiet
    return weights, {t: w - current.get(t, 0.0) for t, w in weights.items()}
