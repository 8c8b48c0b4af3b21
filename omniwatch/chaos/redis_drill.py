"""redis_interrupt: the Redis holding the connectors' shared rate budget goes away and comes back.

A drill ``redis-server`` on a free port (never the shared 127.0.0.1:6379; no persistence, so a
restart is the empty server a crash leaves) holds the budget of two real ``HttpClient``s that GET
from a local HTTP server counting its hits. The drill shows:

1. Redis up: requests pass and each took its slot in Redis (the budget is shared).
2. Redis killed: the limiter fails closed, no request goes out without a slot, and the error
   says the rate-limit store is unreachable (a ``ConnectorError``).
3. Redis restarted empty (its Lua scripts gone): the same clients work again without a process
   restart, each request again taking a slot in Redis.
4. Redis killed and restarted ``hold_s`` later while a request is retrying (tenacity's backoff):
   the request succeeds once Redis is back.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from omniwatch.chaos.infra import ChaosConfig, Servers, free_port
from omniwatch.chaos.report import DrillReport

SERVER = "redis"


class _Hits(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits += 1
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _upstream() -> Iterator[tuple[str, type[_Hits]]]:
    handler = type("Hits", (_Hits,), {"hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def redis_interrupt(config: ChaosConfig, report: DrillReport) -> None:
    import redis

    from omniwatch.connectors.http import ConnectorError, HttpClient

    servers = Servers(config)
    port = free_port()
    folder = config.folder(f"redis-{uuid.uuid4().hex[:8]}")
    url = f"redis://127.0.0.1:{port}/0"
    cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--dir", str(folder)]
    key = f"chaos-{uuid.uuid4().hex[:8]}"
    store = redis.Redis.from_url(url, socket_timeout=2)

    def ready() -> bool:
        return bool(store.ping())

    def slots() -> int:
        """Calls of the limiter's script since Redis started: at least one per request (one more
        each time the limiter found no room and asked again; the bucket itself forgets slots
        older than the rate window, so its size does not count requests)."""
        stats = store.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    clients: list[HttpClient] = []
    try:
        with _upstream() as (base, hits):
            def client(max_retries: int) -> HttpClient:
                made = HttpClient(base, timeout=2, max_retries=max_retries, backoff_base_s=0.2, backoff_max_s=1.0,
                                  requests_per_second=50, rate_limit_redis_url=url, rate_limit_key=key)
                clients.append(made)
                return made

            with report.step("start a drill redis-server") as step:
                step.detail = f"{url} ready in {servers.start(SERVER, cmd, env={}, ready=ready):.2f} s"
            patient, impatient = client(max_retries=6), client(max_retries=0)
            with report.step("Redis up: 3 requests, each takes a slot in Redis") as step:
                for c in (patient, impatient, patient):
                    c.get("/ok")
                report.expect_in_step(step, hits.hits == 3, "3 requests reached the API", hits.hits)
                report.expect_in_step(step, slots() >= 3, "each request took its slot through Redis", slots())
                step.detail = f"{hits.hits} hits, {slots()} limiter calls in Redis"
            report.counts["Redis up"] = {"upstream hits": hits.hits, "limiter calls in Redis": slots()}

            with report.step("kill Redis: a request fails closed") as step:
                servers.kill(SERVER, signal.SIGKILL)
                before = hits.hits
                error: Exception | None = None
                try:
                    impatient.get("/ok")
                except ConnectorError as exc:
                    error = exc
                except Exception as exc:  # noqa: BLE001 - the drill reports any other error type as a finding
                    error = exc
                report.expect_in_step(step, isinstance(error, ConnectorError) and "rate-limit store" in str(error),
                                      "a ConnectorError naming the rate-limit store", repr(error)[:200])
                report.expect_in_step(step, hits.hits == before, "no request went out without a slot",
                                      hits.hits - before)
                step.detail = f"{type(error).__name__}: {str(error)[:120]}"
            report.counts["Redis down"] = {"upstream hits": hits.hits}

            with report.step("restart Redis empty: the same clients work again") as step:
                servers.start(SERVER, cmd, env={}, ready=ready)
                errors = []
                for c in (impatient, patient):
                    try:
                        c.get("/ok")
                    except Exception as exc:  # noqa: BLE001 - recorded: the finding is what failed
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                report.expect_in_step(step, not errors, "requests pass after Redis returned", errors)
                report.expect_in_step(step, slots() >= 2, "each took its slot through the restarted Redis", slots())
                step.detail = f"{hits.hits} hits, {slots()} limiter calls in Redis"
            report.counts["Redis restarted"] = {"upstream hits": hits.hits, "limiter calls in Redis": slots()}

            with report.step(f"kill Redis during a retrying request; back after {config.hold_s:g} s") as step:
                servers.kill(SERVER, signal.SIGKILL)
                back = threading.Timer(config.hold_s, servers.start, (SERVER, cmd), {"env": {}, "ready": ready})
                started = time.monotonic()
                back.start()
                outcome = "ok"
                try:
                    patient.get("/ok")
                except Exception as exc:  # noqa: BLE001 - recorded as the step's failure
                    outcome = f"{type(exc).__name__}: {exc}"[:200]
                took = time.monotonic() - started
                back.join(30)
                report.expect_in_step(step, outcome == "ok", "the request succeeds once Redis is back", outcome)
                report.expect_in_step(step, took >= config.hold_s * 0.9, "it waited for Redis (retries, not luck)",
                                      f"{took:.2f} s")
                step.detail = f"answered after {took:.2f} s; {slots()} limiter calls in Redis"
            report.counts["after the outage"] = {"upstream hits": hits.hits, "limiter calls in Redis": slots()}
            report.expect(hits.hits == 6, "6 requests reached the API in all (none lost, none sent twice)", hits.hits)
        report.notes.append("the rate limiter fails closed: without Redis no request is sent; the error is a "
                            "retryable ConnectorError, so tenacity's backoff rides over a short outage")
    finally:
        for c in clients:
            c.close()
        store.close()
        servers.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
