"""The live path with real processes: the API under uvicorn, Debian's Alertmanager 0.25 with the
rendered config. An alert posted to Alertmanager (the one promtool proves SignalLatencyP95High
fires with, deploy/monitoring/tests/alerts_test.yml) reaches POST /api/v2/alerts/notify with the
bearer key from its credentials_file and is stored; `omniwatch slo` and the api_slo_report asset
compute the SLO report from the same API's /metrics."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
from click.testing import CliRunner
from graph.helpers import fresh_sqlite_warehouse
from servers import free_port, running
from sqlalchemy import select

from omniwatch.assets.slo import api_slo_report
from omniwatch.cli import main
from omniwatch.observability.alertmanager import AlertmanagerSettings, render
from omniwatch.observability.resource import SloSourceResource
from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.settings import get_settings
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

SECRET = "am-secret-7f3a"


@dataclass
class Stack:
    api: str
    alertmanager: str
    warehouse_url: str

    def server_error(self) -> None:
        """A real 5xx: the Dagster webserver tasks go to is down (503 task_executor_unavailable)."""
        window = {"start": "2024-08-01T00:00:00Z", "end": "2024-08-03T00:00:00Z"}
        r = httpx.post(f"{self.api}/api/v2/tasks/backtest", json=window, headers={"X-API-Key": "ops-key"}, timeout=30)
        assert r.status_code == 503, r.text


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    am_binary = shutil.which("prometheus-alertmanager")
    assert am_binary, "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
    root = tmp_path_factory.mktemp("alert_delivery")
    url = fresh_sqlite_warehouse(root / "home" / "warehouse.db")
    api_port, am_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIWATCH_")}
    env.update(OMNIWATCH_HOME=str(root / "home"), OMNIWATCH_API_PORT=str(api_port),
               OMNIWATCH_API_KEYS=f"alertmanager:{SECRET},ops:ops-key",
               OMNIWATCH_DAGSTER_WEBSERVER_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    (root / "api_key").write_text(SECRET + "\n")
    api = f"http://127.0.0.1:{api_port}"
    config = AlertmanagerSettings(p1_group_wait="0s", p1_group_interval="1s", p2_group_wait="0s",
                                  webhook_url=f"{api}/api/v2/alerts/notify", credentials_file=str(root / "api_key"))
    (root / "alertmanager.yml").write_text(render(config))
    am = f"http://127.0.0.1:{am_port}"
    with running([sys.executable, "-m", "omniwatch.serving.app"], env=env, cwd=root, log_path=root / "api.log",
                 ready=lambda: httpx.get(f"{api}/api/v2/health").status_code == 200, what="the API"), \
         running([am_binary, f"--config.file={root / 'alertmanager.yml'}", f"--storage.path={root / 'am'}",
                  f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="], env=env, cwd=root,
                 log_path=root / "alertmanager.log", ready=lambda: httpx.get(f"{am}/-/ready").status_code == 200,
                 what="Alertmanager"):
        yield Stack(api, am, url)


def test_an_alert_travels_from_alertmanager_to_the_warehouse(stack):
    started = datetime.now(UTC).replace(microsecond=0)
    alert = {"labels": {"alertname": "SignalLatencyP95High", "severity": "P1", "slo": "signal_latency",
                        "route": "signals/generate", "endpoint": "signals/generate"},
             "annotations": {"summary": "signals/generate: signal p95 197.5ms (objective 150 ms)"},
             "startsAt": started.isoformat().replace("+00:00", "Z"), "generatorURL": "http://prometheus:9090/graph"}
    sent = time.monotonic()
    r = httpx.post(f"{stack.alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert r.status_code == 200, r.text
    t = tables.alert_notifications
    row = None
    while row is None and time.monotonic() - sent < 10:
        with get_engine(stack.warehouse_url).connect() as conn:
            row = conn.execute(select(t).where(t.c.alertname == "SignalLatencyP95High")).mappings().first()
        time.sleep(0.1)
    assert row is not None, "Alertmanager did not deliver the alert in 10 s"
    print(f"alert delivered and stored {time.monotonic() - sent:.2f} s after it was posted to Alertmanager")
    assert (row["severity"], row["route"], row["status"], row["receiver"]) == (
        "P1", "signals/generate", "firing", "omniwatch-p1")
    assert row["received_by"] == "alertmanager"  # the bearer key from credentials_file, by its name
    assert row["starts_at"] == started and row["ends_at"] is None and len(row["fingerprint"]) == 16
    assert row["annotations"]["summary"].startswith("signals/generate: signal p95")
    listed = httpx.get(f"{stack.api}/api/v2/alerts", params={"severity": "P1"}).json()["alerts"]
    assert [a["fingerprint"] for a in listed] == [row["fingerprint"]]


def slo_cli(metrics_url: str, database_url: str, *args: str):
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["slo", "--metrics-url", metrics_url, "--prometheus-url", "", *args],
                                  env={"OMNIWATCH_DATABASE_URL": database_url})
    finally:
        get_settings.cache_clear()


def test_omniwatch_slo_reports_its_window_and_exits_1_on_a_breach(stack, tmp_path):
    stack.server_error()
    snapshots = fresh_sqlite_warehouse(tmp_path / "slo.db")
    first = slo_cli(f"{stack.api}/metrics", snapshots, "--json")
    assert first.exit_code == 1, first.output  # a 5xx in the window: availability breached
    report = json.loads(first.output)
    assert report["status"] == "breach" and report["availability"]["errors_5xx"] >= 1
    assert report["window"]["source"] == "scrape" and report["window"]["start"] is None  # since the counters started
    assert "no earlier snapshot" in report["window"]["note"] and report["window"]["requested_s"] == 3600

    second = slo_cli(f"{stack.api}/metrics", snapshots, "--window", "30m")
    assert second.exit_code == 0, second.output  # nothing but scrapes since: no observation, no breach
    print(second.output)
    baseline = datetime.fromisoformat(report["window"]["end"])  # the first run's scrape is the baseline
    assert f"window  scrape: {baseline.isoformat()} .. " in second.output
    assert "requested 1800 s" in second.output and "overall: insufficient_observation" in second.output

    bad = slo_cli(f"http://127.0.0.1:{free_port()}/metrics", snapshots)
    assert bad.exit_code == 2 and "could not scrape" in bad.output


def test_the_asset_reports_the_slos_and_its_check_fails_on_a_breach(stack, tmp_path):
    stack.server_error()
    resources = {"slo_source": SloSourceResource(metrics_url=f"{stack.api}/metrics"),
                 "warehouse": WarehouseResource(database_url=fresh_sqlite_warehouse(tmp_path / "slo.db"))}
    with dg.instance_for_test() as instance:
        result = dg.materialize([api_slo_report], resources=resources, instance=instance)
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        check = result.get_asset_check_evaluations()[0]
        assert meta["status"].value == "breach" and meta["window_source"].value == "scrape"
        assert meta["window_start"].value == "counter start" and meta["errors_5xx"].value >= 1
        assert "overall: breach" in meta["report"].value
        assert not check.passed and check.check_name == "api_slos_are_met"
        assert check.metadata["breached"].value == "availability"

        httpx.get(f"{stack.api}/api/v2/health")  # one good answer since the first report
        result = dg.materialize([api_slo_report], resources=resources, instance=instance)
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        check = result.get_asset_check_evaluations()[0]
        assert meta["status"].value == "ok" and meta["availability"].value == 1.0 and check.passed
        assert meta["window_start"].value != "counter start"
        assert check.metadata["insufficient_observation"].value == "signal_latency_p95, execution_latency_p95"
