"""Point-in-time liquid features on a slice of the bundled sample: values, masks and probes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omniwatch.connectors.replay import ReplaySource
from omniwatch.features.liquid import FEATURES, LABELS, compute_features
from omniwatch.features.probes import lookahead_probe, warmup_probe
from omniwatch.settings import BUNDLED_SAMPLE_DIR

SYMBOLS = ["BTC", "ETH", "SOL"]


@pytest.fixture(scope="module")
def inputs():
    """Six weeks around the start of the SOL funding gap (2024-12-04)."""
    src = ReplaySource(BUNDLED_SAMPLE_DIR)
    s, e = pd.Timestamp("2024-10-25", tz="UTC"), pd.Timestamp("2024-12-15", tz="UTC")
    return src.bars(SYMBOLS, s, e).frame, src.funding(SYMBOLS, s, e).frame, src.onchain(SYMBOLS, s, e).frame


def test_there_are_fifteen_documented_features_and_three_labels():
    import omniwatch.features.liquid as module

    assert len(FEATURES) == 15 and LABELS == ("fwd_ret_1h", "fwd_ret_4h", "fwd_ret_24h")
    for name in FEATURES:
        assert f"| {name} |" in module.__doc__


def test_values_match_hand_computation(inputs):
    bars, funding, onchain = inputs
    out = compute_features(bars, funding, onchain)
    btc = bars[bars["symbol"] == "BTC"].set_index("event_time")["close"]
    row = out[(out["symbol"] == "BTC") & (out["event_time"] == pd.Timestamp("2024-11-20T12:00Z"))].iloc[0]
    t = pd.Timestamp("2024-11-20T12:00Z")
    assert row["as_of_ts"] == t + pd.Timedelta(hours=1)
    assert row["ret_4h"] == pytest.approx(np.log(btc[t] / btc[t - pd.Timedelta(hours=4)]))
    assert row["fwd_ret_24h"] == pytest.approx(np.log(btc[t + pd.Timedelta(hours=24)] / btc[t]))
    hourly = np.log(btc).diff()[t - pd.Timedelta(hours=23): t]
    assert row["vol_24h"] == pytest.approx(hourly.std(ddof=1))
    assert row["drawdown_168h"] == pytest.approx(np.log(btc[t] / btc[t - pd.Timedelta(hours=167): t].max()))
    # Funding as of 13:00 is the 08:00 settlement; on-chain as of 13:00 is the value of 2024-11-19.
    f = funding[(funding["symbol"] == "BTC")].set_index("event_time")["funding_rate"]
    assert row["funding_last"] == pytest.approx(f[pd.Timestamp("2024-11-20T08:00Z")])
    a = onchain[(onchain["symbol"] == "BTC") & (onchain["metric"] == "AdrActCnt")].set_index("event_time")["value"]
    week = a[pd.Timestamp("2024-11-19", tz="UTC")] / a[pd.Timestamp("2024-11-12", tz="UTC")]
    assert row["active_addr_chg_7d"] == pytest.approx(np.log(week))
    # No news source covers this window: NaN (unknown), not 0 (no news).
    assert np.isnan(row["news_count_24h"]) and np.isnan(row["news_tone_24h"])


def _news() -> pd.DataFrame:
    """Three headlines around 2024-11-20 (synthetic text, real format of the events table)."""
    return pd.DataFrame({
        "available_time": pd.to_datetime(["2024-11-19T20:00Z", "2024-11-20T09:30Z", "2024-11-20T12:30Z",
                                          "2024-11-25T00:00Z"], utc=True),
        "title": ["Bitcoin ETF inflows rise", "Solana and $ETH slide", "Sol is Spanish for sun", "Ether steady"],
        "body": ["", "", "", ""], "tone": [0.6, -0.4, 0.9, 0.0],
    })


def test_news_counts_and_tone_are_point_in_time_and_match_names_and_tickers(inputs):
    bars, funding, onchain = inputs
    out = compute_features(bars, funding, onchain, news=_news()).set_index(["symbol", "as_of_ts"])
    t = pd.Timestamp("2024-11-20T13:00Z")
    assert out.loc[("BTC", t), "news_count_24h"] == 1 and out.loc[("BTC", t), "news_tone_24h"] == pytest.approx(0.6)
    assert out.loc[("SOL", t), "news_count_24h"] == 1  # "Solana", not the lowercase Spanish "sol"
    assert out.loc[("ETH", t), "news_tone_24h"] == pytest.approx(-0.4)
    # Before the 09:30 headline was published it is not counted.
    assert out.loc[("ETH", pd.Timestamp("2024-11-20T09:00Z")), "news_count_24h"] == 0
    # Three days after the last item anywhere, the source no longer counts as live: unknown, not 0.
    assert out.loc[("BTC", pd.Timestamp("2024-11-27T23:00Z")), "news_count_24h"] == 0
    assert np.isnan(out.loc[("BTC", pd.Timestamp("2024-11-28T01:00Z")), "news_count_24h"])


def test_missing_sources_give_nan_never_a_stale_or_made_up_value(inputs):
    bars, funding, onchain = inputs
    out = compute_features(bars, funding, onchain)
    sol = out[out["symbol"] == "SOL"]
    in_gap = sol[sol["as_of_ts"] >= pd.Timestamp("2024-12-04T09:01Z")]
    assert len(in_gap) > 200 and in_gap["funding_last"].isna().all()  # the real SOL funding gap
    before = sol[sol["as_of_ts"] <= pd.Timestamp("2024-12-04T08:00Z")]
    assert before["funding_last"].tail(10).notna().all()
    assert sol["active_addr_chg_7d"].isna().all()  # no on-chain source for SOL
    assert out.loc[out["symbol"] == "BTC", "active_addr_chg_7d"].iloc[300:].notna().all()


def test_a_missing_bar_is_a_gap_not_a_filled_value(inputs):
    bars, funding, onchain = inputs
    hole = pd.Timestamp("2024-11-20T12:00Z")
    out = compute_features(bars[~((bars["symbol"] == "ETH") & (bars["event_time"] == hole))], funding, onchain)
    eth = out[out["symbol"] == "ETH"].set_index("event_time")
    assert hole not in eth.index  # no snapshot at a close that never came
    nxt = eth.loc[hole + pd.Timedelta(hours=1)]
    assert np.isnan(nxt["ret_1h"])  # its previous close is missing
    assert np.isfinite(nxt["ret_4h"])  # closes 4 h apart both exist


def test_lookahead_probe_finds_no_future_data_in_any_feature(inputs):
    bars, funding, onchain = inputs
    cuts = [pd.Timestamp(t) for t in ("2024-11-10T00:00Z", "2024-11-21T13:00Z", "2024-12-04T08:00Z",
                                      "2024-12-04T08:30Z", "2024-12-10T23:00Z")]
    compared, mismatches = lookahead_probe(compute_features, bars, funding, onchain, cuts, FEATURES, news=_news())
    assert compared > 5_000
    assert mismatches == []


def test_lookahead_probe_catches_a_leaky_feature(inputs):
    """The probe can fail: a feature that peeks one bar ahead is reported."""
    bars, funding, onchain = inputs

    def leaky(b, f, o, news=None):
        out = compute_features(b, f, o, news=news)
        out["ret_1h"] = out.groupby("symbol")["ret_1h"].shift(-1)
        return out

    _, mismatches = lookahead_probe(leaky, bars, funding, onchain, [pd.Timestamp("2024-11-21T13:00Z")], FEATURES)
    assert {m["feature"] for m in mismatches} == {"ret_1h"}


def test_warmup_probe_shorter_and_longer_history_agree(inputs):
    """All windows are finite (no recursion), so 9 days of warm-up reproduce 30 days exactly."""
    bars, funding, onchain = inputs
    start = pd.Timestamp("2024-12-01", tz="UTC")
    compared, mismatches = warmup_probe(compute_features, bars, funding, onchain, start,
                                        pd.Timedelta(days=9), pd.Timedelta(days=30), FEATURES, atol=1e-12)
    assert compared > 1_000 and mismatches == []
    # And too short a warm-up is caught (the probe can fail).
    _, short = warmup_probe(compute_features, bars, funding, onchain, start,
                            pd.Timedelta(days=2), pd.Timedelta(days=30), FEATURES, atol=1e-12)
    assert {m["feature"] for m in short} >= {"ret_168h", "vol_168h"}
