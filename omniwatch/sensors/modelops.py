"""The sensors that run model operations: gate, rollout, rollback, drift.

Thin, as STYLE rule 8 asks: a cheap read, a rule from ``omniwatch.modelops`` through
``omniwatch.operations`` (the same functions the API calls), the decision persisted (audit row
``who=system, source=scheduler``, aliases, stage, status, MLflow tags), then a ``RunRequest``
whose run key names what was decided, or a ``SkipReason`` saying why nothing was. Each decision
is made once: a rollout window is judged when it has closed and matured, and a gate decision is
final (an ``inconclusive`` gate is retried when new shadow predictions have matured).
"""

from __future__ import annotations

import json

import dagster as dg

from omniwatch.resources.modelops import ModelOpsResource

LIQUID_MODEL = "omniwatch-liquid"


def _cursor(context) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def _standing(run_key: str, decision) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, tags={"omniwatch/decision": decision.outcome.value,
                                                "omniwatch/action": decision.action.value})


def _decide(context, modelops: ModelOpsResource, step, idle_reason: str):
    """Run one service step (rollout_step, check_rollback) as the scheduler: the decision it
    recorded, or a SkipReason when the model is not registered yet or there was nothing to decide."""
    from omniwatch.operations import UnknownModel

    try:
        recorded = step(modelops.context(), LIQUID_MODEL)
    except UnknownModel:
        return dg.SkipReason(f"{LIQUID_MODEL} is not registered yet")
    if recorded is None:
        return dg.SkipReason(idle_reason)
    context.update_cursor(json.dumps({"audit_id": recorded.audit_id}))
    context.log.info(recorded.decision.summary())
    return recorded.decision


def build_modelops_sensors(default_status: dg.DefaultSensorStatus, interval_s: int = 60) -> list[dg.SensorDefinition]:
    """The four sensors; ``interval_s`` is the daemon's minimum pace (settings.sensor_interval_s)."""
    from omniwatch.jobs.modelops import model_standing_job

    @dg.sensor(name="gate_sensor", minimum_interval_seconds=interval_s, default_status=default_status,
               job=model_standing_job, description="Gates a new challenger version against the champion.")
    def gate_sensor(context: dg.SensorEvaluationContext, modelops: ModelOpsResource):
        from omniwatch.operations import evaluate_gate, gated_versions, matured_count

        ops = modelops.context()
        aliases = ops.mlflow.aliases(LIQUID_MODEL)  # a registry error fails the tick, never "no champion"
        challenger, champion = aliases.get("challenger"), aliases.get("champion")
        if not challenger or challenger == champion:
            return dg.SkipReason(f"no new challenger (challenger {challenger}, champion {champion})")
        if challenger in gated_versions(ops.database_url, LIQUID_MODEL):
            return dg.SkipReason(f"challenger v{challenger} was gated already")
        if aliases.get("candidate") and aliases["candidate"] != challenger:
            # Not a decision (nothing is audited): the challenger waits for the rollout to end.
            return dg.SkipReason(f"challenger v{challenger} waits: "
                                 f"the rollout of v{aliases['candidate']} is in progress")
        cursor = _cursor(context)
        # New evidence = more matured (or failed) shadow predictions; an inconclusive gate is
        # re-evaluated only then, so waiting for a shadow window writes one row per new hour at most.
        evidence = matured_count(ops.database_url, LIQUID_MODEL, challenger)
        if cursor.get("inconclusive") == [challenger, evidence]:
            return dg.SkipReason(f"challenger v{challenger}: inconclusive with {evidence} matured shadow "
                                 "predictions; waiting for new data")
        recorded = evaluate_gate(ops, LIQUID_MODEL, challenger)
        d = recorded.decision
        context.update_cursor(json.dumps({"inconclusive": [challenger, evidence]} if d.outcome == "inconclusive"
                                         else {"gated": challenger}))
        context.log.info(d.summary())
        if d.outcome == "inconclusive":
            return dg.SkipReason(f"gate inconclusive for v{challenger}: {d.reason}")
        return _standing(f"gate:{LIQUID_MODEL}:{challenger}:{d.outcome.value}", d)

    @dg.sensor(name="rollout_sensor", minimum_interval_seconds=interval_s, default_status=default_status,
               job=model_standing_job,
               description="Advances the candidate 10 -> 30 -> 100 on matured shadow windows.")
    def rollout_sensor(context: dg.SensorEvaluationContext, modelops: ModelOpsResource):
        from omniwatch.operations import rollout_step

        d = _decide(context, modelops, rollout_step,
                    "no candidate in rollout, or its current window has not closed and matured")
        if isinstance(d, dg.SkipReason):
            return d
        if d.outcome not in ("advance", "promote"):
            # Decided and audited, but the standing did not change (the stage holds): no run, the
            # tick says why (a run per held window cost the replay ~6 s each and showed nothing new).
            return dg.SkipReason(f"{d.outcome.value} at stage {d.from_stage}: {d.reason}")
        return _standing(f"rollout:{LIQUID_MODEL}:{d.version}:{d.from_stage}->{d.to_stage}:"
                         f"{d.window.end.isoformat() if d.window.end else ''}", d)

    @dg.sensor(name="rollback_sensor", minimum_interval_seconds=interval_s, default_status=default_status,
               job=model_standing_job,
               description="Rolls back after N consecutive failed windows, during rollout and after promotion.")
    def rollback_sensor(context: dg.SensorEvaluationContext, modelops: ModelOpsResource):
        from omniwatch.operations import check_rollback

        d = _decide(context, modelops, check_rollback,
                    "no window judged since the last check (or nothing in rollout or monitoring)")
        if isinstance(d, dg.SkipReason):
            return d
        if d.outcome != "rollback":
            return dg.SkipReason(f"{d.outcome.value}: {d.reason}")
        return _standing(f"rollback:{LIQUID_MODEL}:{d.version}:{d.window.end.isoformat() if d.window.end else ''}", d)

    @dg.asset_sensor(name="drift_sensor", asset_key=dg.AssetKey("model_drift"), job_name="liquid_training_job",
                     default_status=default_status, minimum_interval_seconds=interval_s,
                     description="Requests a retraining when model_drift says drift.")
    def drift_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        materialization = asset_event.asset_materialization
        meta = materialization.metadata if materialization else {}
        outcome = meta["outcome"].value if "outcome" in meta else "unknown"
        if outcome != "drift":
            return dg.SkipReason(f"model_drift says {outcome}: {meta['reason'].value if 'reason' in meta else ''}")
        version, window_end = meta["model_version"].value, meta["window_end"].value
        return dg.RunRequest(run_key=f"drift:{LIQUID_MODEL}:{version}:{window_end}",
                             tags={"omniwatch/trigger": "drift",
                                   "omniwatch/drift_audit_id": str(meta["audit_id"].value)})

    return [gate_sensor, rollout_sensor, rollback_sensor, drift_sensor]
