"""Thresholds of the model-operations rules, with their documented defaults.

Plain pydantic models (no Omniwatch imports), so ``settings.py`` can nest them: every field is
settable from the environment as ``OMNIWATCH_<RULE>__<FIELD>``, e.g.
``OMNIWATCH_ROLLOUT__MIN_MATURED=24`` or ``OMNIWATCH_ROLLBACK__FAILED_WINDOWS=2``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Horizon = Literal["1h", "4h", "24h"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftThresholds(_Frozen):
    """Feature, prediction and execution-slippage drift against the training reference."""

    psi: float = Field(0.25, description="PSI above this on a feature (or the forecast) is drift.")
    ks_pvalue: float = Field(0.001, description="A two-sample KS p-value below this backs the PSI.")
    max_drifting_share: float = Field(
        0.2, description="Drift when more than this share of the features drift.")
    min_samples: int = Field(48, description="Fewer current values per feature is inconclusive.")
    window_hours: int = Field(168, description="Current window compared with the reference.")
    slippage_bps: float = Field(
        10.0, description="Mean realised slippage above the assumed cost by more than this is drift.")
    assumed_slippage_bps: float = Field(5.0, description="The slippage the backtests assume.")
    min_orders: int = Field(20, description="Fewer filled orders leaves slippage inconclusive.")
    cap_reject_rate: float = Field(
        0.1, description="A share of capped orders stopped by max_slippage_bps above this is drift.")
    min_capped_orders: int = Field(
        20, description="Fewer answered orders with a max_slippage_bps leaves the cap rate inconclusive.")


class GateThresholds(_Frozen):
    """A new challenger against the champion: last K walk-forward windows and a shadow window."""

    horizon: Horizon = Field("24h", description="The traded horizon the gate compares at.")
    require_skill: bool = Field(
        True, description="Reject a challenger without demonstrated skill at the gate's horizon "
                          "(omniwatch.modelops.skill: beats the better constant sign and the null).")
    last_k_windows: int = Field(3, description="Walk-forward windows compared (the last K).")
    tol_ic: float = Field(0.02, description="Challenger IC may trail the champion's by this much.")
    tol_rank_ic: float = Field(0.02, description="Same for Rank IC.")
    tol_hit_rate: float = Field(0.01, description="Same for hit rate.")
    tol_net_pnl: float = Field(0.02, description="Same for net log return after cost (per window).")
    tol_max_drawdown: float = Field(0.02, description="Max drawdown may be deeper by this much.")
    tol_turnover: float = Field(0.25, description="Turnover may exceed the champion's by this ratio.")
    min_shadow_predictions: int = Field(
        72, description="Matured shadow predictions needed; 0 decides on walk-forward alone.")
    tol_shadow_rank_ic: float = Field(0.05, description="Shadow Rank IC may trail by this much.")
    tol_shadow_hit_rate: float = Field(0.03, description="Shadow hit rate may trail by this much.")
    max_shadow_error_rate: float = Field(0.02, description="Share of failed shadow scorings allowed.")


class SkillThresholds(_Frozen):
    """What a version must show on its walk-forward to count as skilful (judged at registration)."""

    traded_horizon: Horizon = Field("24h", description="The horizon whose verdict is the version's flag.")
    min_null_z: float = Field(
        2.0, description="The pooled Rank IC's z against the circular-shift null must be at least this.")


class RolloutThresholds(_Frozen):
    """One rollout window of matured shadow predictions: candidate against champion."""

    stages: tuple[int, ...] = Field((10, 30, 100), description="The candidate's share of positions.")
    horizon: Horizon = Field("24h", description="Horizon whose matured predictions judge a window.")
    window_hours: int = Field(24, description="Length of one evaluation window.")
    min_matured: int = Field(48, description="Fewer matured candidate predictions is inconclusive.")
    tol_rank_ic: float = Field(0.05, description="Candidate Rank IC may trail the champion's by this.")
    tol_hit_rate: float = Field(0.03, description="Candidate hit rate may trail the champion's by this.")
    max_error_rate: float = Field(0.02, description="Share of failed candidate scorings allowed.")


class RollbackThresholds(_Frozen):
    """N consecutive failed windows send the aliases back to ``previous``."""

    failed_windows: int = Field(3, description="N: consecutive failed windows that trigger rollback.")
    monitor_hours_after_promotion: int = Field(
        168, description="How long a promoted champion stays watched against ``previous``.")
