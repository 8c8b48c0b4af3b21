"""Leakage probes for point-in-time features: they recompute and compare, so they can fail.

- Look-ahead probe: cut every input at time T (keep only records with ``available_time <= T``;
  news also only what we had first seen by T, see ``news_time``), recompute, and require every
  snapshot with ``as_of_ts <= T`` to equal the full computation.
- Recursion (warm-up) probe: recompute with a shorter and a longer history before a window and
  require the window's rows to agree within a tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from omniwatch.features.news_time import usable_time

Compute = Callable[..., pd.DataFrame]  # (bars, funding, onchain, news=...) -> feature rows
KEY = ["symbol", "as_of_ts"]


def _cut(frame: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    return frame[frame["available_time"] <= t] if len(frame) else frame


def _cut_news(frame: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    return frame[(usable_time(frame) <= t).to_numpy()] if len(frame) else frame


def _compare(a: pd.DataFrame, b: pd.DataFrame, features: Sequence[str], atol: float) -> list[dict]:
    merged = a.merge(b, on=KEY, suffixes=("_a", "_b"), how="outer", indicator=True)
    mismatches = [{"symbol": r.symbol, "as_of_ts": r.as_of_ts.isoformat(), "feature": "<row>", "reason": r._merge}
                  for r in merged[merged["_merge"] != "both"].itertuples()]
    both = merged[merged["_merge"] == "both"]
    for f in features:
        x, y = both[f"{f}_a"].to_numpy(dtype=float), both[f"{f}_b"].to_numpy(dtype=float)
        same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= atol)
        for i in np.flatnonzero(~same):
            row = both.iloc[i]
            mismatches.append({"symbol": row["symbol"], "as_of_ts": row["as_of_ts"].isoformat(),
                               "feature": f, "full": x[i], "recomputed": y[i]})
    return mismatches


def lookahead_probe(
    compute: Compute, bars: pd.DataFrame, funding: pd.DataFrame, onchain: pd.DataFrame,
    cut_times: Sequence[pd.Timestamp], features: Sequence[str], news: pd.DataFrame | None = None,
) -> tuple[int, list[dict]]:
    """(rows compared, mismatches) over all cut times; no mismatches means no look-ahead."""
    full = compute(bars, funding, onchain, news=news)
    compared, mismatches = 0, []
    for t in cut_times:
        cut = compute(_cut(bars, t), _cut(funding, t), _cut(onchain, t),
                      news=None if news is None else _cut_news(news, t))
        expected = full[full["as_of_ts"] <= t][[*KEY, *features]]
        got = cut[cut["as_of_ts"] <= t][[*KEY, *features]]
        compared += len(expected)
        mismatches += _compare(expected, got, features, atol=0.0)
    return compared, mismatches


def warmup_probe(
    compute: Compute, bars: pd.DataFrame, funding: pd.DataFrame, onchain: pd.DataFrame,
    window_start: pd.Timestamp, short: pd.Timedelta, long: pd.Timedelta, features: Sequence[str],
    atol: float, news: pd.DataFrame | None = None,
) -> tuple[int, list[dict]]:
    """(rows compared, mismatches) between a short and a long warm-up before ``window_start``."""

    def from_(frame: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
        return frame[frame["event_time"] >= t] if len(frame) else frame

    def run(warmup: pd.Timedelta) -> pd.DataFrame:
        t = window_start - warmup
        out = compute(from_(bars, t), from_(funding, t), from_(onchain, t), news=news)
        return out[out["event_time"] >= window_start][[*KEY, *features]]

    a, b = run(short), run(long)
    return len(a), _compare(a, b, features, atol)
