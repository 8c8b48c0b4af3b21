"""The research walk-forward: every variant judged per monthly window and per market regime,
against the constant-sign rules and the circular-shift null, every trial counted.

``omniwatch research walk-forward`` runs it on the bundled sample: expanding window, 24 h purge,
one calendar month per test window, the last ``windows`` months (12: 2024-10 .. 2025-09). A
window's regime is the trailing 30-day return of the equal-weight BTC/ETH/SOL basket at its start
(up above +5 %, down below -5 %, flat between). Each variant is LightGBM (the project's
``fit_lightgbm``: the same purge, early stopping and seed) on its own feature set; each is one
trial, an MLflow run in the ``omniwatch-research`` experiment tagged with its config hash and the
tables as artifacts. The report gives, per variant and horizon, each window's Rank IC, hit rate,
net Sharpe of the hourly sign rule after costs and the better constant-sign rule's, the t-statistic
of Rank IC over windows, the circular-shift null z of the pooled Rank IC, and the deflated Sharpe
ratio of the best variant at the traded horizon among all trials (``stats.deflated_sharpe``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import LABEL_BPS
from omniwatch.ml.metrics import POOLED, sharpe, strategy_pnl, summarize, window_ics
from omniwatch.ml.protocol import TrainingConfig, lightgbm_functions, long_predictions, run_protocol
from omniwatch.ml.validation import window_keys
from omniwatch.research.stats import deflated_sharpe, t_stat

REGIME_DAYS, REGIME_BAND = 30, 0.05
NEWS = ("news_count_24h", "news_tone_24h")


@dataclass(frozen=True)
class Variant:
    """One trial: a name, the features LightGBM sees, and how the frame gets any new ones."""

    name: str
    features: tuple[str, ...]
    add: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    note: str = ""
    vol_scaled_target: bool = False  # fit labels / vol_24h, scale forecasts back by it

    def config_hash(self, config: TrainingConfig) -> str:
        text = json.dumps({"name": self.name, "features": list(self.features), "training": config.to_json(),
                           "vol_scaled_target": self.vol_scaled_target}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    ]


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
    and wild hours weigh alike, and its forecasts go back to bps."""
    if not variant.vol_scaled_target:
        return lightgbm_functions(frame, config, variant.features)
    vol = frame["vol_24h"].where(frame["vol_24h"] > 0)
    scale = vol.fillna(vol.median()).to_numpy(float) * 1e4  # the first hours of a symbol: the median
    fit, predict_scaled = lightgbm_functions(frame.assign(**{c: frame[c] / scale for c in LABEL_BPS}), config,
                                             variant.features)

    def predict(model, pos: np.ndarray) -> np.ndarray:
        return predict_scaled(model, pos) * scale[pos][:, None]

    return fit, predict


def _window_rows(long: pd.DataFrame, variant: str, config: TrainingConfig) -> list[dict]:
    fee, slippage = config.fee_bps, config.slippage_bps
    rows = []
    long = long.assign(window=window_keys(long["as_of_ts"], config.wf_window))
    for (horizon, window), g in long.groupby(["horizon", "window"], sort=True):
        ic = window_ics(g["prediction"], g["realized"], np.zeros(len(g), int), method="spearman")
        pooled = {k: strategy_pnl(g, constant=c, fee_bps=fee, slippage_bps=slippage)[POOLED].net for k, c in
                  (("model", None), ("always_long", 1.0), ("always_short", -1.0))}
        sharpes = {k: sharpe(v) for k, v in pooled.items()}
        rows.append({"variant": variant, "horizon": int(horizon), "window": str(window),
                     "window_start": pd.Timestamp(g["as_of_ts"].min()).floor("D"),
                     "rank_ic": float(ic.iloc[0]) if len(ic) else np.nan,
                     "hit_rate": float((np.sign(g["prediction"]) == np.sign(g["realized"])).mean()),
                     "sharpe": sharpes["model"],
                     "best_constant_sharpe": max(sharpes["always_long"], sharpes["always_short"])})
    return rows


def research_walk_forward(frame: pd.DataFrame, variants: list[Variant], config: TrainingConfig,
                          traded_horizon: int = 24, log: Callable[[str], None] = lambda _: None,
                          record: Callable[[Variant, str, pd.DataFrame, pd.DataFrame], None] | None = None
                          ) -> ResearchReport:
    """Run every variant through the walk-forward and judge it (see the module docstring).
    ``record(variant, config_hash, windows, summary)`` stores a trial (MLflow in the CLI)."""
    window_rows, summary_rows, hourly = [], [], {}
    for variant in variants:
        data = variant.add(frame) if variant.add else frame
        fit, predict = _fit_predict(data, variant, config)
        model = run_protocol(f"research:{variant.name}", data, fit, predict, config)
        long = long_predictions(data, model.walk_forward)
        rows = _window_rows(long, variant.name, config)
        table = summarize(long, window=config.wf_window, fee_bps=config.fee_bps, slippage_bps=config.slippage_bps,
                          null_shifts=config.null_shifts)
        pooled = table[(table["symbol"] == POOLED) & (table["strategy"] == "model")]
        for _, p in pooled.iterrows():
            ics = [r["rank_ic"] for r in rows if r["horizon"] == p["horizon"]]
            summary_rows.append({"variant": variant.name, "horizon": int(p["horizon"]), "windows": len(ics),
                                 "rank_ic_mean": float(np.nanmean(ics)), "rank_ic_t": t_stat(ics),
                                 "rank_ic_null_z": float(p.get("rank_ic_null_z", np.nan)),
                                 "hit_rate": float(p["hit_rate"]), "net_return": float(p["net_return"]),
                                 "sharpe": float(p["sharpe"])})
        traded = long[long["horizon"] == traded_horizon]
        hourly[variant.name] = strategy_pnl(traded, fee_bps=config.fee_bps,
                                            slippage_bps=config.slippage_bps)[POOLED].net
        window_rows += rows
        if record is not None:
            record(variant, variant.config_hash(config), pd.DataFrame(rows),
                   pd.DataFrame([r for r in summary_rows if r["variant"] == variant.name]))
        log(f"{variant.name}: {len(rows)} window rows")
    windows = pd.DataFrame(window_rows)
    starts = sorted(windows["window_start"].unique())
    windows["regime"] = windows["window_start"].map(regimes(frame, [pd.Timestamp(s) for s in starts]))
    by_regime = (windows.groupby(["variant", "horizon", "regime"], as_index=False)
                 .agg(rank_ic_mean=("rank_ic", "mean"), windows=("rank_ic", "size"), sharpe_mean=("sharpe", "mean"),
                      best_constant_sharpe_mean=("best_constant_sharpe", "mean")))
    per_period = {k: sharpe(v, periods_per_year=1) for k, v in hourly.items()}  # per hour, as the DSR needs
    best = max(per_period, key=lambda k: per_period[k] if np.isfinite(per_period[k]) else -np.inf)
    dsr, sr, sr0 = deflated_sharpe(hourly[best].to_numpy(), list(per_period.values()))
    return ResearchReport(windows, pd.DataFrame(summary_rows), by_regime, len(variants),
                          {"variant": best, "horizon": traded_horizon, "sharpe_per_hour": sr,
                           "sharpe_annual": sr * np.sqrt(24 * 365), "expected_max_sharpe_per_hour": sr0,
                           "deflated_sharpe": dsr, "trials": len(variants),
                           "skilful": bool(np.isfinite(dsr) and dsr >= 0.95)})


__all__ = ["ResearchReport", "Variant", "default_variants", "regimes", "research_walk_forward",
           "with_cross_asset", "with_seasonality"]
