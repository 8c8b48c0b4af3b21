"""Serving latency and throughput of the REST API (prints figures; asserts nothing).

    python bench/serve_bench.py [--home .omniwatch/serve-bench] [--duration 8] [--connections 1,16,64]

Builds a demo-like warehouse (four months of the bundled sample through liquid_data_job) and a
registered model (a small training run) under ``--home`` when it has no champion yet, starts the
API with uvicorn (one worker, loopback, its own process group) and a bare FastAPI app with
endpoints of the same request and response shapes (the floor), then drives each with ``wrk``
(bench/wrk/post_json.lua) and prints p50/p95/p99 and requests/s per endpoint and connection count.
Goal: predict/liquid p95 <= 15 ms at 16 connections and within 2x of the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omniwatch.serving.predict.schemas import PredictionResponse, PredictLiquidRequest  # noqa: E402
from omniwatch.serving.signals.schemas import Signal, SignalsRequest, SignalsResponse  # noqa: E402

LUA = ROOT / "bench" / "wrk" / "post_json.lua"
API_KEY = "bench-key"
BENCH_KEY = "serve-bench"
START, END = "2024-05-01", "2024-08-31"
_T = "2024-09-01T00:00:00Z"

# ----------------------------------------------------------------------------- the floor
floor_app = FastAPI()
_PRED = PredictionResponse(
    prediction_id="00000000-0000-4000-8000-000000000000", track="liquid", target="BTC",
    model_name="omniwatch-liquid", model_version="1", model_role="champion", train_lineage_id="x" * 24,
    infer_lineage_id="y" * 24, input_source="snapshot", snapshot=None, history_rows=168, as_of_ts=_T,
    predictions={"1h": 1.0, "4h": 2.0, "24h": 3.0},
    components={"lightgbm": {"1h": 1.0, "4h": 2.0, "24h": 3.0}, "tsmixer": {"1h": 1.0, "4h": 2.0, "24h": 3.0}})
_SIG = SignalsResponse(strategy_id="liquid_v2", model_name="omniwatch-liquid", skipped=[], signals=[
    Signal(signal_id="s", prediction_id="p", target=t, horizon=h, direction=0, strength=0.0, threshold_bps=10.0,
           prediction_bps=1.0, as_of_ts=_T, status="flat", model_version="1")
    for t in ("BTC", "ETH", "SOL") for h in ("1h", "4h", "24h")])


@floor_app.post("/floor/predict", response_model=PredictionResponse)
def floor_predict(body: PredictLiquidRequest) -> PredictionResponse:
    return _PRED


@floor_app.post("/floor/predict-async", response_model=PredictionResponse)
async def floor_predict_async(body: PredictLiquidRequest) -> PredictionResponse:
    return _PRED


@floor_app.post("/floor/signals", response_model=SignalsResponse)
def floor_signals(body: SignalsRequest) -> SignalsResponse:
    return _SIG


# ----------------------------------------------------------------------------- set-up
def ensure_model(home: Path) -> None:
    """A warehouse with snapshots and a champion under ``home`` (built once, reused after)."""
    import dagster as dg

    from omniwatch.definitions import build_definitions
    from omniwatch.resources.mlflow import MLflowResource
    from omniwatch.resources.training import TrainingResource
    from omniwatch.settings import Settings
    from omniwatch.warehouse.migrate import upgrade

    settings = Settings(home=home)
    upgrade(settings.warehouse_url)
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    if mlflow.alias_version("omniwatch-liquid", "champion") is not None:
        print(f"using the warehouse and champion under {home}")
        return
    t = time.perf_counter()
    tags = {"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END}
    data = build_definitions(settings).resolve_job_def("liquid_data_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), tags=tags)
    training = TrainingResource(kfold_splits=2, wf_test_windows=2, min_train_days=45, window_stride_hours=12,
                                tsmixer_max_epochs=1, tsmixer_d_ff=8, lightgbm_max_rounds=30)
    trained = build_definitions(settings, {"training": training}).resolve_job_def(
        "liquid_training_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    print(f"built warehouse + model under {home} in {time.perf_counter() - t:.0f} s "
          f"(data {data.success}, training {trained.success})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", *args, "--host", "127.0.0.1", "--port", str(port), "--workers",
           str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"server {args} did not start on {port}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def warm(url: str, body: dict, key: str | None = None) -> None:
    import httpx

    r = httpx.post(url, json=body, headers={"X-API-Key": key} if key else {}, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"warm-up {url}: {r.status_code} {r.text[:300]}")


def wrk(url: str, body: dict, connections: int, duration: int, key: str | None = None) -> dict:
    env = {**os.environ, "WRK_BODY": json.dumps(body), "WRK_API_KEY": key or ""}
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(LUA), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_RESULT "))
    res = json.loads(line.split(" ", 1)[1])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=ROOT / ".omniwatch" / "serve-bench")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", default="1,16,64")
    args = ap.parse_args()
    home = args.home.resolve()
    ensure_model(home)
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "OMNIWATCH_API_KEYS": API_KEY, "OMP_WAIT_POLICY": "passive"}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    env.pop("OMNIWATCH_MLFLOW_TRACKING_URI", None)
    api_port, floor_port = free_port(), free_port()
    api = start_server(["--factory", "omniwatch.serving.app:create_app"], env, api_port)
    floor = start_server(["--app-dir", str(ROOT / "bench"), "serve_bench:floor_app"], env, floor_port)
    try:
        api_url, floor_url = f"http://127.0.0.1:{api_port}/api/v2", f"http://127.0.0.1:{floor_port}/floor"
        # The bench's rows carry its own request key / strategy, so they are removed at the end.
        predict = {"target": "BTC", "request_key": BENCH_KEY}
        signals = {"request_key": BENCH_KEY, "strategy_id": BENCH_KEY}
        t = time.perf_counter()
        warm(f"{api_url}/predict/liquid", predict, API_KEY)  # predict/* store rows: keyed
        warm(f"{api_url}/signals/generate", signals, API_KEY)
        print(f"warm-up (model load + first scores): {time.perf_counter() - t:.1f} s")
        cases = [("floor predict (def)", f"{floor_url}/predict", predict, None),
                 ("floor predict (async)", f"{floor_url}/predict-async", predict, None),
                 ("predict/liquid", f"{api_url}/predict/liquid", predict, API_KEY),
                 ("floor signals (def)", f"{floor_url}/signals", signals, None),
                 ("signals/generate", f"{api_url}/signals/generate", signals, API_KEY)]
        rows = []
        print(f"\n{'endpoint':<24}{'conns':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'non-2xx':>9}")
        for conns in [int(c) for c in args.connections.split(",")]:
            for name, url, body, key in cases:
                r = wrk(url, body, conns, args.duration, key)
                rows.append({"endpoint": name, "connections": conns, **r})
                print(f"{name:<24}{conns:>6}{r['p50'] / 1e3:>9.2f}{r['p95'] / 1e3:>9.2f}{r['p99'] / 1e3:>9.2f}"
                      f"{r['rps']:>9.0f}{r['status_errors'] + r['socket_errors']:>9}")
        import httpx

        health = httpx.get(f"{api_url}/health").json()
        print(f"\nmachine: {os.cpu_count()} CPUs shared by wrk (-t1) and the server; {args.duration} s per cell")
        print(f"rows written by the API: {health['rows_written']}, pending: {health['rows_pending']}, "
              f"write failures: {health['write_failures']}")
        by = {(r["endpoint"], r["connections"]): r for r in rows}
        for conns in sorted({r["connections"] for r in rows}):
            p = by[("predict/liquid", conns)]["p95"]
            fa, fd = by[("floor predict (async)", conns)]["p95"], by[("floor predict (def)", conns)]["p95"]
            print(f"predict/liquid p95 at {conns} connection(s): {p / 1e3:.2f} ms; x{p / fa:.2f} of the async "
                  f"floor ({fa / 1e3:.2f} ms), x{p / fd:.2f} of the def floor ({fd / 1e3:.2f} ms)")
        print("goal: p95 <= 15 ms at 16 connections and within 2x of the floor")
    finally:
        stop(api)
        stop(floor)
        forget_bench_rows(home)


def forget_bench_rows(home: Path) -> None:
    """Delete what the bench stored (about a million predictions a run) so runs do not pile up."""
    from sqlalchemy import delete

    from omniwatch.settings import Settings
    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    with get_engine(Settings(home=home).warehouse_url).begin() as conn:
        conn.execute(delete(tables.signal_candidates).where(tables.signal_candidates.c.strategy_id == BENCH_KEY))
        n = conn.execute(delete(tables.predictions_v2).where(tables.predictions_v2.c.request_key == BENCH_KEY)).rowcount
    print(f"removed the bench's {n} stored predictions")


if __name__ == "__main__":
    main()
