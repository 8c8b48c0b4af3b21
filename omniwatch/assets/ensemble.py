"""The liquid ensemble: weights fitted out of sample, logged as one pyfunc, registered by alias."""

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, mlflow_links
from omniwatch.assets.training import FINGERPRINT_TAG, LIQUID_MODEL_NAME
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.resources.modelops import ModelOpsResource
from omniwatch.resources.training import TrainingResource
from omniwatch.resources.warehouse import WarehouseResource

MODEL_NAME = LIQUID_MODEL_NAME
VALIDATION_HOURS = 48
TRADED_HORIZON = 24
BEATS_CONSTANT = dg.AssetCheckSpec(
    "beats_constant_sign_rule", asset="liquid_ensemble", blocking=False,
    description=f"at the traded horizon ({TRADED_HORIZON}h), the walk-forward net return of the model beats "
                "the better of always-long and always-short (pooled over symbols)",
)

DEMONSTRATES_SKILL = dg.AssetCheckSpec(
    "demonstrates_skill", asset="liquid_ensemble", blocking=False,
    description="at the traded horizon, the sized walk-forward's net Sharpe beats the better constant sign and "
                "the pooled Rank IC beats the circular-shift null (omniwatch.modelops.skill); without it the "
                "version is flagged no_demonstrated_skill: the gate rejects it and risk refuses its live orders",
)


def demonstrates_skill(skill) -> dg.AssetCheckResult:
    """WARN with the verdict at the traded horizon and every figure it rests on."""
    traded = skill.at(skill.traded_horizon)
    figures = {k: v for k, v in traded.model_dump(mode="json").items() if v is not None and k != "reason"}
    return dg.AssetCheckResult(check_name=DEMONSTRATES_SKILL.name, passed=traded.demonstrated,
                               severity=dg.AssetCheckSeverity.WARN, description=skill.reason, metadata=figures)


def beats_constant_sign_rule(table: pd.DataFrame, horizon: int = TRADED_HORIZON) -> dg.AssetCheckResult:
    """WARN unless the model's pooled walk-forward net_return exceeds max(always_long, always_short)."""
    from omniwatch.ml.metrics import POOLED

    rows = table[(table["symbol"] == POOLED) & (table["horizon"] == horizon)].set_index("strategy")["net_return"]
    model, long, short = (float(rows.get(k, float("nan"))) for k in ("model", "always_long", "always_short"))
    best = max(long, short)
    passed = bool(pd.notna(model) and pd.notna(best) and model > best)
    return dg.AssetCheckResult(
        check_name=BEATS_CONSTANT.name, passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=f"{horizon}h model net_return {model:.4f} vs best constant sign {best:.4f}",
        metadata={"horizon_h": horizon, "model_net_return": model, "always_long_net_return": long,
                  "always_short_net_return": short, "margin": model - best},
    )


def _validation_input(frame: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """The last VALIDATION_HOURS rows per symbol plus their lookback: the logged input whose
    predictions a fresh process must reproduce from the registry."""
    from omniwatch.features.liquid import FEATURES

    last = frame["as_of_ts"].max()
    recent = frame[frame["as_of_ts"] > last - pd.Timedelta(hours=VALIDATION_HOURS + lookback)]
    out = recent[["symbol", "as_of_ts", *FEATURES]].copy()
    out["as_of_ts"] = out["as_of_ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # plain strings in the signature
    return out.reset_index(drop=True)


@dg.asset(kinds={"python", "mlflow"}, code_version="3", check_specs=[BEATS_CONSTANT, DEMONSTRATES_SKILL],
          **labels("liquid", "model"))
def liquid_ensemble(
    context: AssetExecutionContext,
    training_dataset: pd.DataFrame,
    lightgbm_model,
    tsmixer_model,
    mlflow: MLflowResource,
    warehouse: WarehouseResource,
    training: TrainingResource,
    modelops: ModelOpsResource,
) -> dg.MaterializeResult:
    """LightGBM + TSMixer per horizon, weighted by purged-K-fold out-of-fold forecasts; its
    walk-forward table (weights fitted on earlier months only), plots, and a new registered
    version of ``omniwatch-liquid`` with alias ``challenger`` (``champion`` if it is the first)."""
    import tempfile
    import time
    from pathlib import Path

    from mlflow.models import infer_signature

    import mlflow as mlflow_lib
    from omniwatch.assets.training import wf_sizing
    from omniwatch.ml import plots
    from omniwatch.ml.dataset import lineage_digest
    from omniwatch.ml.ensemble import MODEL_CODE_PATH, LiquidEnsemble, save_components
    from omniwatch.ml.metrics import to_markdown
    from omniwatch.ml.protocol import ensemble_weights, long_predictions, walk_forward_ensemble
    from omniwatch.ml.reporting import (
        data_version_of,
        drift_reference_json,
        headline_metrics,
        log_training,
        pooled_view,
        walk_forward_table,
        walk_forward_windows,
    )
    from omniwatch.modelops.skill import assess_skill
    from omniwatch.registry import record_registration

    started_ms = int(time.time() * 1000)  # the MLflow run's start: its duration covers this step
    config = training.config()
    frame = training_dataset
    weights = ensemble_weights(frame, lightgbm_model.oof, tsmixer_model.oof)
    wf_preds, wf_weights = walk_forward_ensemble(frame, lightgbm_model.walk_forward, tsmixer_model.walk_forward)
    long = long_predictions(frame, wf_preds)
    table = walk_forward_table(long, config, wf_sizing(config))
    for name, run in (("lightgbm", lightgbm_model), ("tsmixer", tsmixer_model)):
        part = walk_forward_table(long_predictions(frame, run.walk_forward), config, wf_sizing(config))
        part = part[part["strategy"] == "model"].assign(strategy=name)
        table = pd.concat([table, part], ignore_index=True)
    lineage, data_version = lineage_digest(frame), data_version_of(frame)
    figures = {
        "walk_forward_equity": plots.equity_curves(long, config.fee_bps, config.slippage_bps),
        "walk_forward_rank_ic": plots.ic_bars(long),
        "lightgbm_importance": plots.importances(lightgbm_model.final.importances()),
    }
    lookback = tsmixer_model.final.config.lookback
    example = _validation_input(frame, lookback)
    model = LiquidEnsemble()
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = save_components(Path(tmp) / "components", lightgbm_model.final, tsmixer_model.final,
                                    weights, {"train_lineage_id": lineage, "data_version": data_version})
        model.load_context(type("Ctx", (), {"artifacts": artifacts})())
        validation = model.score(example)
        run_id = log_training(
            mlflow, run_name="liquid_ensemble", config=config,
            params={"weights_lightgbm_" + k[5:]: round(v, 4) for k, v in weights.items()},
            metrics=headline_metrics(table[table["strategy"].isin(["model", "zero", "always_long"])]),
            tags={"omniwatch.model": "liquid_ensemble", "dagster_run_id": context.run_id,
                  "data_version": data_version, "train_lineage_id": lineage},
            dq_summary=frame.attrs.get("dq_summary", {}), table=table, figures=figures,
            extra_json={"walk_forward_weights": wf_weights, "folds": lightgbm_model.folds},
            started_ms=started_ms,
        )
        with mlflow_lib.start_run(run_id=run_id):
            info = mlflow_lib.pyfunc.log_model(
                name="model", python_model=str(MODEL_CODE_PATH), artifacts=artifacts,
                signature=infer_signature(example, validation), input_example=example.head(5),
            )
            mlflow_lib.log_table(example, "validation/input.json")
            mlflow_lib.log_table(validation, "validation/predictions.json")
            # Drift reference (fixed bins + sample) of the training rows and the 24 h forecasts.
            mlflow_lib.log_text(drift_reference_json(frame, long.loc[long["horizon"] == 24, "prediction"] * 1e4),
                                "drift/reference.json")
    fingerprint = frame.attrs.get("training_fingerprint")
    # The fingerprint keys the registration: a retry after the registry died mid-registration
    # completes that version instead of registering a second one (scripts/chaos_drill.py).
    # Skill (omniwatch.modelops.skill): does the walk-forward beat the better constant sign and the
    # circular-shift null? Frozen with the version; the gate, the risk check and the API read it.
    skill = assess_skill(table, modelops.thresholds().skill)
    context.log.info(f"skill at the traded horizon: {skill.status.value} ({skill.reason})")
    version, aliases = record_registration(
        mlflow, warehouse.database_url, MODEL_NAME, info.model_uri, run_id=run_id, track="liquid",
        train_lineage_id=lineage, data_version=data_version,
        metrics={**headline_metrics(table), "walk_forward_windows": walk_forward_windows(long, config),
                 "skill": skill.model_dump(mode="json")},
        actor=f"dagster:{context.run_id}", registration_key=fingerprint or None,
    )
    if fingerprint:  # what training_dataset compares to skip an unchanged retraining
        mlflow.client().set_model_version_tag(MODEL_NAME, version, FINGERPRINT_TAG, fingerprint)
    context.log.info(f"registered {MODEL_NAME} version {version} with aliases {aliases}")
    return dg.MaterializeResult(check_results=[beats_constant_sign_rule(table), demonstrates_skill(skill)], metadata={
        "training_fingerprint": dg.MetadataValue.text(fingerprint or ""),
        "walk_forward": dg.MetadataValue.md(to_markdown(pooled_view(table))),
        "weights_lightgbm": dg.MetadataValue.json(weights),
        "registered_model": dg.MetadataValue.text(MODEL_NAME),
        "registered_version": dg.MetadataValue.text(version),
        "skill": dg.MetadataValue.text(skill.status.value),
        "skill_reason": dg.MetadataValue.text(skill.reason),
        "aliases": dg.MetadataValue.json(aliases),
        "mlflow_run_id": dg.MetadataValue.text(run_id),
        **mlflow_links(mlflow, run_id, (MODEL_NAME, version)),
        "model_uri": dg.MetadataValue.text(f"models:/{MODEL_NAME}/{version}"),
        "train_lineage_id": dg.MetadataValue.text(lineage),
        "data_version": dg.MetadataValue.text(data_version),
    })
