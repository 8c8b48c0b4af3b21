"""Walk-forward tables and MLflow logging for training runs."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from omniwatch.ml.metrics import POOLED, summarize, to_markdown
from omniwatch.ml.protocol import TrainingConfig

DISPLAY = ["horizon", "strategy", "rank_ic_mean", "ic_mean", "icir", "rank_ic_null_z", "hit_rate", "coverage",
           "net_return", "sharpe", "max_drawdown", "turnover_annual", "fees", "funding", "n_hours"]


def walk_forward_table(long: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    """Per horizon, strategy (model and constant baselines) and symbol (plus pooled)."""
    return summarize(long, fee_bps=config.fee_bps, slippage_bps=config.slippage_bps,
                     null_shifts=config.null_shifts)


def pooled_view(table: pd.DataFrame) -> pd.DataFrame:
    view = table[table["symbol"] == POOLED]
    return view[[c for c in DISPLAY if c in view]].reset_index(drop=True)


def headline_metrics(table: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """MLflow metrics: the model's pooled walk-forward figures per horizon."""
    rows = table[(table["symbol"] == POOLED) & (table["strategy"] == "model")]
    out = {}
    for r in rows.itertuples(index=False):
        for name in ("ic_mean", "rank_ic_mean", "icir", "hit_rate", "coverage", "net_return", "sharpe",
                     "max_drawdown", "turnover_annual"):
            value = getattr(r, name)
            if pd.notna(value):
                out[f"{prefix}wf_{name}_{r.horizon}h"] = float(value)
    return out


def data_version_of(frame: pd.DataFrame) -> str:
    """One hash over the snapshot data_versions the rows came from."""
    return hashlib.sha256("|".join(sorted(frame["data_version"].unique())).encode()).hexdigest()[:24]


def log_training(mlflow_resource, *, run_name: str, config: TrainingConfig, params: dict[str, Any],
                 metrics: dict[str, float], tags: dict[str, str], dq_summary: dict, table: pd.DataFrame,
                 figures: dict[str, Any] | None = None, extra_json: dict[str, Any] | None = None) -> str:
    """One MLflow run with the frozen config, its hash, metrics, lineage tags, the DQ summary and
    the walk-forward table (markdown + CSV); returns the run id."""
    import mlflow

    with mlflow_resource.run_context(run_name, tags=tags) as run:
        mlflow.log_params({"config_hash": config.config_hash(), **params})
        mlflow.log_metrics(metrics)
        mlflow.log_text(config.to_json(), "config/training_config.json")
        mlflow.log_dict(dq_summary, "data_quality/summary.json")
        mlflow.log_text(to_markdown(pooled_view(table)), "walk_forward/table.md")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "walk_forward.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path), "walk_forward")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        for name, value in (extra_json or {}).items():
            mlflow.log_text(json.dumps(value, indent=2, default=str), f"{name}.json")
        return run.info.run_id
