"""The API's service level objectives, computed from Prometheus counters over a stated window.

Plain functions over plain inputs (no HTTP, no database): the counts come from a Prometheus
server's ``increase()`` or from two scrapes of ``/metrics`` (``omniwatch.observability.sources``).

Objectives (the seed's thresholds, which ``deploy/monitoring/alerts.yml`` also alerts on):

- ``signal_latency_p95``: p95 of ``omniwatch_signal_latency_seconds`` (every endpoint) <= 0.15 s;
- ``execution_latency_p95``: p95 of ``omniwatch_execution_latency_seconds`` <= 0.3 s;
- ``availability``: non-5xx answers / all answers of ``omniwatch_http_requests_total`` >= 99.9 %,
  leaving out ``GET /metrics`` (the scraper's own traffic would pad the ratio).

A latency objective is breached when the estimate is *above* its threshold, as the alert
expression ``histogram_quantile(...) > 0.15`` fires; both thresholds are bucket bounds, so the
estimate is at most the threshold exactly when at least 95 % of the observations were. An
objective without a single observation in the window is ``insufficient_observation``, never ok.
Quantiles are estimated from cumulative buckets as PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

SIGNAL_LATENCY = "omniwatch_signal_latency_seconds"
EXECUTION_LATENCY = "omniwatch_execution_latency_seconds"
HTTP_REQUESTS = "omniwatch_http_requests_total"
EXCLUDED_ROUTES = frozenset({"/metrics"})
QUANTILES = (0.5, 0.95, 0.99)


class Status(StrEnum):
    OK = "ok"
    BREACH = "breach"
    INSUFFICIENT = "insufficient_observation"


class LatencyObjective(BaseModel, frozen=True):
    name: str
    metric: str
    quantile: float = Field(gt=0, lt=1)
    threshold_s: float = Field(gt=0)


class AvailabilityObjective(BaseModel, frozen=True):
    name: str = "availability"
    target: float = Field(default=0.999, gt=0, le=1)


LATENCY_OBJECTIVES = (
    LatencyObjective(name="signal_latency_p95", metric=SIGNAL_LATENCY, quantile=0.95, threshold_s=0.15),
    LatencyObjective(name="execution_latency_p95", metric=EXECUTION_LATENCY, quantile=0.95, threshold_s=0.3),
)
AVAILABILITY = AvailabilityObjective()


class Window(BaseModel):
    """What the counts cover. ``start`` is None when the baseline is the counters' own start
    (no earlier snapshot: everything the process counted since it started)."""

    source: str = Field(description="prometheus (increase() over the window) or scrape (two /metrics snapshots).")
    requested_s: float = Field(description="The window asked for, in seconds.")
    start: datetime | None
    end: datetime
    covered_s: float | None = Field(description="end - start; below requested_s when no snapshot is that old.")
    note: str = ""


class WindowCounts(BaseModel):
    """Increases over the window: cumulative bucket counts ``(le, count)`` per latency histogram
    (summed over labels, ``le`` +Inf included) and answers per HTTP status code."""

    window: Window
    histograms: dict[str, list[tuple[float, float]]]
    requests_by_status: dict[str, float]


class LatencyResult(BaseModel):
    objective: str
    metric: str
    samples: float = Field(description="Observations in the window (+Inf bucket increase).")
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    quantile: float
    threshold_s: float
    status: Status


class AvailabilityResult(BaseModel):
    objective: str
    requests: float
    errors_5xx: float
    ratio: float | None
    target: float
    status: Status


class SloReport(BaseModel):
    status: Status = Field(description="breach if any objective is breached; insufficient_observation if "
                                        "none has data; ok otherwise.")
    window: Window
    latency: list[LatencyResult]
    availability: AvailabilityResult

    def results(self) -> list[LatencyResult | AvailabilityResult]:
        return [*self.latency, self.availability]

    def objectives(self, status: Status) -> list[str]:
        """The names of the objectives in ``status``."""
        return [r.objective for r in self.results() if r.status is status]

    @property
    def breached(self) -> list[str]:
        return self.objectives(Status.BREACH)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile`` over cumulative ``(upper bound, count)`` buckets: linear
    interpolation inside the bucket holding rank ``q * total``; the highest finite bound when
    that is the +Inf bucket; NaN without a +Inf bucket or without observations."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for le, count in buckets:  # series with the same bound add up, as sum by (le) does
        merged[float(le)] = merged.get(float(le), 0.0) + float(count)
    bounds = sorted(merged)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    counts, highest = [], 0.0
    for le in bounds:  # monotonic, like Prometheus' ensureMonotonic (rate() noise across buckets)
        highest = max(highest, merged[le])
        counts.append(highest)
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start, count, rank = bounds[b - 1], counts[b] - counts[b - 1], rank - counts[b - 1]
    return start + (end - start) * (rank / count)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def latency_result(objective: LatencyObjective, buckets: Sequence[tuple[float, float]]) -> LatencyResult:
    samples = max((c for le, c in buckets if math.isinf(le)), default=0.0)
    p50, p95, p99 = (_finite(histogram_quantile(q, buckets)) for q in QUANTILES)
    estimate = _finite(histogram_quantile(objective.quantile, buckets))
    if samples <= 0 or estimate is None:
        status = Status.INSUFFICIENT
    else:
        status = Status.BREACH if estimate > objective.threshold_s else Status.OK
    return LatencyResult(objective=objective.name, metric=objective.metric, samples=samples, p50_s=p50, p95_s=p95,
                         p99_s=p99, quantile=objective.quantile, threshold_s=objective.threshold_s, status=status)


def availability_result(objective: AvailabilityObjective, by_status: Mapping[str, float]) -> AvailabilityResult:
    total = sum(by_status.values())
    errors = sum(n for code, n in by_status.items() if code.startswith("5"))
    if total <= 0:
        return AvailabilityResult(objective=objective.name, requests=0.0, errors_5xx=0.0, ratio=None,
                                  target=objective.target, status=Status.INSUFFICIENT)
    ratio = (total - errors) / total
    return AvailabilityResult(objective=objective.name, requests=total, errors_5xx=errors, ratio=ratio,
                              target=objective.target, status=Status.OK if ratio >= objective.target else Status.BREACH)


def evaluate(counts: WindowCounts, latency: Sequence[LatencyObjective] = LATENCY_OBJECTIVES,
             availability: AvailabilityObjective = AVAILABILITY) -> SloReport:
    """Every objective against the window's counts."""
    results = [latency_result(o, counts.histograms.get(o.metric, [])) for o in latency]
    avail = availability_result(availability, counts.requests_by_status)
    statuses = {r.status for r in results} | {avail.status}
    overall = (Status.BREACH if Status.BREACH in statuses
               else Status.OK if Status.OK in statuses else Status.INSUFFICIENT)
    return SloReport(status=overall, window=counts.window, latency=results, availability=avail)


def parse_duration(text: str) -> timedelta:
    """A Prometheus-style duration of one unit (``90s``, ``30m``, ``1h``, ``7d``) as a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value, unit = text.strip()[:-1], text.strip()[-1:]
    if unit not in units or not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 1h or 7d")
    return timedelta(seconds=int(value) * units[unit])


def render(report: SloReport) -> str:
    """The report as a plain-text table (what ``omniwatch slo`` prints)."""
    w = report.window

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.1f} ms"

    start = w.start.isoformat() if w.start else "counter start"
    lines = [f"window  {w.source}: {start} .. {w.end.isoformat()} (requested {w.requested_s:.0f} s"
             + (f", covered {w.covered_s:.0f} s" if w.covered_s is not None else "") + ")"]
    if w.note:
        lines.append(f"        {w.note}")
    lines.append(f"{'objective':<24}{'samples':>9}{'p50':>11}{'p95':>11}{'p99':>11}  {'objective':<16}status")
    for r in report.latency:
        target = f"p{r.quantile * 100:g} <= {r.threshold_s * 1000:g} ms"
        lines.append(f"{r.objective:<24}{r.samples:>9.0f}{ms(r.p50_s):>11}{ms(r.p95_s):>11}{ms(r.p99_s):>11}  "
                     f"{target:<16}{r.status.value}")
    a = report.availability
    ratio = "-" if a.ratio is None else f"{a.ratio * 100:.3f} %"
    lines.append(f"{a.objective:<24}{a.requests:>9.0f}{'5xx ' + format(a.errors_5xx, '.0f'):>11}{ratio:>22}  "
                 f"{'>= ' + format(a.target * 100, 'g') + ' %':<16}{a.status.value}")
    lines.append(f"overall: {report.status.value}")
    return "\n".join(lines)
