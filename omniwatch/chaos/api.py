"""api_kill: the API process is SIGKILLed while a client is placing orders through it.

The API (``python -m omniwatch.serving.app``, its own process group) serves a drill warehouse
holding one replayed day of bars. A client thread places paper orders, each with its own
``client_order_id``, and records which were acknowledged (HTTP 200 with an order id); after a
third of them the API is SIGKILLed. The drill then checks, before anything restarts, that every
acknowledged order is stored (an order is committed before its answer), restarts the API on the
same port and re-sends every order with the same key, as a retrying client does: each must come
back as one stored order (the acknowledged ones with the order id first answered), with no second
row, venue order or fill. A second re-send changes nothing. The API is finally stopped with
SIGTERM, whose shutdown flushes the prediction writer.

The prediction writer (``serving/runtime/writer.py``) is different: predict and signals routes
answer before their rows are written (batched every ``prediction_flush_interval_s``), so a SIGKILL
loses what is queued. The drill measures that window on the real writer in a child process and
reports it; it is a known property, not a recovery failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from omniwatch.chaos.infra import ChaosConfig, Postgres, Servers, free_port
from omniwatch.chaos.report import DrillReport
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

SERVER = "api"
SYMBOL, DAY = "BTC", "2024-06-01"
N_ORDERS, QUEUE_ROWS = 24, 50
ORDERS = "/api/v2/execution/orders"


class _Client(threading.Thread):
    """Places one order per key in turn; records acknowledged ids and failed requests."""

    def __init__(self, base: str, headers: dict[str, str], keys: list[str]):
        super().__init__(daemon=True, name="chaos-api-client")
        self.base, self.headers, self.keys = base, headers, keys
        self.acked: dict[str, str] = {}
        self.failed: list[str] = []
        self.refused: dict[str, int] = {}

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=10) as client:
            for key in self.keys:
                try:
                    answer = client.post(ORDERS, json=order_body(key))
                except httpx.HTTPError:
                    self.failed.append(key)
                    continue
                if answer.status_code == 200:
                    self.acked[key] = answer.json()["order_id"]
                else:
                    self.refused[key] = answer.status_code


def order_body(key: str) -> dict[str, Any]:
    return {"symbol": SYMBOL, "side": "buy", "qty": 0.001, "order_type": "market", "time_in_force": "IOC",
            "client_order_id": key, "adapter": "paper"}


def stored_orders(url: str, prefix: str) -> dict[str, Any]:
    """Rows the orders with keys starting with ``prefix`` have: orders, venue orders, fills."""
    o, p, f = tables.orders_sim, tables.paper_orders, tables.fills
    like = prefix + "%"
    with get_engine(url).connect() as conn:
        mine = o.c.client_order_id.like(like)
        ids: dict[str, str] = {r.client_order_id: r.order_id
                               for r in conn.execute(select(o.c.client_order_id, o.c.order_id).where(mine))}
        rows = int(conn.execute(select(func.count()).select_from(o).where(mine)).scalar_one())
        venue = int(conn.execute(select(func.count()).select_from(p).where(p.c.client_order_id.like(like)))
                    .scalar_one())
        fills = int(conn.execute(select(func.count()).select_from(f.join(o, f.c.order_id == o.c.order_id))
                                 .where(mine)).scalar_one())
    return {"ids": ids, "orders_sim": rows, "paper_orders": venue, "fills": fills}


def _counts(state: dict[str, Any]) -> dict[str, int]:
    return {"orders_sim": state["orders_sim"], "distinct client_order_id": len(state["ids"]),
            "paper_orders": state["paper_orders"], "fills": state["fills"]}


def _seed(home: Path, url: str) -> int:
    """One replayed day of bars (the embedded sample) through the warehouse's upsert."""
    import pandas as pd

    from omniwatch import frames
    from omniwatch.resources import build_resources
    from omniwatch.settings import Settings

    resources = build_resources(Settings(home=home, database_url=url, source="replay"))
    start = pd.Timestamp(DAY, tz="UTC")
    batch = resources["market_data"].fetch_bars([SYMBOL], start, start + pd.Timedelta(days=1))
    return int(resources["warehouse"].upsert("market_bars", batch.frame, frames.MARKET_BAR_KEY))


def api_kill(config: ChaosConfig, report: DrillReport) -> None:
    from omniwatch.warehouse.migrate import upgrade

    pg, servers = Postgres(config), Servers(config)
    home = config.folder(f"api-{uuid.uuid4().hex[:8]}")
    port, secret = free_port(), secrets.token_hex(16)
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": secret}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIWATCH_")}
    database = None

    def ready() -> bool:
        return httpx.get(f"{base}/api/v2/health", timeout=2).status_code == 200

    try:
        with report.step("drill warehouse with one replayed day of bars") as step:
            database = pg.create()
            url = pg.url(database)
            upgrade(url)
            step.detail = f"{database}: {_seed(home, url)} {SYMBOL} bars of {DAY}"
        env.update(OMNIWATCH_HOME=str(home), OMNIWATCH_DATABASE_URL=url, OMNIWATCH_SOURCE="replay",
                   OMNIWATCH_API_HOST="127.0.0.1", OMNIWATCH_API_PORT=str(port),
                   OMNIWATCH_API_KEYS=f"chaos:{secret}", DAGSTER_HOME=str(home / "dagster"))
        (home / "dagster").mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "omniwatch.serving.app"]
        with report.step("start the API") as step:
            step.detail = f"{base} ready in {servers.start(SERVER, cmd, env=env, ready=ready):.1f} s"

        prefix = f"chaos-{uuid.uuid4().hex[:8]}-"
        keys = [f"{prefix}{i:03d}" for i in range(N_ORDERS)]
        client = _Client(base, headers, keys)
        with report.step(f"place {N_ORDERS} orders; SIGKILL the API after {N_ORDERS // 3} answers") as step:
            client.start()
            while len(client.acked) + len(client.refused) < N_ORDERS // 3 and client.is_alive():
                time.sleep(0.002)
            rc = servers.kill(SERVER, signal.SIGKILL)
            client.join(30)
            report.expect_in_step(step, not client.refused, "no order was refused", client.refused)
            report.expect_in_step(step, bool(client.failed), "the kill cut the stream (some requests failed)")
            step.detail = f"exit {rc}; acknowledged {len(client.acked)}, failed {len(client.failed)}"
        after_kill = stored_orders(url, prefix)
        report.counts["after SIGKILL"] = _counts(after_kill)
        lost = {k: v for k, v in client.acked.items() if after_kill["ids"].get(k) != v}
        report.expect(not lost, "every acknowledged order is stored under the id it was answered with", lost)
        in_flight = sorted(set(after_kill["ids"]) - set(client.acked))
        report.facts["acknowledged before the kill"] = len(client.acked)
        report.facts["stored but never acknowledged (in flight at the kill)"] = len(in_flight)

        with report.step("restart the API") as step:
            step.detail = f"ready in {servers.start(SERVER, cmd, env=env, ready=ready):.1f} s"
        for stage in ("re-send every order with its key", "re-send them all again"):
            with report.step(stage) as step:
                resend = _Client(base, headers, keys)
                resend.run()
                report.expect_in_step(step, len(resend.acked) == N_ORDERS, "every re-sent order is answered 200",
                                      {"failed": resend.failed, "refused": resend.refused})
                changed = {k: (v, resend.acked.get(k)) for k, v in client.acked.items() if resend.acked.get(k) != v}
                report.expect_in_step(step, not changed, "re-sent acknowledged orders return the same order", changed)
                orphans = {k: (after_kill["ids"][k], resend.acked.get(k)) for k in in_flight
                           if resend.acked.get(k) != after_kill["ids"][k]}
                report.expect_in_step(step, not orphans, "orders stored but never answered come back on re-send",
                                      orphans)
                step.detail = f"{len(resend.acked)} answered, {len(set(resend.acked.values()))} distinct order ids"
            report.counts[stage.split(" with")[0].replace(" them all", "")] = _counts(stored_orders(url, prefix))
        final = report.counts["re-send again"]
        report.expect(final["orders_sim"] == N_ORDERS == final["distinct client_order_id"],
                      f"exactly {N_ORDERS} orders, one per key", final)
        report.expect(final["paper_orders"] == N_ORDERS, f"exactly {N_ORDERS} venue orders", final["paper_orders"])
        report.expect(final == report.counts["re-send every order"], "the second re-send wrote nothing")

        with report.step("stop the API with SIGTERM (graceful shutdown)") as step:
            rc = servers.kill(SERVER, signal.SIGTERM)
            shutdown = "Application shutdown complete" in servers.log_tail(SERVER, 4000)
            report.expect_in_step(step, shutdown, "SIGTERM runs the app's shutdown (the writer's final flush)")
            step.detail = f"exit {rc}; lifespan shutdown {'ran' if shutdown else 'did not run'}"
        with report.step("measure the prediction write queue under SIGKILL") as step:
            queued, stored = _measure_queue(url)
            report.facts["prediction rows acknowledged (queued) / stored after SIGKILL"] = f"{queued} / {stored}"
            step.detail = f"{queued} queued, {stored} stored, {queued - stored} lost"
        report.notes.append("orders are committed before their answer: a SIGKILL loses no acknowledged order, "
                            "and a retry with the same client_order_id returns the stored one")
        report.notes.append("predictions and signals are answered before the writer thread stores them (every "
                            "OMNIWATCH_PREDICTION_FLUSH_INTERVAL_S, 0.05 s by default): a SIGKILL loses what is "
                            "queued (measured above); SIGTERM flushes it")
    finally:
        servers.stop_all()
        if database is not None:
            pg.drop(database)
        shutil.rmtree(home, ignore_errors=True)


def _measure_queue(url: str) -> tuple[int, int]:
    """Queue ``QUEUE_ROWS`` predictions in the real writer in a child process, SIGKILL the child
    as soon as they are queued (the moment the API would have answered), count what was stored."""
    key = f"chaos-queue-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen([sys.executable, "-m", "omniwatch.chaos.api", url, key, str(QUEUE_ROWS)],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    if not line.startswith("queued"):
        raise RuntimeError(f"the writer child did not queue its rows (said {line!r}, exit {child.returncode})")
    t = tables.predictions_v2
    with get_engine(url).connect() as conn:
        stored = conn.execute(select(func.count()).select_from(t).where(t.c.request_key == key)).scalar_one()
    return QUEUE_ROWS, int(stored)


def _writer_child(url: str, key: str, n: int) -> None:
    from datetime import UTC, datetime

    from omniwatch.serving.runtime.writer import PredictionWriter
    from omniwatch.serving.settings import ServingSettings

    writer = PredictionWriter(url, ServingSettings().prediction_flush_interval_s)
    now = datetime.now(UTC)
    writer.submit("predictions_v2", [
        {"prediction_id": str(uuid.uuid4()), "track": "liquid", "target": SYMBOL, "model_name": "omniwatch-chaos",
         "model_version": "0", "as_of_ts": now, "infer_lineage_id": "chaos", "request_key": key,
         "horizon_predictions": {"1h": 0.0}} for _ in range(n)])
    print("queued", flush=True)  # what a 200 from predict means: queued, not yet stored
    time.sleep(60)


if __name__ == "__main__":
    _writer_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
