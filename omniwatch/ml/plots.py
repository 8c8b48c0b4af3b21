"""Figures logged on the MLflow run: people would rather look than read."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from omniwatch.ml.metrics import POOLED, strategy_pnl, window_ics  # noqa: E402
from omniwatch.ml.validation import window_keys  # noqa: E402


def equity_curves(long: pd.DataFrame, fee_bps: float, slippage_bps: float):
    """Walk-forward equity after cost of the pooled sign strategy, per horizon, with always-long."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for horizon, sub in long.groupby("horizon"):
        pnl = strategy_pnl(sub, fee_bps=fee_bps, slippage_bps=slippage_bps)[POOLED]
        ax.plot(pnl.index, np.exp(pnl["net"].cumsum()), label=f"ensemble sign, {horizon} h")
    first = long[long["horizon"] == long["horizon"].min()]
    hold = strategy_pnl(first, constant=1.0, fee_bps=fee_bps, slippage_bps=slippage_bps)[POOLED]
    ax.plot(hold.index, np.exp(hold["net"].cumsum()), color="grey", linestyle="--", label="always long")
    ax.set_title("Walk-forward equity after fees, slippage and funding (equal-weight BTC/ETH/SOL)")
    ax.set_ylabel("equity (start = 1)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def ic_bars(long: pd.DataFrame):
    """Per-window (monthly) pooled Rank IC per horizon."""
    table = pd.DataFrame({
        f"{h} h": window_ics(sub["prediction"], sub["realized"], window_keys(sub["as_of_ts"]), method="spearman")
        for h, sub in long.groupby("horizon")
    })
    fig, ax = plt.subplots(figsize=(9, 4))
    table.index = [pd.Timestamp(i).strftime("%Y-%m") for i in table.index]
    table.plot.bar(ax=ax)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Walk-forward Rank IC per month (pooled)")
    fig.tight_layout()
    return fig


def importances(gain: pd.DataFrame):
    """LightGBM total gain per feature and horizon (share of each horizon's total)."""
    share = gain / gain.sum().replace(0, np.nan)
    fig, ax = plt.subplots(figsize=(9, 5))
    share.sort_values(share.columns[0]).plot.barh(ax=ax)
    ax.set_title("LightGBM feature importance (gain share)")
    fig.tight_layout()
    return fig
