"""Drills: deliberately degraded model versions that exercise the rollback path end to end.

``register_degraded_copy`` registers a copy of a version whose fitted components are the same but
whose serving forecasts fail from a given hour on (``"drill": "nan_forecasts"`` and
``"drill_from"`` in its ``ensemble.json``; see ``omniwatch.ml.ensemble.score_positions``). Offline
it is the source version (the same walk-forward evidence) and it scores normally through its
shadow window, so it passes the gate; from ``drill_from`` every scoring fails, like an input feed
that breaks in production, so each rollout window fails on its error rate and the rollback sensor
withdraws it. The copy is tagged ``omniwatch.drill``.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

from omniwatch.ml.ensemble import DRILL_NAN_FORECASTS
from omniwatch.resources.mlflow import MLflowResource

LIQUID_MODEL = "omniwatch-liquid"


def register_degraded_copy(mlflow: MLflowResource, database_url: str, source_version: str, *,
                           actor: str, fails_from: datetime | None = None, model_name: str = LIQUID_MODEL) -> str:
    """Register the degraded copy of ``source_version``; its forecasts fail for hours at or after
    ``fails_from`` (all hours without it); returns the new version."""
    return register_copy(mlflow, database_url, source_version, actor=actor, model_name=model_name,
                         drill=DRILL_NAN_FORECASTS, drill_from=fails_from)


def register_copy(mlflow: MLflowResource, database_url: str, source_version: str, *, actor: str,
                  model_name: str = LIQUID_MODEL, drill: str | None = None,
                  drill_from: datetime | None = None) -> str:
    """Register a copy of ``source_version`` (optionally with a drill flag); returns the new version.
    Without a drill it is the same model under a new version: tests of the loop's mechanics use it."""
    from mlflow.artifacts import download_artifacts

    import mlflow as mlflow_lib
    from omniwatch.ml.ensemble import MODEL_CODE_PATH
    from omniwatch.operations import REFERENCE_ARTIFACT, load_reference
    from omniwatch.promotions import registry_rows
    from omniwatch.registry import record_registration

    source = next(r for r in registry_rows(database_url, model_name) if str(r["version"]) == str(source_version))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_artifacts(f"models:/{model_name}/{source_version}", dst_path=tmp,
                                        tracking_uri=mlflow.tracking_uri))
        files = {p.name: p for p in local.rglob("*") if p.is_file()}
        meta = json.loads(files["ensemble.json"].read_text())
        if drill:
            meta["drill"] = drill
            if drill_from is not None:
                meta["drill_from"] = drill_from.isoformat()
        files["ensemble.json"].write_text(json.dumps(meta, sort_keys=True))
        artifacts = {"lightgbm": str(files["lightgbm.json"]), "tsmixer": str(files["tsmixer.pt"]),
                     "ensemble": str(files["ensemble.json"])}
        tags = {"omniwatch.drill": drill or "none", "omniwatch.copy_of_version": str(source_version)}
        with mlflow.run_context(f"drill_{drill}" if drill else f"copy_of_v{source_version}", tags=tags) as run:
            info = mlflow_lib.pyfunc.log_model(name="model", python_model=str(MODEL_CODE_PATH), artifacts=artifacts)
            reference = load_reference(mlflow, model_name, str(source_version))
            if reference is not None:  # the same training rows: the same drift reference
                mlflow_lib.log_text(reference.model_dump_json(), REFERENCE_ARTIFACT)
    version, _ = record_registration(
        mlflow, database_url, model_name, info.model_uri, run_id=run.info.run_id, track="liquid",
        train_lineage_id=source["train_lineage_id"] or "", data_version=source["data_version"] or "",
        metrics=source["metrics"] or {}, actor=actor)
    mlflow.set_version_tags(model_name, version, tags)
    return version
