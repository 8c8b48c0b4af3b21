"""Drift as a service: the champion's training reference against recent snapshots, forecasts and fills."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pandas as pd

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.operations.context import LIQUID_MODEL, OpsContext, Recorded, _locked, _persist
from omniwatch.operations.evidence import filled_orders, live_predictions
from omniwatch.resources.mlflow import MLflowResource

if TYPE_CHECKING:
    from omniwatch.modelops.drift import DriftReference


@_locked
def evaluate_drift(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded:
    """Champion's training reference against the last ``window_hours`` of snapshots, its live
    forecasts, and the slippage of filled orders."""
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
    decision = drift_rule(reference, features, forecasts, filled_orders(ctx.database_url, start, end), th,
                          model_name=model_name, version=champion, window=window)
    return _persist(ctx, decision)


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
