"""Rollback: N consecutive failed windows send the aliases back.

For a candidate in rollout the candidate is withdrawn (the champion never changed); for a
promoted champion under watch the champion alias returns to ``previous``.
"""

from __future__ import annotations

from typing import Any

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.modelops.thresholds import RollbackThresholds

ROLES = ("candidate", "champion")


def _trailing_failures(results: list[bool | None]) -> list[int]:
    """Indexes of the trailing failed windows; inconclusive ones neither count nor break the run."""
    failed = []
    for i in range(len(results) - 1, -1, -1):
        if results[i] is True:
            break
        if results[i] is False:
            failed.append(i)
    return failed[::-1]


def consecutive_failures(results: list[bool | None]) -> int:
    """Failed windows (False) at the end of ``results``, skipping None, stopping at a pass."""
    return len(_trailing_failures(results))


def _label(w: Window) -> str:
    if w.label:
        return w.label
    return w.start.isoformat() if w.start else "?"


def evaluate_rollback(
    version: str | None,
    previous_version: str | None,
    results: list[tuple[Window, bool | None]],
    thresholds: RollbackThresholds,
    *,
    model_name: str,
    role: str,
) -> Decision:
    """``rollback`` after ``failed_windows`` consecutive failures, else ``no_action`` (or ``skip``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    t = thresholds
    indexes = _trailing_failures([passed for _, passed in results])
    failed = [results[i][0] for i in indexes]
    # The run of windows the count looked at: from the first counted failure to the latest window.
    run = [w for w, _ in results[indexes[0]:]] if indexes else [w for w, _ in results[-1:]]
    window = Window(start=min((w.start for w in run if w.start), default=None),
                    end=max((w.end for w in run if w.end), default=None),
                    label=f"{len(run)} latest windows" if run else None)
    metrics: dict[str, Any] = {
        "windows_failed": len(failed), "trigger_rule": f"consecutive_failed_windows>={t.failed_windows}",
        "failed_windows": [_label(w) for w in failed], "previous_version": previous_version, "role": role}

    def decide(outcome: Outcome, reason: str) -> Decision:
        return Decision(action=Action.rollback, outcome=outcome, reason=reason, model_name=model_name,
                        version=version, champion_version=previous_version if role == "champion" else None,
                        window=window, thresholds=t.model_dump(), metrics=metrics)

    if version is None:
        return decide(Outcome.skip, f"no {role} to watch")
    if len(failed) < t.failed_windows:
        return decide(Outcome.no_action,
                      f"{len(failed)} consecutive failed window(s), rollback at {t.failed_windows}")
    names = ", ".join(metrics["failed_windows"])
    if role == "champion" and previous_version is None:
        return decide(Outcome.skip, f"{len(failed)} consecutive failed windows ({names}) "
                                    "but no previous version to return to")
    target = f"champion returns to v{previous_version}" if role == "champion" else \
        "candidate withdrawn, champion unchanged"
    return decide(Outcome.rollback,
                  f"{len(failed)} consecutive failed windows >= {t.failed_windows} ({names}): {target}")
