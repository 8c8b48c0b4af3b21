"""Model operations as services: fetch the evidence, call a rule, persist the decision.

The Dagster sensors and the API routes call these same functions (DESIGN section 7), so a
decision is the same whichever path asked for it. The rules themselves (``omniwatch.modelops``)
are pure; the evidence comes from the warehouse (``predictions_v2``, ``model_registry``,
``feature_snapshots``, ``orders_sim``) and the MLflow registry (aliases, the drift reference).

Windows. A rollout or monitoring window is ``[start, start + window_hours)`` of prediction
``as_of_ts``; it is judged once every prediction in it has matured (``now >= end + horizon``).
Consecutive windows of a version start where its previous judged window ended (the first at
the gate decision). The clock ``now`` is the data clock in replay (the newest bar's
``available_time``) and the wall clock in live mode, so replay-as-live behaves as live does.
"""

from omniwatch.operations.context import (
    HOUR,
    LIQUID_MODEL,
    OpsContext,
    Recorded,
    Thresholds,
    UnknownModel,
    data_clock,
    require_model,
)
from omniwatch.operations.drift import REFERENCE_ARTIFACT, evaluate_drift, load_reference
from omniwatch.operations.evidence import (
    first_live_hour,
    gated_versions,
    live_predictions,
    matured_count,
    rejected_versions,
    walk_forward_evidence,
    window_evidence,
)
from omniwatch.operations.gate import auto_evaluate_gate, evaluate_gate
from omniwatch.operations.rollout import (
    advance_rollout,
    check_rollback,
    log_note,
    monitored_previous,
    next_window,
    rollout_state,
    rollout_step,
)

__all__ = [
    "HOUR", "LIQUID_MODEL", "REFERENCE_ARTIFACT", "OpsContext", "Recorded", "Thresholds", "UnknownModel",
    "require_model",
    "advance_rollout", "auto_evaluate_gate", "check_rollback", "data_clock", "evaluate_drift", "evaluate_gate",
    "first_live_hour", "gated_versions", "live_predictions", "load_reference", "log_note",
    "matured_count", "monitored_previous", "next_window", "rejected_versions", "rollout_state", "rollout_step",
    "walk_forward_evidence", "window_evidence",
]
