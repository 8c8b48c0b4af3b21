"""Where the SLO counts come from, read from the environment (``OMNIWATCH_`` prefix).

``OMNIWATCH_PROMETHEUS_URL`` (e.g. ``http://prometheus:9090``) selects the Prometheus source;
without it the API's ``/metrics`` is scraped (``OMNIWATCH_SLO_METRICS_URL``, default the API's
own address from ``OMNIWATCH_API_HOST``/``OMNIWATCH_API_PORT``). ``OMNIWATCH_SLO_WINDOW`` is the
default window (``1h``).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from omniwatch.observability.slo import parse_duration


class SloSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_", extra="ignore")

    prometheus_url: str = Field(default="", description="Prometheus server; empty: scrape /metrics instead.")
    slo_metrics_url: str = Field(default="", description="The API's /metrics; empty: from api_host/api_port.")
    slo_window: str = Field(default="1h", description="Default SLO window (90s, 30m, 1h, 7d).")
    slo_timeout_s: float = Field(default=10.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @field_validator("slo_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def metrics_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return self.slo_metrics_url or f"http://{host}:{self.api_port}/metrics"
