"""Execution latency and throughput in paper mode (prints figures; asserts nothing).

    python bench/exec_bench.py [--home PATH] [--duration 8] [--connections 1,16,64] [--json out.json]
                               [--database-url postgresql://...] [--workers N]

``--home`` is a home with a trained champion (default ``.omniwatch/exec-bench``, built as
bench/serve_bench.py builds its home when it has no champion yet: four months of the bundled sample
and a small training). The bench never writes into it: every run works on a temporary copy, so runs
start from the same state and nothing piles up (``--database-url``: the copy's warehouse goes into
that empty PostgreSQL database instead of SQLite). It starts the API with uvicorn (one worker,
loopback, its own process group, the paper adapter; ``--workers N``: N uvicorn workers) and drives it
with ``wrk`` (bench/wrk/exec_request.lua) at each connection count, measuring in the same run:

- ``health (floor)``: ``GET /api/v2/health``, an in-memory answer through the same app, auth-free
  middleware and thread pool: what any route costs here.
- ``execution/run trade``: ``POST /api/v2/execution/run`` (24h, paper) with a fresh ``strategy_id``
  per request, so every request predicts the three targets, stores their signals, sizes from a
  flat book, checks risk and sends (and stores) a market IOC order per target with a direction:
  the full signal -> order -> fill -> position path. Re-running one signal would only measure the
  idempotent answer (the signal's order exists: ``hold``), which is the next case.
- ``execution/run repeat``: the same body every time (one strategy, the same newest signals):
  predict, store, size, find the existing order, record ``hold`` decisions.
- ``execution/orders``: ``POST /api/v2/execution/orders``, one 0.001 BTC market IOC order with
  ``max_slippage_bps`` 50, a unique ``client_order_id`` and strategy per request: risk + paper
  venue + store, without prediction or sizing.

The API runs with ``OMNIWATCH_SIZING_WEIGHT_BAND=0`` and signal thresholds of 0.01 bps (the test
settings): the tiny bench model's forecasts are small, and with the default no-trade band nothing
would be sent. Prints p50/p95/p99 and requests/s per case and connection count, as a table and as
JSON, with what the requests did (decisions and orders written). Goal (reported, not asserted):
``execution/run`` p95 under 30 ms at 16 connections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
warnings.simplefilter("ignore")  # Dagster's beta warnings when ensure_model loads the definitions

from serve_bench import ensure_model, free_port, start_server, stop  # noqa: E402

LUA = ROOT / "bench" / "wrk" / "exec_request.lua"
API_KEY = "exec-bench-key"
GOAL_MS, GOAL_CONNS = 30.0, 16
WRK_MISSING = ("wrk is not on PATH. Install it with `apt-get install -y wrk` (Debian/Ubuntu, as root) or "
               "`brew install wrk` (macOS), or build it from https://github.com/wg/wrk.")


def cases(run: str) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(name, method, path, body template with @ID@ placeholders)."""
    return [
        ("health (floor)", "GET", "/health", None),
        ("execution/run trade", "POST", "/execution/run",
         {"horizon": "24h", "adapter": "paper", "strategy_id": "xb-t-@ID@", "request_key": f"xb-{run}"}),
        ("execution/run repeat", "POST", "/execution/run",
         {"horizon": "24h", "adapter": "paper", "strategy_id": f"xb-r-{run}", "request_key": f"xb-{run}"}),
        ("execution/orders", "POST", "/execution/orders",
         {"symbol": "BTC", "side": "buy", "qty": 0.001, "order_type": "market", "time_in_force": "IOC",
          "max_slippage_bps": 50.0, "adapter": "paper", "strategy_id": "xb-o-@ID@", "client_order_id": "xb-o-@ID@"}),
    ]


def wrk(url: str, method: str, body: dict[str, Any] | None, connections: int, duration: int, prefix: str) -> dict:
    env = {**os.environ, "WRK_METHOD": method, "WRK_BODY": json.dumps(body) if body else "",
           "WRK_API_KEY": API_KEY, "WRK_PREFIX": prefix}
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(LUA), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_RESULT "))
    res = json.loads(line.split(" ", 1)[1])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def written(url: str) -> dict[str, dict[str, int]]:
    """Decisions by action and orders by status stored so far (what the requests did)."""
    from sqlalchemy import func, select

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    d, o = tables.execution_decisions, tables.orders_sim
    with get_engine(url).connect() as conn:
        decisions = dict(conn.execute(select(d.c.action, func.count()).group_by(d.c.action)).all())
        orders = dict(conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).all())
    return {"decisions": {str(k): int(v) for k, v in decisions.items()},
            "orders": {str(k): int(v) for k, v in orders.items()}}


def settled(url: str, quiet_s: float = 1.0, limit_s: float = 120.0) -> dict[str, dict[str, int]]:
    """What is stored once the requests still in flight when wrk stopped have finished (nothing new
    for ``quiet_s``), so each cell is credited with its own writes only."""
    last, since, deadline = written(url), time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = written(url)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {kind: {k: v - before[kind].get(k, 0) for k, v in after[kind].items() if v - before[kind].get(k, 0)}
            for kind in after}


def probe(api: str, name: str, method: str, path: str, body: dict[str, Any] | None, run: str) -> str:
    """One request before timing (loads the model; shows what the case answers)."""
    import httpx

    filled = json.loads(json.dumps(body).replace("@ID@", f"{run}-warm")) if body else None
    r = httpx.request(method, f"{api}{path}", json=filled, headers={"X-API-Key": API_KEY}, timeout=180)
    if r.status_code != 200:
        raise RuntimeError(f"warm-up of {name}: HTTP {r.status_code} {r.text[:400]}")
    out = r.json()
    if "decisions" in out:
        return ", ".join(f"{d['symbol']} {d['action']}" + (f" ({d['order']['status']})" if d.get("order") else "")
                         for d in out["decisions"])
    return out.get("status", "")


def copy_warehouse(source_url: str, target_url: str) -> None:
    """Every row of the home's warehouse into ``target_url`` (migrated here; meant to be empty)."""
    from sqlalchemy import select

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine
    from omniwatch.warehouse.migrate import upgrade

    upgrade(target_url)
    with get_engine(source_url).connect() as src, get_engine(target_url).begin() as dst:
        for table in tables.metadata.sorted_tables:
            rows = [dict(r) for r in src.execute(select(table)).mappings()]
            for i in range(0, len(rows), 5000):
                dst.execute(table.insert(), rows[i:i + 5000])
            if rows and "id" in table.c and table.c.id.autoincrement is True:  # explicit ids: move the sequence
                dst.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)")


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=ROOT / ".omniwatch" / "exec-bench",
                    help="a home with a trained champion (built here when it has none); only copies are written")
    ap.add_argument("--duration", type=int, default=8, help="seconds per case and connection count")
    ap.add_argument("--connections", default="1,16,64")
    ap.add_argument("--json", type=Path, help="also write the results to this file")
    ap.add_argument("--database-url", help="an empty PostgreSQL database: the home's warehouse is copied into it "
                    "and the API uses it (default: the copied home's SQLite file)")
    ap.add_argument("--workers", type=int, default=1,
                    help="uvicorn worker processes of the API (each its own decision lock; the strategy's lock in "
                         "the warehouse keeps risk decisions atomic across them)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit(WRK_MISSING)
    source = args.home.resolve()
    ensure_model(source)
    run = uuid.uuid4().hex[:8]
    scratch = Path(tempfile.mkdtemp(prefix="exec-bench-"))
    home = scratch / "home"
    # mlartifacts stay shared (MLflow stores absolute artifact URIs); the API only reads them.
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("dagster", "checkpoints", "mlartifacts",
                                                                "*.db-wal", "*.db-shm", ".done"))
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "OMNIWATCH_API_KEYS": API_KEY, "OMP_WAIT_POLICY": "passive",
           "OMNIWATCH_SIZING_WEIGHT_BAND": "0", "OMNIWATCH_SIGNAL_THRESHOLD_BPS_1H": "0.01",
           "OMNIWATCH_SIGNAL_THRESHOLD_BPS_4H": "0.01", "OMNIWATCH_SIGNAL_THRESHOLD_BPS_24H": "0.01"}
    for var in ("OMNIWATCH_DATABASE_URL", "OMNIWATCH_MLFLOW_TRACKING_URI", "OMNIWATCH_LIVE_TRADING"):
        env.pop(var, None)
    os.environ.pop("OMNIWATCH_DATABASE_URL", None)  # Settings(home=...) below: the copy's own SQLite file
    from omniwatch.settings import Settings

    warehouse = Settings(home=home).warehouse_url
    if args.database_url:
        copy_warehouse(warehouse, args.database_url)
        warehouse = env["OMNIWATCH_DATABASE_URL"] = args.database_url
    port = free_port()
    api_proc = start_server(["--factory", "omniwatch.serving.app:create_app"], env, port, args.workers)
    rows: list[dict[str, Any]] = []
    try:
        api = f"http://127.0.0.1:{port}/api/v2"
        t = time.perf_counter()
        for name, method, path, body in cases(run):
            print(f"warm-up {name}: {probe(api, name, method, path, body, run)}")
        if args.workers > 1:  # each worker loads the model on its first request: load them all, untimed
            name, method, path, body = cases(run)[1]
            wrk(f"{api}{path}", method, body, 4 * args.workers, 6, f"{run}-warm")
        print(f"warm-up (model load + first requests): {time.perf_counter() - t:.1f} s; {machine_load()}")
        print(f"\n{'case':<24}{'conns':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'non-2xx':>9}  written")
        for conns in [int(c) for c in args.connections.split(",")]:
            for name, method, path, body in cases(run):
                before = settled(warehouse)
                r = wrk(f"{api}{path}", method, body, conns, args.duration, f"{run}-c{conns}")
                did = delta(settled(warehouse), before)
                rows.append({"case": name, "connections": conns, **r, "written": did, "load": os.getloadavg()[0]})
                summary = "; ".join(f"{k} {v}" for kind in ("decisions", "orders") for k, v in did[kind].items())
                print(f"{name:<24}{conns:>6}{r['p50'] / 1e3:>9.2f}{r['p95'] / 1e3:>9.2f}{r['p99'] / 1e3:>9.2f}"
                      f"{r['rps']:>9.1f}{r['status_errors'] + r['socket_errors']:>9}  {summary}")
    finally:
        stop(api_proc)
        shutil.rmtree(scratch, ignore_errors=True)
    report(rows, args)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nmachine: {machine_load()} after the run; wrk (-t1) and the server share it; "
          f"{args.duration} s per cell; {args.workers} API worker(s); "
          f"{'PostgreSQL' if args.database_url else 'SQLite'} warehouse (a copy of "
          f"{args.home})")
    by = {(r["case"], r["connections"]): r for r in rows}
    for name in ("execution/run trade", "execution/run repeat"):
        cell, floor = by.get((name, GOAL_CONNS)), by.get(("health (floor)", GOAL_CONNS))
        if cell and floor:
            p95 = cell["p95"] / 1e3
            print(f"{name} p95 at {GOAL_CONNS} connections: {p95:.1f} ms (goal < {GOAL_MS:g} ms: "
                  f"{'met' if p95 < GOAL_MS else 'not met'}); floor p95 {floor['p95'] / 1e3:.2f} ms")
    result = {"goal": {"p95_ms": GOAL_MS, "connections": GOAL_CONNS}, "duration_s": args.duration,
              "warehouse": "postgresql" if args.database_url else "sqlite", "workers": args.workers,
              "cells": [
        {k: (v / 1e3 if k in ("p50", "p95", "p99") else v) for k, v in r.items() if k != "duration_us"}
        for r in rows]}
    for cell in result["cells"]:
        cell["p50_ms"], cell["p95_ms"], cell["p99_ms"] = cell.pop("p50"), cell.pop("p95"), cell.pop("p99")
    print("\nJSON " + json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
