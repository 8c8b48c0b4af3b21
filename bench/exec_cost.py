"""What one ``execution/run`` costs, in process (prints figures; asserts nothing).

    python bench/exec_cost.py [--home PATH] [--runs 60] [--database-url postgresql://...] [--profile N]
                              [--threads N] [--every N]

Runs ``execution/run`` (24h, paper, a fresh ``strategy_id`` each: predict the three targets, store
their signals, size from a flat book, check risk, send and store a market IOC order per target)
through the API's own route function, without HTTP or a second process, on a temporary copy of
``--home`` (default ``.omniwatch/exec-bench``, built as bench/exec_bench.py builds it), and prints
per run: wall milliseconds (p50 / mean), SQL statements, commits and connection checkouts of the
warehouse engine. The HTTP bench (bench/exec_bench.py) measures the same path under load; this one
says where a single run's time goes, with ``--profile N``: the N functions of the project with the
most cumulative time (cProfile, a separate pass). ``--threads N`` (N > 1) also drives the route
from N threads at once (each run its own strategy, as the HTTP bench's ``trade`` case) and prints
runs a second beside one thread's: what the process serves concurrently without HTTP. ``--every N``
also prints the mean of each block of N timed runs: whether a run gets dearer as the warehouse
fills (every run stores three predictions, signals, orders, fills, positions and decisions), e.g.
``--runs 1500 --every 250``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
warnings.simplefilter("ignore")

from exec_bench import copy_warehouse  # noqa: E402
from serve_bench import ensure_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=ROOT / ".omniwatch" / "exec-bench")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--database-url", help="an empty PostgreSQL database to copy the home's warehouse into")
    ap.add_argument("--profile", type=int, default=0, help="also profile the runs and print the top N functions")
    ap.add_argument("--threads", type=int, default=1, help="also run from this many threads at once")
    ap.add_argument("--every", type=int, default=0, help="also print the mean ms of each block of this many runs")
    args = ap.parse_args()
    source = args.home.resolve()
    ensure_model(source)
    home = Path(tempfile.mkdtemp(prefix="exec-cost-")) / "home"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("dagster", "checkpoints", "mlartifacts",
                                                                "*.db-wal", "*.db-shm", ".done"))
    os.environ.update({"OMNIWATCH_HOME": str(home), "OMNIWATCH_API_KEYS": "exec-cost-key",
                       "OMNIWATCH_SIZING_WEIGHT_BAND": "0", "OMNIWATCH_SIGNAL_THRESHOLD_BPS_1H": "0.01",
                       "OMNIWATCH_SIGNAL_THRESHOLD_BPS_4H": "0.01", "OMNIWATCH_SIGNAL_THRESHOLD_BPS_24H": "0.01"})
    for var in ("OMNIWATCH_DATABASE_URL", "OMNIWATCH_MLFLOW_TRACKING_URI", "OMNIWATCH_LIVE_TRADING"):
        os.environ.pop(var, None)
    if args.database_url:
        from omniwatch.settings import Settings

        copy_warehouse(Settings(home=home).warehouse_url, args.database_url)
        os.environ["OMNIWATCH_DATABASE_URL"] = args.database_url

    from sqlalchemy import event

    from omniwatch.serving.app import create_app
    from omniwatch.serving.execution import router
    from omniwatch.serving.execution.schemas import ExecutionRunRequest
    from omniwatch.settings import Settings
    from omniwatch.warehouse.engine import get_engine

    app = create_app(Settings())  # the copy's settings (ensure_model may have read others already)
    services, metrics = app.state.services, app.state.metrics
    counts = {"statements": 0, "commits": 0, "checkouts": 0}
    engine = get_engine(services.database_url)
    event.listen(engine, "before_cursor_execute", lambda *a, **k: counts.__setitem__("statements",
                                                                                      counts["statements"] + 1))
    event.listen(engine, "commit", lambda *a: counts.__setitem__("commits", counts["commits"] + 1))
    event.listen(engine.pool, "checkout", lambda *a: counts.__setitem__("checkouts", counts["checkouts"] + 1))
    run = uuid.uuid4().hex[:8]

    def one(i: int) -> None:
        body = ExecutionRunRequest.model_validate({"horizon": "24h", "adapter": "paper", "request_key": run,
                                                   "strategy_id": f"xc-{run}-{i}"})
        out = router._run_one_at_a_time(services, body, "bench", metrics)
        actions = [d.action for d in out["decisions"]]
        if actions != ["trade"] * len(actions) or not actions:
            raise RuntimeError(f"run {i} did not trade every target: {actions}")

    for i in range(5):  # model load, caches
        one(i)
    counts.update(dict.fromkeys(counts, 0))
    times = []
    for i in range(args.runs):
        began = time.perf_counter()
        one(100 + i)
        times.append((time.perf_counter() - began) * 1000)
    backend = engine.dialect.name
    per = {k: v / args.runs for k, v in counts.items()}
    print(f"execution/run in process, {backend}, {args.runs} runs (3 targets, 3 paper orders each): "
          f"p50 {statistics.median(times):.1f} ms, mean {statistics.fmean(times):.1f} ms; per run "
          f"{per['statements']:.1f} SQL statements, {per['commits']:.1f} commits, "
          f"{per['checkouts']:.1f} connection checkouts")
    if args.every > 0:
        for start in range(0, len(times), args.every):
            block = times[start:start + args.every]
            print(f"  runs {start}-{start + len(block)}: mean {statistics.fmean(block):.1f} ms")
    if args.threads > 1:
        rates = {}
        for n, first in ((1, 20_000), (args.threads, 30_000)):
            began = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(one, range(first, first + args.runs)))
            rates[n] = args.runs / (time.perf_counter() - began)
        print(f"concurrent, {args.runs} runs each: 1 thread {rates[1]:.1f} runs/s, {args.threads} threads "
              f"{rates[args.threads]:.1f} runs/s")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for i in range(args.runs):
            one(10_000 + i)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats("omniwatch", args.profile)
    app.state.services.close()


if __name__ == "__main__":
    main()
