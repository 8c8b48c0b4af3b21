"""Typed decision records: what every rule returns and what the audit log stores.

A record carries the decision, the reason in words, the window it looked at, the thresholds it
applied and the metric values behind it, so a reader of ``model_promotions`` (or the MLflow
version tags) can re-derive the decision without re-running anything.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Action(StrEnum):
    drift = "drift"
    gate = "gate"
    rollout = "rollout"
    rollback = "rollback"
    manual = "manual"


class Outcome(StrEnum):
    # drift
    drift = "drift"
    no_drift = "no_drift"
    # gate
    start_rollout = "start_rollout"
    reject = "reject"
    # rollout: advance to the next stage; promote = the advance to 100 that makes it champion;
    # hold = the window failed, the stage stays (and the failure counts towards rollback)
    advance = "advance"
    promote = "promote"
    hold = "hold"
    # rollback
    rollback = "rollback"
    no_action = "no_action"
    # any rule
    inconclusive = "inconclusive"
    skip = "skip"


class Window(BaseModel):
    """The time span a decision looked at (``[start, end)``, UTC)."""

    model_config = ConfigDict(frozen=True)

    start: datetime | None = None
    end: datetime | None = None
    label: str | None = None


class Decision(BaseModel):
    """One decision of one rule about one model version."""

    model_config = ConfigDict(frozen=True)

    action: Action
    outcome: Outcome
    reason: str
    model_name: str
    version: str | None = None            # the version decided about (challenger, candidate, ...)
    champion_version: str | None = None   # the version it was compared with
    from_stage: int | None = None
    to_stage: int | None = None
    window: Window = Field(default_factory=Window)
    thresholds: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    window_passed: bool | None = None     # rollout/monitoring windows: pass, fail, or None (inconclusive)

    def summary(self) -> str:
        return f"{self.action.value}:{self.outcome.value} {self.model_name} v{self.version}: {self.reason}"
