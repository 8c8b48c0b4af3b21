"""Registering a trained model version: MLflow registry, aliases, and the warehouse records.

Rules (same for every track): each new version gets alias ``challenger``; the very first version
of a model also becomes ``champion``. Every alias move goes to ``model_promotions`` too. A version
whose ``metrics`` carry a skill verdict (``metrics["skill"]``, liquid) is tagged with it in MLflow.
"""

from __future__ import annotations

from sqlalchemy import select

from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

REGISTERED_CLOCK_TAG = "omniwatch.registered_at_clock"
REGISTRATION_KEY_TAG = "omniwatch.registration_key"  # makes a retried registration idempotent


def record_registration(mlflow: MLflowResource, database_url: str, name: str, model_uri: str, *, run_id: str,
                        track: str, train_lineage_id: str, data_version: str, metrics: dict,
                        actor: str, registration_key: str | None = None) -> tuple[str, list[str]]:
    """Register ``model_uri`` as a new version of ``name``; returns (version, aliases set).

    With ``registration_key`` a retry is idempotent: the version carries the key as a tag from its
    creation on, and a retry (after the registry died between creating the version and moving
    its aliases) completes that version instead of registering a second one, which would also
    have lost the first version's claim to ``champion``.
    """
    existing = _version_with_key(mlflow, name, registration_key) if registration_key else None
    current = mlflow.aliases(name)
    first = current.get("champion") is None and not _has_versions(mlflow, name, besides=existing)
    # The data clock at registration: live scoring (its shadow) starts there, not at hours it
    # would only be scored on in hindsight (in replay the data clock is not the wall clock).
    from omniwatch.operations import data_clock

    clock = data_clock(database_url)
    tags = {"train_lineage_id": train_lineage_id, "data_version": data_version, "track": track,
            REGISTERED_CLOCK_TAG: clock.isoformat() if clock else ""}
    if registration_key:
        tags[REGISTRATION_KEY_TAG] = registration_key
    # The skill verdict (omniwatch.modelops.skill) travels with the version from its creation on.
    from omniwatch.modelops.skill import skill_tags

    skill = skill_tags(metrics)
    tags |= skill
    version = existing or mlflow.register(model_uri, name, tags=tags)
    if existing and skill:  # a retry stores this attempt's metrics: its verdict, in both places
        mlflow.set_version_tags(name, existing, skill)
    with get_engine(database_url).begin() as conn:
        upsert_rows(conn, tables.model_registry, [{
            "model_name": name, "version": version, "mlflow_run_id": run_id, "track": track,
            "aliases": [], "status": "registered", "train_lineage_id": train_lineage_id,
            "data_version": data_version, "metrics": metrics,
        }], ["model_name", "version"])
    aliases = ["challenger"]
    if current.get("challenger") != version:  # a retry whose first try moved it already moves nothing
        mlflow.move_alias(name, "challenger", version, actor=actor, database_url=database_url,
                          reason="new version trained and registered")
    if first:
        mlflow.move_alias(name, "champion", version, actor=actor, database_url=database_url,
                          reason="first registered version of the model becomes champion")
    if first or current.get("champion") == version:
        aliases.append("champion")
    return version, aliases


def _has_versions(mlflow: MLflowResource, name: str, besides: str | None = None) -> bool:
    """Whether ``name`` has a version other than ``besides``."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.client().search_model_versions(f"name='{name}'", max_results=2)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise  # a transient registry error must fail the step, not register a "first" champion
    return any(str(v.version) != besides for v in found)


def _version_with_key(mlflow: MLflowResource, name: str, key: str) -> str | None:
    """The version of ``name`` registered under ``key`` (see ``record_registration``), or None."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.client().search_model_versions(f"name='{name}' and tags.`{REGISTRATION_KEY_TAG}` = '{key}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(min(int(v.version) for v in found)) if found else None


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
