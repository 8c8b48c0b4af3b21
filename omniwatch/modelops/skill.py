"""Has a model version demonstrated skill? Judged once, at registration, from its walk-forward.

At each horizon the version's out-of-sample walk-forward (the table training logs) must

1. **beat the better constant-sign rule**: the net Sharpe of the strategy that would trade it
   (``model_sized``: the forecasts held as tranches of their horizon, the sizing execution/run
   and the backtest use; the hourly sign rule ``model`` where no sized row exists) above the
   better of always long / always short after the same costs. Sharpe, not net return: the sized
   book is volatility-scaled and fractional while a constant sign holds the whole unit, so only
   the ratio compares them;
2. **beat the circular-shift null**: the pooled Rank IC's z against the forecasts rotated by
   whole days (``omniwatch.ml.metrics.circular_shift_null``) at least ``min_null_z``.

Both, or the version has ``no_demonstrated_skill`` at that horizon. The version's flag is its
status at the traded horizon (``SkillThresholds.traded_horizon``). A version with no recorded
assessment (registered before it existed) has not demonstrated anything: it is flagged too.

The verdict is frozen with the version (``model_registry.metrics["skill"]`` and the MLflow
version tags ``omniwatch.skill`` / ``omniwatch.skill_reason``): the walk-forward it rests on is
fixed at training, and the gate, the risk check and the API read the same record. Changing the
thresholds applies to versions registered afterwards. What reads it:

- the promotion gate (``require_skill``): a challenger without skill at the gate's horizon is
  rejected, whatever the champion;
- the risk check: a live order from a version without skill at the order's horizon is refused
  ``model_not_validated`` (paper trading goes on, for monitoring);
- the API: predictions, signals and the registry views carry the flag.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from omniwatch.modelops.thresholds import SkillThresholds

SKILL_TAG = "omniwatch.skill"
SKILL_REASON_TAG = "omniwatch.skill_reason"
SKILL_BY_HORIZON_TAG = "omniwatch.skill_by_horizon"  # JSON {"1h": status, ...}
NOT_ASSESSED = "no skill assessment recorded for this version"


class SkillStatus(StrEnum):
    DEMONSTRATED = "demonstrated"
    NO_DEMONSTRATED_SKILL = "no_demonstrated_skill"


class HorizonSkill(BaseModel):
    """The verdict at one horizon and the walk-forward figures it rests on (pooled over symbols)."""

    model_config = ConfigDict(frozen=True)

    horizon: str
    status: SkillStatus
    reason: str
    strategy: str | None = None               # the traded strategy: model_sized (or model)
    sharpe: float | None = None               # its annualised net Sharpe
    turnover_annual: float | None = None
    hit_rate: float | None = None
    best_constant: str | None = None          # always_long | always_short
    best_constant_sharpe: float | None = None
    best_constant_hit_rate: float | None = None
    rank_ic: float | None = None
    null_z: float | None = None
    min_null_z: float | None = None
    beats_constant_sign: bool = False
    beats_null: bool = False

    @property
    def demonstrated(self) -> bool:
        return self.status == SkillStatus.DEMONSTRATED


class SkillRecord(BaseModel):
    """A version's verdict per horizon; ``status`` is the one at ``traded_horizon`` (its flag)."""

    model_config = ConfigDict(frozen=True)

    traded_horizon: str
    status: SkillStatus
    reason: str
    by_horizon: dict[str, HorizonSkill]
    thresholds: dict[str, Any] = {}

    def at(self, horizon: str) -> HorizonSkill:
        """The verdict at ``horizon`` ("1h", "4h", "24h"); an unassessed horizon has no skill."""
        found = self.by_horizon.get(horizon)
        if found is not None:
            return found
        return HorizonSkill(horizon=horizon, status=SkillStatus.NO_DEMONSTRATED_SKILL,
                            reason=f"{horizon}: {self.reason if not self.by_horizon else 'not in the walk-forward'}")


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(value: float | None, spec: str = "+.2f") -> str:
    return "n/a" if value is None else format(value, spec)


def assess_horizon(rows: pd.DataFrame, horizon: str, min_null_z: float) -> HorizonSkill:
    """The verdict at one horizon from the pooled rows of the walk-forward table (index: strategy)."""
    traded = "model_sized" if "model_sized" in rows.index else "model"
    if traded not in rows.index or "model" not in rows.index:
        return HorizonSkill(horizon=horizon, status=SkillStatus.NO_DEMONSTRATED_SKILL,
                            reason=f"{horizon}: no model row in the walk-forward", min_null_z=min_null_z)
    model, sized = rows.loc["model"], rows.loc[traded]
    constants: dict[str, float] = {}
    for k in ("always_long", "always_short"):
        value = _num(rows.loc[k, "sharpe"]) if k in rows.index else None
        if value is not None:
            constants[k] = value
    best = max(constants, key=lambda k: constants[k]) if constants else None
    sharpe, best_sharpe = _num(sized.get("sharpe")), constants.get(best) if best else None
    null_z = _num(model.get("rank_ic_null_z"))
    beats_constant = sharpe is not None and best_sharpe is not None and sharpe > best_sharpe
    beats_null = null_z is not None and null_z >= min_null_z
    demonstrated = bool(beats_constant and beats_null)
    reason = (f"{horizon}: net Sharpe {_fmt(sharpe)} ({traded}) {'above' if beats_constant else 'not above'} "
              f"the better constant sign ({best or 'n/a'} {_fmt(best_sharpe)}); Rank IC null z {_fmt(null_z)} "
              f"{'>=' if beats_null else 'below'} {min_null_z:g}")
    return HorizonSkill(
        horizon=horizon, status=SkillStatus.DEMONSTRATED if demonstrated else SkillStatus.NO_DEMONSTRATED_SKILL,
        reason=reason, strategy=traded, sharpe=sharpe, turnover_annual=_num(sized.get("turnover_annual")),
        hit_rate=_num(sized.get("hit_rate")), best_constant=best, best_constant_sharpe=best_sharpe,
        best_constant_hit_rate=_num(rows.loc[best, "hit_rate"]) if best else None,
        rank_ic=_num(model.get("rank_ic_mean")), null_z=null_z, min_null_z=min_null_z,
        beats_constant_sign=bool(beats_constant), beats_null=bool(beats_null))


def assess_skill(table: pd.DataFrame, thresholds: SkillThresholds) -> SkillRecord:
    """The verdict per horizon of a walk-forward table (``omniwatch.ml.metrics.summarize`` with
    sizing and the null) and the flag at the traded horizon."""
    from omniwatch.ml.metrics import POOLED

    pooled = table[table["symbol"] == POOLED]
    by_horizon = {}
    for horizon, rows in pooled.groupby("horizon", sort=True):
        name = f"{int(horizon)}h"
        by_horizon[name] = assess_horizon(rows.drop_duplicates("strategy").set_index("strategy"), name,
                                          thresholds.min_null_z)
    record = SkillRecord(traded_horizon=thresholds.traded_horizon, status=SkillStatus.NO_DEMONSTRATED_SKILL,
                         reason="", by_horizon=by_horizon, thresholds=thresholds.model_dump(mode="json"))
    traded = record.at(thresholds.traded_horizon)
    return record.model_copy(update={"status": traded.status, "reason": traded.reason})


def skill_of(metrics: dict[str, Any] | None) -> SkillRecord:
    """The stored verdict of a version (its ``model_registry.metrics``); without one, no skill."""
    stored = (metrics or {}).get("skill")
    if stored:
        return SkillRecord.model_validate(stored)
    return SkillRecord(traded_horizon="24h", status=SkillStatus.NO_DEMONSTRATED_SKILL, reason=NOT_ASSESSED,
                       by_horizon={})


def skill_tags(metrics: dict[str, Any] | None) -> dict[str, str]:
    """The MLflow version tags of a version's stored verdict (none without one)."""
    stored = (metrics or {}).get("skill")
    if not stored:
        return {}
    record = SkillRecord.model_validate(stored)
    by_horizon = {h: v.status.value for h, v in sorted(record.by_horizon.items())}
    return {SKILL_TAG: record.status.value, SKILL_REASON_TAG: record.reason[:5000],
            SKILL_BY_HORIZON_TAG: json.dumps(by_horizon, sort_keys=True)}


__all__ = ["NOT_ASSESSED", "SKILL_BY_HORIZON_TAG", "SKILL_REASON_TAG", "SKILL_TAG", "HorizonSkill", "SkillRecord",
           "SkillStatus", "assess_horizon", "assess_skill", "skill_of", "skill_tags"]
