"""Prometheus and Grafana of the deployment: configs the tools accept, queries that work.

promtool checks prometheus.yml (with the alert rules it loads) and parses every PromQL query of the
dashboard; every metric a query names is one the API exports; every SQL panel runs against a
migrated warehouse on the local PostgreSQL, Grafana's time macro expanded.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import pg_url_for
from tests.deploy.conftest import DEPLOY, ROOT, tool

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC = re.compile(r"\bomniwatch_[a-z0-9_]+")


def panels() -> list[dict]:
    found = [p for path in DASHBOARDS for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]
    assert found, "no dashboard panels"
    return found


def queries(kind: str) -> list[tuple[str, str]]:
    key = "expr" if kind == "prometheus" else "rawSql"
    return [(p["title"], t[key]) for p in panels() for t in p["targets"] if t["datasource"]["uid"] == kind_uid(kind)]


def kind_uid(kind: str) -> str:
    return {"prometheus": "prometheus", "warehouse": "warehouse"}[kind]


def test_prometheus_config_is_valid():
    config = yaml.safe_load((DEPLOY / "monitoring" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    api = next(job for job in config["scrape_configs"] if job["job_name"] == "omniwatch-api")
    assert api["metrics_path"] == "/metrics" and api["static_configs"][0]["targets"] == ["api:8000"]
    done = subprocess.run([tool("promtool"), "check", "config", str(DEPLOY / "monitoring" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_promql_parses_and_names_exported_metrics(tmp_path):
    exported = set(METRIC.findall((ROOT / "omniwatch" / "serving" / "metrics.py").read_text()))
    promql = queries("prometheus")
    assert len(promql) >= 10
    for title, expr in promql:
        for name in METRIC.findall(expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert name in exported or base in exported, f"{title}: {name} is not an Omniwatch metric"
    # promtool parses each query as a recording rule's expression.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(promql)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_covers_slos_freshness_drift_and_pnl():
    text = json.dumps(panels())
    for needle in ("omniwatch_http_requests_total", "omniwatch_signal_latency_seconds_bucket",
                   "omniwatch_execution_latency_seconds_bucket", "omniwatch_data_freshness_seconds",
                   "omniwatch_model_decisions_total", "positions_snapshots", "fills"):
        assert needle in text, needle


@pytest.mark.postgres
def test_dashboard_sql_runs_on_the_warehouse(make_pg_database):
    """Each SQL panel against a migrated warehouse holding one position: the PnL is read back."""
    sql = queries("warehouse")
    assert len(sql) >= 2
    engine = sa.create_engine(pg_url_for(make_pg_database(migrated=True)))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO positions_snapshots (strategy_id, track, symbol, as_of_ts, qty, avg_price, mark_price,"
                " unrealized_pnl, realized_pnl, fees, funding, slippage_cost, reason)"
                " VALUES ('liquid_v2', 'liquid', 'BTC', now() - interval '1 hour', 0.1, 60000, 61000, 100, 25,"
                " 3, 1, 2, 'mark')"))
            for title, raw in sql:
                query = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '1 day' AND now()", raw)
                assert "$__" not in query, f"{title}: a Grafana macro this test does not expand"
                rows = conn.execute(sa.text(query)).mappings().all()
                if "positions_snapshots" in raw:
                    assert rows and 125 in {row.get("value", row.get("pnl")) for row in rows}, title
    finally:
        engine.dispose()


def test_grafana_provisioning_matches_the_compose_mounts(compose_config):
    grafana = compose_config["services"]["grafana"]
    mounts = {m.split(":")[1]: Path(m.split(":")[0]) for m in grafana["volumes"] if m.startswith("/")}
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert mounts[providers[0]["options"]["path"]] == GRAFANA / "dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())["datasources"]
    uids = {s["uid"] for s in sources}
    assert {t["datasource"]["uid"] for p in panels() for t in p["targets"]} <= uids
    warehouse = next(s for s in sources if s["uid"] == "warehouse")
    # Credentials are the container's environment, set by compose from the deployment's secrets.
    assert warehouse["secureJsonData"]["password"] == "$WAREHOUSE_PASSWORD"
    assert grafana["environment"]["WAREHOUSE_PASSWORD"] == "pg-test-secret"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "grafana-test-secret"
    assert "3000" not in [p.rsplit(":", 2)[-2] if isinstance(p, str) else str(p["published"]) for p in grafana["ports"]]
