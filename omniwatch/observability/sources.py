"""Where the SLO counts come from: a Prometheus server, or the API's own ``/metrics``.

``PrometheusSource`` asks the server's HTTP API (``OMNIWATCH_PROMETHEUS_URL``) for the
``increase()`` of each series over the window, evaluated at the window's end.

``ScrapeSource`` works without Prometheus: it scrapes ``/metrics`` (cumulative counters),
stores the SLO series of the scrape in ``metric_snapshots`` and subtracts the newest stored
snapshot at least one window old. When no snapshot is that old yet, it uses the oldest one it
has and says so (``covered_s`` below ``requested_s``); when there is none at all, the baseline
is zero, i.e. everything since the process started counting (``start`` null). A series that went
down between the two scrapes restarted (a new process): its increase is its current value, as
PromQL's ``increase()`` treats counter resets.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from omniwatch.observability.slo import (
    EXCLUDED_ROUTES,
    EXECUTION_LATENCY,
    HTTP_REQUESTS,
    SIGNAL_LATENCY,
    Window,
    WindowCounts,
)
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

HISTOGRAMS = (SIGNAL_LATENCY, EXECUTION_LATENCY)
SNAPSHOT_RETENTION = timedelta(days=35)  # a 30-day window still finds its baseline
# One series: (sample name, sorted label pairs).
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class SloSourceError(RuntimeError):
    """The source could not be read (server down, error answer, unparsable exposition)."""


class SloSource(ABC):
    @abstractmethod
    def counts(self, window: timedelta, end: datetime | None = None) -> WindowCounts:
        """Increases of the SLO series over ``[end - window, end]`` (``end``: now)."""


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


def aggregate(series: dict[SeriesKey, float]) -> tuple[dict[str, list[tuple[float, float]]], dict[str, float]]:
    """Bucket increases summed by ``le`` per histogram, and request increases by status (the
    routes of ``EXCLUDED_ROUTES`` left out)."""
    buckets: dict[str, dict[float, float]] = {m: defaultdict(float) for m in HISTOGRAMS}
    statuses: dict[str, float] = defaultdict(float)
    for (name, labels), value in series.items():
        lb = dict(labels)
        base = name.removesuffix("_bucket")
        if name.endswith("_bucket") and base in buckets:
            buckets[base][_le(lb["le"])] += value
        elif name == HTTP_REQUESTS and lb.get("route") not in EXCLUDED_ROUTES:
            statuses[lb.get("status", "unknown")] += value
    return {m: sorted(b.items()) for m, b in buckets.items()}, dict(statuses)


# ----------------------------------------------------------------------------- Prometheus
def prometheus_queries(window: timedelta) -> list[tuple[str, str]]:
    """(series name, PromQL) of the increases over ``window``: buckets by ``le`` per histogram,
    requests by ``status`` without the excluded routes."""
    rng = f"{int(window.total_seconds())}s"
    excluded = "|".join(sorted(EXCLUDED_ROUTES))
    queries = [(f"{m}_bucket", f"sum by (le) (increase({m}_bucket[{rng}]))") for m in HISTOGRAMS]
    queries.append((HTTP_REQUESTS, f'sum by (status) (increase({HTTP_REQUESTS}{{route!~"{excluded}"}}[{rng}]))'))
    return queries


class PrometheusSource(SloSource):
    """Instant queries of ``increase()`` over the window, at its end, on a Prometheus server."""

    def __init__(self, base_url: str, http: httpx.Client | None = None, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=timeout_s)

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        try:
            r = self.http.get(f"{self.base_url}/api/v1/query", params={"query": promql, "time": at.timestamp()})
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SloSourceError(f"Prometheus at {self.base_url} did not answer {promql!r}: {exc}") from exc
        if r.status_code != 200 or body.get("status") != "success":
            error = body.get("error", r.text[:300])
            raise SloSourceError(f"Prometheus answered {r.status_code} to {promql!r}: {error}")
        if body["data"]["resultType"] != "vector":
            raise SloSourceError(f"{promql!r} gave a {body['data']['resultType']}, not a vector")
        return body["data"]["result"]

    def counts(self, window: timedelta, end: datetime | None = None) -> WindowCounts:
        end = end or datetime.now(UTC)
        rng = f"{int(window.total_seconds())}s"
        series: dict[SeriesKey, float] = {}
        for name, promql in prometheus_queries(window):
            for item in self.query(promql, end):
                value = float(item["value"][1])
                if not math.isnan(value):
                    series[(name, tuple(sorted(item["metric"].items())))] = value
        histograms, statuses = aggregate(series)
        window_model = Window(source="prometheus", requested_s=window.total_seconds(), start=end - window, end=end,
                              covered_s=window.total_seconds(), note=f"increase()[{rng}] at {self.base_url}")
        return WindowCounts(window=window_model, histograms=histograms, requests_by_status=statuses)


# ----------------------------------------------------------------------------- /metrics scrapes
def slo_series(exposition: str) -> dict[SeriesKey, float]:
    """The SLO series of a ``/metrics`` text (histogram buckets and request counters), parsed
    with prometheus_client's own parser."""
    try:
        families = list(text_string_to_metric_families(exposition))
    except ValueError as exc:
        raise SloSourceError(f"the /metrics answer is not Prometheus exposition text: {exc}") from exc
    out: dict[SeriesKey, float] = {}
    for family in families:
        for s in family.samples:
            if s.name in (HTTP_REQUESTS, *(f"{m}_bucket" for m in HISTOGRAMS)):
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def process_start(exposition: str) -> datetime | None:
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "process_start_time_seconds":
                return datetime.fromtimestamp(s.value, UTC)
    return None


def increases(current: dict[SeriesKey, float], baseline: dict[SeriesKey, float]) -> dict[SeriesKey, float]:
    """Per series: current minus baseline, or the current value where the counter was reset."""
    out = {}
    for key, value in current.items():
        before = baseline.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def _encode(series: dict[SeriesKey, float]) -> list[list[Any]]:
    return [[name, dict(labels), value] for (name, labels), value in sorted(series.items())]


def _decode(rows: Iterable[list[Any]]) -> dict[SeriesKey, float]:
    return {(name, tuple(sorted(labels.items()))): float(value) for name, labels, value in rows}


class ScrapeSource(SloSource):
    """Two scrapes of ``metrics_url``: now, and the stored snapshot at least one window old."""

    def __init__(self, metrics_url: str, warehouse_url: str, http: httpx.Client | None = None,
                 timeout_s: float = 10.0):
        self.metrics_url, self.warehouse_url = metrics_url, warehouse_url
        self.http = http or httpx.Client(timeout=timeout_s)

    def scrape(self) -> str:
        try:
            r = self.http.get(self.metrics_url)
        except httpx.HTTPError as exc:
            raise SloSourceError(f"could not scrape {self.metrics_url}: {exc}") from exc
        if r.status_code != 200:
            raise SloSourceError(f"{self.metrics_url} answered {r.status_code}: {r.text[:300]}")
        return r.text

    def _baseline(self, conn: Any, end: datetime, window: timedelta) -> tuple[datetime, list[list[Any]]] | None:
        t = tables.metric_snapshots
        mine = select(t.c.scraped_at, t.c.samples).where(t.c.target == self.metrics_url, t.c.scraped_at < end)
        row = conn.execute(mine.where(t.c.scraped_at <= end - window).order_by(t.c.scraped_at.desc()).limit(1)).first()
        row = row or conn.execute(mine.order_by(t.c.scraped_at).limit(1)).first()
        return (row[0], row[1]) if row else None

    def counts(self, window: timedelta, end: datetime | None = None) -> WindowCounts:
        end = end or datetime.now(UTC)
        text = self.scrape()
        current = slo_series(text)
        t = tables.metric_snapshots
        try:
            with get_engine(self.warehouse_url).begin() as conn:
                found = self._baseline(conn, end, window)
                upsert_rows(conn, t, [{"target": self.metrics_url, "scraped_at": end, "samples": _encode(current)}],
                            ["target", "scraped_at"])
                conn.execute(delete(t).where(t.c.target == self.metrics_url,
                                             t.c.scraped_at < end - SNAPSHOT_RETENTION))
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise SloSourceError(f"the warehouse could not keep the /metrics snapshot ({type(exc).__name__}: "
                                 f"{cause}); is it migrated (omniwatch db upgrade)?") from exc
        requested = window.total_seconds()
        if found is None:
            start, baseline = None, {}
            started = process_start(text)
            note = ("no earlier snapshot: counts since the counters started"
                    + (f" (process start {started.isoformat()})" if started else "") + "; the next run has a baseline")
        else:
            start, baseline = found[0], _decode(found[1])
            covered = (end - start).total_seconds()
            note = "" if covered >= requested else f"the oldest snapshot covers {covered:.0f} s of the window"
        histograms, statuses = aggregate(increases(current, baseline))
        window_model = Window(source="scrape", requested_s=requested, start=start, end=end,
                              covered_s=(end - start).total_seconds() if start else None,
                              note=f"{self.metrics_url}; {note}".rstrip("; "))
        return WindowCounts(window=window_model, histograms=histograms, requests_by_status=statuses)


def build_source(prometheus_url: str | None, metrics_url: str, warehouse_url: str, timeout_s: float = 10.0,
                 http: httpx.Client | None = None) -> SloSource:
    """Prometheus when its URL is set, else scrapes of the API's ``/metrics``."""
    if prometheus_url:
        return PrometheusSource(prometheus_url, http, timeout_s)
    return ScrapeSource(metrics_url, warehouse_url, http, timeout_s)
