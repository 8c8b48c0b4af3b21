"""API-specific knobs, read from the environment beside :class:`omniwatch.settings.Settings`.

The shared settings (warehouse URL, MLflow URI, serving device, symbols) stay in
``omniwatch.settings``; only what the HTTP service alone decides lives here: port, keys, who may
read, the signal thresholds, the risk limits and the cache intervals of the hot path.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omniwatch.trading.risk import LimitOverrides, RiskLimits, RiskSettings

RISK_SCOPE = re.compile(r"[a-z][a-z0-9_]{0,7}:(\*|[A-Za-z0-9_.-]{1,64})")


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_", extra="ignore")

    api_host: str = Field(default="127.0.0.1", description="Address `make serve` binds.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port of the REST API.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated keys accepted in X-API-Key (mutations).")
    api_key_scopes: str = Field(default="", description="Scopes of keys by name, e.g. 'trader=live,ops=live' "
                                                         "(omniwatch.serving.auth).")
    api_open_reads: bool = Field(default=True, description="Read endpoints need no key when true.")

    # Hot-path caches: how stale a route or a 'latest snapshot' may be before it is re-checked.
    alias_check_interval_s: float = Field(default=5.0, ge=0, description="Alias -> version re-check.")
    snapshot_check_interval_s: float = Field(default=1.0, ge=0, description="Newest-snapshot re-check.")
    prediction_flush_interval_s: float = Field(default=0.05, ge=0, description="Prediction batch write.")
    data_clock_ttl_s: float = Field(default=5.0, ge=0, description="Replay frontier (newest bar) re-read.")
    rollout_alias: str = Field(default="candidate", description="Alias naming the version in rollout.")

    # Signals: |prediction| must exceed the threshold (bps) of its horizon to give a direction.
    signal_threshold_bps_1h: float = Field(default=10.0, ge=0)
    signal_threshold_bps_4h: float = Field(default=20.0, ge=0)
    signal_threshold_bps_24h: float = Field(default=50.0, ge=0)
    signal_strategy_id: str = Field(default="liquid_v2", description="Default strategy of signals.")
    execution_max_slippage_bps: float = Field(
        default=50.0, ge=0, description="Slippage cap of the market orders execution/run sends (bps from the "
        "reference price): levels beyond it are not taken.")
    sizing_weight_band: float = Field(
        default=0.05, ge=0, le=1, description="No-trade band of horizon sizing, a fraction of capital: the held "
        "weight moves to the target only when they differ by more (execution/run and backtests).")

    # Risk limits of the rebalance (weights are fractions of capital; vol is annualised).
    target_annual_vol: float = Field(default=0.40, gt=0)
    max_weight_per_asset: float = Field(default=0.50, gt=0)
    max_gross_leverage: float = Field(default=1.0, gt=0)
    max_net_exposure: float = Field(default=1.0, gt=0)
    min_trade_weight: float = Field(default=0.01, ge=0)
    # ... and of every order (omniwatch.trading.risk): the same set, defaults for every track and strategy.
    capital_usd: float = Field(default=RiskLimits.capital_usd, gt=0,
                               description="Capital a weight of 1.0 stands for (weight <-> notional).")
    max_order_notional_usd: float = Field(default=RiskLimits.max_order_notional_usd, gt=0)
    max_position_notional_usd: float = Field(default=RiskLimits.max_position_notional_usd, gt=0)
    max_gross_exposure_usd: float = Field(default=RiskLimits.max_gross_exposure_usd, gt=0)
    daily_loss_limit_fraction: float = Field(default=RiskLimits.daily_loss_limit_fraction, gt=0,
                                             description="Daily loss limit as a fraction of capital_usd.")
    daily_loss_limit_usd: float | None = Field(default=None, gt=0, description="A USD cap on the daily loss "
                                               "limit; the smaller of the two applies.")
    max_consecutive_losses: int = Field(default=RiskLimits.max_consecutive_losses, ge=1)
    risk_limits: dict[str, LimitOverrides] = Field(
        default_factory=dict, description='JSON: per "track:*" or "track:strategy_id" changes to the limits above, '
        'e.g. {"liquid:*": {"capital_usd": 50000}, "liquid:liquid_v2": {"max_order_notional_usd": 5000}}.')

    # WebSocket streams (omniwatch.serving.streams): each topic's table polled while it has a connection.
    stream_poll_interval_s: float = Field(default=0.5, gt=0, description="How often a stream's table is read.")
    stream_lookback_s: float = Field(default=10.0, ge=0, description="How late a row may commit and still be "
                                     "streamed (transactions that started before rows already streamed).")
    stream_queue_size: int = Field(default=512, ge=1, description="Messages queued per connection; a full "
                                   "queue evicts the connection (queue_overflow).")
    stream_batch_size: int = Field(default=100, ge=1, description="Most messages sent in one frame.")
    stream_send_timeout_s: float = Field(default=5.0, gt=0, description="Longest a frame may wait for the "
                                         "client's socket before the connection is evicted (send_timeout).")

    # Asynchronous tasks are runs of serving_task_job: submitted to the webserver when its URL is
    # set (executor "webserver"), else executed in the API process (executor "in_process").
    dagster_webserver_url: str | None = Field(
        default=None, description="Dagster webserver (e.g. http://127.0.0.1:3000): tasks are submitted "
                                  "there as runs; without it a task runs in the API process.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("risk_limits")
    @classmethod
    def _scope_keys(cls, value: dict[str, LimitOverrides]) -> dict[str, LimitOverrides]:
        bad = [k for k in value if not RISK_SCOPE.fullmatch(k)]
        if bad:
            raise ValueError(f"OMNIWATCH_RISK_LIMITS keys are 'track:*' or 'track:strategy_id', not {bad}")
        return value

    def risk_settings(self) -> RiskSettings:
        """The limits of every order and rebalance: these defaults and the per-scope overrides."""
        return RiskSettings(RiskLimits(
            self.target_annual_vol, self.max_weight_per_asset, self.max_gross_leverage, self.max_net_exposure,
            self.min_trade_weight, self.capital_usd, self.max_order_notional_usd, self.max_position_notional_usd,
            self.max_gross_exposure_usd, self.daily_loss_limit_fraction, self.daily_loss_limit_usd,
            self.max_consecutive_losses), self.risk_limits)

    def thresholds_bps(self) -> dict[str, float]:
        return {"1h": self.signal_threshold_bps_1h, "4h": self.signal_threshold_bps_4h,
                "24h": self.signal_threshold_bps_24h}
