"""The research walk-forward and the statistics that count its trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import LABEL_BPS, add_masks
from omniwatch.ml.lgbm import LightGBMConfig
from omniwatch.ml.protocol import TrainingConfig
from omniwatch.research.record import EXPERIMENT, MlflowTrials
from omniwatch.research.stats import deflated_sharpe, expected_max_sharpe, t_stat
from omniwatch.research.walkforward import Variant, regimes, research_walk_forward
from omniwatch.resources.mlflow import MLflowResource


def test_t_stat_is_the_mean_over_its_standard_error():
    assert t_stat([1.0, 2.0, 3.0]) == pytest.approx(2.0 / (1.0 / np.sqrt(3)))
    assert np.isnan(t_stat([1.0])) and np.isnan(t_stat([2.0, 2.0, np.nan]))


def test_the_expected_best_of_n_skill_free_sharpes_matches_simulation():
    rng = np.random.default_rng(0)
    for n in (10, 100):
        draws = rng.standard_normal((20_000, n)) * 0.02
        simulated = draws.max(axis=1).mean()
        spread = [0.02 * q for q in np.linspace(-1.7, 1.7, n)]  # any sample whose std is what we pass:
        expected = expected_max_sharpe(list(np.asarray(spread) / np.std(spread, ddof=1) * 0.02))
        assert expected == pytest.approx(simulated, rel=0.05)


def test_the_deflated_sharpe_ratio_falls_as_trials_multiply():
    rng = np.random.default_rng(1)
    returns = rng.normal(0.04, 1.0, 5_000)  # a real but small edge: per-period Sharpe about 0.04
    alone, sr, sr0 = deflated_sharpe(returns, [float(returns.mean() / returns.std(ddof=1))])
    assert sr0 == 0.0 and alone > 0.85
    many = list(rng.normal(0.0, 0.02, 200)) + [sr]
    corrected, _, sr0_many = deflated_sharpe(returns, many)
    assert sr0_many > sr and corrected < 0.5 < alone


def synthetic_frame(days: int = 120, seed: int = 0) -> pd.DataFrame:
    """One symbol, hourly, rising steadily (ret_1h); FEATURES[1] carries most of every label, the
    rest is noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=days * 24, freq="h", tz="UTC")
    frame = pd.DataFrame(rng.standard_normal((len(times), len(FEATURES))), columns=list(FEATURES))
    frame = add_masks(frame.assign(symbol="BTC", as_of_ts=times, data_version="v1", lineage_id="l1"))
    frame["ret_1h"] = 0.001 + 0.002 * rng.standard_normal(len(times))  # +2.4 % a day: every regime "up"
    for i, col in enumerate(LABEL_BPS):
        frame[col] = 40 * frame[FEATURES[1]] * (i + 1) + 10 * rng.standard_normal(len(frame))
    frame["next_hour_return"] = frame[LABEL_BPS[0]] / 1e4
    frame["next_hour_funding"] = 0.0
    return frame


def test_regimes_follow_the_baskets_trailing_month():
    frame = synthetic_frame(days=70)
    starts = [pd.Timestamp("2024-01-15", tz="UTC"), pd.Timestamp("2024-02-15", tz="UTC")]
    assert regimes(frame, starts) == {starts[0]: "unknown", starts[1]: "up"}
    falling = frame.assign(ret_1h=-frame["ret_1h"])
    assert regimes(falling, starts[1:]) == {starts[1]: "down"}


def test_a_variant_with_the_signal_beats_one_without_and_every_trial_is_an_mlflow_run(tmp_path):
    frame = synthetic_frame()
    config = TrainingConfig(kfold_splits=2, wf_test_windows=2, min_train_days=45, null_shifts=3,
                            lightgbm=LightGBMConfig(max_rounds=30, seed=3))
    variants = [Variant("with_signal", tuple(FEATURES)),
                Variant("without_signal", tuple(f for f in FEATURES if f != FEATURES[1]))]
    mlflow = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))
    trials = MlflowTrials(mlflow, study="test")
    report = research_walk_forward(frame, variants, config, traded_horizon=24, record=trials.record)

    summary = report.summary.set_index(["variant", "horizon"])
    assert summary.loc[("with_signal", 24), "rank_ic_mean"] > 0.5 > summary.loc[("without_signal", 24), "rank_ic_mean"]
    assert summary.loc[("with_signal", 24), "windows"] == 2 and report.trials == 2
    assert set(report.windows["regime"]) == {"up"} and len(report.windows) == 2 * 3 * 2
    assert report.best["variant"] == "with_signal" and report.best["trials"] == 2
    run_id = trials.report(report)
    client = mlflow.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`omniwatch.trial` = 'variant'")
    assert sorted(r.data.params["variant"] for r in runs) == ["with_signal", "without_signal"]
    assert {r.data.tags["config_hash"] for r in runs} == {v.config_hash(config) for v in variants}
    assert client.get_run(run_id).data.metrics["trials_in_experiment"] == 2


def test_the_candidate_features_are_point_in_time():
    from omniwatch.research.walkforward import with_funding_carry, with_longer_lookback, with_vol_regime

    frame = synthetic_frame(days=40)
    frame = frame.assign(vol_24h=frame["vol_24h"].abs() + 0.01, vol_168h=frame["vol_168h"].abs() + 0.01)
    lagged = with_longer_lookback(frame.drop(index=30))  # an hour missing: its lag is missing too
    by_time = frame.set_index("as_of_ts")["ret_24h"]
    row = lagged.iloc[100]
    assert row["ret_24h_lag24"] == by_time[row["as_of_ts"] - pd.Timedelta(hours=24)]
    assert lagged["ret_24h_lag24"].iloc[:24].isna().all()
    assert np.isnan(lagged.loc[lagged["as_of_ts"] == frame["as_of_ts"][30] + pd.Timedelta(hours=24),
                               "ret_24h_lag24"]).all()
    regime = with_vol_regime(frame)
    assert regime["vol_ratio_24_168"].equals(frame["vol_24h"] / frame["vol_168h"])
    # the z-score at hour t uses hours <= t only: changing the future leaves it unchanged
    future = frame.copy()
    future.loc[future.index[500:], "vol_168h"] *= 10
    assert with_vol_regime(future)["vol_168h_z30d"].iloc[:500].equals(regime["vol_168h_z30d"].iloc[:500])
    carry = with_funding_carry(frame)
    assert carry["funding_mean_7d"].iloc[200] == pytest.approx(frame["funding_last"].iloc[33:201].mean())
