"""Jobs of the model-operations loop."""

from __future__ import annotations

import dagster as dg

# The model's standing in the UI: the gate check on liquid_ensemble, run after each decision.
model_standing_job = dg.define_asset_job(
    name="model_standing_job",
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("liquid_ensemble"), "newest_version_passed_gate")),
    description="Evaluate the standing of the newest registered liquid version (gate passed or not).",
)

# Champion drift; drift_sensor turns a 'drift' outcome into a liquid_training_job run.
model_drift_job = dg.define_asset_job(
    name="model_drift_job", selection=dg.AssetSelection.assets("model_drift"),
    description="Evaluate the champion's feature, prediction and slippage drift.",
)
