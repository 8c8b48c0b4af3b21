"""News features in the demo's liquid window come from the bundled CryptoPanic headlines, point in time.

The replay news resource is the one ``build_resources`` wires for the embedded default; bars,
funding and on-chain come from the bundled sample. Before CryptoPanic, the recorded GDELT/RSS
payloads held nothing in this window and both news features were NaN on every row.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from omniwatch.connectors.replay import ReplaySource
from omniwatch.features.liquid import WARMUP, compute_features
from omniwatch.features.probes import lookahead_probe
from omniwatch.resources import build_resources
from omniwatch.resources.event_sources import ReplayNewsResource
from omniwatch.settings import BUNDLED_SAMPLE_DIR, Settings

SYMBOLS = ["BTC", "ETH", "SOL"]
START, END = pd.Timestamp("2025-07-07", tz="UTC"), pd.Timestamp("2025-07-21", tz="UTC")  # inside the demo window
NEWS = ["news_count_24h", "news_tone_24h"]


@pytest.fixture(scope="module")
def market():
    src = ReplaySource(BUNDLED_SAMPLE_DIR)
    s = START - WARMUP
    return src.bars(SYMBOLS, s, END).frame, src.funding(SYMBOLS, s, END).frame, src.onchain(SYMBOLS, s, END).frame


@pytest.fixture(scope="module")
def news() -> pd.DataFrame:
    resource = build_resources(Settings(source="replay"))["news"]
    assert isinstance(resource, ReplayNewsResource)
    return resource.fetch_news(START - WARMUP, END).frame


def window(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["as_of_ts"] > START) & (frame["as_of_ts"] <= END)]


def test_news_features_are_filled_from_the_bundled_replay(market, news):
    bars, funding, onchain = market
    assert set(news["source"]) == {"cryptopanic"} and len(news) > 300
    rows = window(compute_features(bars, funding, onchain, SYMBOLS, news=news))
    filled = rows.groupby("symbol")[NEWS].agg(lambda s: s.notna().mean())
    assert (filled["news_count_24h"] == 1.0).all()          # the source is live every hour
    assert (filled["news_tone_24h"] > 0.8).all()            # NaN only in hours without an item on the coin
    assert rows.groupby("symbol")["news_count_24h"].mean().min() > 1.0
    assert rows["news_tone_24h"].dropna().between(-1, 1).all() and rows["news_tone_24h"].std() > 0.05


def test_without_cryptopanic_the_window_has_no_news(market):
    bars, funding, onchain = market
    resource = ReplayNewsResource(replay_dir=str(BUNDLED_SAMPLE_DIR / "events"), include_cryptopanic=False)
    rows = window(compute_features(bars, funding, onchain, SYMBOLS,
                                   news=resource.fetch_news(START - WARMUP, END).frame))
    assert rows[NEWS].isna().all().all()


def test_count_and_tone_are_the_items_of_the_past_24_hours_only(market, news):
    bars, funding, onchain = market
    rows = compute_features(bars, funding, onchain, SYMBOLS, news=news).set_index(["symbol", "as_of_ts"])
    at = pd.Timestamp("2025-07-14 12:00", tz="UTC")
    names = re.compile(r"\b(?:bitcoin|bitcoins)\b", re.IGNORECASE)
    tickers = re.compile(r"(?<![A-Za-z])\$?(?:BTC|XBT)\b")
    mentions = news[news["title"].map(lambda t: bool(names.search(t) or tickers.search(t)))]
    recent = mentions[(mentions["available_time"] > at - pd.Timedelta(hours=24)) & (mentions["available_time"] <= at)]
    assert len(recent) >= 3
    row = rows.loc[("BTC", at)]
    assert row["news_count_24h"] == len(recent)
    assert row["news_tone_24h"] == pytest.approx(recent["tone"].mean())
    # Every hour of the day: exactly the items usable in (t - 24 h, t], none published after t.
    for t in pd.date_range(at.floor("D"), periods=24, freq="h"):
        expected = mentions[(mentions["available_time"] > t - pd.Timedelta(hours=24))
                            & (mentions["available_time"] <= t)]
        assert rows.loc[("BTC", t), "news_count_24h"] == len(expected), t


def test_no_look_ahead_in_news_features(market, news):
    bars, funding, onchain = market
    cuts = [pd.Timestamp("2025-07-10 08:00", tz="UTC"), pd.Timestamp("2025-07-14 12:00", tz="UTC"),
            pd.Timestamp("2025-07-18 21:00", tz="UTC")]
    compared, mismatches = lookahead_probe(
        lambda b, f, o, news=None: compute_features(b, f, o, SYMBOLS, news=news),
        bars, funding, onchain, cuts, NEWS, news=news)
    assert compared > 1000 and mismatches == []
