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
from omniwatch.research.stats import constant_hit_rate, deflated_sharpe, expected_max_sharpe, meets_goal, t_stat
from omniwatch.research.walkforward import (
    SHRINK_PRIOR,
    SHRINK_REFERENCE_IC,
    Variant,
    regimes,
    reliability_multipliers,
    research_walk_forward,
    reversal_1h,
    shrink_by_reliability,
)
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
    frame["vol_24h"] = 0.01  # 1 % an hour: the sizing's volatility
    config = TrainingConfig(kfold_splits=2, wf_test_windows=2, min_train_days=45, null_shifts=3,
                            lightgbm=LightGBMConfig(max_rounds=30, seed=3))
    variants = [Variant("with_signal", tuple(FEATURES)),
                Variant("without_signal", tuple(f for f in FEATURES if f != FEATURES[1])),
                Variant("shrunk", tuple(FEATURES), shrink=True),
                Variant("reversal_1h", ("ret_1h",), rule=reversal_1h)]
    mlflow = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))
    trials = MlflowTrials(mlflow, study="test")
    report = research_walk_forward(frame, variants, config, traded_horizon=24, record=trials.record)

    summary = report.summary.set_index(["variant", "horizon"])
    assert summary.loc[("with_signal", 24), "rank_ic_mean"] > 0.5 > summary.loc[("without_signal", 24), "rank_ic_mean"]
    assert summary.loc[("with_signal", 24), "windows"] == 2 and report.trials == 4
    assert set(report.windows["regime"]) == {"up"} and len(report.windows) == 4 * 3 * 2
    assert report.best["trials"] == 4 and report.best["strategy"] == "sized"
    assert report.best["variant"] in ("with_signal", "shrunk") and report.best["sign_rule_variant"] == "with_signal"
    # the sized strategy's figures, the better constant sign's hit rate and the goal, on every fitted row
    sized = ["sized_sharpe", "sized_turnover_annual", "constant_hit_rate"]
    fitted = report.windows[report.windows["variant"] != "shrunk"]
    assert np.isfinite(fitted[sized].to_numpy(float)).all()
    assert np.isfinite(report.summary[[*sized, "sharpe", "turnover_annual"]].to_numpy(float)).all()
    assert report.summary["meets_goal"].dtype == bool
    ours = summary.loc[("with_signal", 24)]
    assert ours["sized_turnover_annual"] < ours["turnover_annual"]  # held for 24 h, not turned every hour
    # shrinkage: flat in the first window (the prior), the fitted forecasts in the second (strong signal)
    shrunk = report.windows[report.windows["variant"] == "shrunk"].sort_values("window_start")
    first, second = shrunk[shrunk["horizon"] == 24].iloc[0], shrunk[shrunk["horizon"] == 24].iloc[1]
    assert first["sized_turnover_annual"] == 0.0 and np.isnan(first["rank_ic"])
    plain = report.windows[(report.windows["variant"] == "with_signal") & (report.windows["horizon"] == 24)]
    assert second["rank_ic"] == plain.sort_values("window_start").iloc[1]["rank_ic"]
    assert np.isfinite(report.best["deflated_sharpe"]) and np.isfinite(report.best["sign_rule_deflated_sharpe"])

    run_id = trials.report(report)
    client = mlflow.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`omniwatch.trial` = 'variant'")
    assert sorted(r.data.params["variant"] for r in runs) == ["reversal_1h", "shrunk", "with_signal", "without_signal"]
    assert {r.data.tags["config_hash"] for r in runs} == {v.config_hash(config) for v in variants}
    assert len({v.config_hash(config) for v in variants}) == 4
    by_name = {r.data.params["variant"]: r.data.metrics for r in runs}
    assert by_name["with_signal"]["sized_sharpe_24h"] == pytest.approx(summary.loc[("with_signal", 24), "sized_sharpe"])
    assert {"sized_turnover_annual_24h", "constant_hit_rate_1h", "meets_goal_24h"} <= set(by_name["shrunk"])
    assert client.get_run(run_id).data.metrics["trials_in_experiment"] == 4


def long_frame(seed: int = 0, months: int = 4) -> pd.DataFrame:
    """Walk-forward predictions (long) of three symbols at 1 h and 24 h over ``months`` calendar
    months, forecasts weakly related to the outcome."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", "2024-01-01" if months == 0 else f"2024-{months + 1:02d}-01",
                          freq="h", tz="UTC", inclusive="left")
    parts = []
    for h in (1, 24):
        for sym in ("BTC", "ETH", "SOL"):
            realized = rng.standard_normal(len(times)) * 0.01
            parts.append(pd.DataFrame({"as_of_ts": times, "symbol": sym, "horizon": h,
                                       "prediction": 0.03 * realized + rng.standard_normal(len(times)) * 0.01,
                                       "realized": realized}))
    return pd.concat(parts, ignore_index=True)


def test_shrinkage_uses_only_what_was_known_at_each_window_start():
    long = long_frame()
    m = reliability_multipliers(long).set_index(["horizon", "window"])["multiplier"]
    starts = [pd.Timestamp(f"2024-{k:02d}-01", tz="UTC") for k in (1, 2, 3, 4)]
    assert m[(24, starts[0])] == SHRINK_PRIOR == m[(1, starts[0])]
    # the second window's multiplier: the first window's Rank IC over the labels realised by then
    first = long[(long["horizon"] == 24) & (long["as_of_ts"] + pd.Timedelta(hours=24) <= starts[1])]
    expected = np.clip(first["prediction"].rank().corr(first["realized"].rank()) / SHRINK_REFERENCE_IC, 0, 1)
    assert 0 < m[(24, starts[1])] < 1 and m[(24, starts[1])] == pytest.approx(expected)
    # changing a later window's outcomes leaves every earlier multiplier as it was ...
    later = long.copy()
    in_third = later["as_of_ts"] >= starts[2]
    later.loc[in_third, "realized"] = -later.loc[in_third, "realized"]
    m_later = reliability_multipliers(later).set_index(["horizon", "window"])["multiplier"]
    assert m_later[m_later.index.get_level_values("window") <= starts[2]].equals(
        m[m.index.get_level_values("window") <= starts[2]])
    assert m_later[(24, starts[3])] != m[(24, starts[3])]  # ... and the one after it sees the change
    # the second window's last 24 h of 24 h labels are not known at the third window's start
    tail = long.copy()
    late = (tail["horizon"] == 24) & tail["as_of_ts"].between(starts[2] - pd.Timedelta(hours=23), starts[2],
                                                              inclusive="left")
    tail.loc[late, "realized"] = -tail.loc[late, "realized"] * 50
    m_tail = reliability_multipliers(tail).set_index(["horizon", "window"])["multiplier"]
    assert m_tail[(24, starts[2])] == m[(24, starts[2])] and m_tail[(24, starts[3])] != m[(24, starts[3])]
    shrunk = shrink_by_reliability(long)
    row = (long["horizon"] == 24) & (long["as_of_ts"] >= starts[1]) & (long["as_of_ts"] < starts[2])
    assert np.allclose(shrunk.loc[row, "prediction"], long.loc[row, "prediction"] * m[(24, starts[1])])
    assert (shrunk.loc[long["as_of_ts"] < starts[1], "prediction"] == 0).all()


def test_the_reversal_forecast_is_minus_the_hour_ending_at_as_of_and_the_label_is_forward():
    from omniwatch.features.liquid import compute_features
    from omniwatch.research.walkforward import _walk_forward_long

    t = pd.date_range("2024-01-01", periods=80, freq="h", tz="UTC")  # bars by their open time
    close = 100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.01, len(t))))
    bars = pd.DataFrame({"symbol": "BTC", "event_time": t, "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1.0})
    features = compute_features(bars, pd.DataFrame(columns=["symbol", "event_time", "funding_rate"]),
                                pd.DataFrame(columns=["symbol", "event_time", "metric", "value"]), ["BTC"])
    row = features[features["as_of_ts"] == t[10] + pd.Timedelta(hours=1)].iloc[0]  # bar 10 closes then
    assert row["ret_1h"] == pytest.approx(np.log(close[10] / close[9]))
    assert row["fwd_ret_24h"] == pytest.approx(np.log(close[34] / close[10]))
    assert np.array_equal(reversal_1h(features), -features["ret_1h"].to_numpy() * 1e4, equal_nan=True)

    frame = synthetic_frame()
    config = TrainingConfig(kfold_splits=2, wf_test_windows=2, min_train_days=45, null_shifts=0)
    long = _walk_forward_long(frame, Variant("reversal_1h", ("ret_1h",), rule=reversal_1h), config, {})
    merged = long.merge(frame[["as_of_ts", "symbol", "ret_1h"]], on=["as_of_ts", "symbol"])
    assert len(merged) == len(long) > 0 and set(long["horizon"]) == {1, 4, 24}
    assert np.allclose(merged["prediction"], -merged["ret_1h"], rtol=1e-12, atol=0)


def goal_row(**changes) -> dict:
    return {"rank_ic_mean": 0.04, "rank_ic_t": 3.5, "hit_rate": 0.53, "constant_hit_rate": 0.51,
            "sized_sharpe": 0.8, "sized_turnover_annual": 120.0} | changes


def test_the_goal_needs_every_criterion():
    assert meets_goal(goal_row()) and meets_goal(goal_row(rank_ic_mean=0.03, rank_ic_t=3.0, sized_turnover_annual=150))
    for failing in ({"rank_ic_mean": 0.029}, {"rank_ic_t": 2.9}, {"hit_rate": 0.51}, {"sized_sharpe": 0.5},
                    {"sized_turnover_annual": 151.0}, {"rank_ic_t": np.nan}, {"sized_sharpe": np.nan}):
        assert not meets_goal(goal_row(**failing)), failing
    assert constant_hit_rate([0.1, -0.2, 0.3, 0.0, np.nan]) == 0.5  # 2 rises of 4 (a zero misses both)
    assert constant_hit_rate([-1.0, -2.0, 3.0]) == pytest.approx(2 / 3)


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
