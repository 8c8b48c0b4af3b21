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


STRATEGY_LABELS = {"model_sized": "sized at its horizon", "zero": "zero forecast (flat)", "always_long": "always long",
                   "always_short": "always short", "lightgbm": "LightGBM alone", "tsmixer": "TSMixer alone"}
COMPARED = (("net_return", "net return after costs"), ("sharpe", "Sharpe (annualised)"),
            ("rank_ic_mean", "mean Rank IC"), ("hit_rate", "hit rate"))


def horizon_comparison(table: pd.DataFrame, horizon: int, model_label: str = "model"):
    """One horizon's pooled walk-forward figures, the model beside every baseline in ``table``."""
    rows = table[(table["symbol"] == POOLED) & (table["horizon"] == horizon)].set_index("strategy")
    names = [model_label if s == "model" else STRATEGY_LABELS.get(s, s) for s in rows.index]
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(13, 4))
    for ax, (column, title) in zip(axes, COMPARED, strict=True):
        values = rows[column].astype(float).to_numpy() if column in rows else np.full(len(rows), np.nan)
        colors = ["tab:blue" if s == "model" else "tab:grey" for s in rows.index]
        ax.barh(names, np.nan_to_num(values), color=colors)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.invert_yaxis()  # the model on top
        ax.set_title(title)
        for y, v in enumerate(values):
            ax.text(v if np.isfinite(v) else 0, y, f" {v:.3g}" if np.isfinite(v) else " n/a", va="center",
                    fontsize=8, color="black" if np.isfinite(v) else "grey")
    fig.suptitle(f"{horizon} h ahead: {model_label} vs baselines (walk-forward, pooled over symbols)")
    fig.tight_layout()
    return fig


def loss_curves(epochs: pd.DataFrame, title: str):
    """Train and validation loss per epoch of each fit (``fit, epoch, train_loss, val_loss``)."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (fit, part) in enumerate(epochs.groupby("fit", sort=False)):
        color = plt.get_cmap("tab10")(i % 10)
        ax.plot(part["epoch"] + 1, part["train_loss"], color=color, linestyle="--", alpha=0.7)
        ax.plot(part["epoch"] + 1, part["val_loss"], color=color, marker="o", label=fit)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (standardised; dashed = train, solid = validation)")
    ax.set_title(title)
    ax.legend(title="fit", fontsize=8)
    fig.tight_layout()
    return fig


def roc_curves(y: np.ndarray, scores: dict[str, np.ndarray], title: str):
    """ROC curve of each named score against the labels ``y``, with the no-skill diagonal."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, score):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="no skill (AUC 0.5)")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def pr_curves(y: np.ndarray, scores: dict[str, np.ndarray], title: str):
    """Precision-recall curve of each named score, with the base rate (no skill)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(y, score)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, score):.3f})")
    ax.axhline(float(np.mean(y)), color="grey", linestyle="--", label=f"base rate {np.mean(y):.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def calibration(table: pd.DataFrame, title: str):
    """Observed rate against mean predicted probability per bin (``calibration_table``)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max(), 1e-3)) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfectly calibrated")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model (equal-count bins)")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
