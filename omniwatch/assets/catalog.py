"""What the Dagster UI says about an asset besides its data: owners, tags, column schema, row
counts and MLflow links. Decided here once; the asset modules only name a track and a layer.

``track`` tag: ``liquid`` (BTC/ETH/SOL hourly), ``vc`` (companies, filings), ``shared`` (news,
read by both). ``layer`` tag, in the order the data flows:

- ``raw``: records as a source gives them, written behind their blocking checks;
- ``checked``: built from checked raw records only (the market plane's coverage, entity resolution);
- ``features``: point-in-time feature snapshots;
- ``training``: the datasets a model is fitted on;
- ``model``: fitted models, their MLflow runs and registered versions;
- ``ops``: model operations on the live loop (live scoring, drift).

Owners follow the layer: the data team up to ``features``, the ML team from ``training`` on.
In the UI: filter the catalog by tag ``track``/``layer`` or by owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

# Public in dagster (the ``dagster/row_count`` ... keys it writes) but not exported at the top level in 1.13.
from dagster._core.definitions.metadata import TableMetadataSet

if TYPE_CHECKING:
    from sqlalchemy import Column

    from omniwatch.resources.mlflow import MLflowResource

Track = Literal["liquid", "vc", "shared"]
Layer = Literal["raw", "checked", "features", "training", "model", "ops"]

DATA_TEAM = "team:omniwatch-data"
ML_TEAM = "team:omniwatch-ml"
LAYERS: tuple[Layer, ...] = ("raw", "checked", "features", "training", "model", "ops")
OWNER_BY_LAYER: dict[Layer, str] = {"raw": DATA_TEAM, "checked": DATA_TEAM, "features": DATA_TEAM,
                                    "training": ML_TEAM, "model": ML_TEAM, "ops": ML_TEAM}


def labels(track: Track, layer: Layer) -> dict[str, Any]:
    """``owners`` and ``tags`` for ``@dg.asset``: the layer's team, the track and the layer."""
    return {"owners": [OWNER_BY_LAYER[layer]], "tags": {"track": track, "layer": layer}}


def _column_type(column: Column) -> str:
    from omniwatch.warehouse.types import UtcDateTime

    if isinstance(column.type, UtcDateTime):
        return "timestamp (UTC)"
    return str(column.type.compile()).lower()


def column_schema(table_name: str) -> dg.TableSchema:
    """The warehouse table's columns as Alembic creates them (``omniwatch/warehouse/tables/``):
    type, nullability, primary and foreign keys, and the natural key every write upserts on."""
    from sqlalchemy import UniqueConstraint

    from omniwatch.warehouse import tables

    table = tables.metadata.tables[table_name]
    natural_keys = [[c.name for c in u.columns] for u in table.constraints if isinstance(u, UniqueConstraint)]
    columns = []
    for c in table.columns:
        other = ["primary key"] if c.primary_key else []
        other += [f"references {fk.target_fullname}" for fk in c.foreign_keys]
        columns.append(dg.TableColumn(
            c.name, _column_type(c), description=c.comment,
            constraints=dg.TableColumnConstraints(nullable=bool(c.nullable), unique=[c.name] in natural_keys,
                                                  other=other),
        ))
    keys = [f"natural key (upserted on): {', '.join(k)}" for k in natural_keys]
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=keys))


def table_metadata(table_name: str) -> dict[str, Any]:
    """Definition metadata of an asset stored as a warehouse table: its column schema and name."""
    return dict(TableMetadataSet(column_schema=column_schema(table_name), table_name=table_name))


def row_count(rows: int, partitioned: bool) -> dict[str, Any]:
    """``dagster/row_count`` for a materialization: the rows it wrote (a daily partition: that
    day's rows); a partition's count also as ``dagster/partition_row_count``."""
    return dict(TableMetadataSet(row_count=int(rows), partition_row_count=int(rows) if partitioned else None))


# MLflow 3's UI opens an experiment in its GenAI view (traces) unless the link says otherwise: the
# sidebar's GenAI / Model training switch is read from the URL's ``workflowType`` first, then from
# the browser's local storage, whose default is GenAI (the experiment's ``mlflow.experimentKind``
# tag does not override it in 3.17). Every link we hand out therefore carries it.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def mlflow_experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's training runs in the MLflow UI at ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def mlflow_links(mlflow: MLflowResource, run_id: str | None = None,
                 model: tuple[str, str] | None = None) -> dict[str, dg.MetadataValue]:
    """Links to the MLflow UI (``MLflowResource.ui_url``), opening in its model-training view: the
    run's experiment and page and, for a registered ``(name, version)``, the model version's page."""
    base = mlflow.ui_url.rstrip("/")
    links: dict[str, dg.MetadataValue] = {}
    if run_id:
        experiment_id = mlflow.client().get_run(run_id).info.experiment_id
        links["mlflow_experiment"] = dg.MetadataValue.url(mlflow_experiment_url(base, experiment_id))
        links["mlflow_run"] = dg.MetadataValue.url(
            f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}")
    if model is not None:
        name, version = model
        links["mlflow_model_version"] = dg.MetadataValue.url(
            f"{base}/#/models/{name}/versions/{version}?{MODEL_TRAINING_VIEW}")
    return links
