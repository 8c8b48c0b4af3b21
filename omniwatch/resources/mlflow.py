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


# MLflow 3's UI opens an experiment on the tab its kind names; untagged, it guesses, and an
# experiment whose runs are not logged yet opens on the empty GenAI (traces) view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


class MLflowResource(dg.ConfigurableResource):
    """Tracking and registry on one URI (SQLite file by default), artifacts under ``artifact_root``."""

    tracking_uri: str
    artifact_root: str
    experiment_name: str = "omniwatch-liquid"
    # Where a browser reaches the MLflow UI: model assets link their runs and versions there.
    # The default is `make mlflow-ui` (127.0.0.1, MLFLOW_PORT 5000).
    ui_url: str = "http://127.0.0.1:5000"

    def _configure(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        relocate_artifacts(self.tracking_uri, self.artifact_root)

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        self._configure()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, name: str | None = None) -> str:
        """The experiment's id, created as a model-training experiment (see ``EXPERIMENT_KIND_TAG``).

        Against a tracking server no artifact location is given, so the server's default applies
        (its ``mlflow-artifacts:`` proxy): clients need no access to the server's disk. Embedded,
        artifacts go to ``artifact_root/<name>``, re-anchored by :func:`relocate_artifacts` when
        OMNIWATCH_HOME moves.
        """
        client = self.client()
        name = name or self.experiment_name
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the tag was set
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
            return found.experiment_id
        tags = {EXPERIMENT_KIND_TAG: TRAINING_KIND}
        if is_server(self.tracking_uri):
            return client.create_experiment(name, tags=tags)
        location = Path(self.artifact_root).resolve()
        location.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=(location / name).as_uri(), tags=tags)

    @contextmanager
    def run_context(self, run_name: str, tags: dict[str, str] | None = None,
                    experiment: str | None = None, start_time_ms: int | None = None) -> Iterator[Run]:
        """An active MLflow run in the experiment; ended (FAILED on error) when the block exits.

        ``start_time_ms`` (epoch milliseconds) is when the work the run records began: a run
        opened after a long fit would otherwise show a duration of milliseconds.
        """
        import mlflow

        experiment_id = self.experiment_id(experiment)
        if start_time_ms is None:
            started = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags or {})
        else:
            created = self.client().create_run(experiment_id, start_time=start_time_ms, tags=tags or {},
                                               run_name=run_name)
            started = mlflow.start_run(run_id=created.info.run_id)
        with started as run:
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


def is_server(tracking_uri: str) -> bool:
    """An MLflow tracking server (HTTP), as opposed to an embedded database the client writes."""
    return tracking_uri.startswith(("http://", "https://"))


# Where MLflow's SQL store keeps absolute artifact URIs (MLflow 3 schema): each starts with the
# artifact location of its experiment.
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"))
_RELOCATED: set[tuple[str, str]] = set()


def relocate_artifacts(tracking_uri: str, artifact_root: str) -> dict[str, str]:
    """Re-anchor an embedded store's artifact URIs on ``artifact_root``; returns {experiment: new}.

    MLflow writes absolute ``file://`` URIs into its database, so a copied OMNIWATCH_HOME would
    still read (or, once deleted, fail to find) the old folder. An experiment this resource made
    lives at ``<root>/<name>``: when ``artifact_root/<name>`` exists and the stored root differs,
    the experiment's URIs (its runs, logged models, model versions) are rewritten to it. Runs once
    per process and store; a server (which owns its artifact locations) is left alone.
    """
    import sqlalchemy as sa

    root = Path(artifact_root).resolve()
    key = (tracking_uri, str(root))
    if key in _RELOCATED or is_server(tracking_uri) or "://" not in tracking_uri:
        return {}
    url = sa.engine.make_url(tracking_uri)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return {}
    engine = sa.create_engine(url)
    moved: dict[str, str] = {}
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("experiments"):
                return {}
            rows = conn.execute(sa.text("SELECT name, artifact_location FROM experiments")).all()
            for name, location in rows:
                new = (root / name).as_uri()
                if (not location or location == new or not location.startswith("file:")
                        or not location.endswith("/" + new.rsplit("/", 1)[1]) or not (root / name).is_dir()):
                    continue
                for table, column in _LOCATION_COLUMNS:
                    _replace_prefix(conn, table, column, location, new)
                moved[name] = new
        _RELOCATED.add(key)
    finally:
        engine.dispose()
    return moved


def _replace_prefix(conn, table: str, column: str, old: str, new: str) -> None:
    """``old`` -> ``new`` at the start of ``table.column`` where it is the whole value or a folder."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table(table):
        return
    t = sa.table(table, sa.column(column, sa.String))
    col = t.c[column]
    rest = sa.func.substr(col, len(old) + 1)
    conn.execute(t.update().where(sa.or_(col == old, sa.func.substr(col, 1, len(old) + 1) == old + "/"))
                 .values({column: sa.literal(new, sa.String) + rest}))
