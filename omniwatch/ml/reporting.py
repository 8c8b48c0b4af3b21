"""Walk-forward tables and MLflow logging for training runs.

What a training run shows in the MLflow UI: its real duration (it starts when the protocol began,
not when logging did), the flattened config as parameters (in full in ``params.json``), the
headline metrics, per-epoch loss curves of sequence models (``train_loss``/``val_loss`` of the
final fit, ``fit_loss/<fit> ...`` of each validation fit), one chart per horizon of the model
against its baselines, and one child run per baseline strategy with the same metric names, so
the runs table and chart view compare them side by side.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from omniwatch.ml.metrics import POOLED, PositionRule, summarize, to_markdown
from omniwatch.ml.protocol import EpochPoint, ModelRun, TrainingConfig

DISPLAY = ["horizon", "strategy", "rank_ic_mean", "ic_mean", "icir", "rank_ic_null_z", "hit_rate", "coverage",
           "net_return", "sharpe", "max_drawdown", "turnover_annual", "fees", "funding", "n_hours"]


def walk_forward_table(long: pd.DataFrame, config: TrainingConfig,
                       sizing: Callable[[int], PositionRule] | None = None) -> pd.DataFrame:
    """Per horizon, strategy (model, with ``sizing`` the model sized at its horizon, constant
    baselines) and symbol (plus pooled)."""
    return summarize(long, fee_bps=config.fee_bps, slippage_bps=config.slippage_bps,
                     null_shifts=config.null_shifts, sizing=sizing)


def pooled_view(table: pd.DataFrame) -> pd.DataFrame:
    view = table[table["symbol"] == POOLED]
    return view[[c for c in DISPLAY if c in view]].reset_index(drop=True)


def headline_metrics(table: pd.DataFrame, prefix: str = "", strategy: str = "model") -> dict[str, float]:
    """MLflow metrics: a strategy's (the model's by default) pooled walk-forward figures per horizon."""
    rows = table[(table["symbol"] == POOLED) & (table["strategy"] == strategy)]
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
                 figures: dict[str, Any] | None = None, extra_json: dict[str, Any] | None = None,
                 model_run: ModelRun | None = None, started_ms: int | None = None) -> str:
    """One MLflow run with the frozen config, its hash, metrics, lineage tags, the DQ summary and
    the walk-forward table (markdown + CSV), per-horizon baseline charts and baseline child runs;
    returns the run id. The run starts at ``started_ms`` (else ``model_run.started_ms``, else now)
    and carries ``model_run``'s epoch curves."""
    import mlflow

    if started_ms is None and model_run is not None:
        started_ms = model_run.started_ms
    with mlflow_resource.run_context(run_name, tags=tags, start_time_ms=started_ms) as run:
        log_params_in_full({"config_hash": config.config_hash(), **flat_params(config.model_dump(mode="json")),
                            **params})
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
        _log_horizon_charts(table, run_name)
        if model_run is not None and model_run.epochs:
            log_epoch_curves(mlflow_resource.client(), run.info.run_id, model_run.epochs, run_name)
        log_baseline_runs(mlflow_resource.client(), run, table, run_name)
        return run.info.run_id


# MLflow 3.17 accepts 6000 characters, but the UI's parameter table is unreadable long before
# that and older servers stop at 500: longer values are cut here and kept whole in params.json.
PARAM_VALUE_LIMIT = 500


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"tsmixer.lookback": 168, ...}``: one column per knob in the runs table."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= flat_params(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_params_in_full(params: dict[str, Any], path: str = "params.json") -> None:
    """Log ``params`` on the active run, each value cut at PARAM_VALUE_LIMIT characters (saying
    where the rest is), and all of them uncut as the JSON artifact ``path``."""
    import mlflow

    shown = {}
    for key, value in params.items():
        text = str(value)
        if len(text) > PARAM_VALUE_LIMIT:
            note = f"... (cut; full value in {path})"
            text = text[:PARAM_VALUE_LIMIT - len(note)] + note
        shown[key] = text
    mlflow.log_params(shown)
    mlflow.log_text(json.dumps(params, indent=2, sort_keys=True, default=str), path)


def _log_horizon_charts(table: pd.DataFrame, model_label: str) -> None:
    import matplotlib.pyplot as plt

    import mlflow
    from omniwatch.ml import plots

    for horizon in sorted(table["horizon"].unique()):
        fig = plots.horizon_comparison(table, int(horizon), model_label)
        mlflow.log_figure(fig, f"walk_forward/{int(horizon)}h_vs_baselines.png")
        plt.close(fig)


def epoch_metrics(epochs: list[EpochPoint]) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp_ms, step=epoch): the final fit as ``train_loss``/``val_loss``/``lr``,
    every validation fit as ``fit_loss/<fit> train`` and ``fit_loss/<fit> val``."""
    out = []
    for p in epochs:
        if p.fit == "final":
            named = {"train_loss": p.train_loss, "val_loss": p.val_loss, "lr": p.lr}
        else:
            named = {f"fit_loss/{p.fit} train": p.train_loss, f"fit_loss/{p.fit} val": p.val_loss}
        out += [(key, value, p.timestamp_ms, p.epoch) for key, value in named.items()]
    return out


def log_epoch_curves(client, run_id: str, epochs: list[EpochPoint], model_label: str) -> None:
    """Per-epoch losses as step=epoch metrics (stamped when each epoch ended) and one figure."""
    import matplotlib.pyplot as plt
    from mlflow.entities import Metric

    from omniwatch.ml import plots

    metrics = [Metric(key, value, ts, step) for key, value, ts, step in epoch_metrics(epochs)]
    for i in range(0, len(metrics), 1000):  # MLflow's log_batch limit
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    frame = pd.DataFrame([vars(p) for p in epochs])
    fig = plots.loss_curves(frame, f"{model_label}: loss per epoch of each fit")
    client.log_figure(run_id, fig, "training/loss_curves.png")
    plt.close(fig)


def log_baseline_runs(client, parent, table: pd.DataFrame, model_label: str) -> dict[str, str]:
    """One finished child run per strategy in ``table`` other than the model (constant-sign
    baselines, components) with the same metric names as the model's: {strategy: run id}."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from omniwatch.ml.plots import STRATEGY_LABELS

    out = {}
    now = int(time.time() * 1000)
    for strategy in [s for s in dict.fromkeys(table["strategy"]) if s != "model"]:
        metrics = headline_metrics(table, strategy=strategy)
        child = client.create_run(parent.info.experiment_id, start_time=now,
                                  run_name=f"{model_label} · {STRATEGY_LABELS.get(strategy, strategy)}",
                                  tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, "omniwatch.baseline": strategy,
                                        "omniwatch.baseline_of": model_label})
        client.log_batch(child.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                         params=[Param("strategy", strategy)], tags=[RunTag("omniwatch.kind", "comparison")])
        client.set_terminated(child.info.run_id)
        out[strategy] = child.info.run_id
    return out


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
