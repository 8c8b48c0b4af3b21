"""Backtest and PnL-attribution runs: load the model version, replay, store in backtest_runs.

A run is recorded as ``running`` before any work, then ``succeeded`` with its metrics or
``failed`` with its error code, so a crashed or refused run is visible too. The caller passes how
a version is loaded (the API's cached model router, or a plain registry load in a Dagster run);
it raises :class:`~omniwatch.ml.versions.ModelUnavailable` when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from omniwatch.ml.versions import LoadedModel, ModelUnavailable
from omniwatch.trading.backtest import BacktestParams, BacktestRefused, attribution, check_in_sample, evaluate, replay
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T = tables.backtest_runs
LoadVersion = Callable[[str, str], LoadedModel]  # (model name, version or alias) -> loaded version


class BacktestRuns:
    def __init__(self, database_url: str, load: LoadVersion):
        self.database_url, self.load_version = database_url, load

    def run(self, stored: dict[str, Any], run_id: str) -> dict[str, Any]:
        """Replay and store one run (``stored``: the params as ``backtest_runs`` keeps them)."""
        params = BacktestParams.from_stored(stored)
        with get_engine(self.database_url).begin() as conn:
            # A re-executed task replaces its earlier run: one row per run id, never two.
            conn.execute(T.delete().where(T.c.run_id == run_id))
            conn.execute(T.insert().values(run_id=run_id, model_name=params.model_name,
                                           model_version=params.model_version, status="running", params=stored))
        try:
            loaded = self.load_version(params.model_name, params.model_version)
            inside = check_in_sample(params, loaded.train_span, f"{loaded.name} version {loaded.version}")
            rep = replay(self.database_url, loaded.model, params)
            breakdown, metrics = evaluate(rep, params)
        except (BacktestRefused, ModelUnavailable) as exc:
            self._finish(run_id, status="failed", error_code=str(exc.code))
            raise
        except Exception:
            self._finish(run_id, status="failed", error_code="internal_error")
            raise
        self._finish(run_id, status="succeeded", model_version=loaded.version, cost_breakdown=breakdown,
                     metrics={"rows": metrics, "input_digest": rep.input_digest, "in_sample": inside},
                     lineage_coverage=rep.lineage_coverage)
        found = self.get(run_id)
        assert found is not None
        return found

    def attribution(self, stored: dict[str, Any]) -> dict[str, Any]:
        params = BacktestParams.from_stored(stored)
        loaded = self.load_version(params.model_name, params.model_version)
        inside = check_in_sample(params, loaded.train_span, f"{loaded.name} version {loaded.version}")
        rep = replay(self.database_url, loaded.model, params)
        return {"model_name": loaded.name, "model_version": loaded.version, "horizon": params.horizon,
                "in_sample": inside, "input_digest": rep.input_digest, **attribution(rep, params)}

    def perform(self, kind: str, task_id: str, stored: dict[str, Any]) -> dict[str, Any]:
        """An asynchronous task's work; a backtest task's id is its backtest run id."""
        if kind == "backtest":
            return self.run(stored, run_id=task_id)
        if kind == "pnl_attribution":
            return self.attribution(stored)
        raise ValueError(f"unknown task kind {kind!r}")

    def _finish(self, run_id: str, **values: Any) -> None:
        with get_engine(self.database_url).begin() as conn:
            conn.execute(T.update().where(T.c.run_id == run_id).values(
                finished_at=datetime.now(UTC), **values))

    def get(self, run_id: str) -> dict[str, Any] | None:
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
