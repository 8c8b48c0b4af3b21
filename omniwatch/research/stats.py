"""Statistics that count the trials: the t-statistic over windows and the deflated Sharpe ratio.

The deflated Sharpe ratio (Bailey and Lopez de Prado, "The Deflated Sharpe Ratio", 2014) is the
probability that the best of ``N`` tried variants has a true Sharpe ratio above zero, once its
estimate is corrected for the selection (the expected maximum of ``N`` Sharpe ratios drawn with
the trials' own variance and no skill) and for the non-normality of its returns. Sharpe ratios
here are per period (per hour), as the formula needs; the report shows annualised ones beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def t_stat(values: Sequence[float]) -> float:
    """mean / (std / sqrt(n)) over the finite values; NaN for fewer than two or no spread."""
    x = np.asarray([v for v in values if np.isfinite(v)], float)
    if len(x) < 2 or x.std(ddof=1) == 0:
        return math.nan
    return float(x.mean() / x.std(ddof=1) * math.sqrt(len(x)))


def expected_max_sharpe(trial_sharpes: Sequence[float]) -> float:
    """The Sharpe ratio the best of the trials would show with no skill at all (SR0)."""
    x = np.asarray([v for v in trial_sharpes if np.isfinite(v)], float)
    n = len(x)
    if n < 2:
        return 0.0
    spread = float(x.std(ddof=1))
    return spread * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n) + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))


def deflated_sharpe(returns: Sequence[float], trial_sharpes: Sequence[float]) -> tuple[float, float, float]:
    """``(dsr, sharpe, sr0)`` of the chosen variant's per-period ``returns`` among ``trial_sharpes``
    (every variant's per-period Sharpe, the chosen one included). ``dsr`` is a probability: call a
    variant skilful only when it is high (0.95 is the paper's bar)."""
    r = np.asarray([v for v in returns if np.isfinite(v)], float)
    if len(r) < 3 or r.std(ddof=1) == 0:
        return math.nan, math.nan, math.nan
    sr = float(r.mean() / r.std(ddof=1))
    sr0 = expected_max_sharpe(trial_sharpes)
    skew, kurt = float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr ** 2
    if denom <= 0:
        return math.nan, sr, sr0
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(denom))), sr, sr0


__all__ = ["deflated_sharpe", "expected_max_sharpe", "t_stat"]
