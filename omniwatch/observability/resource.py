"""The SLO source as a Dagster resource: a Prometheus server or the API's ``/metrics``."""

from __future__ import annotations

import dagster as dg

from omniwatch.observability.settings import SloSettings
from omniwatch.observability.sources import SloSource, build_source


class SloSourceResource(dg.ConfigurableResource):
    """``prometheus_url`` set: ``increase()`` queries; empty: scrapes of ``metrics_url`` with
    baselines stored in the warehouse's ``metric_snapshots``."""

    prometheus_url: str = ""
    metrics_url: str
    timeout_s: float = 10.0

    def source(self, warehouse_url: str) -> SloSource:
        return build_source(self.prometheus_url or None, self.metrics_url, warehouse_url, self.timeout_s)

    @classmethod
    def from_settings(cls, settings: SloSettings) -> SloSourceResource:
        from omniwatch.resources import from_env

        return cls(prometheus_url=from_env("OMNIWATCH_PROMETHEUS_URL", settings.prometheus_url),
                   metrics_url=from_env("OMNIWATCH_SLO_METRICS_URL", settings.metrics_url),
                   timeout_s=settings.slo_timeout_s)
