"""The staged rollout: one window of matured shadow predictions, candidate against champion.

A passed window moves the candidate to the next stage (the advance to the last stage, 100 %,
promotes it); a failed window holds the stage and counts towards rollback; a window with too
few matured predictions decides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omniwatch.modelops.evidence import WindowMetrics, finite
from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.modelops.thresholds import RolloutThresholds

# Float rounding must not fail a value that sits exactly on a tolerance boundary.
EPS = 1e-12


def next_stage(current: int, stages: Sequence[int]) -> int | None:
    """The first stage above ``current`` (0 -> 10 -> 30 -> 100), None past the last."""
    return next((s for s in sorted(stages) if s > current), None)


def _side(w: WindowMetrics | None) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"n": w.n, "n_errors": w.n_errors, "error_rate": w.error_rate, "rank_ic": w.rank_ic,
            "hit_rate": w.hit_rate, "ic": w.ic, "net_pnl": w.net_pnl}


def judge_window(
    candidate: WindowMetrics, champion: WindowMetrics | None, thresholds: RolloutThresholds
) -> tuple[bool | None, str, dict[str, Any]]:
    """(passed, reason, metrics); passed is None when the window is inconclusive."""
    t = thresholds
    checks: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {"candidate": _side(candidate), "champion": _side(champion), "checks": checks}
    matured = candidate.n + candidate.n_errors
    if matured < t.min_matured:
        return None, f"{matured} matured candidate predictions, {t.min_matured} needed", metrics

    failures: list[str] = []
    ok = candidate.error_rate <= t.max_error_rate + EPS
    checks["error_rate"] = {"value": candidate.error_rate, "limit": t.max_error_rate, "passed": ok}
    if not ok:
        failures.append(f"error rate {candidate.error_rate:.1%} > {t.max_error_rate:.1%}")
    for metric, tol in (("rank_ic", t.tol_rank_ic), ("hit_rate", t.tol_hit_rate)):
        ours = getattr(candidate, metric)
        theirs = getattr(champion, metric) if champion is not None else None
        if not (finite(ours) and finite(theirs)):
            checks[metric] = {"candidate": ours, "champion": theirs, "tolerance": tol, "passed": None}
            continue
        ok = ours >= theirs - tol - EPS
        checks[metric] = {"candidate": ours, "champion": theirs, "tolerance": tol, "passed": ok}
        if not ok:
            failures.append(f"{metric} {ours:.4g} < champion {theirs:.4g} - {tol:g}")
    if failures:
        return False, "; ".join(failures), metrics
    if not any(c.get("passed") for name, c in checks.items() if name != "error_rate"):
        # Nothing to compare with (no champion predictions on these hours, or no computable
        # metric): a window that only scored without errors proves nothing, so it holds.
        return None, "no comparable Rank IC or hit rate against the champion on these hours", metrics
    return True, f"{candidate.n} matured predictions within every tolerance", metrics


def evaluate_rollout(
    candidate_version: str | None,
    champion_version: str | None,
    current_stage: int,
    candidate: WindowMetrics | None,
    champion: WindowMetrics | None,
    thresholds: RolloutThresholds,
    *,
    model_name: str,
) -> Decision:
    """advance / promote / hold / inconclusive / skip for the candidate at ``current_stage``."""
    t = thresholds
    last = max(t.stages)
    window = Window(start=candidate.start, end=candidate.end, label=candidate.label) if candidate else Window()

    def decide(outcome: Outcome, reason: str, *, to_stage: int | None = current_stage,
               passed: bool | None = None, metrics: dict[str, Any] | None = None) -> Decision:
        return Decision(action=Action.rollout, outcome=outcome, reason=reason, model_name=model_name,
                        version=candidate_version, champion_version=champion_version, from_stage=current_stage,
                        to_stage=to_stage, window=window, thresholds=t.model_dump(), metrics=metrics or {},
                        window_passed=passed)

    if candidate_version is None:
        return decide(Outcome.skip, "no candidate in rollout", to_stage=None)
    if current_stage >= last:
        return decide(Outcome.skip, f"already at {last} %: the candidate is champion; "
                                    "monitoring continues under rollback")
    if candidate is None:
        return decide(Outcome.inconclusive, f"no matured window for the candidate; stage holds at {current_stage} %")

    passed, reason, metrics = judge_window(candidate, champion, t)
    if passed is None:
        return decide(Outcome.inconclusive, f"{reason}; stage holds at {current_stage} %", metrics=metrics)
    if not passed:
        return decide(Outcome.hold, f"window failed: {reason}; stage holds at {current_stage} %",
                      passed=False, metrics=metrics)
    target = next_stage(current_stage, t.stages)
    outcome = Outcome.promote if target == last else Outcome.advance
    return decide(outcome, f"window passed ({reason}): {current_stage} % -> {target} %",
                  to_stage=target, passed=True, metrics=metrics)
