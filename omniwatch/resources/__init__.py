"""Resources, chosen once from the settings (STYLE.md rule 5)."""

from __future__ import annotations

import os
from typing import Any

from omniwatch.settings import Settings


def from_env(name: str, value: Any) -> Any:
    """``dg.EnvVar(name)`` when the value came from that environment variable (a URL with a
    password, a User-Agent with an e-mail address): Dagster then resolves it at run time and the
    UI shows the variable's name, never its value. Computed defaults stay plain values."""
    import dagster as dg

    return dg.EnvVar(name) if os.environ.get(name) not in (None, "") and os.environ[name] == value else value


def build_resources(settings: Settings) -> dict[str, Any]:
    """The resource dict for this environment: replay or live connectors, the warehouse URL."""
    import dagster as dg

    from omniwatch.resources.compute import ComputeResource
    from omniwatch.resources.event_sources import (
        EdgarFilingsResource,
        LiveNewsResource,
        ReplayFilingsResource,
        ReplayNewsResource,
    )
    from omniwatch.resources.liquid import LiquidTrackResource
    from omniwatch.resources.market_sources import (
        BinanceFundingResource,
        CoinbaseMarketDataResource,
        CoinMetricsOnchainResource,
        ReplayFundingResource,
        ReplayMarketDataResource,
        ReplayOnchainResource,
    )
    from omniwatch.resources.mlflow import MLflowResource
    from omniwatch.resources.modelops import ModelOpsResource
    from omniwatch.resources.training import TrainingResource
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.tasks.job import ServingTasksResource

    if settings.source == "live":
        # One rate budget per API for all run processes when Redis is configured.
        redis_url = os.environ.get("OMNIWATCH_REDIS_URL") or None
        token = settings.cryptopanic_token
        cryptopanic_token = token.get_secret_value() if token is not None and token.get_secret_value() else None
        http = dict(timeout_s=settings.http_timeout_s, max_retries=settings.http_max_retries,
                    rate_limit_redis_url=from_env("OMNIWATCH_REDIS_URL", redis_url))
        sources: dict[str, Any] = {
            "market_data": CoinbaseMarketDataResource(
                base_url=settings.coinbase_base_url,
                requests_per_second=settings.coinbase_requests_per_second, **http),
            "funding": BinanceFundingResource(
                base_url=settings.binance_futures_base_url,
                requests_per_second=settings.binance_requests_per_second, **http),
            "onchain": CoinMetricsOnchainResource(
                base_url=settings.coinmetrics_base_url,
                requests_per_second=settings.coinmetrics_requests_per_second, **http),
            "news": LiveNewsResource(
                timeout_s=settings.http_timeout_s, cryptopanic_max_retries=settings.http_max_retries,
                symbols=settings.liquid_symbols, cryptopanic_base_url=settings.cryptopanic_base_url,
                cryptopanic_token=from_env("OMNIWATCH_CRYPTOPANIC_TOKEN", cryptopanic_token)),
            # The SEC refuses anonymous clients: the live source needs OMNIWATCH_SEC_USER_AGENT.
            "filings": EdgarFilingsResource(
                user_agent=from_env("OMNIWATCH_SEC_USER_AGENT", settings.sec_user_agent or ""), ciks=settings.sec_ciks,
                rate_limit_redis_url=http["rate_limit_redis_url"]),
        }
    else:
        replay_dir = str(settings.replay_dir.resolve())
        sources = {
            "market_data": ReplayMarketDataResource(replay_dir=replay_dir),
            "funding": ReplayFundingResource(replay_dir=replay_dir),
            "onchain": ReplayOnchainResource(replay_dir=replay_dir),
            # GDELT and RSS recordings from the events folder, CryptoPanic's bundled headlines.
            "news": ReplayNewsResource(replay_dir=str(settings.events_replay_dir.resolve()),
                                       symbols=settings.liquid_symbols),
            "filings": ReplayFilingsResource(replay_dir=str(settings.events_replay_dir.resolve())),
        }
    database_url = from_env("OMNIWATCH_DATABASE_URL", settings.warehouse_url)
    tracking_uri = from_env("OMNIWATCH_MLFLOW_TRACKING_URI", settings.mlflow_uri)
    return {
        **sources,
        "warehouse": WarehouseResource(database_url=database_url),
        "mlflow": MLflowResource(tracking_uri=tracking_uri,
                                 artifact_root=str(settings.mlflow_artifacts_dir), ui_url=settings.mlflow_ui_url),
        "compute": ComputeResource(training_device=settings.training_device,
                                   serving_device=settings.serving_device,
                                   checkpoint_root=str(settings.checkpoints_dir)),
        "training": TrainingResource(),
        "modelops": ModelOpsResource.from_settings(settings, database_url=database_url, tracking_uri=tracking_uri),
        "serving_tasks": ServingTasksResource(database_url=database_url, tracking_uri=tracking_uri,
                                              serving_device=settings.serving_device),
        # Trained models and datasets pass between ML steps as files under OMNIWATCH_HOME.
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.dagster_dir / "storage")),
        "liquid": LiquidTrackResource(
            symbols=settings.liquid_symbols,
            max_gap_ratio=settings.max_gap_ratio,
            max_abs_hourly_log_return=settings.max_abs_hourly_log_return,
            max_bar_lag_hours=settings.max_bar_lag_hours,
        ),
    }
