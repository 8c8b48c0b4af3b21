"""Training rows from stored feature snapshots, and lookback windows for the sequence model.

Rows are the latest ``data_version`` per (target, as_of_ts) inside the training window. Labels are
forward log returns in basis points (raw log returns have a variance near 1e-5, which breaks
instance normalisation; see DESIGN.md section 5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select

from omniwatch.features.liquid import FEATURES, HORIZONS, LABELS
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

BPS = 1e4
MASKED = ("funding_last", "funding_chg_24h", "active_addr_chg_7d", "tx_count_chg_7d", "news_count_24h",
          "news_tone_24h")
MASK_COLUMNS = tuple(f"has_{f}" for f in MASKED)
LABEL_BPS = tuple(f"y_{h}h" for h in HORIZONS)


def load_snapshots(database_url: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                   track: str = "liquid") -> pd.DataFrame:
    """One row per (symbol, as_of_ts): features, masks, labels (bps), lineage; sorted by time."""
    t = tables.feature_snapshots
    query = select(t.c.id, t.c.target, t.c.as_of_ts, t.c.event_time, t.c.data_version, t.c.lineage_id,
                   t.c.features, t.c.labels).where(t.c.track == track)
    if start is not None:
        query = query.where(t.c.as_of_ts >= start)
    if end is not None:
        query = query.where(t.c.as_of_ts < end)
    raw = pd.read_sql(query, get_engine(database_url))
    if raw.empty:
        return raw
    raw["as_of_ts"] = pd.to_datetime(raw["as_of_ts"], utc=True)
    raw = raw.sort_values("id").drop_duplicates(["target", "as_of_ts"], keep="last")
    feats = pd.DataFrame(raw["features"].tolist(), index=raw.index, columns=list(FEATURES)).astype(float)
    labels = pd.DataFrame(raw["labels"].tolist(), index=raw.index).astype(float)
    frame = pd.concat([raw[["target", "as_of_ts", "data_version", "lineage_id"]].rename(columns={"target": "symbol"}),
                       feats], axis=1)
    frame = add_masks(frame)
    for label, col in zip(LABELS, LABEL_BPS, strict=True):
        frame[col] = labels[label] * BPS
    frame["next_hour_return"] = labels["fwd_ret_1h"]
    frame["next_hour_funding"] = labels["next_hour_funding"].fillna(0.0)
    return frame.sort_values(["as_of_ts", "symbol"]).reset_index(drop=True)


def add_masks(frame: pd.DataFrame) -> pd.DataFrame:
    """Mask channels (1 = the source had a value) for the features whose source can be missing."""
    frame = frame.copy()
    for name, col in zip(MASKED, MASK_COLUMNS, strict=True):
        frame[col] = frame[name].notna().astype(float)
    return frame


def lineage_digest(frame: pd.DataFrame) -> str:
    """``train_lineage_id``: one hash over every snapshot lineage the training rows came from."""
    ids = sorted(frame["lineage_id"].unique())
    return hashlib.sha256("|".join(ids).encode()).hexdigest()[:24]


@dataclass
class Windows:
    X: np.ndarray          # (n, lookback, channels) float32, NaN where unknown
    y: np.ndarray          # (n, len(HORIZONS)) bps, NaN where the future is unknown
    rows: pd.DataFrame     # symbol, as_of_ts of each window's last step (positions into `frame`)


def channels() -> list[str]:
    return [*FEATURES, *MASK_COLUMNS]


def make_windows(frame: pd.DataFrame, lookback: int, positions: np.ndarray | None = None) -> Windows:
    """Windows ending at each row of ``frame`` (or at ``positions``): the last ``lookback`` hours
    of that symbol's channels on a complete hourly grid (missing hours are NaN rows)."""
    cols = channels()
    positions = np.arange(len(frame)) if positions is None else np.asarray(positions)
    X = np.full((len(positions), lookback, len(cols)), np.nan, dtype=np.float32)
    wanted = frame.iloc[positions]
    for symbol, idx in wanted.groupby("symbol").indices.items():
        sym = frame[frame["symbol"] == symbol].set_index("as_of_ts").sort_index()
        grid = pd.date_range(sym.index.min(), sym.index.max(), freq="h")
        values = sym[cols].reindex(grid).to_numpy(dtype=np.float32)
        ends = grid.get_indexer(wanted["as_of_ts"].iloc[idx])
        pad = np.full((lookback - 1, len(cols)), np.nan, dtype=np.float32)
        padded = np.vstack([pad, values])
        take = ends[:, None] + np.arange(lookback)[None, :]  # padded index of each step
        X[idx] = padded[take]
    if set(LABEL_BPS) <= set(wanted.columns):
        y = wanted[list(LABEL_BPS)].to_numpy(dtype=np.float32)
    else:  # scoring frames carry no labels
        y = np.full((len(wanted), len(LABEL_BPS)), np.nan, dtype=np.float32)
    return Windows(X, y, wanted[["symbol", "as_of_ts"]].reset_index(drop=True))
