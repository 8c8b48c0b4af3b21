from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omniwatch.modelops.evidence import ModelEvidence, WindowMetrics
from omniwatch.modelops.gate import evaluate_gate
from omniwatch.modelops.records import Action, Outcome
from omniwatch.modelops.skill import HorizonSkill, SkillStatus
from omniwatch.modelops.thresholds import GateThresholds

T = GateThresholds()  # K=3, tol_ic 0.02, tol_hit_rate 0.01, tol_turnover 0.25, shadow >= 72


def wf(i: int, **values) -> WindowMetrics:
    base = {"ic": 0.05, "rank_ic": 0.05, "hit_rate": 0.52, "net_pnl": 0.01, "max_drawdown": -0.05,
            "turnover": 0.4}
    return WindowMetrics(label=f"fold{i}", start=datetime(2025, i, 1, tzinfo=UTC),
                         end=datetime(2025, i + 1, 1, tzinfo=UTC), n=500, **{**base, **values})


def shadow(**values) -> WindowMetrics:
    return WindowMetrics(label="shadow", n=values.pop("n", 100), **{"rank_ic": 0.04, "hit_rate": 0.51, **values})


SKILLED = HorizonSkill(horizon="24h", status=SkillStatus.DEMONSTRATED, reason="24h: beats both",
                       beats_constant_sign=True, beats_null=True)
UNSKILLED = HorizonSkill(horizon="24h", status=SkillStatus.NO_DEMONSTRATED_SKILL, beats_null=True,
                         reason="24h: net Sharpe -1.94 (model_sized) not above the better constant sign")


def evidence(version: str, folds: list[WindowMetrics] | None = None, shadow_window=None,
             skill: HorizonSkill | None = SKILLED) -> ModelEvidence:
    return ModelEvidence(version=version, walk_forward=[wf(i) for i in range(1, 5)] if folds is None else folds,
                         shadow=shadow() if shadow_window is None else shadow_window, skill=skill)


CHAMPION = evidence("1")


def gate(challenger: ModelEvidence, champion: ModelEvidence | None = CHAMPION, t: GateThresholds = T):
    return evaluate_gate(challenger, champion, t, model_name="tsmixer")


def test_equal_challenger_starts_rollout():
    d = gate(evidence("2"))
    assert (d.action, d.outcome) == (Action.gate, Outcome.start_rollout)
    assert (d.from_stage, d.to_stage, d.champion_version, d.version) == (0, 10, "1", "2")
    assert d.metrics["ic"] == {"challenger": pytest.approx(0.05), "champion": pytest.approx(0.05),
                               "tolerance": 0.02, "passed": True, "status": "passed"}
    # last 3 of 4 folds: February .. May
    assert d.window.start == datetime(2025, 2, 1, tzinfo=UTC)
    assert d.window.end == datetime(2025, 5, 1, tzinfo=UTC)


def test_skip_without_champion_or_same_version():
    assert gate(evidence("2"), None).outcome == Outcome.skip
    d = gate(evidence("1"))
    assert d.outcome == Outcome.skip and "already the champion" in d.reason


def test_inconclusive_without_walk_forward_or_shadow():
    assert gate(evidence("2", folds=[])).outcome == Outcome.inconclusive
    assert gate(evidence("2"), evidence("1", folds=[])).outcome == Outcome.inconclusive
    d = gate(evidence("2", shadow_window=shadow(n=71)))
    assert d.outcome == Outcome.inconclusive and "71" in d.reason and "72" in d.reason


def test_shadow_not_required_when_min_is_zero():
    no_shadow = ModelEvidence(version="2", walk_forward=[wf(i) for i in range(1, 4)], shadow=None, skill=SKILLED)
    d = gate(no_shadow, t=T.model_copy(update={"min_shadow_predictions": 0}))
    assert d.outcome == Outcome.start_rollout and "shadow_rank_ic" not in d.metrics


def test_ic_exactly_at_tolerance_passes_just_beyond_rejects():
    folds = [wf(i, ic=0.03) for i in range(1, 4)]
    assert gate(evidence("2", folds)).outcome == Outcome.start_rollout
    folds = [wf(i, ic=0.0299) for i in range(1, 4)]
    d = gate(evidence("2", folds))
    assert d.outcome == Outcome.reject and d.metrics["ic"]["passed"] is False and "ic" in d.reason


def test_only_last_k_windows_count():
    # a terrible first fold outside the last 3 does not matter
    folds = [wf(1, rank_ic=-0.5)] + [wf(i) for i in range(2, 5)]
    assert gate(evidence("2", folds)).outcome == Outcome.start_rollout


def test_drawdown_boundary():
    assert gate(evidence("2", [wf(i, max_drawdown=-0.07) for i in range(1, 4)])).outcome == Outcome.start_rollout
    assert gate(evidence("2", [wf(i, max_drawdown=-0.0701) for i in range(1, 4)])).outcome == Outcome.reject


def test_turnover_ratio_boundary():
    assert gate(evidence("2", [wf(i, turnover=0.5) for i in range(1, 4)])).outcome == Outcome.start_rollout
    d = gate(evidence("2", [wf(i, turnover=0.501) for i in range(1, 4)]))
    assert d.outcome == Outcome.reject and d.metrics["turnover"]["passed"] is False


def test_shadow_comparisons():
    assert gate(evidence("2", shadow_window=shadow(rank_ic=-0.01))).outcome == Outcome.start_rollout
    d = gate(evidence("2", shadow_window=shadow(rank_ic=-0.02)))
    assert d.outcome == Outcome.reject and d.metrics["shadow_rank_ic"]["passed"] is False
    d = gate(evidence("2", shadow_window=shadow(hit_rate=0.47)))
    assert d.outcome == Outcome.reject and d.metrics["shadow_hit_rate"]["passed"] is False
    d = gate(evidence("2", shadow_window=shadow(n=97, n_errors=3)))  # 3 % > 2 %
    assert d.outcome == Outcome.reject and d.metrics["shadow_error_rate"]["passed"] is False
    assert gate(evidence("2", shadow_window=shadow(n=98, n_errors=2))).outcome == Outcome.start_rollout


def test_missing_metric_is_not_comparable_and_does_not_fail():
    d = gate(evidence("2", [wf(i, ic=None, net_pnl=float("nan")) for i in range(1, 4)]))
    assert d.outcome == Outcome.start_rollout
    assert d.metrics["ic"]["status"] == "not_comparable" and d.metrics["ic"]["passed"] is None
    assert d.metrics["net_pnl"]["status"] == "not_comparable"


def test_all_walk_forward_metrics_missing_is_inconclusive():
    empty = [WindowMetrics(label=f"f{i}", n=0) for i in range(3)]
    d = gate(evidence("2", empty))
    assert d.outcome == Outcome.inconclusive and "comparable" in d.reason


def test_a_challenger_without_demonstrated_skill_is_rejected_before_anything_else():
    # Equal on every metric, but its walk-forward does not beat the better constant sign.
    d = gate(evidence("2", skill=UNSKILLED))
    assert d.outcome == Outcome.reject and d.reason.startswith("no_demonstrated_skill: ")
    assert "not above the better constant sign" in d.reason
    assert d.metrics["skill"]["status"] == "no_demonstrated_skill"
    # Final at once: it does not wait for a shadow window that could not change the verdict.
    assert gate(evidence("2", shadow_window=shadow(n=0), skill=UNSKILLED)).outcome == Outcome.reject
    # No verdict at all (a version registered before skill was judged) is no skill either.
    d = gate(evidence("2", skill=None))
    assert d.outcome == Outcome.reject and "no skill verdict" in d.reason
    # The champion's own standing does not matter: a skilful challenger still goes on.
    assert gate(evidence("2"), evidence("1", skill=UNSKILLED)).outcome == Outcome.start_rollout


def test_require_skill_off_judges_on_the_comparisons_alone():
    lenient = T.model_copy(update={"require_skill": False})
    assert gate(evidence("2", skill=UNSKILLED), t=lenient).outcome == Outcome.start_rollout
    assert gate(evidence("2", skill=None), t=lenient).outcome == Outcome.start_rollout
