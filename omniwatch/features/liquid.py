"""The 15 liquid features per symbol and hour, computed point in time.

A snapshot row is taken at ``as_of_ts`` = the close of an hourly bar (its ``available_time``); it
uses only records whose ``available_time <= as_of_ts``. Bars are placed on a complete hourly grid,
so a missing bar is a NaN (never a filled value) and windows are measured in time, not rows.
Funding and on-chain values are joined as of ``as_of_ts`` on their ``available_time`` (their
publication lag) and are treated as missing when the last known value is older than a staleness
bound, so a source gap gives NaN plus a mask, not a stale copy.

| # | name | formula | window | source |
| --- | --- | --- | --- | --- |
| 1 | ret_1h | ln(close_t / close_t-1h) | 1 h | bars |
| 2 | ret_4h | ln(close_t / close_t-4h) | 4 h | bars |
| 3 | ret_24h | ln(close_t / close_t-24h) | 24 h | bars |
| 4 | ret_168h | ln(close_t / close_t-168h) | 168 h | bars |
| 5 | vol_24h | std of ret_1h (ddof 1, >= 20 values) | 24 h | bars |
| 6 | vol_168h | std of ret_1h (ddof 1, >= 140 values) | 168 h | bars |
| 7 | volume_z_168h | (ln(1+v_t) - mean) / std of ln(1+v) | 168 h | bars |
| 8 | cs_spread_24h | mean Corwin-Schultz spread from consecutive high/low pairs, floored at 0 | 24 h | bars |
| 9 | drawdown_168h | ln(close_t / max close) | 168 h | bars |
| 10 | funding_last | last settled funding rate (per 8 h); NaN if older than 9 h | as of | funding |
| 11 | funding_chg_24h | funding_last(t) - funding_last(t - 24 h) | 24 h | funding |
| 12 | active_addr_chg_7d | ln(AdrActCnt(t) / AdrActCnt(t - 7 d)), daily values known after their day ends; NaN if older than 2 d | 7 d | on-chain |
| 13 | tx_count_chg_7d | ln(TxCnt(t) / TxCnt(t - 7 d)), same rules | 7 d | on-chain |
| 14 | news_count_24h | news items naming the asset (names case-insensitive, tickers upper case) usable in (t - 24 h, t]; NaN when no news item became usable in the 3 days before t | 24 h | news (GDELT, RSS) |
| 15 | news_tone_24h | mean tone of those items on the pipeline's [-1, 1] scale (VADER for RSS, AvgTone/100 for GDELT); NaN when none | 24 h | news |

A news item is usable from the later of its publication (``available_time``) and our connector's
first sight of it (``first_seen_at``; see ``news_time``), so training counts it when serving could.

Labels (not features): forward log returns ``fwd_ret_1h``, ``fwd_ret_4h``, ``fwd_ret_24h`` from the
close at ``as_of_ts``; plus ``next_hour_funding`` (settlements in (as_of, as_of + 1 h]) for PnL.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from omniwatch.features.news_time import as_usable
from omniwatch.symbols import NEWS_NAMES, NEWS_TICKERS

FEATURES: tuple[str, ...] = (
    "ret_1h", "ret_4h", "ret_24h", "ret_168h", "vol_24h", "vol_168h", "volume_z_168h",
    "cs_spread_24h", "drawdown_168h", "funding_last", "funding_chg_24h", "active_addr_chg_7d",
    "tx_count_chg_7d", "news_count_24h", "news_tone_24h",
)
HORIZONS: tuple[int, ...] = (1, 4, 24)
LABELS: tuple[str, ...] = tuple(f"fwd_ret_{h}h" for h in HORIZONS)
HOUR = pd.Timedelta(hours=1)
# How far back each source must reach for the first row of a window to be complete.
WARMUP = pd.Timedelta(days=9)
FUNDING_STALENESS = pd.Timedelta(hours=9)
ONCHAIN_STALENESS = pd.Timedelta(days=2)
NEWS_STALENESS = pd.Timedelta(days=3)


def _grid(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per hour between the first and last bar; missing bars stay NaN."""
    bars = bars.sort_values("event_time").drop_duplicates("event_time", keep="last")
    index = pd.date_range(bars["event_time"].min(), bars["event_time"].max(), freq="h")
    return bars.set_index("event_time")[["open", "high", "low", "close", "volume"]].reindex(index)


def _corwin_schultz(high: pd.Series, low: pd.Series) -> pd.Series:
    """Corwin & Schultz (2012) bid-ask spread estimate from two consecutive bars' high/low."""
    hl = np.log(high / low) ** 2
    beta = hl + hl.shift(1)
    gamma = np.log(np.maximum(high, high.shift(1)) / np.minimum(low, low.shift(1))) ** 2
    k = 3 - 2 * np.sqrt(2)
    alpha = (np.sqrt(2 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = 2 * (np.exp(alpha) - 1) / (1 + np.exp(alpha))
    return spread.clip(lower=0)


def _asof(times: pd.DatetimeIndex, events: pd.DataFrame, value: str, staleness: pd.Timedelta) -> pd.Series:
    """The last ``value`` with ``available_time <= t`` for each t; NaN when none or too old."""
    if events.empty:
        return pd.Series(np.nan, index=times)
    ev = events.sort_values("available_time")[["available_time", value]].dropna()
    # merge_asof needs one time resolution on both sides (pandas 3 mixes us and ns).
    ev["available_time"] = ev["available_time"].astype("datetime64[ns, UTC]")
    left = pd.DataFrame({"t": times.astype("datetime64[ns, UTC]")})
    joined = pd.merge_asof(left, ev, left_on="t", right_on="available_time", direction="backward")
    fresh = (joined["t"] - joined["available_time"]) <= staleness
    return pd.Series(joined[value].where(fresh).to_numpy(dtype=float), index=times)  # NaN when stale


def news_mentions(news: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The news items (available_time, tone) whose title or body names ``symbol``."""
    if news is None or news.empty:
        return pd.DataFrame({"available_time": pd.Series([], dtype="datetime64[ns, UTC]"), "tone": []})
    names = "|".join(re.escape(n) for n in NEWS_NAMES.get(symbol, ()))
    tickers = "|".join(re.escape(t) for t in NEWS_TICKERS.get(symbol, ()))
    text = news["title"].fillna("").astype(str) + " " + news["body"].fillna("").astype(str)
    hit = text.str.contains(rf"\b(?:{names})\b", case=False, regex=True) if names else False
    if tickers:
        hit = hit | text.str.contains(rf"(?<![A-Za-z])\$?(?:{tickers})\b", case=True, regex=True)
    return news.loc[hit, ["available_time", "tone"]]


def _news_features(times: pd.DatetimeIndex, news: pd.DataFrame | None, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Count and mean tone of the symbol's news in (t - 24 h, t]; NaN outside source coverage."""
    n = len(times)
    if news is None or news.empty:
        return np.full(n, np.nan), np.full(n, np.nan)
    t_ns = times.astype("datetime64[ns, UTC]").asi8
    # Coverage must be point in time too: a source counts as live at t when it published anything
    # (about any asset) within NEWS_STALENESS before t. (Using the last item overall would leak.)
    every = np.sort(news["available_time"].astype("datetime64[ns, UTC]").astype("int64").to_numpy())
    last = np.searchsorted(every, t_ns, side="right") - 1
    covered = (last >= 0) & (t_ns - every[np.maximum(last, 0)] <= NEWS_STALENESS.value)
    hits = news_mentions(news, symbol).sort_values("available_time")
    at = hits["available_time"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    tone = hits["tone"].to_numpy(dtype=float)
    has_tone = np.isfinite(tone)
    tone_cum = np.concatenate([[0.0], np.cumsum(np.where(has_tone, tone, 0.0))])
    tone_n = np.concatenate([[0], np.cumsum(has_tone)])
    hi = np.searchsorted(at, t_ns, side="right")
    lo = np.searchsorted(at, t_ns - pd.Timedelta(hours=24).value, side="right")
    count = (hi - lo).astype(float)
    n_tone = tone_n[hi] - tone_n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_tone = np.where(n_tone > 0, (tone_cum[hi] - tone_cum[lo]) / np.maximum(n_tone, 1), np.nan)
    return np.where(covered, count, np.nan), np.where(covered, mean_tone, np.nan)


def _symbol_features(bars: pd.DataFrame, funding: pd.DataFrame, onchain: pd.DataFrame,
                     news: pd.DataFrame | None = None, symbol: str = "") -> pd.DataFrame:
    g = _grid(bars)
    close, log_close = g["close"], np.log(g["close"])
    ret_1h = log_close.diff()
    as_of = g.index + HOUR  # each bar is known at its close
    out = pd.DataFrame(index=g.index)
    out["event_time"] = g.index
    out["as_of_ts"] = as_of
    out["ret_1h"] = ret_1h
    for h in (4, 24, 168):
        out[f"ret_{h}h"] = log_close - log_close.shift(h)
    out["vol_24h"] = ret_1h.rolling(24, min_periods=20).std()
    out["vol_168h"] = ret_1h.rolling(168, min_periods=140).std()
    lv = np.log1p(g["volume"])
    out["volume_z_168h"] = (lv - lv.rolling(168, min_periods=140).mean()) / lv.rolling(168, min_periods=140).std()
    out["cs_spread_24h"] = _corwin_schultz(g["high"], g["low"]).rolling(24, min_periods=20).mean()
    out["drawdown_168h"] = log_close - np.log(close.rolling(168, min_periods=140).max())

    times = pd.DatetimeIndex(as_of)
    f_now = _asof(times, funding, "funding_rate", FUNDING_STALENESS)
    f_then = _asof(times - pd.Timedelta(hours=24), funding, "funding_rate", FUNDING_STALENESS)
    out["funding_last"] = f_now.to_numpy()
    out["funding_chg_24h"] = (f_now - f_then.to_numpy()).to_numpy()
    for name, metric in (("active_addr_chg_7d", "AdrActCnt"), ("tx_count_chg_7d", "TxCnt")):
        series = onchain[onchain["metric"] == metric] if len(onchain) else onchain
        now = _asof(times, series, "value", ONCHAIN_STALENESS)
        then = _asof(times - pd.Timedelta(days=7), series, "value", ONCHAIN_STALENESS)
        out[name] = np.log(now.to_numpy() / then.to_numpy())
    out["news_count_24h"], out["news_tone_24h"] = _news_features(times, news, symbol)

    # Labels: forward log returns from the close at as_of_ts (future data: never features).
    for h in HORIZONS:
        out[f"fwd_ret_{h}h"] = log_close.shift(-h) - log_close
    if len(funding):
        settle = funding.groupby("event_time")["funding_rate"].sum()
        hourly = settle.groupby(settle.index.ceil("h")).sum()  # a settlement at 08:00 falls in (07:00, 08:00]
        out["next_hour_funding"] = hourly.reindex(times + HOUR).fillna(0.0).to_numpy()
    else:
        out["next_hour_funding"] = 0.0
    # Rows of missing bars carry no snapshot: there was nothing to know at that close.
    return out[g["close"].notna().to_numpy()].reset_index(drop=True)


def compute_features(
    bars: pd.DataFrame, funding: pd.DataFrame, onchain: pd.DataFrame, symbols: list[str] | None = None,
    news: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Feature rows (one per symbol and bar) from canonical frames; inputs may span any window.

    Returns columns ``symbol, event_time, as_of_ts`` + FEATURES + LABELS + ``next_hour_funding``.
    Rows near the start of the input lack warm-up and carry NaNs there; callers cut them off.
    """
    symbols = symbols or sorted(bars["symbol"].unique())
    news = as_usable(news)  # from here on a news item's available_time is when it became usable
    parts = []
    for symbol in symbols:
        b = bars[bars["symbol"] == symbol]
        if b.empty:
            continue
        f = funding[funding["symbol"] == symbol] if len(funding) else funding
        o = onchain[onchain["symbol"] == symbol] if len(onchain) else onchain
        part = _symbol_features(b, f, o, news, symbol)
        part.insert(0, "symbol", symbol)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["symbol", "event_time", "as_of_ts", *FEATURES, *LABELS, "next_hour_funding"])
    frame = pd.concat(parts, ignore_index=True)
    # +-inf (e.g. a zero on-chain count) is as unknown as NaN.
    frame[list(FEATURES)] = frame[list(FEATURES)].replace([np.inf, -np.inf], np.nan)
    return frame
