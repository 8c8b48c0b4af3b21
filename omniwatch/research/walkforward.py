"""The research walk-forward: every variant judged per monthly window and per market regime,
against the constant-sign rules and the circular-shift null, every trial counted.

``omniwatch research walk-forward`` runs it on the bundled sample: expanding window, 24 h purge,
one calendar month per test window, the last ``windows`` months (12: 2024-10 .. 2025-09). A
window's regime is the trailing 30-day return of the equal-weight BTC/ETH/SOL basket at its start
(up above +5 %, down below -5 %, flat between). Each variant is LightGBM (the project's
``fit_lightgbm``: the same purge, early stopping and seed) on its own feature set; each is one
trial, an MLflow run in the ``omniwatch-research`` experiment tagged with its config hash and the
tables as artifacts. The report gives, per variant and horizon, each window's Rank IC, hit rate
(and the better constant sign's), net Sharpe after costs (5 bps fee + 5 bps slippage + funding) of
the hourly sign rule, of the better constant-sign rule and of the **sized** strategy (the forecasts
held as tranches of their horizon, volatility-scaled, with a no-trade band: the project's
``walk_forward_sizing``, what execution trades) with its annual turnover, the t-statistic of Rank
IC over windows, the circular-shift null z of the pooled Rank IC, whether the variant meets the
goal (``stats.meets_goal``), and the deflated Sharpe ratio of the best variant's sized strategy at
the traded horizon among all trials (``stats.deflated_sharpe``; the hourly sign rule's beside it).

Two candidates need no new fit: ``shrink`` scales a fitted variant's walk-forward forecasts by
their reliability so far (:func:`reliability_multipliers`, earlier windows only), and a fixed
``rule`` (the 1 h reversal, :func:`reversal_1h`) forecasts without fitting at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import LABEL_BPS
from omniwatch.ml.metrics import HOURS_PER_YEAR, POOLED, hit_rate, sharpe, strategy_pnl, summarize, window_ics
from omniwatch.ml.protocol import TrainingConfig, lightgbm_functions, long_predictions, run_protocol
from omniwatch.ml.validation import window_keys
from omniwatch.research.stats import constant_hit_rate, deflated_sharpe, meets_goal, t_stat

REGIME_DAYS, REGIME_BAND = 30, 0.05
NEWS = ("news_count_24h", "news_tone_24h")
# Shrinkage: a window's forecasts are multiplied by clip(mean Rank IC of the earlier windows /
# SHRINK_REFERENCE_IC, 0, 1); the first window, with no earlier evidence, by SHRINK_PRIOR (flat).
SHRINK_REFERENCE_IC, SHRINK_PRIOR = 0.05, 0.0


@dataclass(frozen=True)
class Variant:
    """One trial: a name, the features LightGBM sees, and how the frame gets any new ones."""

    name: str
    features: tuple[str, ...]
    add: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    note: str = ""
    vol_scaled_target: bool = False  # fit labels / vol_24h, scale forecasts back by it
    shrink: bool = False  # scale the walk-forward forecasts by their reliability so far
    rule: Callable[[pd.DataFrame], np.ndarray] | None = None  # a fixed forecast (bps), no fitting

    def config_hash(self, config: TrainingConfig) -> str:
        spec = {"name": self.name, "features": list(self.features), "training": config.to_json(),
                "vol_scaled_target": self.vol_scaled_target}
        if self.shrink:  # only when set, so the earlier variants keep their hashes
            spec |= {"shrink": True, "shrink_reference_ic": SHRINK_REFERENCE_IC, "shrink_prior": SHRINK_PRIOR}
        if self.rule is not None:
            spec["rule"] = self.rule.__name__
        text = json.dumps(spec, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def fit_key(self) -> tuple:
        """Variants with the same key share one walk-forward fit (shrinkage is applied after it)."""
        return self.features, self.add, self.vol_scaled_target, self.rule


def with_seasonality(frame: pd.DataFrame) -> pd.DataFrame:
    """Hour of day and day of week as cyclic features (known at ``as_of_ts``)."""
    t = pd.to_datetime(frame["as_of_ts"], utc=True)
    hour, dow = t.dt.hour.to_numpy(float), t.dt.dayofweek.to_numpy(float)
    return frame.assign(hour_sin=np.sin(2 * np.pi * hour / 24), hour_cos=np.cos(2 * np.pi * hour / 24),
                        dow_sin=np.sin(2 * np.pi * dow / 7), dow_cos=np.cos(2 * np.pi * dow / 7))


def with_cross_asset(frame: pd.DataFrame) -> pd.DataFrame:
    """BTC's own 1 h and 24 h returns and 24 h volatility, and the basket's 24 h return, on every
    symbol's row of the same hour (all known at ``as_of_ts``)."""
    cols = [c for c in ("ret_1h", "ret_24h", "vol_24h") if c in frame]
    btc = frame.loc[frame["symbol"] == "BTC", ["as_of_ts", *cols]].rename(columns={c: f"btc_{c}" for c in cols})
    basket = frame.groupby("as_of_ts", as_index=False)["ret_24h"].mean().rename(columns={"ret_24h": "basket_ret_24h"})
    return frame.merge(btc, on="as_of_ts", how="left").merge(basket, on="as_of_ts", how="left")


def _lagged(frame: pd.DataFrame, column: str, hours: int) -> pd.Series:
    """``column`` as it was ``hours`` earlier for the same symbol (NaN where that hour is missing)."""
    past = frame[["symbol", "as_of_ts", column]].assign(as_of_ts=frame["as_of_ts"] + pd.Timedelta(hours=hours))
    merged = frame[["symbol", "as_of_ts"]].merge(past, on=["symbol", "as_of_ts"], how="left")
    return merged[column].set_axis(frame.index)


def with_longer_lookback(frame: pd.DataFrame) -> pd.DataFrame:
    """The 24 h return of each of the previous three days and last week's 168 h return and volatility."""
    return frame.assign(ret_24h_lag24=_lagged(frame, "ret_24h", 24), ret_24h_lag48=_lagged(frame, "ret_24h", 48),
                        ret_24h_lag72=_lagged(frame, "ret_24h", 72), ret_168h_lag168=_lagged(frame, "ret_168h", 168),
                        vol_24h_lag24=_lagged(frame, "vol_24h", 24))


def with_vol_regime(frame: pd.DataFrame) -> pd.DataFrame:
    """The realised-volatility regime: 24 h over 168 h volatility, and the 168 h volatility's
    z-score against its own trailing 30 days (per symbol)."""
    ordered = frame.sort_values(["symbol", "as_of_ts"])
    rolling = ordered.groupby("symbol")["vol_168h"].rolling(720, min_periods=168)
    mean = rolling.mean().reset_index(level=0, drop=True)
    std = rolling.std().reset_index(level=0, drop=True)
    z = ((ordered["vol_168h"] - mean) / std).reindex(frame.index)
    return frame.assign(vol_ratio_24_168=frame["vol_24h"] / frame["vol_168h"], vol_168h_z30d=z)


def with_funding_carry(frame: pd.DataFrame) -> pd.DataFrame:
    """Carry: the funding rate's trailing 7-day mean and its level against that mean (per symbol)."""
    ordered = frame.sort_values(["symbol", "as_of_ts"])
    mean = (ordered.groupby("symbol")["funding_last"].rolling(168, min_periods=24).mean()
            .reset_index(level=0, drop=True).reindex(frame.index))
    return frame.assign(funding_mean_7d=mean, funding_vs_7d=frame["funding_last"] - mean)


def default_variants() -> list[Variant]:
    base = tuple(FEATURES)
    no_news = tuple(f for f in base if f not in NEWS)
    return [
        Variant("baseline", base, note="the production feature set"),
        Variant("no_news", no_news, note="without the two news features"),
        Variant("seasonality", (*base, "hour_sin", "hour_cos", "dow_sin", "dow_cos"), with_seasonality,
                note="+ hour-of-day and day-of-week"),
        Variant("cross_asset", (*base, "btc_ret_1h", "btc_ret_24h", "btc_vol_24h", "basket_ret_24h"),
                with_cross_asset, note="+ BTC's returns and volatility, the basket's return"),
        Variant("longer_lookback", (*base, "ret_24h_lag24", "ret_24h_lag48", "ret_24h_lag72", "ret_168h_lag168",
                                    "vol_24h_lag24"), with_longer_lookback, note="+ the previous days' returns"),
        Variant("vol_regime", (*base, "vol_ratio_24_168", "vol_168h_z30d"), with_vol_regime,
                note="+ the realised-volatility regime"),
        Variant("funding_carry", (*base, "funding_mean_7d", "funding_vs_7d"), with_funding_carry,
                note="+ funding's 7-day mean and the level against it"),
        Variant("vol_scaled_target", base, note="labels divided by the 24 h volatility to fit, scaled back to forecast",
                vol_scaled_target=True),
        Variant("shrunk", base, shrink=True, note="the baseline's forecasts times their reliability so far: "
                f"clip(mean Rank IC of earlier windows / {SHRINK_REFERENCE_IC}, 0, 1), {SHRINK_PRIOR} in the first"),
        Variant("reversal_1h", ("ret_1h",), rule=reversal_1h,
                note="no fit: forecast = -ret_1h (the hour ending at as_of_ts) in bps at every horizon"),
    ]


def reversal_1h(frame: pd.DataFrame) -> np.ndarray:
    """The 1 h reversal: minus the return of the hour ending at ``as_of_ts``, in bps."""
    return -frame["ret_1h"].to_numpy(float) * 1e4


def reliability_multipliers(long: pd.DataFrame, window: str = "MS", reference: float = SHRINK_REFERENCE_IC,
                            prior: float = SHRINK_PRIOR) -> pd.DataFrame:
    """Per horizon and test window, ``clip(mean Rank IC of the earlier windows / reference, 0, 1)``,
    ``prior`` where none is known yet. Point in time: an earlier window's Rank IC counts only the
    rows whose label was realised by this window's start (``as_of_ts + horizon <= start``), so
    the last ``horizon`` hours of the previous window wait for the next one."""
    long = long.assign(window=window_keys(long["as_of_ts"], window))
    rows = []
    for h, sub in long.groupby("horizon", sort=True):
        for start in sorted(sub["window"].unique()):
            known = sub[sub["as_of_ts"] + pd.Timedelta(hours=int(h)) <= start]
            ics = window_ics(known["prediction"], known["realized"], known["window"], method="spearman").dropna()
            m = float(np.clip(ics.mean() / reference, 0.0, 1.0)) if len(ics) else prior
            rows.append({"horizon": int(h), "window": pd.Timestamp(start), "earlier_windows": len(ics),
                         "multiplier": m})
    return pd.DataFrame(rows)


def shrink_by_reliability(long: pd.DataFrame, window: str = "MS") -> pd.DataFrame:
    """``long`` with each prediction times its window's :func:`reliability_multipliers`."""
    m = reliability_multipliers(long, window).set_index(["horizon", "window"])["multiplier"]
    keys = pd.MultiIndex.from_arrays([long["horizon"].astype(int), window_keys(long["as_of_ts"], window)])
    return long.assign(prediction=long["prediction"].to_numpy() * m.reindex(keys).to_numpy())


def regimes(frame: pd.DataFrame, starts: list[pd.Timestamp]) -> dict[pd.Timestamp, str]:
    """Each window start's regime from the basket's trailing 30-day return (closes known then)."""
    # Log price up to a constant per symbol: the running sum of the hourly log returns.
    log_price = frame.pivot_table(index="as_of_ts", columns="symbol", values="ret_1h").sort_index().fillna(0).cumsum()
    out = {}
    for start in starts:
        now, then = log_price.loc[:start].tail(1), log_price.loc[:start - pd.Timedelta(days=REGIME_DAYS)].tail(1)
        if now.empty or then.empty:
            out[start] = "unknown"
            continue
        ret = float(np.exp(now.to_numpy() - then.to_numpy()).mean() - 1)
        out[start] = "up" if ret > REGIME_BAND else "down" if ret < -REGIME_BAND else "flat"
    return out


@dataclass
class ResearchReport:
    windows: pd.DataFrame          # variant x horizon x window: rank_ic, hit_rate, sharpe, best constant
    summary: pd.DataFrame          # variant x horizon: t over windows, null z, pooled figures
    by_regime: pd.DataFrame        # variant x horizon x regime: mean rank IC, windows
    trials: int
    best: dict = field(default_factory=dict)  # the best variant at the traded horizon and its DSR


def _fit_predict(frame: pd.DataFrame, variant: Variant, config: TrainingConfig):
    """The project's LightGBM fit and predict over the variant's features; a volatility-scaled
    target fits each label in units of the hour's 24 h volatility (known at as_of_ts), so calm
    and wild hours weigh alike, and its forecasts go back to bps. A fixed ``rule`` fits nothing
    and forecasts its value at every horizon."""
    if variant.rule is not None:
        forecast = variant.rule(frame)
        return (lambda pos: None), (lambda _, pos: np.repeat(forecast[pos][:, None], len(LABEL_BPS), axis=1))
    if not variant.vol_scaled_target:
        return lightgbm_functions(frame, config, variant.features)
    vol = frame["vol_24h"].where(frame["vol_24h"] > 0)
    scale = vol.fillna(vol.median()).to_numpy(float) * 1e4  # the first hours of a symbol: the median
    fit, predict_scaled = lightgbm_functions(frame.assign(**{c: frame[c] / scale for c in LABEL_BPS}), config,
                                             variant.features)

    def predict(model, pos: np.ndarray) -> np.ndarray:
        return predict_scaled(model, pos) * scale[pos][:, None]

    return fit, predict


def _turnover_annual(pnl: pd.DataFrame) -> float:
    return float(pnl["turnover"].sum() / len(pnl) * HOURS_PER_YEAR) if len(pnl) else np.nan


def _window_rows(long: pd.DataFrame, variant: str, config: TrainingConfig, sizing) -> list[dict]:
    """Per horizon and window. The sized strategy is held across windows as it would trade (so
    its windows add up to the summary's figure); each window's slice is judged."""
    cost: dict[str, Any] = {"fee_bps": config.fee_bps, "slippage_bps": config.slippage_bps}
    rows = []
    long = long.assign(window=window_keys(long["as_of_ts"], config.wf_window))
    for horizon, sub in long.groupby("horizon", sort=True):
        sized = strategy_pnl(sub, sizing=sizing(int(horizon)), **cost)[POOLED]
        sized_window = window_keys(sized.index, config.wf_window)
        for window, g in sub.groupby("window", sort=True):
            ic = window_ics(g["prediction"], g["realized"], np.zeros(len(g), int), method="spearman")
            pooled = {k: strategy_pnl(g, constant=c, **cost)[POOLED].net for k, c in
                      (("model", None), ("always_long", 1.0), ("always_short", -1.0))}
            sharpes = {k: sharpe(v) for k, v in pooled.items()}
            in_window = sized[sized_window == window]
            rows.append({"variant": variant, "horizon": int(horizon), "window": str(window),
                         "window_start": pd.Timestamp(g["as_of_ts"].min()).floor("D"),
                         "rank_ic": float(ic.iloc[0]) if len(ic) else np.nan,
                         "hit_rate": hit_rate(g["prediction"], g["realized"]).hit_rate,
                         "constant_hit_rate": constant_hit_rate(g["realized"]),
                         "sharpe": sharpes["model"],
                         "best_constant_sharpe": max(sharpes["always_long"], sharpes["always_short"]),
                         "sized_sharpe": sharpe(in_window["net"]),
                         "sized_turnover_annual": _turnover_annual(in_window)})
    return rows


def _summary_rows(table: pd.DataFrame, rows: list[dict], variant: str) -> list[dict]:
    pooled = table[table["symbol"] == POOLED].set_index(["strategy", "horizon"])
    out = []
    for h in sorted({r["horizon"] for r in rows}):
        ics = [r["rank_ic"] for r in rows if r["horizon"] == h]
        model, sized = pooled.loc[("model", h)], pooled.loc[("model_sized", h)]
        row = {"variant": variant, "horizon": h, "windows": int(np.isfinite(ics).sum()),  # with a Rank IC
               "rank_ic_mean": float(np.nanmean(ics)) if np.isfinite(ics).any() else np.nan,
               "rank_ic_t": t_stat(ics), "rank_ic_null_z": float(model.get("rank_ic_null_z", np.nan)),
               "hit_rate": float(model["hit_rate"]),
               "constant_hit_rate": max(float(pooled.loc[("always_long", h), "hit_rate"]),
                                        float(pooled.loc[("always_short", h), "hit_rate"])),
               "net_return": float(model["net_return"]), "sharpe": float(model["sharpe"]),
               "turnover_annual": float(model["turnover_annual"]),
               "best_constant_sharpe": max(float(pooled.loc[("always_long", h), "sharpe"]),
                                           float(pooled.loc[("always_short", h), "sharpe"])),
               "sized_net_return": float(sized["net_return"]), "sized_sharpe": float(sized["sharpe"]),
               "sized_turnover_annual": float(sized["turnover_annual"]), "sized_funding": float(sized["funding"])}
        out.append(row | {"meets_goal": meets_goal(row)})
    return out


def _walk_forward_long(data: pd.DataFrame, variant: Variant, config: TrainingConfig,
                       fitted: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """The variant's walk-forward predictions (long), one fit per :meth:`Variant.fit_key` per call."""
    key = variant.fit_key()
    if key not in fitted:
        fit, predict = _fit_predict(data, variant, config)
        fitted[key] = long_predictions(data, run_protocol(f"research:{variant.name}", data, fit, predict,
                                                          config).walk_forward)
    long = fitted[key]
    return shrink_by_reliability(long, config.wf_window) if variant.shrink else long


def _best(returns: dict[str, pd.Series]) -> tuple[str, float, float, float]:
    """The variant of the highest per-hour Sharpe and its ``(dsr, sharpe, sr0)`` among all of them."""
    per_period = {k: sharpe(v, periods_per_year=1) for k, v in returns.items()}  # per hour, as the DSR needs
    best = max(per_period, key=lambda k: per_period[k] if np.isfinite(per_period[k]) else -np.inf)
    return best, *deflated_sharpe(returns[best].to_numpy(), list(per_period.values()))


def research_walk_forward(frame: pd.DataFrame, variants: list[Variant], config: TrainingConfig,
                          traded_horizon: int = 24, log: Callable[[str], None] = lambda _: None,
                          record: Callable[[Variant, str, pd.DataFrame, pd.DataFrame], None] | None = None
                          ) -> ResearchReport:
    """Run every variant through the walk-forward and judge it (see the module docstring).
    ``record(variant, config_hash, windows, summary)`` stores a trial (MLflow in the CLI)."""
    from omniwatch.trading.sizing import walk_forward_sizing

    sizing = walk_forward_sizing(config.sizing_band, config.sizing_target_annual_vol)
    cost: dict[str, Any] = {"fee_bps": config.fee_bps, "slippage_bps": config.slippage_bps}
    window_rows, summary_rows, sized_hourly, sign_hourly = [], [], {}, {}
    fitted: dict[tuple, pd.DataFrame] = {}
    for variant in variants:
        data = variant.add(frame) if variant.add else frame
        long = _walk_forward_long(data, variant, config, fitted)
        rows = _window_rows(long, variant.name, config, sizing)
        table = summarize(long, window=config.wf_window, null_shifts=config.null_shifts, sizing=sizing, **cost)
        summary = _summary_rows(table, rows, variant.name)
        traded = long[long["horizon"] == traded_horizon]
        sized_hourly[variant.name] = strategy_pnl(traded, sizing=sizing(traded_horizon), **cost)[POOLED].net
        sign_hourly[variant.name] = strategy_pnl(traded, **cost)[POOLED].net
        window_rows += rows
        summary_rows += summary
        if record is not None:
            record(variant, variant.config_hash(config), pd.DataFrame(rows), pd.DataFrame(summary))
        log(f"{variant.name}: {len(rows)} window rows")
    windows = pd.DataFrame(window_rows)
    starts = sorted(windows["window_start"].unique())
    windows["regime"] = windows["window_start"].map(regimes(frame, [pd.Timestamp(s) for s in starts]))
    by_regime = (windows.groupby(["variant", "horizon", "regime"], as_index=False)
                 .agg(rank_ic_mean=("rank_ic", "mean"), windows=("rank_ic", "size"), sharpe_mean=("sharpe", "mean"),
                      best_constant_sharpe_mean=("best_constant_sharpe", "mean"),
                      sized_sharpe_mean=("sized_sharpe", "mean")))
    summary = pd.DataFrame(summary_rows)
    best, dsr, sr, sr0 = _best(sized_hourly)
    sign_best, sign_dsr, sign_sr, _ = _best(sign_hourly)
    goal = summary[(summary["horizon"] == traded_horizon) & summary["meets_goal"]]["variant"].tolist()
    return ResearchReport(windows, summary, by_regime, len(variants),
                          {"variant": best, "horizon": traded_horizon, "strategy": "sized", "sharpe_per_hour": sr,
                           "sharpe_annual": sr * np.sqrt(HOURS_PER_YEAR), "expected_max_sharpe_per_hour": sr0,
                           "deflated_sharpe": dsr, "trials": len(variants),
                           "skilful": bool(np.isfinite(dsr) and dsr >= 0.95),
                           "sign_rule_variant": sign_best, "sign_rule_sharpe_annual": sign_sr * np.sqrt(HOURS_PER_YEAR),
                           "sign_rule_deflated_sharpe": sign_dsr,
                           "variants_meeting_goal": len(goal), "meeting_goal": ",".join(goal)})


__all__ = ["ResearchReport", "Variant", "default_variants", "regimes", "reliability_multipliers",
           "research_walk_forward", "reversal_1h", "shrink_by_reliability", "with_cross_asset", "with_seasonality"]
