"""Scoring every live hour, and maturing predictions once their horizon has passed.

Every snapshot hour inside the live window is scored by each version that holds an alias
(``champion``; during a rollout the ``candidate`` in shadow; a new ``challenger`` for its shadow
window; ``previous`` while a promoted champion is monitored), on the same snapshot rows. Rows go
to ``predictions_v2`` with a deterministic id (uuid5 of model, version, target, hour), so a
re-run never duplicates a prediction. A scoring that fails, or returns a non-finite forecast, is
stored too, with ``error`` set: that is what a rollout window's error rate counts.

A prediction made at ``as_of_ts`` for horizon h matures at ``as_of_ts + h``: its realised log
return (bps) comes from the stored bars, ``ln(close at as_of_ts + h / close at as_of_ts)``.
"""

from __future__ import annotations

import math
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache
from sqlalchemy import select, update

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

ROLES = ("champion", "candidate", "challenger", "previous")  # priority when one version holds several
HORIZONS = {"1h": 1, "4h": 4, "24h": 24}
LIVE_NAMESPACE = uuid.UUID("5b0c8a8e-77c4-4e0c-9a43-0f1d1c7f4a11")
_models: LRUCache = LRUCache(maxsize=6)   # loaded versions, per process (a version never changes)
_models_lock = threading.Lock()


def live_prediction_id(model_name: str, version: str, target: str, as_of: datetime) -> str:
    key = f"{model_name}|{version}|{target}|{pd.Timestamp(as_of).tz_convert('UTC').isoformat()}"
    return str(uuid.uuid5(LIVE_NAMESPACE, key))


def versions_to_score(aliases: dict[str, str]) -> dict[str, str]:
    """version -> role, each version once, in role priority."""
    out: dict[str, str] = {}
    for role in ROLES:
        version = aliases.get(role)
        if version and version not in out:
            out[version] = role
    return out


def load_model(tracking_uri: str, model_name: str, version: str) -> tuple[Any, dict[str, str]]:
    """The python model of a registered version and its tags, cached per process."""
    key = (tracking_uri, model_name, str(version))
    with _models_lock:
        if key in _models:
            return _models[key]
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        tags = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version(
            model_name, version).tags
        model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}").unwrap_python_model()
        _models[key] = (model, tags)
        return _models[key]


def scored_ids(database_url: str, ids: list[str]) -> set[str]:
    t = tables.predictions_v2
    found: set[str] = set()
    with get_engine(database_url).connect() as conn:
        for i in range(0, len(ids), 500):
            found.update(r[0] for r in conn.execute(select(t.c.prediction_id).where(
                t.c.prediction_id.in_(ids[i:i + 500]))).all())
    return found


def score_hours(model_name: str, version: str, role: str, model: Any, tags: dict[str, str], frame: pd.DataFrame,
                hours: pd.Series, database_url: str | None = None) -> list[dict[str, Any]]:
    """``predictions_v2`` rows for the rows of ``frame`` whose as_of_ts is in ``hours``; hours this
    version scored already (in ``database_url``) are left as they were (role and forecast kept)."""
    from omniwatch.ml.inference import HORIZON_OF, PRED_COLUMNS, score_positions

    rows: list[dict[str, Any]] = []
    frame = frame.sort_values(["as_of_ts", "symbol"]).reset_index(drop=True)
    for symbol, part in frame.groupby("symbol", sort=True):
        part = part.reset_index(drop=True)
        wanted = part["as_of_ts"].isin(hours)
        since = tags.get("omniwatch.registered_at_clock")
        if since:  # a version is scored live from the data clock it was registered at, not before
            wanted &= part["as_of_ts"] >= pd.Timestamp(since)
        positions = np.flatnonzero(wanted.to_numpy(dtype=bool))
        if database_url is not None and len(positions):
            ids = [live_prediction_id(model_name, version, symbol, part["as_of_ts"].iloc[p]) for p in positions]
            done = scored_ids(database_url, ids)
            positions = np.array([p for p, i in zip(positions, ids, strict=True) if i not in done], dtype=int)
        if not len(positions):
            continue
        error: str | None = None
        try:
            scored = score_positions(model, part, positions)
        except Exception as exc:  # a failed scoring is data for the rollout (error rate), not a crash
            scored, error = None, f"{type(exc).__name__}: {exc}"[:500]
        for j, pos in enumerate(positions):
            rec = part.iloc[pos]
            preds, row_error = {}, error
            if scored is not None:
                values = {HORIZON_OF[p]: float(scored.iloc[j][p]) for p in PRED_COLUMNS}
                if all(math.isfinite(v) for v in values.values()):
                    preds = values
                else:
                    row_error = "non-finite forecast"
            rows.append({
                "prediction_id": live_prediction_id(model_name, version, symbol, rec["as_of_ts"]),
                "track": "liquid", "target": symbol, "model_name": model_name, "model_version": str(version),
                "as_of_ts": rec["as_of_ts"].to_pydatetime(), "train_lineage_id": tags.get("train_lineage_id"),
                "infer_lineage_id": str(rec["lineage_id"]), "request_key": f"live:{role}",
                "horizon_predictions": preds, "role": role, "error": row_error,
            })
    return rows


def store(database_url: str, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    with get_engine(database_url).begin() as conn:
        return upsert_rows(conn, tables.predictions_v2, rows, ["prediction_id"])


def mature(database_url: str, now: datetime) -> int:
    """Join realised returns to live predictions whose horizons have passed; returns rows updated."""
    t, b = tables.predictions_v2, tables.market_bars
    now = pd.Timestamp(now).tz_convert("UTC")
    with get_engine(database_url).connect() as conn:
        pending = pd.DataFrame(conn.execute(select(t.c.prediction_id, t.c.target, t.c.as_of_ts, t.c.realised).where(
            t.c.role.is_not(None), t.c.matured_at.is_(None), t.c.as_of_ts <= now - timedelta(hours=1))
        ).mappings().all())
        if pending.empty:
            return 0
        pending["as_of_ts"] = pd.to_datetime(pending["as_of_ts"], utc=True)
        first = pending["as_of_ts"].min() - timedelta(hours=1)
        bars = pd.DataFrame(conn.execute(select(b.c.symbol, b.c.event_time, b.c.close).where(
            b.c.event_time >= first.to_pydatetime(), b.c.available_time <= now.to_pydatetime())).mappings().all())
    if bars.empty:
        return 0
    # The close at time T is the close of the bar that opened at T - 1 h.
    bars["close_time"] = pd.to_datetime(bars["event_time"], utc=True) + timedelta(hours=1)
    closes = bars.set_index(["symbol", "close_time"])["close"].to_dict()
    updates = []
    for rec in pending.itertuples(index=False):
        base = closes.get((rec.target, rec.as_of_ts))
        realised = dict(rec.realised or {})
        for horizon, hours in HORIZONS.items():
            later = closes.get((rec.target, rec.as_of_ts + timedelta(hours=hours)))
            if horizon not in realised and base and later and rec.as_of_ts + timedelta(hours=hours) <= now:
                realised[horizon] = float(np.log(later / base) * 1e4)
        if realised != dict(rec.realised or {}):
            done = all(h in realised for h in HORIZONS)
            updates.append((rec.prediction_id, realised, now.to_pydatetime() if done else None))
    with get_engine(database_url).begin() as conn:
        for prediction_id, realised, matured_at in updates:
            conn.execute(update(t).where(t.c.prediction_id == prediction_id).values(
                realised=realised, matured_at=matured_at))
    return len(updates)
