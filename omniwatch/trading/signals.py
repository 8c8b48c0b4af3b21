"""Signals from forecasts: a direction only beyond a threshold (basis points of log return)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SignalDecision:
    direction: int      # -1, 0, +1
    strength: float     # 0..1: how far beyond the threshold, 1 - threshold / |prediction|
    threshold_bps: float


def decide_signal(prediction_bps: float, threshold_bps: float) -> SignalDecision:
    """A direction only when ``|prediction| > threshold``; a non-finite prediction is flat."""
    if not math.isfinite(prediction_bps) or abs(prediction_bps) <= threshold_bps:
        return SignalDecision(0, 0.0, threshold_bps)
    return SignalDecision(1 if prediction_bps > 0 else -1, 1.0 - threshold_bps / abs(prediction_bps), threshold_bps)
