from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from omniwatch.modelops.drift import (
    DriftReference,
    ExecutionEvidence,
    build_reference,
    evaluate_drift,
    feature_psi,
    ks_pvalue,
    psi,
)
from omniwatch.modelops.records import Action, Outcome, Window
from omniwatch.modelops.thresholds import DriftThresholds

RNG = np.random.default_rng(42)
TRAIN = pd.DataFrame({"a": RNG.normal(0, 1, 5000), "b": RNG.normal(0, 1, 5000),
                      "c": RNG.normal(0, 1, 5000), "flag": RNG.integers(0, 3, 5000).astype(float)})
FORECASTS = pd.Series(RNG.normal(0, 1, 5000))
REF = build_reference(TRAIN, FORECASTS)
T = DriftThresholds()
WINDOW = Window(label="last 168 h")


def current(shift_a: float = 0.0, shift_forecast: float = 0.0, n: int = 500):
    rng = np.random.default_rng(7)
    feats = pd.DataFrame({c: rng.normal(0, 1, n) for c in "abc"}).assign(flag=rng.integers(0, 3, n).astype(float))
    feats["a"] += shift_a
    return feats, pd.Series(rng.normal(shift_forecast, 1, n))


def orders(status: list[str], slippage: list[float]) -> ExecutionEvidence:
    """One fill of 1 unit at 100 per order, with the order's status."""
    ids = [f"o{i}" for i in range(len(status))]
    fills = pd.DataFrame({"order_id": ids, "status": status, "qty": 1.0, "price": 100.0, "slippage_bps": slippage})
    return ExecutionEvidence(fills=fills, orders=ExecutionEvidence.empty().orders)


def run(feats, fc, ords=None, t=T):
    return evaluate_drift(REF, feats, fc, ords, t, model_name="m", version="3", window=WINDOW)


def test_psi_known_values():
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5))


def test_feature_psi_identical_near_zero_and_shifted_normal_large():
    same = np.random.default_rng(1).normal(0, 1, 5000)
    assert feature_psi(REF.features["a"], same) < 0.02
    assert feature_psi(REF.features["a"], same + 1.0) > 0.25


def test_ks_pvalue_separates_shift():
    same = np.random.default_rng(1).normal(0, 1, 500)
    assert ks_pvalue(REF.features["a"], same) > 0.01
    assert ks_pvalue(REF.features["a"], same + 1.0) < 1e-6


def test_reference_bins_sample_and_json_round_trip():
    a = REF.features["a"]
    assert len(a.cuts) == 9 and a.edges[0] == -np.inf and a.edges[-1] == np.inf
    assert sum(a.proportions) == pytest.approx(1.0)
    assert len(a.sample) == 2000 and a.n == 5000
    assert REF.features["flag"].cuts == [0.5, 1.5]  # few distinct values: one bin per value
    again = DriftReference.model_validate_json(REF.model_dump_json())
    assert again == REF and json.loads(REF.model_dump_json())  # plain JSON, no Infinity
    assert build_reference(TRAIN, FORECASTS) == REF  # seeded sample is deterministic


def test_nans_are_ignored_in_reference():
    ref = build_reference(pd.DataFrame({"x": [np.nan, 1.0, 2.0, np.nan, 3.0]}), None, bins=10)
    assert ref.features["x"].n == 3 and ref.features["x"].cuts == [1.5, 2.5]


def test_no_drift_on_same_distribution():
    d = run(*current())
    assert (d.action, d.outcome) == (Action.drift, Outcome.no_drift)
    assert d.metrics["drifting_share"] == 0.0
    assert d.metrics["features"]["a"]["status"] == "stable"
    assert d.thresholds == T.model_dump()


def test_one_of_four_features_drifting_exceeds_share():
    d = run(*current(shift_a=1.5))
    assert d.outcome == Outcome.drift
    assert d.metrics["features"]["a"]["status"] == "drift"
    assert d.metrics["drifting_share"] == pytest.approx(0.25)
    assert "a" in d.reason


def test_share_at_limit_is_not_drift():
    d = run(*current(shift_a=1.5), t=T.model_copy(update={"max_drifting_share": 0.25}))
    assert d.outcome == Outcome.no_drift


def test_forecast_drift_alone_is_drift():
    d = run(*current(shift_forecast=1.5))
    assert d.outcome == Outcome.drift and d.metrics["forecast"]["status"] == "drift"
    assert "forecast" in d.reason


def test_high_psi_without_small_ks_pvalue_is_not_drift():
    d = run(*current(shift_a=1.5), t=T.model_copy(update={"ks_pvalue": 0.0}))
    assert d.metrics["features"]["a"]["psi"] > T.psi
    assert d.outcome == Outcome.no_drift


def test_too_few_values_is_inconclusive():
    feats, fc = current(n=10)
    d = run(feats, fc)
    assert d.outcome == Outcome.inconclusive
    assert d.metrics["features"]["a"]["status"] == "insufficient"
    assert d.metrics["forecast"]["status"] == "insufficient"


def test_few_features_but_forecast_present_is_not_inconclusive():
    feats, _ = current(n=10)
    _, fc = current(n=500)
    assert run(feats, fc).outcome == Outcome.no_drift


def test_slippage_counts_only_filled_orders():
    feats, fc = current()
    t = T.model_copy(update={"min_orders": 2})
    ok = orders(["filled", "partially_filled", "canceled", "rejected"], [6.0, 8.0, 900.0, 900.0])
    d = run(feats, fc, ok, t)
    assert d.metrics["slippage"] == {"mean_bps": 7.0, "unweighted_mean_bps": 7.0, "n": 2, "fills": 2,
                                     "notional": 200.0, "status": "stable"}
    assert d.outcome == Outcome.no_drift

    bad = orders(["filled", "partially_filled", "canceled"], [20.0, 16.0, 0.0])
    d = run(feats, fc, bad, t)
    assert d.metrics["slippage"]["status"] == "drift" and d.outcome == Outcome.drift
    assert "slippage" in d.reason


def test_slippage_at_limit_is_stable_and_without_fills_inconclusive():
    feats, fc = current()
    t = T.model_copy(update={"min_orders": 1})
    d = run(feats, fc, orders(["filled"], [15.0]), t)  # 5 assumed + 10 allowed
    assert d.metrics["slippage"]["status"] == "stable"
    d = run(feats, fc, orders(["canceled", "new"], [500.0, 500.0]), t)
    assert d.metrics["slippage"]["status"] == "inconclusive" and d.metrics["slippage"]["n"] == 0
    d = run(feats, fc, orders(["filled"] * 3, [100.0] * 3))  # default min_orders 20
    assert d.metrics["slippage"]["status"] == "inconclusive" and d.outcome == Outcome.no_drift
