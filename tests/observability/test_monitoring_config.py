"""deploy/monitoring: the rules pass `promtool check rules` and their unit tests (`promtool test
rules`, which can fail: shown on a copy that forgets to leave the scraper's traffic out), name
only metrics the API really exposes, the SLO source's PromQL means what the SLO code assumes, and
the Alertmanager config is valid (`amtool check-config`) and is what its renderer writes."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from graph.helpers import fresh_sqlite_warehouse
from prometheus_client.parser import text_string_to_metric_families

from omniwatch.observability import alertmanager
from omniwatch.observability.sources import prometheus_queries
from omniwatch.serving.app import create_app
from omniwatch.serving.settings import ServingSettings
from omniwatch.settings import Settings

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES, AM = MONITORING / "alerts.yml", MONITORING / "alertmanager.yml"
RULE_TESTS = MONITORING / "tests" / "alerts_test.yml"


def tool(name: str) -> str:
    """The Debian packages prometheus (promtool) and prometheus-alertmanager (amtool): a missing
    tool fails the test, it does not skip it."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: apt-get install prometheus prometheus-alertmanager"
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


def test_rules_pass_promtool_check_and_their_unit_tests():
    checked = run(tool("promtool"), "check", "rules", RULES)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    tested = run(tool("promtool"), "test", "rules", RULE_TESTS)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_rule_tests_fail_when_the_scrapes_count_toward_availability(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace(',route!="/metrics"', "").replace(
        '{route!="/metrics"}', ""))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "alerts_test.yml")
    tested = run(tool("promtool"), "test", "rules", tmp_path / "tests" / "alerts_test.yml")
    failures = tested.stdout + tested.stderr
    assert tested.returncode != 0 and "alertname: ApiErrorBudgetBurnFast" in failures, failures


def exposed_names(tmp_path: Path) -> set[str]:
    """Every sample name a real app's /metrics can carry (families without samples included)."""
    url = fresh_sqlite_warehouse(tmp_path / "home" / "warehouse.db")
    app = create_app(Settings(home=tmp_path / "home", database_url=url), ServingSettings(api_keys=["k"]))
    with TestClient(app) as c:
        text = c.get("/metrics").text
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}
    return {f.name + s for f in text_string_to_metric_families(text) for s in suffixes.get(f.type, ("",))}


def test_rules_use_only_metrics_the_api_exposes(tmp_path):
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {m for r in rules for m in re.findall(r"(?<![:\w])omniwatch_[a-z_]+(?![:\w])", r["expr"])}
    assert used == {"omniwatch_signal_latency_seconds_bucket", "omniwatch_execution_latency_seconds_bucket",
                    "omniwatch_http_requests_total", "omniwatch_data_freshness_seconds"}
    assert used <= exposed_names(tmp_path)
    alerts = {r["alert"]: r["labels"] for r in rules if "alert" in r}
    assert {"ApiAvailabilityLow", "SignalLatencyP99Degraded", "ApiErrorBudgetBurnFast", "ApiErrorBudgetBurnSlow",
            "DataFreshnessStale", "ExecutionLatencyP95High"} <= set(alerts)
    assert {labels["severity"] for labels in alerts.values()} == {"P1", "P2"}


def test_the_prometheus_source_queries_mean_increases_by_bucket_and_status(tmp_path):
    """The SLO source's PromQL, evaluated by promtool on series like the API's: per-minute
    counters over a 10-minute window give exact increases, the /metrics route left out."""
    (signal, _), (execution, _), (requests, _) = [(q, n) for n, q in prometheus_queries(timedelta(minutes=10))]
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'omniwatch_signal_latency_seconds_bucket{endpoint="signals/generate",le="0.15"}',
             "values": "0+6x20"},
            {"series": 'omniwatch_signal_latency_seconds_bucket{endpoint="execution/run",le="0.15"}',
             "values": "0+1x20"},
            {"series": 'omniwatch_signal_latency_seconds_bucket{endpoint="signals/generate",le="+Inf"}',
             "values": "0+10x20"},
            {"series": 'omniwatch_http_requests_total{method="GET",route="/api/v2/health",status="200"}',
             "values": "0+10x20"},
            {"series": 'omniwatch_http_requests_total{method="POST",route="/api/v2/predict/liquid",status="503"}',
             "values": "0+1x20"},
            {"series": 'omniwatch_http_requests_total{method="GET",route="/metrics",status="200"}',
             "values": "0+100x20"}],
        "promql_expr_test": [
            {"expr": signal, "eval_time": "20m",
             "exp_samples": [{"labels": '{le="0.15"}', "value": 70}, {"labels": '{le="+Inf"}', "value": 100}]},
            {"expr": execution, "eval_time": "20m", "exp_samples": []},
            {"expr": requests, "eval_time": "20m",
             "exp_samples": [{"labels": '{status="200"}', "value": 100}, {"labels": '{status="503"}', "value": 10}]}],
    }]}
    path = tmp_path / "queries_test.yml"
    path.write_text(yaml.safe_dump(test))
    tested = run(tool("promtool"), "test", "rules", path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def no_alert_env(monkeypatch):
    for name in alertmanager.AlertmanagerSettings.model_fields:
        monkeypatch.delenv(f"OMNIWATCH_ALERT_{name.upper()}", raising=False)


def test_the_alertmanager_config_is_valid_and_is_its_rendering(no_alert_env, tmp_path, capsys):
    assert AM.read_text() == alertmanager.render(alertmanager.AlertmanagerSettings())
    checked = run(tool("amtool"), "check-config", AM)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    routes = {r["matchers"][0]: r for r in yaml.safe_load(AM.read_text())["route"]["routes"]}
    assert routes['severity="P1"']["repeat_interval"] == "5m" and routes['severity="P2"']["repeat_interval"] == "15m"

    alertmanager.main(["--p1-repeat", "10m", "--p2-repeat", "1h", "--webhook-url", "http://omniwatch:8000/x"])
    other = tmp_path / "alertmanager.yml"
    other.write_text(capsys.readouterr().out)
    assert run(tool("amtool"), "check-config", other).returncode == 0
    config = yaml.safe_load(other.read_text())
    assert [r["repeat_interval"] for r in config["route"]["routes"]] == ["10m", "1h"]
    assert {c["url"] for r in config["receivers"] for c in r["webhook_configs"]} == {"http://omniwatch:8000/x"}

    with pytest.raises(ValueError, match="repeat"):
        alertmanager.main(["--p1-repeat", "often"])
    other.write_text(AM.read_text().replace("repeat_interval: 5m", "repeat_interval: often"))
    assert run(tool("amtool"), "check-config", other).returncode != 0  # amtool does refuse a bad file
