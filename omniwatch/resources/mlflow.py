"""MLflow behind one resource: tracking URI, experiment, registry, aliases with history.

MLflow keeps no history of alias moves, so every move is also written to the warehouse table
``model_promotions`` (who, when, from which version, to which, why). mlflow is imported inside
methods only: loading the Dagster definitions must not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from sqlalchemy import func

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

if TYPE_CHECKING:
    from mlflow.entities import Run

    from mlflow import MlflowClient


class MLflowResource(dg.ConfigurableResource):
    """Tracking and registry on one URI (SQLite file by default), artifacts under ``artifact_root``."""

    tracking_uri: str
    artifact_root: str
    experiment_name: str = "omniwatch-liquid"

    def _configure(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        self._configure()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, name: str | None = None) -> str:
        """The experiment's id, creating it with its artifacts under ``artifact_root``."""
        client = self.client()
        name = name or self.experiment_name
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = Path(self.artifact_root).resolve()
        location.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=(location / name).as_uri())

    @contextmanager
    def run_context(self, run_name: str, tags: dict[str, str] | None = None,
                    experiment: str | None = None) -> Iterator[Run]:
        """An active MLflow run in the experiment; ended (FAILED on error) when the block exits."""
        import mlflow

        experiment_id = self.experiment_id(experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags or {}) as run:
            yield run

    def register(self, model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
        """Register ``model_uri`` as a new version of ``name``; returns the version."""
        import mlflow

        self._configure()
        return str(mlflow.register_model(model_uri, name, tags=tags).version)

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version of registered model ``name``; ``{}`` when the model is not registered.

        Only MLflow's ``RESOURCE_DOES_NOT_EXIST`` means "not registered (yet)": any other error
        (registry unreachable, a timeout, a permission error) propagates, so a transient failure
        can never look like "no champion" and promote an untested version.
        """
        from mlflow.exceptions import MlflowException

        try:
            model = self.client().get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at; None only when the model or the alias does not exist."""
        return self.aliases(name).get(alias)

    def delete_alias(self, name: str, alias: str) -> None:
        self.client().delete_registered_model_alias(name, alias)

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)

    def move_alias(self, name: str, alias: str, version: str, *, actor: str, reason: str,
                   database_url: str, decision: dict[str, Any] | None = None) -> str | None:
        """Point ``alias`` at ``version`` and record the move in ``model_promotions``.

        Returns the version the alias pointed at before (None if it was unset).
        """
        previous = self.alias_version(name, alias)
        self.client().set_registered_model_alias(name, alias, version)
        with get_engine(database_url).begin() as conn:
            conn.execute(tables.model_promotions.insert().values(
                model_name=name, action="alias_set", outcome="alias_set", model_version=str(version), alias=alias,
                from_version=previous, to_version=str(version), actor=actor, source="dagster", reason=reason,
                decision=decision, window={"start": None, "end": None, "label": "registration"}, thresholds={},
                metrics={},
            ))
            _mirror_alias(conn, name, alias, previous, str(version))
        return previous


def _mirror_alias(conn, name: str, alias: str, previous: str | None, version: str) -> None:
    """Keep ``model_registry.aliases`` equal to MLflow's: the alias leaves ``previous``."""
    from sqlalchemy import select

    t = tables.model_registry
    rows = conn.execute(select(t.c.version, t.c.aliases).where(t.c.model_name == name)).all()
    for row_version, aliases in rows:
        new = [a for a in (aliases or []) if a != alias]
        if row_version == version:
            new.append(alias)
        if new != list(aliases or []):
            conn.execute(t.update().where(t.c.model_name == name, t.c.version == row_version)
                         .values(aliases=sorted(new), updated_at=func.now()))
