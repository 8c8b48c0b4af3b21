"""One registered model version, loaded from the MLflow registry for scoring.

Used by the serving API's model router (which caches and routes versions) and by the Dagster
runs of API tasks (which load the one version a backtest names). mlflow and torch are imported
on first use. Any failure to resolve or load a version is :class:`ModelUnavailable`
(``model_artifact_missing``); only MLflow's ``RESOURCE_DOES_NOT_EXIST`` means "no such model".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omniwatch.errors import ErrorCode

log = logging.getLogger(__name__)
MLFLOW_LOCK = threading.Lock()  # mlflow's tracking/registry URIs are process-global
SPAN_ARTIFACT = "data_quality/summary.json"  # logged by training: {"window": [first - warm-up, last as_of_ts]}


class ModelUnavailable(Exception):
    """No loadable version: unknown alias, unreadable registry, or an artifact that fails to load."""

    code = ErrorCode.MODEL_ARTIFACT_MISSING

    def __init__(self, detail: str, **context: Any):
        super().__init__(f"{self.code}: {detail}")
        self.detail, self.context = detail, context


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    role: str            # champion | candidate | pinned
    model: Any           # the python model (LiquidEnsemble) or an MLflow pyfunc
    train_lineage_id: str | None
    device: str
    train_span: tuple[datetime, datetime] | None = None  # as_of_ts the version was trained on
    # The skill verdict frozen at registration (omniwatch.modelops.skill; version tags); None for
    # a model that is not traded (VC).
    skill: str | None = None                       # the verdict at the traded horizon (the flag)
    skill_reason: str | None = None
    skill_by_horizon: dict[str, str] | None = None  # {"1h": status, ...}; a missing horizon has none


def client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def aliases(tracking_uri: str, name: str) -> dict[str, str]:
    """Alias -> version; ``{}`` only when the model is not registered. Any other registry error
    propagates: it must never read as 'no champion'."""
    from mlflow.exceptions import MlflowException

    try:
        model = client(tracking_uri).get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def resolve(tracking_uri: str, name: str, version_or_alias: str) -> str:
    """The version number a number or an alias names."""
    if version_or_alias.isdigit():
        return version_or_alias
    try:
        version = aliases(tracking_uri, name).get(version_or_alias)
    except Exception as exc:  # registry unreachable: the cause goes to the caller
        log.exception("reading the aliases of %s failed", name)
        raise ModelUnavailable(f"cannot read the registry for {name!r}: {exc}", model_name=name) from exc
    if version is None:
        raise ModelUnavailable(f"{name!r} has no alias {version_or_alias!r}", model_name=name)
    return version


def load_version(tracking_uri: str, name: str, version: str, device: str) -> LoadedModel:
    """Load ``name`` version ``version`` and place its sequence model on ``device``."""
    try:
        import mlflow

        with MLFLOW_LOCK:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
            found = client(tracking_uri).get_model_version(name, version)
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
            span = _train_span(client(tracking_uri), found.run_id) if found.run_id else None
        model = pyfunc.unwrap_python_model() if name == "omniwatch-liquid" else pyfunc
        _check_features(model)
        placed = place(model, device)
    except Exception as exc:  # any load failure is the same answer: no artifact
        log.exception("loading %s version %s failed", name, version)
        raise ModelUnavailable(f"{name!r} version {version} could not be loaded: {exc}",
                               model_name=name, model_version=version) from exc
    log.info("loaded %s version %s on %s", name, version, placed)
    skill, reason, by_horizon = None, None, None
    if name == "omniwatch-liquid":  # the traded model; a version without the tag was never judged
        from omniwatch.modelops.skill import (
            NOT_ASSESSED,
            SKILL_BY_HORIZON_TAG,
            SKILL_REASON_TAG,
            SKILL_TAG,
            SkillStatus,
        )

        skill = found.tags.get(SKILL_TAG, SkillStatus.NO_DEMONSTRATED_SKILL.value)
        reason = found.tags.get(SKILL_REASON_TAG, NOT_ASSESSED)
        by_horizon = json.loads(found.tags.get(SKILL_BY_HORIZON_TAG) or "{}")
    return LoadedModel(name, version, "pinned", model, found.tags.get("train_lineage_id"), placed, span,
                       skill, reason, by_horizon)


def place(model: Any, device: str) -> str:
    """Move the sequence model (if any) to ``device``; returns where the model scores."""
    tsmixer = getattr(model, "tsmixer", None)
    if tsmixer is None:
        return "cpu"
    import torch

    dev = torch.device(device)
    tsmixer.device = dev
    tsmixer.model = tsmixer.model.to(dev).eval()
    tsmixer.norm = dataclasses.replace(tsmixer.norm, **{f.name: getattr(tsmixer.norm, f.name).to(dev)
                                                        for f in dataclasses.fields(tsmixer.norm)})
    return device


def _train_span(mlflow_client: Any, run_id: str) -> tuple[datetime, datetime] | None:
    """The as_of_ts window the version's training run read, from the data-quality summary it
    logged; None when the run logged none (a version registered outside the training assets)."""
    if SPAN_ARTIFACT not in {a.path for a in mlflow_client.list_artifacts(run_id, "data_quality")}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(mlflow_client.download_artifacts(run_id, SPAN_ARTIFACT, tmp))
        window = json.loads(path.read_text()).get("window")
    if not window:
        return None
    first, last = (datetime.fromisoformat(w) for w in window)
    return first, last


def _check_features(model: Any) -> None:
    """A model trained on another feature list than the snapshots carry cannot score them."""
    meta = getattr(model, "meta", None)
    if meta is None:
        return
    from omniwatch.features.liquid import FEATURES

    if list(meta.get("features", FEATURES)) != list(FEATURES):
        raise ValueError(f"trained on features {meta.get('features')}, the feature code now gives {list(FEATURES)}")
