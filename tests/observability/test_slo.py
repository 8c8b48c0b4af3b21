"""SLO arithmetic on tiny inputs: quantiles as PromQL's histogram_quantile computes them (the
same bucket sets as deploy/monitoring/tests/alerts_test.yml, where Prometheus itself gives these
values), statuses per objective, and the window stated in every report."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from omniwatch.observability.slo import (
    EXECUTION_LATENCY,
    SIGNAL_LATENCY,
    Status,
    Window,
    WindowCounts,
    evaluate,
    histogram_quantile,
    parse_duration,
    render,
)

INF = math.inf
END = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WINDOW = Window(source="scrape", requested_s=3600, start=END - timedelta(hours=1), end=END, covered_s=3600)
# 60 observations between 150 and 200 ms; 95 of 100 under 100 ms and 5 over 1 s.
SLOW = [(0.1, 0), (0.15, 0), (0.2, 60), (0.3, 60), (INF, 60)]
TAIL = [(0.1, 95), (0.3, 95), (1.0, 95), (INF, 100)]


def test_quantiles_match_prometheus_histogram_quantile():
    # Values promtool evaluates for the same buckets (alerts_test.yml, promql_expr_test).
    assert histogram_quantile(0.95, SLOW) == pytest.approx(0.1975)
    assert histogram_quantile(0.99, [(0.3, 0), (0.5, 60), (INF, 60)]) == pytest.approx(0.498)
    assert histogram_quantile(0.95, TAIL) == pytest.approx(0.1)
    assert histogram_quantile(0.99, TAIL) == 1.0  # rank in the +Inf bucket: the highest finite bound
    assert histogram_quantile(0.5, [(0.1, 10), (0.2, 30), (INF, 40)]) == pytest.approx(0.15)  # 20th of 40: mid-bucket


def test_quantile_edge_cases_follow_promql():
    assert math.isnan(histogram_quantile(0.5, [(0.1, 5), (0.2, 5)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0), (INF, 0)]))  # no observation
    assert histogram_quantile(-0.1, SLOW) == -INF and histogram_quantile(1.1, SLOW) == INF
    # Series with the same bound add up (sum by (le)); non-monotonic counts are made monotonic.
    assert histogram_quantile(0.95, [*SLOW, *SLOW]) == pytest.approx(0.1975)
    assert histogram_quantile(0.5, [(0.1, 10), (0.2, 8), (INF, 20)]) == pytest.approx(0.1)


def counts(signal, execution, statuses) -> WindowCounts:
    return WindowCounts(window=WINDOW, histograms={SIGNAL_LATENCY: signal, EXECUTION_LATENCY: execution},
                        requests_by_status=statuses)


def test_each_objective_is_ok_breached_or_insufficient():
    fast = [(0.1, 90), (0.15, 100), (INF, 100)]  # p95 = 125 ms
    report = evaluate(counts(fast, [], {"200": 9990, "404": 5, "503": 5}))
    by_name = {r.objective: r for r in report.latency}
    assert by_name["signal_latency_p95"].status is Status.OK
    assert by_name["signal_latency_p95"].p95_s == pytest.approx(0.125)
    assert by_name["execution_latency_p95"].status is Status.INSUFFICIENT
    assert by_name["execution_latency_p95"].p95_s is None and by_name["execution_latency_p95"].samples == 0
    assert report.availability.ratio == pytest.approx(0.9995) and report.availability.status is Status.OK
    assert report.status is Status.OK and report.breached == []

    report = evaluate(counts(SLOW, [(0.3, 90), (0.5, 100), (INF, 100)], {"200": 998, "500": 2}))
    assert {r.objective: r.status for r in report.latency} == {"signal_latency_p95": Status.BREACH,
                                                               "execution_latency_p95": Status.BREACH}
    assert report.availability.status is Status.BREACH and report.availability.errors_5xx == 2
    assert report.status is Status.BREACH
    assert report.breached == ["signal_latency_p95", "execution_latency_p95", "availability"]


def test_a_p95_exactly_on_the_threshold_meets_it_and_nothing_is_insufficient_observation():
    on = [(0.1, 0), (0.15, 95), (INF, 100)]  # 95 % at or under 150 ms: the estimate is 150 ms exactly
    report = evaluate(counts(on, [], {}))
    assert report.latency[0].p95_s == pytest.approx(0.15) and report.latency[0].status is Status.OK
    nothing = evaluate(counts([], [], {}))
    assert nothing.status is Status.INSUFFICIENT
    assert {r.status for r in nothing.results()} == {Status.INSUFFICIENT}
    assert nothing.availability.ratio is None


def test_the_rendered_report_states_its_window():
    text = render(evaluate(counts(SLOW, [], {"200": 10})))
    assert "window  scrape: 2026-12-07T08:00:00+00:00 .. 2026-12-07T09:00:00+00:00 (requested 3600 s" in text
    assert "197.5 ms" in text and "breach" in text and "insufficient_observation" in text
    assert text.endswith("overall: breach")


def test_durations():
    assert parse_duration("90s") == timedelta(seconds=90) and parse_duration("7d") == timedelta(days=7)
    for bad in ("", "1", "h", "-1h", "0m", "1.5h", "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
