"""A model's standing in the UI: did the newest registered version pass its gate?

Evaluated by ``model_standing_job``, which the gate, rollout and rollback sensors request after
each decision, so the Dagster UI shows on ``liquid_ensemble`` where the newest version stands.
"""

from __future__ import annotations

import dagster as dg

from omniwatch.resources.modelops import ModelOpsResource

LIQUID_MODEL = "omniwatch-liquid"


@dg.asset_check(asset="liquid_ensemble", description="The newest registered version passed its gate "
                "(start_rollout) or is the champion; rejected or rolled back versions fail.")
def newest_version_passed_gate(modelops: ModelOpsResource) -> dg.AssetCheckResult:
    from omniwatch.modelops.skill import skill_of
    from omniwatch.promotions import audit_rows, registry_rows

    ops = modelops.context()
    rows = registry_rows(ops.database_url, LIQUID_MODEL)
    if not rows:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"reason": "no registered version yet"})
    newest = max(rows, key=lambda r: int(r["version"]))
    version = str(newest["version"])
    aliases = ops.mlflow.aliases(LIQUID_MODEL)
    gates = [r for r in audit_rows(ops.database_url, LIQUID_MODEL, action="gate", version=version)
             if r["outcome"] in ("start_rollout", "reject")]
    last_gate = gates[-1] if gates else None
    champion = aliases.get("champion") == version
    passed = champion or (last_gate is not None and last_gate["outcome"] == "start_rollout"
                          and newest["status"] not in ("rejected",))
    reason = ("the champion" if champion else "not gated yet" if last_gate is None else
              f"gate {last_gate['outcome']}: {last_gate['reason']}" + (
                  "; later rolled back" if newest["status"] == "rejected" and last_gate["outcome"] != "reject" else ""))
    return dg.AssetCheckResult(
        passed=bool(passed), severity=dg.AssetCheckSeverity.WARN,
        metadata={"version": version, "status": newest["status"] or "", "rollout_stage": newest["rollout_stage"] or 0,
                  "aliases": dg.MetadataValue.json(aliases), "reason": reason,
                  "skill": skill_of(newest["metrics"]).status.value, "skill_reason": skill_of(newest["metrics"]).reason,
                  "gate_metrics": dg.MetadataValue.json((last_gate or {}).get("metrics") or {})},
    )
