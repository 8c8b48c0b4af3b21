"""The evidence model-operations decisions read from the warehouse: live-scored predictions and
their windows, walk-forward records, gate history, filled orders."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, select

from omniwatch.modelops.records import Action, Outcome
from omniwatch.promotions import audit_rows, registry_rows
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

if TYPE_CHECKING:
    from omniwatch.modelops.evidence import WindowMetrics


def live_predictions(database_url: str, model_name: str, version: str, horizon: str,
                     start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Live-scored predictions of one version: target, as_of_ts, forecast, realised, error, matured."""
    t = tables.predictions_v2
    query = select(t.c.target, t.c.as_of_ts, t.c.horizon_predictions, t.c.realised, t.c.error).where(
        t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None))
    if start is not None:
        query = query.where(t.c.as_of_ts >= start)
    if end is not None:
        query = query.where(t.c.as_of_ts < end)
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(query).all()
    records = []
    for target, as_of, preds, realised, error in rows:
        forecast = (preds or {}).get(horizon)
        real = (realised or {}).get(horizon) if realised else None
        records.append({"target": target, "as_of_ts": pd.Timestamp(as_of), "error": error,
                        "forecast": float("nan") if forecast is None or error else float(forecast),
                        "realised": float("nan") if real is None else float(real),
                        "matured": real is not None})
    frame = pd.DataFrame(records, columns=["target", "as_of_ts", "forecast", "realised", "error", "matured"])
    if len(frame):
        frame["as_of_ts"] = pd.to_datetime(frame["as_of_ts"], utc=True)
    return frame.drop_duplicates(["target", "as_of_ts"], keep="last").reset_index(drop=True)


def _judgeable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a window judges: matured forecasts, and failed scorings (they count as errors)."""
    if frame.empty:
        return frame
    return frame[frame["matured"] | frame["error"].notna()].reset_index(drop=True)


def window_evidence(database_url: str, model_name: str, version: str, reference: str | None, horizon: str,
                    start: datetime, end: datetime, label: str) -> tuple[WindowMetrics, WindowMetrics | None]:
    """(version's WindowMetrics, reference's WindowMetrics or None) on the same hours."""
    from omniwatch.modelops.evidence import paired, score_window

    mine = _judgeable(live_predictions(database_url, model_name, version, horizon, start, end))
    theirs: WindowMetrics | None = None
    if reference is not None:
        ref = _judgeable(live_predictions(database_url, model_name, reference, horizon, start, end))
        if len(ref):
            mine_p, ref_p = paired(mine, ref)
            theirs = score_window(ref_p, horizon, label=label, start=start, end=end)
            mine = mine_p
    return score_window(mine, horizon, label=label, start=start, end=end), theirs


def walk_forward_evidence(row: dict[str, Any] | None, horizon: str) -> list[WindowMetrics]:
    from omniwatch.modelops.evidence import WindowMetrics

    windows = ((row or {}).get("metrics") or {}).get("walk_forward_windows", {}).get(horizon, [])
    return [WindowMetrics(**w) for w in windows]


def first_live_hour(database_url: str, model_name: str, version: str) -> datetime | None:
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        value = conn.execute(select(func.min(t.c.as_of_ts)).where(
            t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None))).scalar()
    return value  # aware UTC (tables.UTC)


def matured_count(database_url: str, model_name: str, version: str) -> int:
    """Matured or failed live predictions of ``version``: new ones are new gate evidence."""
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(
            t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None),
            (t.c.realised.is_not(None)) | (t.c.error.is_not(None)))).scalar() or 0)


def gated_versions(database_url: str, model_name: str) -> set[str]:
    """Versions with a final gate decision (start_rollout or reject)."""
    return {str(r["model_version"]) for r in audit_rows(database_url, model_name, action=Action.gate.value)
            if r["outcome"] in (Outcome.start_rollout.value, Outcome.reject.value)}


def rejected_versions(database_url: str, model_name: str) -> set[str]:
    return {str(r["version"]) for r in registry_rows(database_url, model_name) if r["status"] == "rejected"}

