"""Statistics that count the trials: the t-statistic over windows and the deflated Sharpe ratio.

The deflated Sharpe ratio (Bailey and Lopez de Prado, "The Deflated Sharpe Ratio", 2014) is the
probability that the best of ``N`` tried variants has a true Sharpe ratio above zero, once its
estimate is corrected for the selection (the expected maximum of ``N`` Sharpe ratios drawn with
the trials' own variance and no skill) and for the non-normality of its returns. Sharpe ratios
here are per period (per hour), as the formula needs; the report shows annualised ones beside.

The goal (issue 14) a variant must meet at the traded horizon, pooled over all windows after
costs and with horizon-matched sizing: mean Rank IC >= 0.03 with t >= 3 over windows, a hit rate
above the better constant-sign rule's, and a sized net Sharpe above 0.5 at no more than 150
round turns of capital a year (:func:`meets_goal`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329
GOAL_RANK_IC, GOAL_T, GOAL_SHARPE, GOAL_TURNOVER = 0.03, 3.0, 0.5, 150.0


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


def constant_hit_rate(realized: Sequence[float]) -> float:
    """The better constant sign's hit rate: the larger share of rows that rose or that fell (a
    zero return is a miss for both, as for the model); NaN without finite values."""
    r = np.asarray(realized, float)
    r = r[np.isfinite(r)]
    return float(max((r > 0).mean(), (r < 0).mean())) if len(r) else math.nan


def meets_goal(row: Mapping[str, float]) -> bool:
    """Whether a summary row (``rank_ic_mean``, ``rank_ic_t``, ``hit_rate``, ``constant_hit_rate``,
    ``sized_sharpe``, ``sized_turnover_annual``) meets every part of the goal; a NaN fails."""
    checks = (row["rank_ic_mean"] >= GOAL_RANK_IC, row["rank_ic_t"] >= GOAL_T,
              row["hit_rate"] > row["constant_hit_rate"], row["sized_sharpe"] > GOAL_SHARPE,
              row["sized_turnover_annual"] <= GOAL_TURNOVER)
    return bool(all(checks))  # every comparison with NaN is False


__all__ = ["constant_hit_rate", "deflated_sharpe", "expected_max_sharpe", "meets_goal", "t_stat"]
