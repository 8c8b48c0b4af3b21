"""GET /metrics over real HTTP on a private copy of the trained warehouse (SQLite and PostgreSQL): the counters move by
exactly the requests made, labels are route templates, freshness and model decisions are read
from the warehouse, and with PROMETHEUS_MULTIPROC_DIR several worker processes add up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select

from omniwatch.serving import metrics
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for

P = "/api/v2"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(c) -> Samples:
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def http(before: Samples, after: Samples, method: str, route: str, status: int) -> tuple[float, float]:
    labels = {"method": method, "route": route, "status": str(status)}
    return (delta(before, after, "omniwatch_http_requests_total", **labels),
            delta(before, after, "omniwatch_http_request_duration_seconds_count", **labels))


def assert_moved(before: Samples, after: Samples, name: str, keys: tuple[str, ...], expected: Counter) -> None:
    """Every series of ``name`` moved by exactly ``expected`` (keyed by its label values), the rest not at all."""
    moved = {tuple(dict(lb)[k] for k in keys): v - before.get((n, lb), 0.0) for (n, lb), v in after.items()
             if n == name}
    assert {k: v for k, v in moved.items() if v} == {(k if isinstance(k, tuple) else (k,)): float(v)
                                                      for k, v in expected.items() if v}, name


def test_metrics_count_requests_decisions_orders_and_risk_blocks(own_warehouse, monkeypatch):
    monkeypatch.setattr(metrics, "CACHE_S", 0.0)  # every scrape reads the warehouse
    url = own_warehouse.warehouse_url
    with client_for(own_warehouse, sizing_weight_band=0.0) as c:
        before = scrape(c)
        assert c.get(f"{P}/health").status_code == 200
        assert c.get(f"{P}/execution/orders/does-not-exist-123").status_code == 404
        assert c.get("/no/such/path").status_code == 404
        filled = c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.001}, headers=AUTH)
        assert filled.status_code == 200 and filled.json()["status"] == "filled", filled.text
        gen = c.post(f"{P}/signals/generate", json={"horizons": ["1h"]}, headers=AUTH)
        assert gen.status_code == 200, gen.text
        kill = c.post(f"{P}/risk/kill-switch/trigger", json={"track": "liquid", "strategy_id": "liquid_v2",
                                                             "reason": "test: metrics"}, headers=AUTH)
        assert kill.status_code == 200, kill.text
        refused = c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.001}, headers=AUTH)
        assert refused.status_code == 423, refused.text
        blocked = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH)
        assert blocked.status_code == 423, blocked.text
        codes = Counter(refused.json()["context"]["codes"]) + Counter(blocked.json()["context"]["codes"])
        assert codes["kill_switch_triggered:liquid:liquid_v2"] == 2, codes
        refused_actions = Counter(d["action"] for d in blocked.json()["context"]["decisions"])
        refused_orders = Counter((d["order"]["status"], d["order"]["adapter"])
                                 for d in blocked.json()["context"]["decisions"] if d["order"])
        assert refused_actions["denied"] >= 1 and refused_orders[("denied", "paper")] >= 1, refused_actions
        after = scrape(c)

        # HTTP: one request per (method, route template, status), in the counter and the histogram.
        assert http(before, after, "GET", f"{P}/health", 200) == (1, 1)
        assert http(before, after, "GET", f"{P}/execution/orders/{{order_id}}", 404) == (1, 1)
        assert http(before, after, "GET", metrics.UNMATCHED, 404) == (1, 1)
        assert http(before, after, "POST", f"{P}/execution/orders", 200) == (1, 1)
        assert http(before, after, "POST", f"{P}/execution/orders", 423) == (1, 1)
        assert http(before, after, "POST", f"{P}/execution/run", 423) == (1, 1)
        assert http(before, after, "POST", f"{P}/signals/generate", 200) == (1, 1)
        assert http(before, after, "GET", "/metrics", 200) == (1, 1)  # the first scrape
        routes = {dict(labels).get("route") for _, labels in after} - {None}
        assert not any("does-not-exist" in r or "/no/such" in r for r in routes), routes
        buckets = value(after, "omniwatch_http_request_duration_seconds_bucket", method="GET",
                        route=f"{P}/health", status="200", le="+Inf")
        assert buckets == value(after, "omniwatch_http_request_duration_seconds_count", method="GET",
                                route=f"{P}/health", status="200")

        # Latencies, orders, risk blocks, and the decisions of the refused run.
        assert delta(before, after, "omniwatch_signal_latency_seconds_count", endpoint="signals/generate") == 1
        assert delta(before, after, "omniwatch_signal_latency_seconds_count", endpoint="execution/run") == 1
        assert delta(before, after, "omniwatch_execution_latency_seconds_count", endpoint="execution/orders") == 2
        assert delta(before, after, "omniwatch_execution_latency_seconds_count", endpoint="execution/run") == 1
        assert_moved(before, after, "omniwatch_execution_decisions_total", ("action",), refused_actions)
        assert_moved(before, after, "omniwatch_orders_total", ("status", "adapter"),
                     refused_orders + Counter({("filled", "paper"): 1, ("denied", "paper"): 1}))
        assert_moved(before, after, "omniwatch_risk_blocks_total", ("code",), codes)

        # After a reset the run trades: each decision's action, and each order it sent.
        assert c.post(f"{P}/risk/kill-switch/reset", json={"track": "liquid", "strategy_id": "liquid_v2",
                                                           "reason": "test: resolved"}, headers=AUTH).status_code == 200
        run = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH)
        assert run.status_code == 200, run.text
        actions = Counter(d["action"] for d in run.json()["decisions"])
        assert actions["trade"] >= 1, actions
        traded = Counter((d["order"]["status"], d["order"]["adapter"]) for d in run.json()["decisions"]
                         if d["action"] == "trade")
        again = scrape(c)
        assert_moved(after, again, "omniwatch_execution_decisions_total", ("action",), actions)
        assert_moved(after, again, "omniwatch_orders_total", ("status", "adapter"), traded)
        assert_moved(after, again, "omniwatch_risk_blocks_total", ("code",), Counter())
        assert delta(after, again, "omniwatch_execution_latency_seconds_count", endpoint="execution/run") == 1

        # Freshness: a sample per market table with rows, none for an empty one, never negative;
        # market_bars defines the replay clock, so its age is 0.
        with get_engine(url).connect() as conn:
            filled_tables = {name for name, t in tables.RAW_MARKET_TABLES.items()
                             if conn.execute(select(func.count()).select_from(t)).scalar_one()}
            promotions = {(a, o or "none"): n for a, o, n in conn.execute(
                select(tables.model_promotions.c.action, tables.model_promotions.c.outcome, func.count())
                .group_by(tables.model_promotions.c.action, tables.model_promotions.c.outcome))}
        fresh = {dict(lb)["source"]: v for (n, lb), v in again.items() if n == "omniwatch_data_freshness_seconds"}
        assert "market_bars" in filled_tables and set(fresh) == filled_tables, (fresh, filled_tables)
        assert all(v >= 0 for v in fresh.values()) and fresh["market_bars"] == 0

        # Model decisions: the model_promotions rows by action and outcome; a new row moves it.
        model = {(dict(lb)["action"], dict(lb)["outcome"]): v for (n, lb), v in again.items()
                 if n == "omniwatch_model_decisions_total"}
        assert promotions and model == promotions
        with get_engine(url).begin() as conn:
            conn.execute(insert(tables.model_promotions).values(
                model_name="omniwatch-liquid", action="gate", outcome="rejected", actor="test", reason="test",
                created_at=datetime.now(UTC)))
        assert delta(again, scrape(c), "omniwatch_model_decisions_total", action="gate", outcome="rejected") == 1

        # WebSocket metrics exist before the streams do, every drop reason at 0.
        for reason in metrics.WEBSOCKET_DROP_REASONS:
            assert ("omniwatch_websocket_dropped_messages_total", (("reason", reason),)) in again
        assert value(again, "omniwatch_websocket_connections") == 0
        assert "/metrics" not in c.get("/openapi.json").json()["paths"]


def test_each_app_has_its_own_registry(own_home):
    with client_for(own_home) as a, client_for(own_home) as b:
        assert a.get(f"{P}/health").status_code == 200
        labels = {"method": "GET", "route": f"{P}/health", "status": "200"}
        assert value(scrape(a), "omniwatch_http_requests_total", **labels) == 1
        assert value(scrape(b), "omniwatch_http_requests_total", **labels) == 0


WORKER = textwrap.dedent("""
    import sys
    from fastapi.testclient import TestClient
    from omniwatch.serving.app import create_app
    from omniwatch.serving.settings import ServingSettings
    from omniwatch.settings import Settings

    home, n, show = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "scrape"
    app = create_app(Settings(home=home), ServingSettings(api_keys=["k"]))
    with TestClient(app) as c:
        for _ in range(n):
            assert c.get("/api/v2/health").status_code == 200
        if show:
            print(c.get("/metrics").text)
""")


def test_multiprocess_mode_adds_up_the_workers(own_home, tmp_path, monkeypatch):
    """Two worker processes share PROMETHEUS_MULTIPROC_DIR: the second one's /metrics shows the
    requests of both; each warehouse collector appears once."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    (tmp_path / "prom").mkdir()

    def worker(n: int, mode: str) -> str:
        out = subprocess.run([sys.executable, "-c", WORKER, str(own_home.home), str(n), mode],
                             capture_output=True, text=True, timeout=180, env=os.environ.copy())
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    worker(2, "quiet")
    text = worker(3, "scrape")
    samples = parse(text)
    labels = {"method": "GET", "route": f"{P}/health", "status": "200"}
    assert value(samples, "omniwatch_http_requests_total", **labels) == 5
    assert value(samples, "omniwatch_http_request_duration_seconds_count", **labels) == 5
    fresh = [lb for n, lb in samples if n == "omniwatch_data_freshness_seconds"]
    assert fresh and len(fresh) == len(set(fresh))  # registered once, not once per worker
    assert len(list((tmp_path / "prom").glob("*.db"))) >= 2  # both processes wrote their values


def test_a_multiprocess_dir_set_after_import_is_refused(own_home, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="before the process starts"):
        client_for(own_home)
