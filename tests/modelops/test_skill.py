"""The skill verdict on hand-built walk-forward tables: each criterion can fail it alone, the
flag is the traded horizon's, and a version without a recorded verdict has no skill."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from omniwatch.ml.metrics import POOLED
from omniwatch.modelops.skill import (
    NOT_ASSESSED,
    SKILL_BY_HORIZON_TAG,
    SKILL_REASON_TAG,
    SKILL_TAG,
    SkillStatus,
    assess_skill,
    skill_of,
    skill_tags,
)
from omniwatch.modelops.thresholds import SkillThresholds

T = SkillThresholds()  # traded horizon 24h, null z >= 2


def table(sized: float = 1.0, long: float = 0.6, short: float = -0.6, null_z: float = 3.0, horizons=(1, 24),
          with_sized: bool = True, **per_horizon) -> pd.DataFrame:
    """A summarize()-shaped table: pooled rows (and one per-symbol row that must be ignored)."""
    rows = []
    for h in horizons:
        values = {"sized": sized, "long": long, "short": short, "null_z": null_z} | per_horizon.get(f"h{h}", {})
        rows += [
            {"horizon": h, "strategy": "model", "symbol": POOLED, "sharpe": -5.0, "hit_rate": 0.51,
             "rank_ic_mean": 0.05, "rank_ic_null_z": values["null_z"], "turnover_annual": 3700.0},
            {"horizon": h, "strategy": "always_long", "symbol": POOLED, "sharpe": values["long"], "hit_rate": 0.52},
            {"horizon": h, "strategy": "always_short", "symbol": POOLED, "sharpe": values["short"], "hit_rate": 0.48},
            {"horizon": h, "strategy": "always_long", "symbol": "BTC", "sharpe": 99.0, "hit_rate": 0.9},
        ]
        if with_sized:
            rows.append({"horizon": h, "strategy": "model_sized", "symbol": POOLED, "sharpe": values["sized"],
                         "hit_rate": 0.53, "turnover_annual": 120.0})
    return pd.DataFrame(rows)


def test_beating_both_the_better_constant_sign_and_the_null_is_demonstrated_skill():
    record = assess_skill(table(), T)
    assert record.status == SkillStatus.DEMONSTRATED and record.traded_horizon == "24h"
    at = record.at("24h")
    assert at.strategy == "model_sized" and at.sharpe == 1.0 and at.turnover_annual == 120.0
    # The per-symbol always_long row (Sharpe 99) is not the pooled baseline.
    assert (at.best_constant, at.best_constant_sharpe) == ("always_long", 0.6)
    assert at.beats_constant_sign and at.beats_null and at.null_z == 3.0


@pytest.mark.parametrize(("change", "failed"), [
    ({"sized": 0.6}, "constant"),            # equal to always long is not above it
    ({"sized": -0.3, "long": -0.5, "short": -0.2}, "constant"),  # the better constant sign is short here
    ({"null_z": 1.99}, "null"),
    ({"null_z": math.nan}, "null"),           # a null that could not be computed is not beaten
])
def test_each_criterion_fails_the_verdict_alone(change, failed):
    at = assess_skill(table(**change), T).at("24h")
    assert at.status == SkillStatus.NO_DEMONSTRATED_SKILL
    assert at.beats_constant_sign is (failed != "constant") and at.beats_null is (failed != "null")
    assert ("not above" in at.reason) is (failed == "constant") and ("below" in at.reason) is (failed == "null")


def test_the_flag_is_the_traded_horizon_s_verdict_and_each_horizon_keeps_its_own():
    mixed = table(h1={"sized": 2.0}, h24={"sized": 0.1})
    record = assess_skill(mixed, T)
    assert record.at("1h").demonstrated and not record.at("24h").demonstrated
    assert record.status == SkillStatus.NO_DEMONSTRATED_SKILL and record.reason.startswith("24h:")
    hourly = assess_skill(mixed, SkillThresholds(traded_horizon="1h"))
    assert hourly.status == SkillStatus.DEMONSTRATED
    assert not record.at("4h").demonstrated and "not in the walk-forward" in record.at("4h").reason


def test_without_a_sized_row_the_hourly_sign_rule_is_judged():
    at = assess_skill(table(with_sized=False), T).at("24h")
    assert at.strategy == "model" and at.sharpe == -5.0 and not at.demonstrated


def test_a_stored_verdict_round_trips_and_a_missing_one_is_no_skill():
    record = assess_skill(table(), T)
    metrics = {"wf_sharpe_24h": 1.0, "skill": record.model_dump(mode="json")}
    assert skill_of(metrics) == record
    assert skill_tags(metrics) == {SKILL_TAG: "demonstrated", SKILL_REASON_TAG: record.reason,
                                   SKILL_BY_HORIZON_TAG: '{"1h": "demonstrated", "24h": "demonstrated"}'}
    for stored in (None, {}, {"wf_sharpe_24h": 1.0}):
        missing = skill_of(stored)
        assert missing.status == SkillStatus.NO_DEMONSTRATED_SKILL and missing.reason == NOT_ASSESSED
        assert not missing.at("24h").demonstrated and NOT_ASSESSED in missing.at("24h").reason
        assert skill_tags(stored) == {}
