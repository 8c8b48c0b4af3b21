"""Position sizing that trades a forecast at its own horizon.

An hourly sign rule (position = sign of the newest forecast) turns a 24 h view over every hour:
on the bundled sample it turned over ~3,700 times a year and lost to costs on every horizon
(MODEL-NOTES). Here a forecast of the next ``H`` hours is a view held for ``H`` hours:

* **Tranches.** Each hour opens one tranche from that hour's forecast: ``sign(f)`` when
  ``|f| > threshold_bps``, else 0, scaled by volatility (``target_annual_vol / annual vol``, capped
  at ``max_weight``; an hour of unknown volatility opens a flat tranche). A tranche lives ``H``
  hours, so the target weight is the mean of the last ``H`` tranches (those not yet opened count
  as flat): one forecast moves the book by at most ``max_weight / H`` per hour.
* **No-trade band.** The held weight moves to the target only when they differ by more than
  ``band`` (a fraction of capital); otherwise it is held. A flat target (every tranche flat) always
  closes the position, so the band never keeps a view the model no longer has.

The walk-forward tables (``omniwatch.ml.metrics``), the backtest and ``execution/run`` all size
through :func:`sized_positions` / :func:`target_weight`, so a backtest trades what execution trades.
Weights are fractions of capital; forecasts are basis points of log return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class SizingRule:
    horizon_hours: int
    threshold_bps: float = 0.0
    band: float = 0.05
    target_annual_vol: float | None = 0.40   # None: unit tranches (sign only)
    max_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.horizon_hours < 1:
            raise ValueError(f"horizon_hours must be >= 1, got {self.horizon_hours}")
        if self.band < 0 or self.threshold_bps < 0 or self.max_weight <= 0:
            raise ValueError("band and threshold_bps must be >= 0 and max_weight > 0")

    def tranche(self, forecast_bps: float, hourly_vol: float | None) -> float:
        """The weight one hour's forecast opens (signed)."""
        if forecast_bps is None or not math.isfinite(forecast_bps) or abs(forecast_bps) <= self.threshold_bps:
            return 0.0
        direction = 1.0 if forecast_bps > 0 else -1.0
        if self.target_annual_vol is None:
            return direction * self.max_weight
        if hourly_vol is None or not math.isfinite(hourly_vol) or hourly_vol <= 0:
            return 0.0
        return direction * min(self.max_weight, self.target_annual_vol / (hourly_vol * math.sqrt(HOURS_PER_YEAR)))


def horizon_hours(horizon: str | int) -> int:
    """``"24h"`` -> 24."""
    return int(str(horizon).removesuffix("h"))


def tranches(forecasts_bps: Sequence[float] | np.ndarray, hourly_vols: Sequence[float | None] | np.ndarray | None,
             rule: SizingRule) -> np.ndarray:
    f = np.asarray(forecasts_bps, float)
    v = np.full(len(f), np.nan) if hourly_vols is None else np.asarray(hourly_vols, float)
    return np.array([rule.tranche(a, b) for a, b in zip(f, v, strict=True)], float)


def apply_band(target: float, held: float, band: float) -> float:
    """The weight to hold: ``target`` when it is flat or more than ``band`` from ``held``."""
    if not math.isfinite(target):
        return held
    if target == 0.0 or abs(target - held) > band:
        return target
    return held


def target_weight(recent: Sequence[tuple[float, float | None]], rule: SizingRule) -> float:
    """The target weight now from the forecasts of the last ``H`` hours, oldest first, one per
    hour (``(forecast_bps, hourly_vol)``; a missing hour is a flat tranche: pass ``(nan, None)``)."""
    window = list(recent)[-rule.horizon_hours:]
    return sum(rule.tranche(f, v) for f, v in window) / rule.horizon_hours


def sized_positions(forecasts_bps: Sequence[float] | np.ndarray,
                    hourly_vols: Sequence[float | None] | np.ndarray | None, rule: SizingRule) -> np.ndarray:
    """Held weights of one symbol's time-ordered hourly forecasts (start flat)."""
    t = tranches(forecasts_bps, hourly_vols, rule)
    h = rule.horizon_hours
    csum = np.concatenate([[0.0], np.cumsum(t)])
    idx = np.arange(1, len(t) + 1)
    targets = (csum[idx] - csum[np.maximum(idx - h, 0)]) / h
    targets[np.abs(targets) < 1e-12] = 0.0  # cumsum residue of tranches that all closed
    held, out = 0.0, np.empty(len(t))
    for i, target in enumerate(targets):
        held = apply_band(float(target), held, rule.band)
        out[i] = held
    return out


def position_rule(rule: SizingRule) -> Callable[..., np.ndarray]:
    """``rule`` as the metrics take it: (forecasts_bps, hourly_vols) -> held positions."""
    return partial(sized_positions, rule=rule)


def walk_forward_sizing(band: float, target_annual_vol: float | None) -> Callable[[int], Callable[..., np.ndarray]]:
    """The walk-forward's horizon sizing per horizon: sign tranches (no threshold: the table
    judges the forecast's sign), volatility-scaled, held for the horizon, with ``band``."""
    return lambda h: position_rule(SizingRule(h, band=band, target_annual_vol=target_annual_vol))
