"""The gate: may a new challenger start a rollout against the champion?

With ``require_skill`` (the default) a challenger that has not demonstrated skill at the gate's
horizon (``omniwatch.modelops.skill``: its walk-forward must beat both the better constant-sign
rule and the circular-shift null) is rejected first, whatever the champion: a rollout would only
swap one unvalidated forecast for another.

Walk-forward metrics are compared on the mean over each side's last K windows (windows where a
metric is not computable are left out of its mean); a shadow window of live predictions backs
them when ``min_shadow_predictions > 0``. A metric missing on either side is ``not_comparable``
and cannot fail the gate, but a gate with no comparable walk-forward metric decides nothing.
"""

from __future__ import annotations

from typing import Any

from omniwatch.modelops.evidence import ModelEvidence, WindowMetrics, finite
from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.modelops.thresholds import GateThresholds

# Float rounding must not fail a value that sits exactly on a tolerance boundary.
EPS = 1e-12
_AT_LEAST = ("ic", "rank_ic", "hit_rate", "net_pnl", "max_drawdown")


def _mean(windows: list[WindowMetrics], metric: str) -> float | None:
    values = [v for w in windows if finite(v := getattr(w, metric))]
    return sum(values) / len(values) if values else None


def compare(challenger: float | None, champion: float | None, tolerance: float, *,
            ratio: bool = False) -> dict[str, Any]:
    """One comparison: challenger >= champion - tol (or <= champion * (1 + tol) with ``ratio``)."""
    row = {"challenger": challenger, "champion": champion, "tolerance": tolerance}
    if not (finite(challenger) and finite(champion)):
        return {**row, "passed": None, "status": "not_comparable"}
    if ratio:
        passed = challenger <= champion * (1 + tolerance) + EPS
    else:
        passed = challenger >= champion - tolerance - EPS
    return {**row, "passed": passed, "status": "passed" if passed else "failed"}


def _span(windows: list[WindowMetrics], k: int) -> Window:
    starts = [w.start for w in windows if w.start is not None]
    ends = [w.end for w in windows if w.end is not None]
    return Window(start=min(starts, default=None), end=max(ends, default=None),
                  label=f"last {k} walk-forward windows")


def evaluate_gate(
    challenger: ModelEvidence,
    champion: ModelEvidence | None,
    thresholds: GateThresholds,
    *,
    model_name: str,
    first_stage: int = 10,
) -> Decision:
    """``start_rollout`` (0 -> ``first_stage``), ``reject``, ``inconclusive`` or ``skip``."""
    t = thresholds

    def decide(outcome: Outcome, reason: str, window: Window | None = None,
               metrics: dict[str, Any] | None = None, from_stage: int | None = None,
               to_stage: int | None = None) -> Decision:
        return Decision(action=Action.gate, outcome=outcome, reason=reason, model_name=model_name,
                        version=challenger.version, champion_version=champion.version if champion else None,
                        window=window or Window(), thresholds=t.model_dump(), metrics=metrics or {},
                        from_stage=from_stage, to_stage=to_stage)

    if champion is None:
        return decide(Outcome.skip, "no champion to compare with")
    if challenger.version == champion.version:
        return decide(Outcome.skip, f"challenger v{challenger.version} is already the champion")
    skill = challenger.skill
    if t.require_skill and (skill is None or not skill.demonstrated):
        why = skill.reason if skill is not None else "no skill verdict"
        return decide(Outcome.reject, f"no_demonstrated_skill: {why}", Window(label="walk-forward"),
                      {"skill": skill.model_dump(mode="json") if skill is not None else None})
    if not challenger.walk_forward or not champion.walk_forward:
        side = "challenger" if not challenger.walk_forward else "champion"
        return decide(Outcome.inconclusive, f"the {side} has no walk-forward window")
    shadow = challenger.shadow
    if t.min_shadow_predictions > 0 and (shadow is None or shadow.n < t.min_shadow_predictions):
        have = 0 if shadow is None else shadow.n
        return decide(Outcome.inconclusive,
                      f"{have} matured shadow predictions, {t.min_shadow_predictions} needed")

    k = t.last_k_windows
    ours, theirs = challenger.walk_forward[-k:], champion.walk_forward[-k:]
    window = _span(ours + theirs, k)
    tolerances = {"ic": t.tol_ic, "rank_ic": t.tol_rank_ic, "hit_rate": t.tol_hit_rate,
                  "net_pnl": t.tol_net_pnl, "max_drawdown": t.tol_max_drawdown}
    metrics = {m: compare(_mean(ours, m), _mean(theirs, m), tolerances[m]) for m in _AT_LEAST}
    metrics["turnover"] = compare(_mean(ours, "turnover"), _mean(theirs, "turnover"), t.tol_turnover, ratio=True)
    walk_forward = dict(metrics)

    if t.min_shadow_predictions > 0 and shadow is not None:  # None returned above
        theirs_shadow = champion.shadow
        metrics["shadow_rank_ic"] = compare(
            shadow.rank_ic, theirs_shadow.rank_ic if theirs_shadow else None, t.tol_shadow_rank_ic)
        metrics["shadow_hit_rate"] = compare(
            shadow.hit_rate, theirs_shadow.hit_rate if theirs_shadow else None, t.tol_shadow_hit_rate)
        # An absolute bound, not a comparison with the champion.
        ok = shadow.error_rate <= t.max_shadow_error_rate + EPS
        metrics["shadow_error_rate"] = {"challenger": shadow.error_rate, "champion": None,
                                        "tolerance": t.max_shadow_error_rate, "passed": ok,
                                        "status": "passed" if ok else "failed"}

    if all(row["status"] == "not_comparable" for row in walk_forward.values()):
        return decide(Outcome.inconclusive, "no walk-forward metric is comparable on both sides",
                      window, metrics)
    failed = [name for name, row in metrics.items() if row["status"] == "failed"]
    if failed:
        details = ", ".join(_describe(m, metrics[m]) for m in failed)
        return decide(Outcome.reject, f"challenger fails {len(failed)} comparison(s): {details}", window, metrics)
    return decide(Outcome.start_rollout,
                  f"challenger holds up on every comparable metric over the last {k} windows",
                  window, metrics, from_stage=0, to_stage=first_stage)


def _describe(name: str, row: dict[str, Any]) -> str:
    against = "limit" if row["champion"] is None else f"champion {row['champion']:.4g}"
    return f"{name} {row['challenger']:.4g} vs {against} (tolerance {row['tolerance']:g})"
