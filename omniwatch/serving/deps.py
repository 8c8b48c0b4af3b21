"""The long-lived parts of one app (model router, snapshot cache, writer, tasks), built once
from the settings and reached by routes through ``Depends(get_services)``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from fastapi import Request

from omniwatch.serving.auth import named_key
from omniwatch.serving.backtest.service import BacktestService
from omniwatch.serving.execution.service import ExecutionService
from omniwatch.serving.predict.service import Predictor
from omniwatch.serving.risk.service import RiskService
from omniwatch.serving.runtime.freshness import Freshness
from omniwatch.serving.runtime.model_router import ModelRouter
from omniwatch.serving.runtime.refresh import Refresher
from omniwatch.serving.runtime.snapshots import SnapshotStore
from omniwatch.serving.runtime.writer import PredictionWriter
from omniwatch.serving.settings import ServingSettings
from omniwatch.serving.tasks.launchers import InProcessLauncher, WebserverLauncher
from omniwatch.serving.tasks.service import Launcher, TaskRunner
from omniwatch.settings import Settings
from omniwatch.tasks.store import TaskStore
from omniwatch.trading.portfolio import RiskLimits
from omniwatch.trading.risk_store import RiskGuard


@dataclass
class Services:
    settings: Settings
    serving: ServingSettings
    router: ModelRouter
    snapshots: SnapshotStore
    writer: PredictionWriter
    predictor: Predictor
    backtests: BacktestService
    tasks: TaskRunner
    risk: RiskService
    execution: ExecutionService

    # Computed once: the settings do not change after start-up, and ``warehouse_url`` resolves the
    # home on disk (system calls that hand the GIL away on every request's path).
    @cached_property
    def database_url(self) -> str:
        return self.settings.warehouse_url

    @property
    def api_keys(self) -> list[str]:
        return [secret for _, secret in self.named_keys]

    @cached_property
    def named_keys(self) -> list[tuple[str, str]]:
        """(name, secret) per configured key (``name:secret``, or a bare secret named by fingerprint)."""
        return [named_key(k.get_secret_value()) for k in self.serving.api_keys]

    @property
    def limits(self) -> RiskLimits:
        # The default strategy's limits: the same set every order of it is checked against.
        return self.risk.guard.limits("liquid", self.serving.signal_strategy_id)

    def close(self) -> None:
        self.router.refresher.close()
        self.tasks.close()
        self.writer.close()
        self.execution.close()


def build_launcher(settings: Settings, serving: ServingSettings, store: TaskStore) -> Launcher:
    """Where tasks run: a Dagster run submitted to the webserver when its URL is set, else the
    same job executed in this process."""
    if serving.dagster_webserver_url:
        return WebserverLauncher(serving.dagster_webserver_url, store)
    return InProcessLauncher(settings, store)


def build_services(settings: Settings, serving: ServingSettings) -> Services:
    url = settings.warehouse_url
    refresher = Refresher()
    router = ModelRouter(settings.mlflow_uri, url, settings.serving_device, serving.alias_check_interval_s,
                         serving.rollout_alias, refresher=refresher)
    snapshots = SnapshotStore(url, serving.snapshot_check_interval_s, refresher)
    writer = PredictionWriter(url, serving.prediction_flush_interval_s)
    backtests = BacktestService(router, url, list(settings.liquid_symbols), serving.thresholds_bps(),
                                {"weight_band": serving.sizing_weight_band,
                                 "target_annual_vol": serving.target_annual_vol})
    store = TaskStore(url)
    tasks = TaskRunner(store, build_launcher(settings, serving, store))
    freshness = Freshness(url, settings.source, settings.max_snapshot_age, serving.data_clock_ttl_s)
    guard = RiskGuard(url, serving.risk_settings())
    risk = RiskService(guard, freshness.now, serving.signal_strategy_id)
    execution = ExecutionService(url, guard, freshness.now, default_strategy=serving.signal_strategy_id,
                                 thresholds_bps=serving.thresholds_bps(), weight_band=serving.sizing_weight_band,
                                 max_slippage_bps=serving.execution_max_slippage_bps,
                                 universe=list(settings.liquid_symbols))
    return Services(settings, serving, router, snapshots, writer,
                    Predictor(router, snapshots, writer, url, freshness), backtests, tasks, risk, execution)


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain-def dependency in the thread pool, which the cached fast path
    # of the async endpoints must not pay for.
    return request.app.state.services
