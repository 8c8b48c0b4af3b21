"""Where SLO counts come from. Scrapes: a real app's /metrics over HTTP, with the baselines stored
in the warehouse (SQLite and PostgreSQL): the window is the delta against the newest snapshot at
least one window old, a shorter one is stated, a restart is a counter reset. Prometheus: the
answers a real Prometheus 2.42 gave to these exact queries (recorded by record_prometheus.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import free_port
from sqlalchemy import func, select

from omniwatch.observability.slo import EXECUTION_LATENCY, SIGNAL_LATENCY, Status, evaluate
from omniwatch.observability.sources import PrometheusSource, ScrapeSource, SloSourceError, prometheus_queries
from omniwatch.serving.app import create_app
from omniwatch.serving.settings import ServingSettings
from omniwatch.settings import Settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FIXTURE = Path(__file__).parent / "fixtures" / "prometheus_query.json"


def app_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, ServingSettings(api_keys=["k"])), raise_server_exceptions=False)


def nonzero(statuses: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in statuses.items() if v}


def test_scrape_windows_are_deltas_against_stored_snapshots(warehouse_url, tmp_path):
    settings = Settings(home=tmp_path / "home", database_url=warehouse_url)
    with app_client(settings) as c:
        source = ScrapeSource("http://testserver/metrics", warehouse_url, http=c)
        c.get("/api/v2/health")
        first = source.counts(HOUR, end=T0)
        assert first.window.start is None and "no earlier snapshot" in first.window.note
        assert nonzero(first.requests_by_status) == {"200": 1.0}  # everything since the counters started

        # Half an hour of traffic: two reads, a real 503 (no model in this home), latencies observed.
        c.get("/api/v2/health")
        c.get("/api/v2/health")
        assert c.post("/api/v2/predict/liquid", json={"target": "BTC"}, headers={"X-API-Key": "k"}).status_code == 503
        instruments = c.app.state.metrics.instruments
        for seconds in [0.12] * 18 + [0.18] * 2:  # p95: rank 19 of 20 falls in (0.15, 0.2] -> 175 ms
            instruments.signal_latency.labels("signals/generate").observe(seconds)
        for _ in range(3):
            instruments.execution_latency.labels("execution/orders").observe(0.05)
        half = source.counts(HOUR, end=T0 + HOUR / 2)
        assert half.window.start == T0 and half.window.covered_s == 1800
        assert "covers 1800 s of the window" in half.window.note
        assert nonzero(half.requests_by_status) == {"200": 2.0, "503": 1.0}  # the scrapes (GET /metrics) left out
        assert dict(half.histograms[SIGNAL_LATENCY])[float("inf")] == 20
        report = evaluate(half)
        assert [(r.objective, r.status) for r in report.results()] == [("signal_latency_p95", Status.BREACH),
                                                                       ("execution_latency_p95", Status.OK),
                                                                       ("availability", Status.BREACH)]
        assert report.latency[0].p95_s == pytest.approx(0.175) and report.availability.ratio == pytest.approx(2 / 3)

        # Two hours in, no traffic since: the baseline is the newest snapshot at least an hour old.
        idle = source.counts(HOUR, end=T0 + 2 * HOUR)
        assert idle.window.start == T0 + HOUR / 2 and idle.window.note == "http://testserver/metrics"
        assert nonzero(idle.requests_by_status) == {} and evaluate(idle).status is Status.INSUFFICIENT

    # A new process: its counters start again, below the stored baseline (a reset, not a negative).
    with app_client(settings) as c:
        source = ScrapeSource("http://testserver/metrics", warehouse_url, http=c)
        c.get("/api/v2/health")
        after = source.counts(HOUR, end=T0 + 3 * HOUR)
        assert after.window.start == T0 + 2 * HOUR
        assert nonzero(after.requests_by_status) == {"200": 1.0}
        assert after.histograms[SIGNAL_LATENCY] == []  # the new process observed no signal yet
        # Snapshots older than the retention are dropped as new ones are stored.
        source.counts(HOUR, end=T0 + timedelta(days=40))
    t = tables.metric_snapshots
    with get_engine(warehouse_url).connect() as conn:
        kept = conn.execute(select(func.count()).select_from(t)).scalar_one()
    assert kept == 1


def test_a_scrape_that_fails_says_why(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(SloSourceError, match="could not scrape"):
        ScrapeSource(closed, f"sqlite:///{tmp_path / 'w.db'}", http=httpx.Client(timeout=2)).counts(HOUR)
    not_metrics = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text="{not exposition")))
    with pytest.raises(SloSourceError, match="not Prometheus exposition"):
        ScrapeSource("http://x/metrics", f"sqlite:///{tmp_path / 'w.db'}", http=not_metrics).counts(HOUR)
    empty = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text="")))
    with pytest.raises(SloSourceError, match=r"omniwatch db upgrade"):  # a warehouse without the table
        ScrapeSource("http://x/metrics", f"sqlite:///{tmp_path / 'w.db'}", http=empty).counts(HOUR)


def replayed_prometheus() -> tuple[httpx.Client, datetime, list[str]]:
    """A client whose Prometheus answers what the real one did to each recorded query (and 400,
    as Prometheus does, to any other)."""
    recorded = json.loads(FIXTURE.read_text())
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        query = request.url.params["query"]
        asked.append(query)
        assert float(request.url.params["time"]) == datetime.fromisoformat(recorded["recorded_at"]).timestamp()
        if query not in recorded["answers"]:
            return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "not recorded"})
        return httpx.Response(200, json=recorded["answers"][query])

    return httpx.Client(transport=httpx.MockTransport(answer)), datetime.fromisoformat(recorded["recorded_at"]), asked


def test_prometheus_increases_over_the_window_become_the_report():
    http, at, asked = replayed_prometheus()
    got = PrometheusSource("http://prometheus:9090", http).counts(timedelta(minutes=1), end=at)
    assert asked == [q for _, q in prometheus_queries(timedelta(minutes=1))]
    assert got.window.source == "prometheus" and got.window.start == at - timedelta(minutes=1)
    # The recording: 4 health reads, 4 predictions and 4 signal calls answered 503 in the window
    # (increase() extrapolates to the window's edges: 4.97 for 4).
    assert got.requests_by_status == pytest.approx({"200": 4.969333, "503": 9.938667}, rel=1e-6)
    assert dict(got.histograms[SIGNAL_LATENCY])[float("inf")] == pytest.approx(4.969333, rel=1e-6)
    assert got.histograms[EXECUTION_LATENCY] == []
    report = evaluate(got)
    assert report.latency[0].status is Status.OK and report.latency[0].p95_s == pytest.approx(0.00475)
    assert report.latency[1].status is Status.INSUFFICIENT
    assert report.availability.ratio == pytest.approx(1 / 3) and report.status is Status.BREACH


def test_prometheus_errors_say_why():
    http, at, _ = replayed_prometheus()
    with pytest.raises(SloSourceError, match="answered 400"):
        PrometheusSource("http://prometheus:9090", http).counts(timedelta(minutes=5), end=at)  # not a recorded query
    with pytest.raises(SloSourceError, match="did not answer"):
        PrometheusSource(f"http://127.0.0.1:{free_port()}", httpx.Client(timeout=2)).counts(HOUR)
