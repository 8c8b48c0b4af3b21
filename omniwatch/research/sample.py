"""The research frame: features and labels of the bundled sample, computed as feature_snapshots
computes them (replay bars, funding, on-chain and news), with the columns the protocol needs."""

from __future__ import annotations

import pandas as pd

from omniwatch.ml.dataset import BPS, LABEL_BPS, add_masks

SYMBOLS = ["BTC", "ETH", "SOL"]


def sample_frame() -> pd.DataFrame:
    return sample_frame_and_news()[0]


def sample_frame_and_news() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The research frame and the news events its two news features were computed from."""
    from omniwatch.connectors.replay import ReplaySource
    from omniwatch.features.liquid import compute_features
    from omniwatch.resources import build_resources
    from omniwatch.settings import BUNDLED_SAMPLE_DIR, SAMPLE_END, SAMPLE_START, Settings

    start = pd.Timestamp(SAMPLE_START, tz="UTC")
    end = pd.Timestamp(SAMPLE_END, tz="UTC") + pd.Timedelta(days=1)
    src = ReplaySource(BUNDLED_SAMPLE_DIR)
    news = build_resources(Settings(source="replay"))["news"].fetch_news(start, end).frame
    f = compute_features(src.bars(SYMBOLS, start, end).frame, src.funding(SYMBOLS, start, end).frame,
                         src.onchain(SYMBOLS, start, end).frame, SYMBOLS, news=news)
    for h, col in zip((1, 4, 24), LABEL_BPS, strict=True):
        f[col] = f[f"fwd_ret_{h}h"] * BPS
    f["next_hour_return"] = f["fwd_ret_1h"]
    f["next_hour_funding"] = f["next_hour_funding"].fillna(0.0)
    return add_masks(f.sort_values(["as_of_ts", "symbol"]).reset_index(drop=True)), news
