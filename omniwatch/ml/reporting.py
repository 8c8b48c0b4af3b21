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


def walk_forward_windows(long: pd.DataFrame, config: TrainingConfig) -> dict[str, list[dict[str, Any]]]:
    """Per horizon ("1h", ...), one record per walk-forward window (a ``fold``) of the model's
    out-of-sample forecasts: the evidence the gate compares (``omniwatch.modelops.evidence``).
    Log-return units (``unit_bps=1e4``), so net PnL and drawdown compare with the gate's
    tolerances in log returns."""
    from omniwatch.modelops.evidence import score_window

    out: dict[str, list[dict[str, Any]]] = {}
    for horizon, part in long.groupby("horizon", sort=True):
        records = []
        for _fold, window in part.groupby("fold", sort=True):
            frame = pd.DataFrame({"target": window["symbol"], "as_of_ts": window["as_of_ts"],
                                  "forecast": window["prediction"], "realised": window["realized"]})
            start, end = window["as_of_ts"].min(), window["as_of_ts"].max() + pd.Timedelta(hours=1)
            metrics = score_window(frame, f"{horizon}h", label=f"{start:%Y-%m}", start=start.to_pydatetime(),
                                   end=end.to_pydatetime(), fee_bps=config.fee_bps,
                                   slippage_bps=config.slippage_bps, unit_bps=1e4)
            records.append(metrics.model_dump(mode="json"))
        out[f"{horizon}h"] = sorted(records, key=lambda r: r["start"])
    from omniwatch.jsonsafe import json_safe

    return json_safe(out)  # NaN -> None: PostgreSQL's JSON has no NaN


def drift_reference_json(frame: pd.DataFrame, forecasts_bps: pd.Series | None) -> str:
    """The champion's drift reference: fixed bins and a sample of each feature and of its 24 h
    forecast on the training rows (``omniwatch.modelops.drift``), logged with the model."""
    from omniwatch.features.liquid import FEATURES
    from omniwatch.modelops.drift import build_reference

    return build_reference(frame[list(FEATURES)], forecasts_bps).model_dump_json()
