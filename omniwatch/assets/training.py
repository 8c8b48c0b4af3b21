"""Training the liquid models on point-in-time snapshots: dataset, LightGBM, TSMixer.

torch, lightgbm and mlflow are imported inside the asset bodies (STYLE.md rule 9).
"""

import hashlib
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, mlflow_links, row_count
from omniwatch.checks.gate import blocking_failures
from omniwatch.errors import BlockedByDataQuality
from omniwatch.features.liquid import WARMUP
from omniwatch.resources.compute import ComputeResource
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.resources.training import TrainingResource
from omniwatch.resources.warehouse import WarehouseResource

INPUT_ASSETS = ("market_bars", "funding_rates", "onchain_signals")
LIQUID_MODEL_NAME = "omniwatch-liquid"
FINGERPRINT_TAG = "training_fingerprint"
# Bump when the training code (dataset rows, models, protocol, ensemble) changes what it produces:
# with unchanged inputs and config, a retraining is skipped only while this stays the same.
TRAINING_CODE_VERSION = "liquid-training-1"


def training_fingerprint(config_hash: str, data_version: str, labelled_values: int,
                         window: tuple[str | None, str | None]) -> str:
    """What a liquid training depends on: its code version, its config, the snapshots' data
    versions and how many label values they hold (labels mature in place, data_version unchanged)."""
    parts = [TRAINING_CODE_VERSION, config_hash, data_version, str(labelled_values), str(window[0]), str(window[1])]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class TrainingWindowConfig(dg.Config):
    """Which as_of_ts window to train on (ISO dates; empty = every stored snapshot)."""

    start: str | None = None
    end: str | None = None


def _quality_summary(warehouse: WarehouseResource, start: pd.Timestamp, end: pd.Timestamp) -> tuple[list, dict]:
    audit = warehouse.read_audit(INPUT_ASSETS, start, end)
    failures = blocking_failures(audit, INPUT_ASSETS, start, end)
    warn = audit[(~audit["blocking"].astype(bool)) & (~audit["passed"].astype(bool))] if len(audit) else audit
    summary = {
        "window": [start.isoformat(), end.isoformat()],
        "audit_rows": len(audit),
        "blocking_failures": failures,
        "warnings": sorted({f"{r.asset_key}.{r.check_name}" for r in warn.itertuples()}) if len(warn) else [],
    }
    return failures, summary


def wf_sizing(config):
    """The walk-forward's "model_sized" rows: forecasts held as tranches of their horizon
    (``omniwatch.trading.sizing``, the sizing execution/run and the backtest use)."""
    from omniwatch.trading.sizing import walk_forward_sizing

    return walk_forward_sizing(config.sizing_band, config.sizing_target_annual_vol)


@dg.asset(deps=["feature_snapshots"], kinds={"python"}, code_version=TRAINING_CODE_VERSION, output_required=False,
          **labels("liquid", "training"))
def training_dataset(
    context: AssetExecutionContext, config: TrainingWindowConfig, warehouse: WarehouseResource,
    mlflow: MLflowResource, training: TrainingResource,
) -> Iterator:
    """Point-in-time training rows (latest data_version per symbol and hour) with labels in bps;
    refused with ``blocked_by_data_quality`` when a blocking check failed on an input partition.
    Yields nothing (so the models are skipped and the run succeeds) when the newest registered
    ``omniwatch-liquid`` was trained with the same fingerprint: code version, config, data versions."""
    from omniwatch.ml.dataset import lineage_digest, load_snapshots
    from omniwatch.ml.reporting import data_version_of

    start = pd.Timestamp(config.start, tz="UTC") if config.start else None
    end = pd.Timestamp(config.end, tz="UTC") if config.end else None
    frame = load_snapshots(warehouse.database_url, start, end)
    if frame.empty:
        raise dg.Failure(description="insufficient_features: no feature snapshots in the training window",
                         metadata={"error_code": "insufficient_features"})
    first, last = frame["as_of_ts"].min(), frame["as_of_ts"].max()
    failures, summary = _quality_summary(warehouse, first - WARMUP, last)
    if failures:
        raise dg.Failure(
            description=str(BlockedByDataQuality(failures)),
            metadata={"error_code": "blocked_by_data_quality", "failed_checks": dg.MetadataValue.json(failures)},
        )
    frame.attrs["dq_summary"] = summary
    labelled_values = int(frame[["y_1h", "y_4h", "y_24h"]].notna().to_numpy().sum())
    fingerprint = training_fingerprint(training.config().config_hash(), data_version_of(frame), labelled_values,
                                       (config.start, config.end))
    from omniwatch.registry import version_with_fingerprint

    version = version_with_fingerprint(mlflow, LIQUID_MODEL_NAME, fingerprint)
    if version is not None:
        reason = (f"training skipped: {LIQUID_MODEL_NAME} version {version} was trained with the same code version, "
                  f"config and snapshot data versions (fingerprint {fingerprint})")
        context.log.info(reason)
        yield dg.AssetObservation(asset_key=context.asset_key, metadata={
            "skipped": dg.MetadataValue.text(reason), "training_fingerprint": dg.MetadataValue.text(fingerprint),
            "registered_version": dg.MetadataValue.text(version),
        })
        return
    frame.attrs["training_fingerprint"] = fingerprint
    yield dg.Output(frame, data_version=dg.DataVersion(fingerprint), metadata={
        "training_fingerprint": dg.MetadataValue.text(fingerprint),
        "rows": dg.MetadataValue.int(len(frame)),
        **row_count(len(frame), partitioned=False),
        "symbols": dg.MetadataValue.json(sorted(frame["symbol"].unique().tolist())),
        "as_of_first": dg.MetadataValue.text(first.isoformat()),
        "as_of_last": dg.MetadataValue.text(last.isoformat()),
        "train_lineage_id": dg.MetadataValue.text(lineage_digest(frame)),
        "data_version": dg.MetadataValue.text(data_version_of(frame)),
        "labelled_rows": dg.MetadataValue.int(int(frame[["y_1h", "y_4h", "y_24h"]].notna().all(axis=1).sum())),
        "data_quality": dg.MetadataValue.json(summary),
    })


def _log_model_run(context, mlflow: MLflowResource, name: str, dataset: pd.DataFrame, run, table,
                   params: dict, config) -> str:
    from omniwatch.ml.dataset import lineage_digest
    from omniwatch.ml.reporting import data_version_of, headline_metrics, log_training

    return log_training(
        mlflow, run_name=name, config=config, params=params, metrics=headline_metrics(table),
        tags={"omniwatch.model": name, "dagster_run_id": context.run_id,
              "data_version": data_version_of(dataset), "train_lineage_id": lineage_digest(dataset)},
        dq_summary=dataset.attrs.get("dq_summary", {}), table=table, extra_json={"folds": run.folds},
        model_run=run,  # the run starts when the protocol began and carries its epoch curves
    )


def _model_asset_metadata(run, table: pd.DataFrame, seconds: float, mlflow: MLflowResource,
                          mlflow_run_id: str) -> dict:
    from omniwatch.ml.metrics import to_markdown
    from omniwatch.ml.reporting import pooled_view

    return {
        "mlflow_run_id": dg.MetadataValue.text(mlflow_run_id),
        **mlflow_links(mlflow, mlflow_run_id),
        "walk_forward": dg.MetadataValue.md(to_markdown(pooled_view(table))),
        "folds": dg.MetadataValue.json(run.folds),
        "seconds": dg.MetadataValue.float(round(seconds, 1)),
    }


@dg.asset(kinds={"python", "lightgbm"}, code_version=TRAINING_CODE_VERSION, **labels("liquid", "model"))
def lightgbm_model(
    context: AssetExecutionContext, training_dataset: pd.DataFrame, mlflow: MLflowResource,
    training: TrainingResource,
) -> dg.Output:
    """LightGBM per horizon on the same point-in-time rows: purged K-fold out-of-fold forecasts,
    walk-forward forecasts and the final fit."""
    import time

    from omniwatch.ml.protocol import lightgbm_functions, long_predictions, run_protocol
    from omniwatch.ml.reporting import walk_forward_table

    config = training.config()
    began = time.perf_counter()
    fit, predict = lightgbm_functions(training_dataset, config)
    run = run_protocol("lightgbm", training_dataset, fit, predict, config, context.log.info)
    table = walk_forward_table(long_predictions(training_dataset, run.walk_forward), config,
                               wf_sizing(config))
    run_id = _log_model_run(context, mlflow, "lightgbm", training_dataset, run, table,
                            {f"lgbm_{k}": v for k, v in config.lightgbm.model_dump().items()}, config)
    return dg.Output(run, metadata={
        **_model_asset_metadata(run, table, time.perf_counter() - began, mlflow, run_id),
        "best_rounds": dg.MetadataValue.json(run.final.best_rounds),
    })


@dg.asset(kinds={"python", "pytorch"}, pool="gpu", code_version=TRAINING_CODE_VERSION, **labels("liquid", "model"))
def tsmixer_model(
    context: AssetExecutionContext, training_dataset: pd.DataFrame, compute: ComputeResource,
    mlflow: MLflowResource, training: TrainingResource,
) -> dg.Output:
    """Our PyTorch TSMixer (168 h lookback, horizons 1/4/24 h, the features and their masks as
    channels) under the same protocol; runs on the GPU-1 executor when present, else on CPU."""
    import time

    from omniwatch.ml.protocol import long_predictions, run_protocol, tsmixer_functions
    from omniwatch.ml.reporting import walk_forward_table

    config = training.config()
    device = compute.training(context.log)
    began = time.perf_counter()
    fit, predict = tsmixer_functions(training_dataset, config, device, compute.checkpoint_root)
    run = run_protocol("tsmixer", training_dataset, fit, predict, config, context.log.info)
    table = walk_forward_table(long_predictions(training_dataset, run.walk_forward), config,
                               wf_sizing(config))
    run_id = _log_model_run(context, mlflow, "tsmixer", training_dataset, run, table,
                            {f"tsmixer_{k}": v for k, v in config.tsmixer.items()} | {"device": device}, config)
    return dg.Output(run, metadata={
        **_model_asset_metadata(run, table, time.perf_counter() - began, mlflow, run_id),
        "device": dg.MetadataValue.text(device),
    })
