"""Records what a real Prometheus answers to the SLO source's queries (the replayed fixture of
test_sources.py): a local API (empty home) scraped every second by Debian's Prometheus 2.42,
a few requests, then each query of ``prometheus_queries(1m)`` at one instant.

    .venv/bin/python tests/observability/record_prometheus.py   # rewrites fixtures/prometheus_query.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from graph.helpers import fresh_sqlite_warehouse  # noqa: E402
from servers import free_port, running  # noqa: E402

from omniwatch.observability.sources import prometheus_queries  # noqa: E402


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="omniwatch-record-"))
    fresh_sqlite_warehouse(root / "home" / "warehouse.db")
    api, prom = free_port(), free_port()
    env = {**os.environ, "OMNIWATCH_HOME": str(root / "home"), "OMNIWATCH_API_PORT": str(api),
           "OMNIWATCH_API_KEYS": "ops:record-key"}
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: omniwatch-api\n"
        f"  static_configs: [{{targets: ['127.0.0.1:{api}']}}]\n")
    base = f"http://127.0.0.1:{api}"
    with running([sys.executable, "-m", "omniwatch.serving.app"], env=env, cwd=root, log_path=root / "api.log",
                 ready=lambda: httpx.get(f"{base}/api/v2/health").status_code == 200, what="the API"), \
         running(["prometheus", f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{prom}"], env=env, cwd=root, log_path=root / "prom.log",
                 ready=lambda: httpx.get(f"http://127.0.0.1:{prom}/-/ready").status_code == 200, what="Prometheus"):
        key = {"X-API-Key": "record-key"}

        def requests(n: int) -> None:
            for _ in range(n):
                # 503 (no model): predictions, and signals (their latency is observed)
                httpx.post(f"{base}/api/v2/predict/liquid", json={"target": "BTC"}, headers=key, timeout=60)
                httpx.post(f"{base}/api/v2/signals/generate", json={}, headers=key, timeout=60)
                httpx.get(f"{base}/api/v2/health")

        # increase() misses a series' first value (it has no earlier sample), so every series
        # exists before the scrapes that form the baseline.
        requests(1)  # also the slow first calls (the registry is created on the first one)
        time.sleep(4)
        requests(4)
        time.sleep(4)
        at = datetime.now(UTC)
        answers = {}
        for _, promql in prometheus_queries(timedelta(minutes=1)):
            r = httpx.get(f"http://127.0.0.1:{prom}/api/v1/query", params={"query": promql, "time": at.timestamp()})
            answers[promql] = r.json()
    out = {"recorded_at": at.isoformat(), "prometheus": "2.42.0 (Debian)", "window": "1m", "answers": answers}
    (HERE / "fixtures" / "prometheus_query.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
