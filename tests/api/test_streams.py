"""The WebSocket streams (/stream/signals, /stream/events, /stream/risk) over a real uvicorn server
and a real SQLite warehouse that the test writes, as another process would; and the broker and
cursors on their own (deterministic backpressure cases, late commits)."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import os
import socket
import struct
import sys
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port, running
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

REPO = Path(__file__).resolve().parents[2]
KEY = "stream-key-1"
SIGNAL_FIELDS = {"signal_id", "prediction_id", "track", "target", "strategy_id", "horizon", "direction", "strength",
                 "threshold", "as_of_ts", "status", "model_version", "created_at"}
EVENT_FIELDS = {"id", "source", "source_id", "track", "event_type", "title", "url", "event_time", "available_time",
                "first_seen_at", "tone", "ingested_at", "entity_ids"}
RISK_FIELDS = {"id", "track", "strategy_id", "code", "detail", "created_at"}
SEND_TIMEOUT_S = 1.0
_minute = itertools.count()


@dataclass
class Server:
    http: str
    ws: str
    url: str  # the warehouse
    log: Path
    port: int


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """uvicorn (``python -m omniwatch.serving.app``) over an empty migrated warehouse, reads keyed,
    polling every 50 ms."""
    from graph.helpers import fresh_sqlite_warehouse

    root = tmp_path_factory.mktemp("streams")
    url = fresh_sqlite_warehouse(root / "home" / "warehouse.db")
    port = free_port()
    env = {**os.environ, "OMNIWATCH_HOME": str(root / "home"), "DAGSTER_HOME": str(root),
           "OMNIWATCH_API_PORT": str(port), "OMNIWATCH_API_HOST": "127.0.0.1", "OMNIWATCH_API_KEYS": f"ops:{KEY}",
           "OMNIWATCH_API_OPEN_READS": "false", "OMNIWATCH_STREAM_POLL_INTERVAL_S": "0.05",
           "OMNIWATCH_STREAM_QUEUE_SIZE": "1024", "OMNIWATCH_STREAM_BATCH_SIZE": "100",
           "OMNIWATCH_STREAM_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S)}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    http = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-W", "ignore", "-m", "omniwatch.serving.app"], env=env, cwd=REPO,
                 log_path=root / "api.log", ready=lambda: httpx.get(f"{http}/metrics").status_code == 200,
                 what="the API", timeout_s=60):
        yield Server(http, f"ws://127.0.0.1:{port}", url, root / "api.log", port)


# ------------------------------------------------------------------------------------ helpers
def signal_rows(n: int, target: str = "BTC", horizon: str = "1h", prediction_id: str | None = None) -> list[dict]:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    return [{"signal_id": str(uuid.uuid4()), "prediction_id": prediction_id, "track": "liquid", "target": target,
             "strategy_id": "liquid_v2", "horizon": horizon, "direction": 1, "strength": 0.5, "threshold": 10.0,
             "as_of_ts": base + timedelta(minutes=next(_minute)), "status": "candidate"} for _ in range(n)]


def insert(url: str, table, rows: list[dict]) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(table.insert(), rows)


def metrics(server: Server) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{server.http}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def dropped(server: Server, reason: str) -> float:
    return metrics(server)[("omniwatch_websocket_dropped_messages_total", (("reason", reason),))]


def open_connections(server: Server) -> float:
    return metrics(server)[("omniwatch_websocket_connections", ())]


async def subscribe(server: Server, path: str, query: str = "", key: str | None = KEY, **kwargs) -> ClientConnection:
    """A connection that has read its ``subscribed`` greeting (the cursor is placed then)."""
    headers = {"X-API-Key": key} if key else {}
    ws = await connect(f"{server.ws}{path}{query}", additional_headers=headers, proxy=None, **kwargs)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "subscribed" and hello["topic"] == path.rsplit("/", 1)[1], hello
    return ws


async def receive(ws: ClientConnection, n: int, timeout: float = 10.0,
                  keep: Callable[[dict], Any] | None = None) -> list:
    """The next ``n`` messages (several frames), or what ``keep`` takes of each; fails on more or on the timeout."""
    out: list = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            frame = json.loads(await ws.recv())
            assert frame["type"] == "messages", frame
            out.extend(keep(m) if keep else m for m in frame["messages"])
    assert len(out) == n
    return out


async def nothing_more(ws: ClientConnection, wait_s: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait_s):
            await ws.recv()


async def slow_client(server: Server, path: str) -> ClientConnection:
    """A tiny receive buffer; reads its greeting, then never again (max_queue=1: the library
    stops reading the socket too), so the server's writes stall once the buffers are full."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", server.port))
    return await subscribe(server, path, sock=sock, max_queue=1, max_size=None, compression=None)


def unread_bytes(sock) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


async def until(check, timeout: float = 10.0) -> float:
    start = time.perf_counter()
    while not check():
        assert time.perf_counter() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.05)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------ through uvicorn
def test_signals_arrive_with_the_documented_payload_filtered(server):
    prediction = str(uuid.uuid4())
    insert(server.url, tables.predictions_v2, [{
        "prediction_id": prediction, "track": "liquid", "target": "BTC", "model_name": "omniwatch-liquid",
        "model_version": "7", "as_of_ts": datetime(2030, 1, 1, tzinfo=UTC), "infer_lineage_id": "l",
        "horizon_predictions": {"1h": 0.001}}])

    async def scenario() -> None:
        everything = await subscribe(server, "/stream/signals", key=None, query=f"?api_key={KEY}")
        btc_1h = await subscribe(server, "/stream/signals", "?symbols=BTC&horizon=1h,4h&horizon=24h")
        eth = await subscribe(server, "/stream/signals", "?symbols=ETH")
        rows = (signal_rows(1, "BTC", "1h", prediction) + signal_rows(1, "ETH", "4h") + signal_rows(1, "SOL", "24h"))
        insert(server.url, tables.signal_candidates, rows)
        got = await receive(everything, 3)
        assert [m["signal_id"] for m in got] == sorted(r["signal_id"] for r in rows)  # one created_at: by id
        first = next(m for m in got if m["signal_id"] == rows[0]["signal_id"])
        assert set(first) == SIGNAL_FIELDS
        assert (first["target"], first["horizon"], first["direction"], first["model_version"]) == ("BTC", "1h", 1, "7")
        assert datetime.fromisoformat(first["as_of_ts"]) == rows[0]["as_of_ts"]
        assert datetime.fromisoformat(first["created_at"]).tzinfo is not None
        assert [m["model_version"] for m in got if m["target"] != "BTC"] == [None, None]
        assert [m["target"] for m in await receive(btc_1h, 1)] == ["BTC"]
        assert [m["target"] for m in await receive(eth, 1)] == ["ETH"]
        for ws in (everything, btc_1h, eth):
            await nothing_more(ws, 0.2)  # each row once, however often the tailer re-reads its lookback
            await ws.close()

    asyncio.run(scenario())


def test_events_and_risk_streams_carry_their_rows(server):
    async def scenario() -> None:
        events = await subscribe(server, "/stream/events", "?track=vc&event_type=funding_round")
        risk = await subscribe(server, "/stream/risk", "?strategy_id=liquid_v2")
        now = datetime(2030, 2, 1, tzinfo=UTC)
        insert(server.url, tables.events, [
            {"source": "rss", "source_id": f"s-{uuid.uuid4()}", "track": track, "event_type": kind, "title": "Acme",
             "body": "long text", "event_time": now, "available_time": now, "payload": {"x": 1}}
            for track, kind in (("vc", "funding_round"), ("vc", "news"), ("liquid", "funding_round"))])
        insert(server.url, tables.risk_events, [
            {"track": "liquid", "strategy_id": sid, "code": "max_order_notional", "detail": {"notional": 1e6}}
            for sid in ("liquid_v2", "other")])
        [event] = await receive(events, 1)
        assert set(event) == EVENT_FIELDS and (event["track"], event["event_type"]) == ("vc", "funding_round")
        assert datetime.fromisoformat(event["event_time"]) == now and event["entity_ids"] == []
        [block] = await receive(risk, 1)
        assert set(block) == RISK_FIELDS
        assert (block["strategy_id"], block["code"], block["detail"]) == ("liquid_v2", "max_order_notional",
                                                                        {"notional": 1e6})
        await nothing_more(events, 0.2)
        await nothing_more(risk, 0.05)
        for ws in (events, risk):
            await ws.close()

    asyncio.run(scenario())


def test_keys_and_filters_are_checked_before_the_connection_opens(server):
    async def refused(path: str, key: str | None = None) -> tuple[int, dict]:
        with pytest.raises(InvalidStatus) as exc:
            await connect(f"{server.ws}{path}", additional_headers={"X-API-Key": key} if key else {}, proxy=None)
        return exc.value.response.status_code, json.loads(exc.value.response.body)

    async def scenario() -> None:
        for path, key in (("/stream/signals", None), ("/stream/risk", "wrong"), ("/stream/events?api_key=nope", None)):
            status, body = await refused(path, key)
            assert (status, body["code"]) == (401, "unauthorized"), (path, body)
        for query, field in (("?symbols=DOGE", "query.symbols"), ("?horizon=2h", "query.horizon.0"),
                             ("?track=stocks", "query.track"), ("?colour=red", "query.colour")):
            status, body = await refused(f"/stream/signals{query}", KEY)
            assert (status, body["code"]) == (422, "validation_error"), (query, body)
            assert [e["field"] for e in body["errors"]] == [field], body
        status, body = await refused("/stream/risk?symbols=BTC", KEY)  # a filter of another topic
        assert status == 422 and body["errors"][0]["field"] == "query.symbols"
        ws = await subscribe(server, "/stream/risk", f"?api_key={KEY}", key=None)
        await ws.close()

    asyncio.run(scenario())
    log = server.log.read_text()
    assert KEY not in log and "api_key=***" in log  # the query-string key is masked in uvicorn's lines


def risk_rows(n: int, pad: int) -> list[dict]:
    """Risk blocks of about ``pad`` bytes each (the order and figures in ``detail``)."""
    return [{"track": "liquid", "strategy_id": "liquid_v2", "code": "max_order_notional",
             "detail": {"n": i, "note": "x" * pad}} for i in range(n)]


def test_a_slow_client_is_evicted_while_fast_clients_get_every_message(server):
    """The kernel takes up to ~4 MiB per socket before a send stalls (Linux autotunes the send
    buffer), so the burst is 6 MB: 2000 risk blocks of 3 KB."""
    before = {r: dropped(server, r) for r in ("queue_overflow", "send_timeout")}

    async def scenario() -> tuple[float, float]:
        fast = await asyncio.gather(*(subscribe(server, "/stream/risk", compression=None) for _ in range(20)))
        slow = await slow_client(server, "/stream/risk")
        assert open_connections(server) == 21
        rows = risk_rows(2000, 3000)
        start = time.perf_counter()
        insert(server.url, tables.risk_events, rows)
        received = await asyncio.gather(*(receive(ws, len(rows), timeout=15, keep=lambda m: m["detail"]["n"])
                                          for ws in fast))
        delivered = time.perf_counter() - start
        assert all(got == list(range(len(rows))) for got in received)  # every message, once, in order
        evicted = await until(lambda: open_connections(server) == 20, timeout=SEND_TIMEOUT_S + 10) + delivered
        slow.transport.abort()
        for ws in fast:
            await ws.close()
        return delivered, evicted

    delivered, evicted = asyncio.run(scenario())
    lost = sum(dropped(server, r) - n for r, n in before.items())
    assert 0 < lost < 2000  # what the slow client had not taken when it was evicted
    print(f"2000 messages (6 MB) to 20 clients in {delivered:.2f} s; the slow client evicted {evicted:.2f} s after "
          f"the insert, {lost:.0f} messages dropped")


def test_a_client_that_vanishes_is_counted_client_gone(server):
    """10 MB for a client that stopped reading: more than the kernel holds, so some of it is still
    in the server's hands (in flight or queued, never more than the queue holds) when it vanishes."""
    before = dropped(server, "client_gone")

    async def scenario() -> None:
        slow = await slow_client(server, "/stream/risk")
        sock = slow.transport.get_extra_info("socket")
        insert(server.url, tables.risk_events, risk_rows(1000, 10_000))
        await until(lambda: unread_bytes(sock) > 0, timeout=5)  # the server is sending
        await asyncio.sleep(0.2)  # ... and stalls on the full socket, well before its send timeout
        slow.transport.abort()  # a reset: the client is gone with messages undelivered
        await until(lambda: open_connections(server) == 0, timeout=5)

    asyncio.run(scenario())
    assert dropped(server, "client_gone") > before
