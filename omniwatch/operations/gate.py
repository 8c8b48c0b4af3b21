"""The promotion gate as a service: a new challenger against the champion -> start rollout or reject."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.operations.context import (
    LIQUID_MODEL,
    OpsContext,
    Recorded,
    UnknownModel,
    _aliases,
    _locked,
    _persist,
    _registry,
)
from omniwatch.operations.evidence import first_live_hour, gated_versions, walk_forward_evidence, window_evidence


@_locked
def evaluate_gate(ctx: OpsContext, model_name: str = LIQUID_MODEL, version: str | None = None) -> Recorded:
    from omniwatch.modelops.evidence import ModelEvidence
    from omniwatch.modelops.gate import evaluate_gate as gate_rule
    from omniwatch.modelops.skill import skill_of

    aliases = _aliases(ctx, model_name)
    version = str(version or aliases.get("challenger") or "")
    registry = _registry(ctx, model_name)
    if version not in registry:
        raise UnknownModel(f"{model_name} version {version}")
    champion = aliases.get("champion")
    th = ctx.thresholds.gate
    now = ctx.clock()
    blocked = _gate_blocked(ctx, model_name, version, aliases, registry)
    if blocked:
        decision = Decision(action=Action.gate, outcome=Outcome.skip, reason=blocked, model_name=model_name,
                            version=version, champion_version=champion, window=Window(end=now),
                            thresholds=th.model_dump())
        return _persist(ctx, decision)
    # The shadow window: from the version's first live-scored hour (the data clock, not the
    # registration's wall-clock time) to now; only matured predictions and failed scorings count.
    shadow_start = first_live_hour(ctx.database_url, model_name, version) or now
    shadow, champion_shadow = (None, None)
    if champion and champion != version:
        shadow, champion_shadow = window_evidence(
            ctx.database_url, model_name, version, champion, th.horizon, shadow_start,
            now + timedelta(seconds=1), "shadow")
    challenger_ev = ModelEvidence(version=version, walk_forward=walk_forward_evidence(registry[version], th.horizon),
                                  shadow=shadow, skill=skill_of(registry[version].get("metrics")).at(th.horizon))
    champion_ev = None if not champion else ModelEvidence(
        version=champion, walk_forward=walk_forward_evidence(registry.get(champion), th.horizon),
        shadow=champion_shadow)
    decision = gate_rule(challenger_ev, champion_ev, th, model_name=model_name,
                         first_stage=ctx.thresholds.rollout.stages[0])
    decision = decision.model_copy(update={"metrics": {**decision.metrics, "shadow_start": shadow_start.isoformat()}})
    return _persist(ctx, decision)


def _gate_blocked(ctx: OpsContext, model_name: str, version: str, aliases: dict[str, str],
                  registry: dict[str, dict[str, Any]]) -> str | None:
    """Why ``version`` may not be gated now (a recorded skip), or None."""
    candidate = aliases.get("candidate")
    if candidate and candidate != version:
        return f"a rollout of v{candidate} is in progress: it must finish or be rolled back first"
    if candidate == version:
        return f"v{version} is already in rollout"
    if version == aliases.get("champion"):
        return f"v{version} is the champion"
    if version in gated_versions(ctx.database_url, model_name):
        return f"v{version} was gated already (status {registry[version]['status']})"
    return None


@_locked
def auto_evaluate_gate(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded:
    """Gate the challenger unless it was gated already (then a recorded ``skip``)."""
    aliases = _aliases(ctx, model_name)
    challenger = aliases.get("challenger")
    if challenger and challenger not in gated_versions(ctx.database_url, model_name) \
            and challenger != aliases.get("champion"):
        return evaluate_gate(ctx, model_name, challenger)
    reason = ("no challenger registered" if not challenger else
              f"challenger v{challenger} is the champion" if challenger == aliases.get("champion") else
              f"challenger v{challenger} was gated already")
    decision = Decision(action=Action.gate, outcome=Outcome.skip, reason=reason, model_name=model_name,
                        version=challenger, champion_version=aliases.get("champion"),
                        window=Window(end=ctx.clock()), thresholds=ctx.thresholds.gate.model_dump())
    return _persist(ctx, decision)
