"""Serving during a rollout: the stage is the candidate's share of the forecast and positions.

A request-hash split cannot express a 10 % stage here: Omniwatch trades three symbols once an
hour, so a split by request or symbol gives the candidate 0 %, 33 % or 67 % of the book and
makes every window's comparison depend on which symbols it happened to get. Blending instead
gives the candidate exactly ``stage`` % of every position, every hour.
"""

from __future__ import annotations


def _share(stage: int) -> float:
    if not 0 <= stage <= 100:
        raise ValueError(f"stage must be within 0..100, got {stage}")
    return stage / 100


def blend(champion_forecast: float, candidate_forecast: float | None, stage: int) -> float:
    """``(1 - s) * champion + s * candidate`` with ``s = stage / 100``; the champion alone without a candidate."""
    s = _share(stage)
    if candidate_forecast is None or s == 0:
        return champion_forecast
    return (1 - s) * champion_forecast + s * candidate_forecast


def blend_positions(champion_pos: float, candidate_pos: float | None, stage: int) -> float:
    """The same blend for positions: the candidate holds ``stage`` % of the book."""
    return blend(champion_pos, candidate_pos, stage)
