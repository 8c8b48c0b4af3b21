from __future__ import annotations

from omniwatch.modelops.evidence import WindowMetrics
from omniwatch.modelops.records import Action, Outcome
from omniwatch.modelops.rollout import evaluate_rollout, judge_window, next_stage
from omniwatch.modelops.thresholds import RolloutThresholds

T = RolloutThresholds()  # min_matured 48, tol_rank_ic 0.05, tol_hit_rate 0.03, max_error_rate 0.02


def window(n: int = 100, n_errors: int = 0, rank_ic: float | None = 0.10, hit_rate: float | None = 0.55):
    return WindowMetrics(label="2025-03-01", n=n, n_errors=n_errors, rank_ic=rank_ic, hit_rate=hit_rate)


CHAMPION = window()


def test_next_stage():
    stages = (10, 30, 100)
    assert [next_stage(s, stages) for s in (0, 10, 30, 100)] == [10, 30, 100, None]


def test_judge_pass_and_boundaries():
    assert judge_window(window(rank_ic=0.05, hit_rate=0.52), CHAMPION, T)[0] is True
    assert judge_window(window(rank_ic=0.0499), CHAMPION, T)[0] is False
    assert judge_window(window(hit_rate=0.5199), CHAMPION, T)[0] is False
    assert judge_window(window(n=98, n_errors=2), CHAMPION, T)[0] is True
    passed, reason, _ = judge_window(window(n=97, n_errors=3), CHAMPION, T)
    assert passed is False and "error rate" in reason


def test_judge_inconclusive_below_min_matured():
    passed, reason, _ = judge_window(window(n=47), CHAMPION, T)
    assert passed is None and "47" in reason
    assert judge_window(window(n=48), CHAMPION, T)[0] is True
    # failed scorings count as matured (and then fail the window on the error rate)
    assert judge_window(window(n=40, n_errors=8), CHAMPION, T)[0] is False


def test_judge_without_anything_comparable_is_inconclusive_but_errors_still_fail():
    passed, reason, _ = judge_window(window(rank_ic=-0.9), None, T)
    assert passed is None and "no comparable" in reason
    passed, _, metrics = judge_window(window(rank_ic=-0.9, hit_rate=None), window(rank_ic=None, hit_rate=None), T)
    assert passed is None and metrics["checks"]["rank_ic"]["passed"] is None
    # One comparable metric is enough to judge.
    assert judge_window(window(rank_ic=-0.9), window(rank_ic=None), T)[0] is True
    # Failed scorings fail a window whatever the champion did.
    assert judge_window(window(n=40, n_errors=10), None, T)[0] is False


PASSING = window()


def roll(stage: int, candidate=PASSING, version: str | None = "5"):
    return evaluate_rollout(version, "4", stage, candidate, CHAMPION, T, model_name="tsmixer")


def test_stage_walk_to_promotion_then_skip():
    d = roll(0)
    assert (d.action, d.outcome, d.from_stage, d.to_stage) == (Action.rollout, Outcome.advance, 0, 10)
    assert d.window_passed is True
    d = roll(d.to_stage)
    assert (d.outcome, d.to_stage) == (Outcome.advance, 30)
    d = roll(d.to_stage)
    assert (d.outcome, d.to_stage) == (Outcome.promote, 100)
    d = roll(d.to_stage)
    assert d.outcome == Outcome.skip and "already at 100 %" in d.reason
    assert d.metrics == {}


def test_failed_window_holds():
    d = roll(30, window(rank_ic=0.0))
    assert (d.outcome, d.from_stage, d.to_stage, d.window_passed) == (Outcome.hold, 30, 30, False)
    assert d.metrics["candidate"]["rank_ic"] == 0.0 and d.metrics["champion"]["rank_ic"] == 0.10


def test_inconclusive_and_skip():
    d = roll(10, window(n=10))
    assert (d.outcome, d.from_stage, d.to_stage, d.window_passed) == (Outcome.inconclusive, 10, 10, None)
    assert roll(10, None).outcome == Outcome.inconclusive
    assert roll(10, version=None).outcome == Outcome.skip
