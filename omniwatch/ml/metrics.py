"""Forecast and strategy metrics for hourly, 24/7 crypto predictions.

Conventions (all functions):

* Returns, costs and PnL are in **log-return units** and additive: ``net = gross - fees -
  slippage - funding`` exactly. ``exp(x) - 1`` turns a total into a simple return.
* A prediction made at ``as_of_ts = t`` sets the position held over ``(t, t + 1h]``; its PnL is
  ``position_t * next_hour_return_t``. ``funding_t`` is aligned the same way: the funding rate
  settled inside ``(t, t + 1h]`` (0 in hours without a settlement).
* Annualisation is for 24/7 hourly bars: ``HOURS_PER_YEAR = 24 * 365``.
* IC is computed per calendar window (default calendar month, as the walk-forward folds) and
  then averaged; pooled IC mixes all symbols' rows of a window in one correlation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from omniwatch.ml.validation import circular_shift_positions, day_shifts, window_keys

HOURS_PER_YEAR = 24 * 365
# A sizing rule as the metrics see it: (forecasts in bps, hourly vols or None) -> held positions
# (``omniwatch.trading.sizing.position_rule``; ml does not import trading).
PositionRule = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
POOLED = "pooled"
_REQUIRED = ("as_of_ts", "symbol", "horizon", "prediction", "realized", "next_hour_return")
_NULL_COLUMNS = ("rank_ic_null_mean", "rank_ic_null_std", "rank_ic_null_z", "rank_ic_null_p")


def window_ics(pred, realized, windows, *, method: str = "pearson", min_pairs: int = 3) -> pd.Series:
    """Correlation of prediction and realized label inside each window, indexed by window key.

    ``method`` is "pearson" (IC) or "spearman" (Rank IC: Pearson on average ranks). Pairs with
    a NaN are dropped; a window with fewer than ``min_pairs`` pairs or a constant column is NaN.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    codes, keys = pd.factorize(pd.Index(windows), sort=True)
    p, r = np.asarray(pred, float), np.asarray(realized, float)
    ok = np.isfinite(p) & np.isfinite(r)
    codes, p, r = codes[ok], p[ok], r[ok]
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    out = np.full(len(keys), np.nan)
    for i in range(len(keys)):
        rows = order[starts[i] : starts[i + 1]]
        if len(rows) < min_pairs:
            continue
        x, y = p[rows], r[rows]
        out[i] = _corr(_rank(x), _rank(y)) if method == "spearman" else _corr(x, y)
    return pd.Series(out, index=keys)


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as pandas/scipy 'average')."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    # ptp, not a variance test: a constant column must give exactly NaN, not float noise.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def _mean_ir(ics: pd.Series) -> tuple[float, float, float]:
    v = ics.dropna()
    mean = float(v.mean()) if len(v) else np.nan
    std = float(v.std(ddof=1)) if len(v) > 1 else np.nan
    return mean, std, (mean / std if std > 0 else np.nan)  # NaN > 0 is False


@dataclass(frozen=True)
class ICSummary:
    """Mean per-window IC / Rank IC, their ddof=1 std and IR = mean/std (not annualised);
    ``n_windows`` counts windows with a defined IC, ``n_windows_dropped`` those that were NaN."""

    ic_mean: float
    ic_std: float
    icir: float
    rank_ic_mean: float
    rank_ic_std: float
    rank_icir: float
    n_windows: int
    n_windows_dropped: int


def ic_summary(pred, realized, windows, *, min_pairs: int = 3) -> ICSummary:
    """IC and Rank IC per window (see :func:`window_ics`), then mean, std and IR over windows."""
    ic = window_ics(pred, realized, windows, method="pearson", min_pairs=min_pairs)
    ric = window_ics(pred, realized, windows, method="spearman", min_pairs=min_pairs)
    n = int(ic.notna().sum())
    return ICSummary(*_mean_ir(ic), *_mean_ir(ric), n_windows=n, n_windows_dropped=len(ic) - n)


@dataclass(frozen=True)
class HitRate:
    """``hit_rate`` = share of active rows with sign(pred) == sign(realized) (realized 0 = miss);
    active = ``|pred| > threshold``; ``coverage`` = active rows / rows with both values present."""

    hit_rate: float
    coverage: float
    n_active: int
    n: int


def hit_rate(pred, realized, *, threshold: float = 0.0) -> HitRate:
    """Directional accuracy of the rows a position is taken on; NaN pairs are dropped."""
    p, r = np.asarray(pred, float), np.asarray(realized, float)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    active = np.abs(p) > threshold
    n_active = int(active.sum())
    hits = np.sign(p[active]) == np.sign(r[active])  # sign(0) = 0 never equals +-1: a miss
    cover = n_active / len(p) if len(p) else np.nan
    return HitRate(float(hits.mean()) if n_active else np.nan, cover, n_active, len(p))


def positions_from_predictions(pred, band: float | None = None) -> np.ndarray:
    """Unit positions in {-1, 0, +1} from one symbol's time-ordered predictions.

    ``band=None``: ``sign(pred)`` (NaN -> flat). With a band: trade to ``sign(pred)`` only when
    ``|pred| > band``, otherwise (and on NaN) hold the previous position; start flat.
    """
    p = np.asarray(pred, float)
    if band is None:
        return np.nan_to_num(np.sign(p), nan=0.0)
    if band < 0:
        raise ValueError(f"band must be >= 0, got {band}")
    signal = np.where(np.isfinite(p) & (np.abs(p) > band), np.sign(p), np.nan)
    return pd.Series(signal).ffill().fillna(0.0).to_numpy()


def hourly_pnl(
    positions, next_return, funding=None, *, fee_bps: float = 5.0, slippage_bps: float = 5.0
) -> pd.DataFrame:
    """Per-hour PnL decomposition of a position path (one symbol, time-ordered).

    turnover_t = |pos_t - pos_{t-1}| with pos_{-1} = 0 (entering is traded, the final position is
    marked, not closed); fees/slippage = bps/1e4 * turnover; funding_t = pos_t * rate_t (a long
    pays a positive rate, a short receives it; NaN rate = 0); net = gross - fees - slippage - funding.
    """
    pos = np.asarray(positions, float)
    r = np.asarray(next_return, float)
    f = np.zeros_like(r) if funding is None else np.nan_to_num(np.asarray(funding, float))
    turnover = np.abs(np.diff(pos, prepend=0.0))
    out = pd.DataFrame({"gross": pos * r, "fees": turnover * fee_bps / 1e4,
                        "slippage": turnover * slippage_bps / 1e4, "funding": pos * f, "turnover": turnover})
    out["net"] = out.gross - out.fees - out.slippage - out.funding
    return out


def max_drawdown(log_returns) -> float:
    """Most negative ``equity / running_max - 1`` of ``equity = exp(cumsum)``, starting at 1.0."""
    x = np.asarray(log_returns, float)
    if len(x) == 0:
        return np.nan
    equity = np.exp(np.concatenate([[0.0], np.cumsum(x)]))
    return float((equity / np.maximum.accumulate(equity) - 1.0).min())


def sharpe(log_returns, periods_per_year: int = HOURS_PER_YEAR) -> float:
    """mean / std (ddof=1) * sqrt(periods_per_year); NaN for < 2 bars or zero variance."""
    x = np.asarray(log_returns, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return np.nan
    return float(x.mean() / x.std(ddof=1) * np.sqrt(periods_per_year))


def pnl_stats(pnl: pd.DataFrame) -> dict[str, float]:
    """Totals, annualised turnover, drawdown and Sharpe of an :func:`hourly_pnl` frame."""
    n = len(pnl)
    return {
        "gross_return": float(pnl.gross.sum()), "net_return": float(pnl.net.sum()),
        "fees": float(pnl.fees.sum()), "slippage": float(pnl.slippage.sum()), "funding": float(pnl.funding.sum()),
        "turnover": float(pnl.turnover.sum()),
        "turnover_annual": float(pnl.turnover.sum() / n * HOURS_PER_YEAR) if n else np.nan,
        "max_drawdown": max_drawdown(pnl.net), "sharpe": sharpe(pnl.net), "n_hours": n,
    }


def strategy_pnl(frame: pd.DataFrame, *, band: float | None = None, constant: float | None = None,
                 fee_bps: float = 5.0, slippage_bps: float = 5.0,
                 sizing: PositionRule | None = None) -> dict[str, pd.DataFrame]:
    """Hourly PnL per symbol and for the equal-weight pool, indexed by ``as_of_ts``.

    ``frame`` holds one horizon: as_of_ts, symbol, prediction, next_hour_return[, funding].
    ``constant`` replaces the model's positions by a fixed one (0 = zero forecast, +1 = always
    long, -1 = always short). ``sizing`` replaces the sign rule by the horizon's held tranches
    (``omniwatch.trading.sizing``; volatility from a ``vol`` column of hourly return std when
    present). Rows without a next-hour return are not traded. The pool is the mean over the
    symbols present in each hour (weights 1/N: pool turnover = mean turnover).
    """
    if frame.duplicated(["symbol", "as_of_ts"]).any():
        raise ValueError("duplicate (symbol, as_of_ts) rows: pass one horizon at a time")
    out: dict[str, pd.DataFrame] = {}
    for sym, g in frame.dropna(subset=["next_hour_return"]).sort_values("as_of_ts").groupby("symbol", sort=True):
        if constant is not None:
            pos = np.full(len(g), float(constant))
        elif sizing is not None:
            pos = sizing(g.prediction.to_numpy(float) * 1e4, g["vol"].to_numpy(float) if "vol" in g else None)
        else:
            pos = positions_from_predictions(g.prediction, band)
        fund = g["funding"] if "funding" in g else None
        pnl = hourly_pnl(pos, g.next_hour_return, fund, fee_bps=fee_bps, slippage_bps=slippage_bps)
        out[str(sym)] = pnl.set_axis(pd.DatetimeIndex(g.as_of_ts, name="as_of_ts"))
    if out:
        out[POOLED] = pd.concat(out.values()).groupby(level="as_of_ts").mean()
    return out


def evaluate_strategy(frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """:func:`pnl_stats` per symbol and pooled (index: symbol); kwargs go to :func:`strategy_pnl`."""
    stats = {k: pnl_stats(v) for k, v in strategy_pnl(frame, **kwargs).items()}
    return pd.DataFrame(stats).T.astype(float)


@dataclass(frozen=True)
class NullResult:
    """Circular-shift null of the mean per-window IC: ``z = (observed - null_mean) / null_std``;
    ``p_value`` = one-sided empirical (1 + #{null >= observed}) / (1 + n_finite_shifts)."""

    observed: float
    null: np.ndarray
    null_mean: float
    null_std: float
    z: float
    p_value: float
    shifts_days: tuple[int, ...]


def circular_shift_null(frame: pd.DataFrame, *, window: str = "MS", n_shifts: int = 20,
                        method: str = "spearman") -> NullResult:
    """Rotate predictions in time by whole days (all symbols together) and recompute the IC.

    Rotation keeps each prediction series' own autocorrelation and the cross-section, but breaks
    its alignment with the labels, so the shifted ICs show how large an IC arises from shared
    slow structure (drift, a common factor) alone. Shifts: :func:`day_shifts` (spread evenly
    over the sample, none near zero lag); ValueError if the sample spans under two days.
    """
    shifts = day_shifts(frame.as_of_ts, n_shifts)
    keys = window_keys(frame.as_of_ts, window)
    pred = np.append(frame.prediction.to_numpy(float), np.nan)  # position -1 (no source row) -> NaN

    def stat(p: np.ndarray) -> float:
        return _mean_ir(window_ics(p, frame.realized, keys, method=method))[0]

    null = np.array([stat(pred[circular_shift_positions(frame.as_of_ts, frame.symbol, k)]) for k in shifts])
    observed = stat(pred[:-1])
    finite = null[np.isfinite(null)]
    mean, std = (float(finite.mean()), float(finite.std(ddof=1))) if len(finite) > 1 else (np.nan, np.nan)
    return NullResult(observed, null, mean, std, (observed - mean) / std if std > 0 else np.nan,
                      float((1 + (finite >= observed).sum()) / (1 + len(finite))), tuple(shifts))


def summarize(predictions: pd.DataFrame, *, window: str = "MS", band: float | None = None,
              fee_bps: float = 5.0, slippage_bps: float = 5.0, hit_threshold: float = 0.0,
              null_shifts: int = 20, baselines: bool = True,
              sizing: Callable[[int], PositionRule] | None = None) -> pd.DataFrame:
    """Tidy table per horizon x strategy x symbol (plus "pooled") of forecast and strategy metrics.

    ``predictions`` is long: as_of_ts, symbol, horizon, prediction, realized, next_hour_return
    and optionally funding. Strategy rows "zero", "always_long" and "always_short" are the
    constant-position baselines through the same cost model (their IC is undefined: NaN); a model
    should beat the better constant-sign rule, not only zero. ``sizing`` (horizon hours -> rule)
    adds a "model_sized" row: the same forecasts traded as held tranches of their own horizon
    (``omniwatch.trading.sizing``), beside the hourly sign rule. With ``null_shifts > 0`` the model
    rows carry the circular-shift null of the mean Rank IC (rank_ic_null_*; NaN when a scope
    spans under two days).
    """
    missing = [c for c in _REQUIRED if c not in predictions]
    if missing:
        raise ValueError(f"predictions lacks columns {missing}")
    cost = {"fee_bps": fee_bps, "slippage_bps": slippage_bps}
    consts = {"zero": 0.0, "always_long": 1.0, "always_short": -1.0} if baselines else {}
    rows = []
    for horizon, sub in predictions.groupby("horizon", sort=True):
        scopes = {str(s): sub[sub.symbol == s] for s in sorted(sub.symbol.unique())} | {POOLED: sub}
        runs: dict[str, tuple[pd.DataFrame, float | None]] = {
            "model": (evaluate_strategy(sub, band=band, **cost), None)}
        if sizing is not None:
            runs["model_sized"] = (evaluate_strategy(sub, sizing=sizing(int(horizon)), **cost), None)
        runs |= {k: (evaluate_strategy(sub, constant=c, **cost), c) for k, c in consts.items()}
        for name, (strat, constant) in runs.items():
            for scope, g in scopes.items():
                pred = g.prediction if constant is None else np.full(len(g), constant)
                ic = ic_summary(pred, g.realized, window_keys(g.as_of_ts, window))
                hr = hit_rate(pred, g.realized, threshold=hit_threshold)
                row = {"horizon": horizon, "strategy": name, "symbol": scope, **asdict(ic),
                       "hit_rate": hr.hit_rate, "coverage": hr.coverage}
                row |= strat.loc[scope].to_dict() if scope in strat.index else {}
                if name == "model" and null_shifts > 0:
                    row |= _null_columns(g, window, null_shifts)
                rows.append(row)
    table = pd.DataFrame(rows)
    if "n_hours" in table:
        table["n_hours"] = table["n_hours"].astype("Int64")
    return table


def _null_columns(frame: pd.DataFrame, window: str, n_shifts: int) -> dict[str, float]:
    try:
        nr = circular_shift_null(frame, window=window, n_shifts=n_shifts)
    except ValueError:  # under two days of data: no whole-day rotation exists
        return dict.fromkeys(_NULL_COLUMNS, np.nan)
    return dict(zip(_NULL_COLUMNS, (nr.null_mean, nr.null_std, nr.z, nr.p_value), strict=True))


def to_markdown(table: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """Render a :func:`summarize` table as a GitHub markdown table."""
    return table.to_markdown(index=False, floatfmt=floatfmt)
