"""Staged rollout, rollback and monitoring after promotion as services, and the rollout state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.operations.context import (
    HOUR,
    LIQUID_MODEL,
    OpsContext,
    Recorded,
    _aliases,
    _locked,
    _persist,
    _public,
    _registry,
)
from omniwatch.operations.evidence import window_evidence
from omniwatch.promotions import audit_rows


def _hours(horizon: str) -> timedelta:
    return timedelta(hours=int(horizon.rstrip("h")))


def _window_start(ctx: OpsContext, model_name: str, version: str, actions: tuple[str, ...]) -> datetime | None:
    """Where ``version``'s next window starts: the end of its last judged window, else the end of
    its gate (or promotion) decision's window."""
    rows = [r for r in audit_rows(ctx.database_url, model_name, version=version)
            if r["action"] in actions and _anchors(r)]
    if not rows:
        return None
    last = rows[-1]
    judged = last["action"] in ("rollout", "rollback") and (last["window"] or {}).get("start")
    at = last["window"]["end"] if judged else (last["metrics"] or {}).get("decided_at")
    return pd.Timestamp(at).tz_convert("UTC").floor("h").to_pydatetime() if at else None


def _anchors(row: dict[str, Any]) -> bool:
    """Rows a version's windows are counted from: a stage change (gate start, advance, promote,
    manual or judged) and judged windows; notes, skips and no-ops are not."""
    if row["outcome"] in (Outcome.start_rollout.value, Outcome.advance.value, Outcome.promote.value):
        return True
    return row["action"] in ("rollout", "rollback") and bool((row["window"] or {}).get("start")) \
        and row["outcome"] in (Outcome.hold.value, Outcome.inconclusive.value, Outcome.no_action.value,
                               Outcome.rollback.value)


def next_window(ctx: OpsContext, model_name: str, version: str, actions: tuple[str, ...],
                window_hours: int, horizon: str) -> tuple[datetime, datetime] | None:
    start = _window_start(ctx, model_name, version, actions)
    if start is None:
        return None
    end = start + timedelta(hours=window_hours)
    # The window's last hour (end - 1 h) matures at end - 1 h + horizon.
    return (start, end) if ctx.clock() >= end - HOUR + _hours(horizon) else None


@_locked
def rollout_step(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded | None:
    """Judge the candidate's next closed window and advance, hold or wait; None when no window
    has closed since the last decision (nothing to decide, nothing audited)."""
    from omniwatch.modelops.rollout import evaluate_rollout

    th = ctx.thresholds.rollout
    aliases = _aliases(ctx, model_name)
    candidate, champion = aliases.get("candidate"), aliases.get("champion")
    if not candidate:
        return None
    stage = int(_registry(ctx, model_name).get(candidate, {}).get("rollout_stage") or 0)
    span = next_window(ctx, model_name, candidate, ("gate", "rollout", "manual"), th.window_hours, th.horizon)
    if span is None:
        return None
    label = f"{span[0]:%Y-%m-%dT%H}..{span[1]:%Y-%m-%dT%H}"
    mine, theirs = window_evidence(ctx.database_url, model_name, candidate, champion, th.horizon, *span, label)
    decision = evaluate_rollout(candidate, champion, stage, mine, theirs, th, model_name=model_name)
    decision = decision.model_copy(update={"window": Window(start=span[0], end=span[1], label=label)})
    return _persist(ctx, decision)


@_locked
def advance_rollout(ctx: OpsContext, model_name: str, reason: str) -> Recorded:
    """A person advances the candidate by exactly one stage (audited as ``manual``)."""
    from omniwatch.modelops.rollout import next_stage

    aliases = _aliases(ctx, model_name)
    candidate = aliases.get("candidate")
    stages = ctx.thresholds.rollout.stages
    now = ctx.clock()
    if not candidate:
        decision = Decision(action=Action.manual, outcome=Outcome.skip, reason=f"no candidate in rollout; {reason}",
                            model_name=model_name, champion_version=aliases.get("champion"), window=Window(end=now))
        return _persist(ctx, decision)
    stage = int(_registry(ctx, model_name).get(candidate, {}).get("rollout_stage") or 0)
    to = next_stage(stage, stages)
    if to is None:
        decision = Decision(action=Action.manual, outcome=Outcome.skip, model_name=model_name, version=candidate,
                            reason=f"already at {stage} %: nothing to advance; {reason}", from_stage=stage,
                            to_stage=stage, champion_version=aliases.get("champion"), window=Window(end=now))
    else:
        decision = Decision(action=Action.manual, outcome=Outcome.promote if to == stages[-1] else Outcome.advance,
                            model_name=model_name, version=candidate, champion_version=aliases.get("champion"),
                            from_stage=stage, to_stage=to, reason=reason, window=Window(end=now))
    return _persist(ctx, decision)


# ----------------------------------------------------------------------------- rollback
def _window_results(ctx: OpsContext, model_name: str, version: str,
                    actions: tuple[str, ...]) -> list[tuple[Window, bool | None]]:
    out: list[tuple[Window, bool | None]] = []
    for r in audit_rows(ctx.database_url, model_name, version=version):
        if r["action"] not in actions:
            continue
        decision = r["decision"] or {}
        if "window_passed" not in decision or r["outcome"] == Outcome.skip.value:
            continue
        if r["action"] == Action.rollback.value and decision.get("window_passed") is None \
                and r["outcome"] != Outcome.inconclusive.value:
            continue
        out.append((Window(**(r["window"] or {})), decision.get("window_passed")))
    return out


@_locked
def check_rollback(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded | None:
    """Rollback on N consecutive failed windows: for a candidate in rollout (its rollout windows),
    and for a champion promoted within the monitoring period (its windows against ``previous``,
    judged here). None when there is nothing new to decide."""
    from omniwatch.modelops.rollback import evaluate_rollback
    from omniwatch.modelops.rollout import judge_window

    th = ctx.thresholds
    aliases = _aliases(ctx, model_name)
    candidate, champion, previous = aliases.get("candidate"), aliases.get("champion"), aliases.get("previous")
    if candidate:
        results = _window_results(ctx, model_name, candidate, ("rollout",))
        checked = [r for r in audit_rows(ctx.database_url, model_name, action=Action.rollback.value,
                                         version=candidate) if (r["window"] or {}).get("end")]
        if not results or (checked and pd.Timestamp(checked[-1]["window"]["end"]) == pd.Timestamp(results[-1][0].end)):
            return None  # no window judged since the last rollback check
        decision = evaluate_rollback(candidate, champion, results, th.rollback, model_name=model_name,
                                     role="candidate")
        return _persist(ctx, decision.model_copy(update={"window": results[-1][0]}), role="candidate")
    if not (champion and previous):
        return None
    promoted = [r for r in audit_rows(ctx.database_url, model_name, version=champion)
                if r["outcome"] == Outcome.promote.value]
    if not promoted:
        return None
    promoted_at = pd.Timestamp(promoted[-1]["window"]["end"]).tz_convert("UTC").to_pydatetime()
    rh = th.rollout
    span = next_window(ctx, model_name, champion, ("rollout", "manual", "rollback"), rh.window_hours, rh.horizon)
    if span is None or span[0] >= promoted_at + timedelta(hours=th.rollback.monitor_hours_after_promotion):
        return None
    label = f"{span[0]:%Y-%m-%dT%H}..{span[1]:%Y-%m-%dT%H}"
    mine, theirs = window_evidence(ctx.database_url, model_name, champion, previous, rh.horizon, *span, label)
    passed, why, metrics = judge_window(mine, theirs, rh)
    results = _window_results(ctx, model_name, champion, ("rollback",)) + [(Window(start=span[0], end=span[1],
                                                                                   label=label), passed)]
    decision = evaluate_rollback(champion, previous, results, th.rollback, model_name=model_name, role="champion")
    decision = decision.model_copy(update={
        "window": Window(start=span[0], end=span[1], label=label), "window_passed": passed,
        "metrics": {**decision.metrics, "window": metrics, "window_reason": why}})
    return _persist(ctx, decision, role="champion")


def monitored_previous(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> str | None:
    """``previous`` while the champion that replaced it is still watched against it, else None."""
    aliases = ctx.mlflow.aliases(model_name)
    champion, previous = aliases.get("champion"), aliases.get("previous")
    if not (champion and previous):
        return None
    promoted = [r for r in audit_rows(ctx.database_url, model_name, version=champion)
                if r["outcome"] == Outcome.promote.value and (r["window"] or {}).get("end")]
    if not promoted:
        return None
    until = pd.Timestamp(promoted[-1]["window"]["end"]).tz_convert("UTC") + timedelta(
        hours=ctx.thresholds.rollback.monitor_hours_after_promotion + ctx.thresholds.rollout.window_hours)
    return previous if pd.Timestamp(ctx.clock()) < until else None


def rollout_state(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> dict[str, Any]:
    aliases = _aliases(ctx, model_name)
    registry = _registry(ctx, model_name)
    from omniwatch.modelops.skill import skill_of

    versions = []
    for v, r in registry.items():
        skill = skill_of(r.get("metrics"))
        versions.append({"version": v, "status": r["status"], "rollout_stage": r["rollout_stage"],
                         "aliases": sorted(a for a, x in aliases.items() if x == v),
                         "skill": skill.status.value, "skill_reason": skill.reason})
    return {"model_name": model_name, "aliases": aliases, "versions": versions,
            "candidate": aliases.get("candidate"),
            "stage": (registry.get(aliases.get("candidate") or "", {}) or {}).get("rollout_stage") or 0,
            "stages": list(ctx.thresholds.rollout.stages), "clock": ctx.clock(),
            "recent_decisions": [_public(r) for r in audit_rows(ctx.database_url, model_name, limit=10)]}


@_locked
def log_note(ctx: OpsContext, model_name: str, reason: str, version: str | None,
             metrics: dict[str, Any] | None) -> Recorded:
    _aliases(ctx, model_name)
    decision = Decision(action=Action.manual, outcome=Outcome.no_action, reason=reason, model_name=model_name,
                        version=version, window=Window(end=ctx.clock()), metrics=metrics or {})
    return _persist(ctx, decision)
