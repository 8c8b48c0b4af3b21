"""Registering a trained model version: MLflow registry, aliases, and the warehouse records.

Rules (same for every track): each new version gets alias ``challenger``; the very first version
of a model also becomes ``champion``. Every alias move goes to ``model_promotions`` too.
"""

from __future__ import annotations

from sqlalchemy import select

from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

REGISTERED_CLOCK_TAG = "omniwatch.registered_at_clock"


def record_registration(mlflow: MLflowResource, database_url: str, name: str, model_uri: str, *, run_id: str,
                        track: str, train_lineage_id: str, data_version: str, metrics: dict,
                        actor: str) -> tuple[str, list[str]]:
    """Register ``model_uri`` as a new version of ``name``; returns (version, aliases set)."""
    first = mlflow.alias_version(name, "champion") is None and not _has_versions(mlflow, name)
    # The data clock at registration: live scoring (its shadow) starts there, not at hours it
    # would only be scored on in hindsight (in replay the data clock is not the wall clock).
    from omniwatch.operations import data_clock

    clock = data_clock(database_url)
    version = mlflow.register(model_uri, name, tags={"train_lineage_id": train_lineage_id,
                                                     "data_version": data_version, "track": track,
                                                     REGISTERED_CLOCK_TAG: clock.isoformat() if clock else ""})
    with get_engine(database_url).begin() as conn:
        upsert_rows(conn, tables.model_registry, [{
            "model_name": name, "version": version, "mlflow_run_id": run_id, "track": track,
            "aliases": [], "status": "registered", "train_lineage_id": train_lineage_id,
            "data_version": data_version, "metrics": metrics,
        }], ["model_name", "version"])
    aliases = ["challenger"]
    mlflow.move_alias(name, "challenger", version, actor=actor, database_url=database_url,
                      reason="new version trained and registered")
    if first:
        mlflow.move_alias(name, "champion", version, actor=actor, database_url=database_url,
                          reason="first registered version of the model becomes champion")
        aliases.append("champion")
    return version, aliases


def _has_versions(mlflow: MLflowResource, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return bool(mlflow.client().search_model_versions(f"name='{name}'", max_results=1))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise  # a transient registry error must fail the step, not register a "first" champion


def alias_history(database_url: str, name: str) -> list[dict]:
    t = tables.model_promotions
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(select(t).where(t.c.model_name == name).order_by(t.c.id)).mappings().all()
    return [dict(r) for r in rows]


FINGERPRINT_TAG = "training_fingerprint"


def version_with_fingerprint(mlflow: MLflowResource, name: str, fingerprint: str) -> str | None:
    """The newest version of ``name`` trained with ``fingerprint`` (code version, config and input
    data versions), or None: a training that would reproduce it can be skipped. Only MLflow's
    RESOURCE_DOES_NOT_EXIST means "no versions"; other registry errors propagate."""
    from mlflow.exceptions import MlflowException

    try:
        versions = mlflow.client().search_model_versions(f"name='{name}'", order_by=["version_number DESC"],
                                                         max_results=1000)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return next((str(v.version) for v in versions if (v.tags or {}).get(FINGERPRINT_TAG) == fingerprint), None)
