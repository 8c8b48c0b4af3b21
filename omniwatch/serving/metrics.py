"""``GET /metrics``: the API's Prometheus metrics (text exposition format, open like health, not
in the OpenAPI schema).

Every name carries the ``omniwatch_`` prefix and its unit; latencies are histograms in seconds
whose buckets include the SLO thresholds (0.15 s signal p95, 0.3 s execution p95).

=====================================================  =========================================
Omniwatch metric (labels)                              The seed's name
=====================================================  =========================================
``omniwatch_http_request_duration_seconds``            ``http_request_duration_seconds``
(method, route, status)
``omniwatch_http_requests_total`` (method, route,      ``http_requests_total``
status)
``omniwatch_signal_latency_seconds`` (endpoint)        ``signal_latency_seconds``
``omniwatch_execution_latency_seconds`` (endpoint)     ``execution_latency_seconds``
``omniwatch_execution_decisions_total`` (action)       ``execution_results_total`` (by status)
``omniwatch_orders_total`` (status, adapter)           ``orders_total``
``omniwatch_risk_blocks_total`` (code)                 ``risk_blocks_total``
``omniwatch_data_freshness_seconds`` (source)          ``data_freshness_seconds``
``omniwatch_model_decisions_total`` (action, outcome)  ``drift_decisions_total`` and
                                                       ``gate_decisions_total``
``omniwatch_websocket_connections``                    ``websocket_connections``
``omniwatch_websocket_dropped_messages_total``         ``websocket_dropped_messages_total``
(reason)
=====================================================  =========================================

- ``route`` is the route *template* (``/api/v2/execution/orders/{order_id}``), never the raw
  path, so label cardinality stays bounded; a path no route matches is ``unmatched``. ``status``
  is the HTTP code; the class is a regex away (``status=~"5.."``).
- ``endpoint`` is ``signals/generate`` or ``execution/run`` for the signal latency (the signal
  step of an execution run), ``execution/run`` or ``execution/orders`` for execution latency.
- ``execution_decisions_total{action}`` counts each target's decision of ``execution/run``
  (``trade``, ``hold``, ``denied``, ``not_sent``, ``venue_unavailable``), refused runs included.
  ``orders_total{status,adapter}`` counts the orders the API answered, by status at the answer
  (``execution/orders`` answers, and the orders a run sent or denied). The reject rate is PromQL::

      sum(rate(omniwatch_execution_decisions_total{action=~"denied|not_sent"}[5m]))
        / sum(rate(omniwatch_execution_decisions_total[5m]))
      sum(rate(omniwatch_orders_total{status=~"denied|rejected"}[5m])) / sum(rate(omniwatch_orders_total[5m]))

- ``risk_blocks_total{code}`` counts each violation code of a 423 answer (kill switch,
  breakers, limits: the code names its scope, e.g. ``kill_switch_triggered:liquid:liquid_v2``).
- ``data_freshness_seconds{source}`` is read at scrape time: per raw market table, the app's
  reference clock (wall clock when live, the replay frontier otherwise: ``runtime/freshness``)
  minus the newest ``available_time``, floored at 0; one ``max()`` query per table, cached
  ``CACHE_S`` seconds. A table without rows has no sample.
- ``model_decisions_total{action,outcome}`` are the drift, gate, rollout and rollback decisions.
  The sensors that take most of them run in Dagster processes, not here, so the counter is read
  from the append-only ``model_promotions`` audit table at scrape time (``count(*)`` by action
  and outcome; ``none`` for no outcome): it counts every decision whichever process took it, and
  ``increase()`` over it works as for any counter.
- The WebSocket metrics are moved by the streams (``omniwatch.serving.streams``: connections
  open now, and messages dropped by reason). Reasons: ``queue_overflow``,
  ``send_timeout``, ``client_gone``.

Several uvicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the
workers (before the process starts: prometheus-client chooses its value storage at import).
Each worker then writes its instruments to files there, and ``/metrics``, whichever worker
answers, aggregates them with ``MultiProcessCollector`` (counters and histograms summed, the
connection gauge summed over live workers); the two warehouse collectors are registered once, in
the answering app's registry. Without it each ``create_app`` has its own ``CollectorRegistry``
(so tests with several apps do not clash), with the standard ``process_*`` metrics added.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omniwatch.serving.errors import ApiError
from omniwatch.serving.runtime.freshness import age_seconds
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

log = logging.getLogger(__name__)

CACHE_S = 5.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
WEBSOCKET_DROP_REASONS = ("queue_overflow", "send_timeout", "client_gone")
UNMATCHED = "unmatched"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class Instruments:
    """The metrics this process moves (in multiprocess mode: one set per process, in files)."""

    def __init__(self, registry: CollectorRegistry | None):
        def hist(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=LATENCY_BUCKETS)

        self.http_duration = hist("omniwatch_http_request_duration_seconds", "HTTP request latency by route "
                                  "template.", ("method", "route", "status"))
        self.http_requests = Counter("omniwatch_http_requests", "HTTP requests by route template and status.",
                                     ("method", "route", "status"), registry=registry)
        self.signal_latency = hist("omniwatch_signal_latency_seconds", "Time to predict and store signals.",
                                   ("endpoint",))
        self.execution_latency = hist("omniwatch_execution_latency_seconds", "Time to size, check and execute.",
                                      ("endpoint",))
        self.decisions = Counter("omniwatch_execution_decisions", "Decisions of execution/run, by action.",
                                 ("action",), registry=registry)
        self.orders = Counter("omniwatch_orders", "Orders answered by the API, by status and adapter.",
                              ("status", "adapter"), registry=registry)
        self.risk_blocks = Counter("omniwatch_risk_blocks", "Violation codes of 423 risk refusals.", ("code",),
                                   registry=registry)
        self.ws_connections = Gauge("omniwatch_websocket_connections", "Open WebSocket stream connections.",
                                    registry=registry, multiprocess_mode="livesum")
        self.ws_dropped = Counter("omniwatch_websocket_dropped_messages", "WebSocket messages dropped, by reason.",
                                  ("reason",), registry=registry)
        for reason in WEBSOCKET_DROP_REASONS:  # every reason present at 0, so rate() works from the start
            self.ws_dropped.labels(reason=reason)


@cache
def process_instruments() -> Instruments:
    """Multiprocess mode: the instruments are per process (their values are per-pid files),
    whatever number of apps the process builds."""
    return Instruments(None)


class _CachedCollector(ABC):
    """A scrape-time warehouse read, cached ``CACHE_S`` seconds; a failing read drops its samples
    from that scrape (logged) rather than failing the whole scrape."""

    def __init__(self, url: str):
        self.url = url
        self._at = -CACHE_S
        self._samples: list[tuple[tuple[str, ...], float]] = []

    @abstractmethod
    def read(self) -> list[tuple[tuple[str, ...], float]]:
        """(label values, value) per sample, from the warehouse."""

    @abstractmethod
    def family(self) -> Metric:
        """The metric family, without samples."""

    def describe(self) -> Iterable[Metric]:
        return [self.family()]  # registration must not query the warehouse

    def collect(self) -> Iterable[Metric]:
        now = time.monotonic()
        if now - self._at >= CACHE_S:
            try:
                self._samples, self._at = self.read(), now
            except SQLAlchemyError as exc:
                log.warning("metrics: %s could not read the warehouse: %s", type(self).__name__, exc)
                self._samples = []
        metric = self.family()
        for labels, value in self._samples:
            metric.add_metric(list(labels), value)  # type: ignore[attr-defined]
        return [metric]


class FreshnessCollector(_CachedCollector):
    """``omniwatch_data_freshness_seconds{source}``: reference clock minus the newest
    ``available_time`` of each raw market table."""

    def __init__(self, url: str, clock: Callable[[], datetime]):
        super().__init__(url)
        self.clock = clock

    def family(self) -> Metric:
        return GaugeMetricFamily("omniwatch_data_freshness_seconds", "Age of the newest available_time per "
                                 "market source table against the app's reference clock.", labels=["source"])

    def read(self) -> list[tuple[tuple[str, ...], float]]:
        now = self.clock()
        out: list[tuple[tuple[str, ...], float]] = []
        with get_engine(self.url).connect() as conn:
            for name, table in tables.RAW_MARKET_TABLES.items():
                newest = conn.execute(select(func.max(table.c.available_time))).scalar()
                if newest is not None:
                    out.append(((name,), age_seconds(newest, now)))
        return out


class ModelDecisionsCollector(_CachedCollector):
    """``omniwatch_model_decisions_total{action,outcome}``: the rows of ``model_promotions``."""

    def family(self) -> Metric:
        return CounterMetricFamily("omniwatch_model_decisions", "Model operations decisions (drift, gate, "
                                   "rollout, rollback) recorded in model_promotions.", labels=["action", "outcome"])

    def read(self) -> list[tuple[tuple[str, ...], float]]:
        t = tables.model_promotions
        with get_engine(self.url).connect() as conn:
            rows = conn.execute(select(t.c.action, t.c.outcome, func.count()).group_by(t.c.action, t.c.outcome))
            return [((action, outcome or "none"), float(n)) for action, outcome, n in rows]


class Metrics:
    """One app's metrics: the instruments it moves and the registry ``/metrics`` exposes."""

    def __init__(self, url: str, clock: Callable[[], datetime]):
        self.registry = CollectorRegistry()
        path = multiprocess_dir()
        if path:
            if values.ValueClass is values.MutexValue:  # the variable came after prometheus_client's import
                raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be set before the process starts")
            MultiProcessCollector(self.registry, path=path)
            self.instruments = process_instruments()
        else:
            self.instruments = Instruments(self.registry)
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total etc.: per process, single mode only
        self.registry.register(FreshnessCollector(url, clock))
        self.registry.register(ModelDecisionsCollector(url))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        i = self.instruments
        i.http_duration.labels(method, route, str(status)).observe(seconds)
        i.http_requests.labels(method, route, str(status)).inc()

    @contextmanager
    def signal_timer(self, endpoint: str) -> Iterator[None]:
        with self.instruments.signal_latency.labels(endpoint).time():
            yield

    @contextmanager
    def execution(self, endpoint: str, adapter: str) -> Iterator[None]:
        """Time an execution call; on a 423 count its violation codes, and the decisions and the
        order the refusal names."""
        try:
            with self.instruments.execution_latency.labels(endpoint).time():
                yield
        except ApiError as exc:
            if exc.status == 423:
                context = exc.context or {}
                for code in context.get("codes", []):
                    self.instruments.risk_blocks.labels(code).inc()
                if "decisions" in context:
                    self.record_decisions(context["decisions"])
                elif context.get("order_id"):  # execution/orders: the refused order is stored denied
                    self.instruments.orders.labels("denied", adapter).inc()
            raise

    def record_decisions(self, decisions: Iterable[Mapping[str, Any] | Any]) -> None:
        """Count each decision's action, and its order when the run sent or denied one now (a
        ``hold`` naming an earlier order is not counted again)."""
        for d in decisions:
            d = d if isinstance(d, Mapping) else d.model_dump(mode="json")
            self.instruments.decisions.labels(d["action"]).inc()
            order = d.get("order")
            if order and d["action"] in ("trade", "denied", "venue_unavailable"):
                self.record_order(order)

    def record_order(self, order: Mapping[str, Any]) -> None:
        self.instruments.orders.labels(str(order["status"]), str(order["adapter"])).inc()


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v2/execution/orders/{order_id}``), never the raw path.

    A route included with a prefix may carry its own path only (``/execution/orders/{order_id}``,
    as FastAPI's included routers do): the prefix is the part of the path before the suffix the
    route's pattern matches. The app's prefixes are static (``/api/v2``), so no raw value gets in.
    """
    route = scope.get("route")
    template, pattern = getattr(route, "path_format", None), getattr(route, "path_regex", None)
    if not isinstance(template, str) or not template or pattern is None:
        return UNMATCHED
    path: str = scope.get("path", "")
    for i, char in enumerate(path):
        if char == "/" and pattern.match(path[i:]):
            return path[:i] + template
    return template


class MetricsMiddleware:
    """Pure ASGI (no ``BaseHTTPMiddleware``: no extra task or body buffering per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes the app is answered 500 by the outer middleware
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_http(scope["method"], route_template(scope), status, time.perf_counter() - start)


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text exposition (plain def: the warehouse collectors run in the thread pool)."""
    return Response(metrics_of(request).exposition(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, url: str, clock: Callable[[], datetime]) -> Metrics:
    """Metrics for ``app``: ``app.state.metrics``, the middleware and ``GET /metrics``."""
    app.state.metrics = Metrics(url, clock)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router)
    return app.state.metrics
