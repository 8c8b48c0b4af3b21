"""Drift as a service: the champion's training reference against recent snapshots, forecasts and
execution (the fills and orders of every adapter in the window; see :mod:`omniwatch.modelops.drift`
for the two slippage figures)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import select

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.operations.context import LIQUID_MODEL, OpsContext, Recorded, _locked, _persist
from omniwatch.operations.evidence import live_predictions
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

if TYPE_CHECKING:
    from omniwatch.modelops.drift import DriftReference, ExecutionEvidence


@_locked
def evaluate_drift(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded:
    """Champion's training reference against the last ``window_hours`` of snapshots, its live
    forecasts, and the slippage of fills and cap stops of orders in that window."""
    from omniwatch.ml.dataset import load_snapshots
    from omniwatch.modelops.drift import evaluate_drift as drift_rule

    th = ctx.thresholds.drift
    aliases = ctx.mlflow.aliases(model_name)  # not registered yet: no champion, an inconclusive finding
    champion = aliases.get("champion")
    end = ctx.clock()
    start = end - timedelta(hours=th.window_hours)
    window = Window(start=start, end=end, label=f"last {th.window_hours} h")
    reference = load_reference(ctx.mlflow, model_name, champion) if champion else None
    if reference is None or not champion:  # a reference implies a champion
        decision = Decision(action=Action.drift, outcome=Outcome.inconclusive, model_name=model_name,
                            version=champion, window=window, thresholds=th.model_dump(),
                            reason="no champion" if not champion else
                            f"champion v{champion} carries no drift reference (trained before references were stored)")
        return _persist(ctx, decision)
    from omniwatch.features.liquid import FEATURES

    snaps = load_snapshots(ctx.database_url, pd.Timestamp(start), pd.Timestamp(end))
    features = snaps[list(FEATURES)] if len(snaps) else pd.DataFrame(columns=list(FEATURES))
    preds = live_predictions(ctx.database_url, model_name, champion, "24h", start, end)
    forecasts = preds["forecast"] if len(preds) else pd.Series(dtype=float)
    decision = drift_rule(reference, features, forecasts, execution_evidence(ctx.database_url, start, end), th,
                          model_name=model_name, version=champion, window=window)
    return _persist(ctx, decision)


def execution_evidence(database_url: str, start: datetime, end: datetime) -> ExecutionEvidence:
    """Fills made in ``[start, end)`` with their order's current status, and orders created in it
    with their lifecycle (the rule decides which count)."""
    from omniwatch.modelops.drift import FILL_COLUMNS, ORDER_COLUMNS, ExecutionEvidence

    f, o = tables.fills, tables.orders_sim
    fills_q = (select(f.c.order_id, o.c.status, f.c.qty, f.c.price, f.c.slippage_bps)
               .join(o, o.c.order_id == f.c.order_id).where(f.c.ts >= start, f.c.ts < end))
    orders_q = (select(o.c.order_id, o.c.status, o.c.max_slippage_bps, o.c.filled_qty, o.c.lifecycle)
                .where(o.c.created_at >= start, o.c.created_at < end))
    with get_engine(database_url).connect() as conn:
        fills = pd.DataFrame(conn.execute(fills_q).mappings().all(), columns=list(FILL_COLUMNS))
        orders = pd.DataFrame(conn.execute(orders_q).mappings().all(), columns=list(ORDER_COLUMNS))
    return ExecutionEvidence(fills=fills, orders=orders)


REFERENCE_ARTIFACT = "drift/reference.json"


def load_reference(mlflow: MLflowResource, model_name: str, version: str) -> DriftReference | None:
    """The drift reference logged with ``version``'s training run; None if it has none."""
    import json

    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from omniwatch.modelops.drift import DriftReference

    client = mlflow.client()
    run_id = client.get_model_version(model_name, version).run_id
    try:
        path = download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT, tracking_uri=mlflow.tracking_uri)
    except FileNotFoundError:
        return None  # the version's run logged no reference (trained before references existed)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # an unreachable artifact store is an error, not "no reference"
        return None
    with open(path) as fh:
        return DriftReference.model_validate(json.load(fh))
