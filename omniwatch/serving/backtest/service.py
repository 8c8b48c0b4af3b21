"""Backtest and PnL-attribution runs: resolve the model version, replay, store in backtest_runs.

A run is recorded as ``running`` before any work, then ``succeeded`` with its metrics or
``failed`` with its error code, so a crashed or refused run is visible too.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from omniwatch.serving.backtest.replay import attribution, evaluate, refuse_in_sample, replay
from omniwatch.serving.backtest.schemas import BacktestRequest
from omniwatch.serving.errors import ApiError
from omniwatch.serving.runtime.model_router import ModelRouter
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T = tables.backtest_runs


class BacktestService:
    def __init__(self, router: ModelRouter, database_url: str, universe: list[str], thresholds_bps: dict[str, float]):
        self.router, self.database_url = router, database_url
        self.universe, self.thresholds_bps = universe, thresholds_bps

    def band(self, request: BacktestRequest) -> float:
        return request.band_bps if request.band_bps is not None else self.thresholds_bps[request.horizon]

    def params(self, request: BacktestRequest) -> dict[str, Any]:
        """What decides the run, as stored: the request plus the defaults it resolved to."""
        return {**request.model_dump(mode="json"), "targets": request.targets or list(self.universe),
                "band_bps": self.band(request)}

    def run(self, request: BacktestRequest, run_id: str | None = None) -> dict[str, Any]:
        run_id = run_id or str(uuid.uuid4())
        params = self.params(request)
        with get_engine(self.database_url).begin() as conn:
            # A re-executed task replaces its earlier run: one row per run id, never two.
            conn.execute(T.delete().where(T.c.run_id == run_id))
            conn.execute(T.insert().values(run_id=run_id, model_name=request.model_name,
                                           model_version=request.model_version, status="running", params=params))
        try:
            loaded = self.router.pinned(request.model_name, request.model_version)
            inside = refuse_in_sample(request, loaded.train_span, f"{loaded.name} version {loaded.version}")
            rep = replay(self.database_url, loaded.model, request, params["targets"])
            breakdown, metrics = evaluate(rep, request, params["band_bps"])
        except ApiError as exc:
            self._finish(run_id, status="failed", error_code=exc.code)
            exc.context = {**(exc.context or {}), "run_id": run_id}
            raise
        except Exception:
            self._finish(run_id, status="failed", error_code="internal_error")
            raise
        self._finish(run_id, status="succeeded", model_version=loaded.version, cost_breakdown=breakdown,
                     metrics={"rows": metrics, "input_digest": rep.input_digest, "in_sample": inside},
                     lineage_coverage=rep.lineage_coverage)
        found = self.load(run_id)
        assert found is not None
        return found

    def attribution(self, request: BacktestRequest) -> dict[str, Any]:
        loaded = self.router.pinned(request.model_name, request.model_version)
        inside = refuse_in_sample(request, loaded.train_span, f"{loaded.name} version {loaded.version}")
        rep = replay(self.database_url, loaded.model, request, request.targets or list(self.universe))
        return {"model_name": loaded.name, "model_version": loaded.version, "horizon": request.horizon,
                "in_sample": inside,
                "input_digest": rep.input_digest, **attribution(rep, request, self.band(request))}

    def perform(self, kind: str, task_id: str, payload: dict) -> dict[str, Any]:
        """An asynchronous task's work; a backtest task's id is its backtest run id."""
        request = BacktestRequest.model_validate(payload)
        if kind == "backtest":
            return self.run(request, run_id=task_id)
        if kind == "pnl_attribution":
            return self.attribution(request)
        raise ValueError(f"unknown task kind {kind!r}")

    def _finish(self, run_id: str, **values: Any) -> None:
        with get_engine(self.database_url).begin() as conn:
            conn.execute(T.update().where(T.c.run_id == run_id).values(
                finished_at=datetime.now(timezone.utc), **values))

    def load(self, run_id: str) -> dict[str, Any] | None:
        with get_engine(self.database_url).connect() as conn:
            row = conn.execute(select(T).where(T.c.run_id == run_id)).mappings().first()
        if row is None:
            return None
        stored = dict(row["metrics"] or {})
        return {**{k: row[k] for k in ("run_id", "status", "model_name", "model_version", "params",
                                       "lineage_coverage", "cost_breakdown", "error_code")},
                "metrics": stored.get("rows"), "input_digest": stored.get("input_digest"),
                "in_sample": stored.get("in_sample"), "started_at": row["started_at"],
                "finished_at": row["finished_at"]}
