"""Backtests over HTTP: resolve the request's defaults, run through ``omniwatch.trading``, and
answer its refusals as HTTP errors (the run row says ``failed`` with the same code)."""

from __future__ import annotations

import uuid
from typing import Any

from omniwatch.ml.versions import LoadedModel, ModelUnavailable
from omniwatch.serving.backtest.schemas import BacktestRequest
from omniwatch.serving.errors import ApiError, model_missing
from omniwatch.serving.runtime.model_router import ModelRouter
from omniwatch.trading.backtest import BacktestRefused
from omniwatch.trading.backtest_runs import BacktestRuns


class BacktestService:
    def __init__(self, router: ModelRouter, database_url: str, universe: list[str], thresholds_bps: dict[str, float],
                 sizing_defaults: dict[str, float] | None = None):
        """``sizing_defaults``: weight_band, target_annual_vol, max_weight of horizon sizing (the
        settings execution sizes with)."""
        self.router, self.universe, self.thresholds_bps = router, universe, thresholds_bps
        self.sizing_defaults = sizing_defaults or {}
        self.runs = BacktestRuns(database_url, self._pinned)

    def _pinned(self, name: str, version: str) -> LoadedModel:
        try:
            return self.router.pinned(name, version)
        except ApiError as exc:  # the router answers HTTP; the runs speak the domain error
            raise ModelUnavailable(exc.detail, **(exc.context or {})) from exc

    def params(self, request: BacktestRequest) -> dict[str, Any]:
        """What decides the run, as stored: the request plus the defaults it resolved to."""
        band = request.band_bps if request.band_bps is not None else self.thresholds_bps[request.horizon]
        sizing = {k: v for k, v in self.sizing_defaults.items() if k != "weight_band"}
        weight_band = request.weight_band if request.weight_band is not None else self.sizing_defaults.get(
            "weight_band", 0.05)
        return {**request.model_dump(mode="json"), **sizing, "weight_band": weight_band,
                "targets": request.targets or list(self.universe), "band_bps": band}

    def run(self, request: BacktestRequest) -> dict[str, Any]:
        run_id = str(uuid.uuid4())
        try:
            return self.runs.run(self.params(request), run_id)
        except BacktestRefused as exc:
            raise ApiError(422, exc.code, exc.detail, {**exc.context, "run_id": run_id}) from exc
        except ModelUnavailable as exc:
            raise model_missing(exc.detail, **exc.context, run_id=run_id) from exc

    def load(self, run_id: str) -> dict[str, Any] | None:
        return self.runs.get(run_id)
