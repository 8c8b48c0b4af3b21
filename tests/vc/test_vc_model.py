"""vc model: metrics on hand-computed cases, signal vs shuffled-label null, the real data end to end."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from omniwatch.vc.features import FEATURES, build_vc_frame, load_formd
from omniwatch.vc.model import (
    VCConfig,
    brier,
    calibration_table,
    classification_metrics,
    fit_vc_model,
    pr_auc,
    precision_at_k,
    roc_auc,
)


def test_roc_auc_by_hand() -> None:
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0          # perfect ranking
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0          # inverted
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5          # all tied
    assert roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == 0.75        # 3 of 4 positive-negative pairs ordered
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))           # one class only: undefined, not 0.5


def test_pr_auc_by_hand() -> None:
    # Thresholds top-1: P=1 R=1/2; top-2: P=1/2 R=1/2; top-3: P=2/3 R=1 -> AP = 1/2*1 + 1/2*2/3.
    assert pr_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 1 / 3)
    assert pr_auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    # Tied scores are one threshold: both at once, P = 1/2.
    assert pr_auc([1, 0], [0.5, 0.5]) == 0.5


def test_precision_at_k_and_brier_by_hand() -> None:
    y, s = [1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1]
    assert precision_at_k(y, s, 1) == 1.0
    assert precision_at_k(y, s, 2) == 0.5
    assert precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 100) == 0.4                  # k beyond n: all rows
    assert brier([0, 1], [0.2, 0.6]) == pytest.approx(0.1)   # (0.04 + 0.16) / 2
    m = classification_metrics([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], train_rate=0.5)
    assert m["base_rate"] == 0.25 and m["brier_base_rate"] == pytest.approx(0.1875)
    assert m["brier_train_rate"] == pytest.approx(0.25) and m["roc_auc"] == 1.0


def test_calibration_table_has_equal_count_deciles() -> None:
    p = np.linspace(0, 1, 1000)
    y = (np.arange(1000) % 2).astype(float)
    table = calibration_table(y, p)
    assert table["n"].tolist() == [100] * 10
    assert table["mean_predicted"].is_monotonic_increasing
    assert table["observed_rate"].tolist() == [0.5] * 10


def test_config_is_frozen_and_hashed() -> None:
    cfg = VCConfig()
    with pytest.raises(ValidationError):
        cfg.cut = "2020-01-01"
    assert VCConfig().config_hash() == cfg.config_hash()
    assert VCConfig(cut="2020-01-01").config_hash() != cfg.config_hash()
    assert VCConfig.model_validate_json(cfg.to_json()) == cfg
    assert cfg.params()["num_threads"] == 1


def synthetic(seed: int = 0, shuffle: bool = False) -> pd.DataFrame:
    """300 entities x 84 months (2013-2019): the label depends on days_since_last_raise only."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2013-01-01", "2019-12-01", freq="MS", tz="UTC")
    n_ent = 300
    frame = pd.DataFrame({"entity_id": np.repeat([f"cik:{i:010d}" for i in range(n_ent)], len(months)),
                          "as_of": np.tile(months, n_ent)})
    for col in FEATURES:
        frame[col] = rng.normal(size=len(frame))
    frame["n_raises_total"] = rng.integers(0, 5, len(frame))
    frame["days_since_last_raise"] = rng.exponential(300, len(frame))
    p = 1 / (1 + np.exp((frame["days_since_last_raise"] - 150) / 60))
    label = (rng.random(len(frame)) < p).astype(float)
    frame["label"] = rng.permutation(label) if shuffle else label
    return frame


FAST = VCConfig(cut="2018-01-01", walk_forward_years=2, min_train_years=2, min_data_in_leaf=50,
                max_rounds=200)


def test_a_true_signal_is_found() -> None:
    result = fit_vc_model(synthetic(), FAST)
    assert result.metrics["roc_auc"] > 0.8
    assert result.metrics["brier"] < result.metrics["brier_base_rate"]
    assert len(result.walk_forward) == 2 and (result.walk_forward["roc_auc"] > 0.8).all()
    valid = result.predictions
    assert valid["as_of"].min() == pd.Timestamp("2018-01-01", tz="UTC")
    assert result.metrics["n_train"] == 300 * 55  # 2013-01 .. 2017-07: as_of < cut - 180 d = 2017-07-05
    assert list(result.calibration.columns[:4]) == ["bin", "n", "mean_predicted", "observed_rate"]


def test_a_shuffled_label_gives_chance() -> None:
    result = fit_vc_model(synthetic(shuffle=True), FAST)
    assert abs(result.metrics["roc_auc"] - 0.5) < 0.05
    assert result.metrics["brier_skill"] < 0.01


def test_validation_needs_both_classes() -> None:
    frame = synthetic()
    frame.loc[frame["as_of"] >= pd.Timestamp("2018-01-01", tz="UTC"), "label"] = 0.0
    with pytest.raises(ValueError, match="both classes"):
        fit_vc_model(frame, FAST)


def test_real_data_end_to_end() -> None:
    start = time.perf_counter()
    filings, companies = load_formd()
    frame = build_vc_frame(filings, companies)
    result = fit_vc_model(frame, VCConfig())
    seconds = time.perf_counter() - start
    m = result.metrics
    print(f"\nreal Form D data, {seconds:.1f} s (features + fit + {len(result.walk_forward)} walk-forward refits)")
    for key in ("n_train", "n", "n_valid_entities", "base_rate_train", "base_rate", "roc_auc", "recency_roc_auc",
                "pr_auc", "recency_pr_auc", "precision_at_1pct", "precision_at_5pct", "precision_at_100",
                "brier", "brier_base_rate", "brier_train_rate", "brier_skill", "best_iteration",
                "wf_roc_auc_mean", "wf_roc_auc_std", "wf_recency_roc_auc_mean"):
        print(f"  {key:24s} {m[key]:.4f}")
    print(result.calibration.round(4).to_string(index=False))
    print(result.walk_forward[["year", "n", "base_rate", "roc_auc", "recency_roc_auc", "pr_auc",
                               "brier", "brier_base_rate"]].round(4).to_string(index=False))
    assert all(np.isfinite(v) for v in m.values())
    assert result.predictions["as_of"].min() >= pd.Timestamp(result.config.cut, tz="UTC")
    assert m["roc_auc"] > 0.6 and m["pr_auc"] > m["base_rate"]
