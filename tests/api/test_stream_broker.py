"""The streams' broker and cursors on their own: deterministic backpressure cases (a full queue,
a send past its timeout, a vanished client) and late commits, on each warehouse backend."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter
from starlette.websockets import WebSocketDisconnect

from omniwatch.serving.streams.broker import Broker, Message, Subscriber
from omniwatch.serving.streams.cursors import IdCursor, TimeCursor
from omniwatch.serving.streams.hub import Tailer
from omniwatch.serving.streams.topics import TOPICS
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .test_streams import (
    EVENT_FIELDS,
    RISK_FIELDS,
    SIGNAL_FIELDS,
    insert,
    risk_rows,
    signal_rows,
    until,
)


# ------------------------------------------------------------------------------ broker, cursors
def _counter() -> Counter:
    return Counter("dropped", "test", ("reason",), registry=CollectorRegistry())


def _count(counter: Counter, reason: str) -> float:
    return counter.labels(reason=reason)._value.get()


def _messages(n: int) -> list[Message]:
    return [Message.of("risk", str(i), {"id": i, "track": "liquid", "strategy_id": "s"}) for i in range(n)]


def test_a_full_queue_evicts_only_its_connection_and_counts_what_it_lost():
    async def scenario() -> None:
        counter, frames = _counter(), []

        async def fast_send(text: str) -> None:
            frames.append(json.loads(text))

        async def stuck_send(text: str) -> None:
            await asyncio.Event().wait()

        broker = Broker()
        fast = Subscriber("risk", lambda p: True, fast_send, queue_size=8, batch_size=3, send_timeout_s=5,
                          dropped=counter)
        slow = Subscriber("risk", lambda p: True, stuck_send, queue_size=4, batch_size=3, send_timeout_s=5,
                          dropped=counter)
        broker.add(fast), broker.add(slow)
        pumps = [asyncio.create_task(s.pump()) for s in (fast, slow)]
        messages = _messages(20)
        for i in range(0, 20, 2):  # the tailer publishes between the senders' turns
            broker.publish("risk", messages[i:i + 2])
            for _ in range(3):
                await asyncio.sleep(0)
        assert (slow.reason, fast.reason) == ("queue_overflow", None) and broker.count("risk") == 1
        # the stuck batch of 2, the full queue of 4 and the refused message
        assert _count(counter, "queue_overflow") == 2 + 4 + 1
        await until(lambda: fast.sent == 20, timeout=1)
        assert [m["id"] for f in frames for m in f["messages"]] == list(range(20))
        assert all(f["topic"] == "risk" and f["type"] == "messages" and len(f["messages"]) <= 3 for f in frames)
        for pump in pumps:
            pump.cancel()

    asyncio.run(scenario())


def test_a_send_past_its_timeout_ends_the_connection_and_a_vanished_client_is_client_gone():
    async def scenario() -> None:
        counter = _counter()

        async def stuck_send(text: str) -> None:
            await asyncio.Event().wait()

        calls = itertools.count()

        async def gone_after_one(text: str) -> None:
            if next(calls) >= 1:
                raise WebSocketDisconnect(1006)

        stuck = Subscriber("risk", lambda p: True, stuck_send, queue_size=10, batch_size=2, send_timeout_s=0.05,
                           dropped=counter)
        gone = Subscriber("risk", lambda p: p["id"] % 2 == 0, gone_after_one, queue_size=10, batch_size=2,
                          send_timeout_s=1, dropped=counter)
        for message in _messages(7):
            stuck.offer(message), gone.offer(message)
        assert gone.queue.qsize() == 4  # its filter takes ids 0, 2, 4, 6
        await asyncio.wait_for(asyncio.gather(stuck.pump(), gone.pump("hello")), 1)
        assert (stuck.reason, _count(counter, "send_timeout")) == ("send_timeout", 7)
        assert (gone.reason, gone.sent, _count(counter, "client_gone")) == ("client_gone", 0, 4)

    asyncio.run(scenario())


def test_tailers_read_each_topics_new_rows_as_its_payload(warehouse_url):
    """On each backend, with the tables' own defaults (created_at, ingested_at from the database)."""
    tailers = {name: Tailer(topic, warehouse_url, 10) for name, topic in TOPICS.items()}

    async def scenario() -> dict[str, list[Message]]:
        assert [await t.read() for t in tailers.values()] == [[], [], []]  # placed at the tables' ends
        insert(warehouse_url, tables.signal_candidates, signal_rows(2, "SOL", "24h"))
        insert(warehouse_url, tables.entities, [{"entity_id": "e1", "track": "vc", "name": "E", "normalized_name": "e",
                                                 "aliases": []}])
        now = datetime(2030, 4, 1, tzinfo=UTC)
        with get_engine(warehouse_url).begin() as conn:
            event_id = conn.execute(tables.events.insert().values(
                source="rss", source_id="a", track="vc", event_type="news", event_time=now, available_time=now,
            )).inserted_primary_key[0]
            conn.execute(tables.event_links.insert().values(event_id=event_id, entity_id="e1", confidence=1.0,
                                                            method="exact"))
        insert(warehouse_url, tables.risk_events, risk_rows(1, 10))
        got = {name: await t.read() for name, t in tailers.items()}
        assert [await t.read() for t in tailers.values()] == [[], [], []]  # each row once
        return got

    got = asyncio.run(scenario())
    assert {n: len(m) for n, m in got.items()} == {"signals": 2, "events": 1, "risk": 1}
    for name, fields in (("signals", SIGNAL_FIELDS), ("events", EVENT_FIELDS), ("risk", RISK_FIELDS)):
        assert all(set(json.loads(m.encoded)) == fields for m in got[name]), name
    assert json.loads(got["events"][0].encoded)["entity_ids"] == ["e1"]
    assert datetime.fromisoformat(json.loads(got["signals"][0].encoded)["created_at"]).tzinfo is not None


def test_id_cursor_publishes_a_late_commit_inside_its_lookback_once(warehouse_url):
    now = [0.0]
    cursor = IdCursor(TOPICS["risk"].cursor(5).query, tables.risk_events.c.id, 5, clock=lambda: now[0])
    row = {"track": "liquid", "strategy_id": "s", "code": "c"}
    with get_engine(warehouse_url).begin() as conn:
        conn.execute(tables.risk_events.insert(), [{"id": 1, **row}])
        cursor.start(conn)
        conn.execute(tables.risk_events.insert(), [{"id": i, **row} for i in (2, 4, 7)])
        assert [r.id for r in cursor.read(conn)] == [2, 4, 7] and cursor.last == 7
        conn.execute(tables.risk_events.insert(), [{"id": 3, **row}])  # committed late, inside the lookback
        assert [r.id for r in cursor.read(conn)] == [3]
        assert cursor.read(conn) == []
        now[0] = 6.0  # the gaps 5..6 are given up
        conn.execute(tables.risk_events.insert(), [{"id": i, **row} for i in (5, 8)])
        assert [r.id for r in cursor.read(conn)] == [8]


def test_time_cursor_skips_what_it_published_and_what_precedes_its_lookback(warehouse_url):
    t0 = datetime(2030, 3, 1, 12, tzinfo=UTC)
    cursor = TimeCursor(TOPICS["signals"].cursor(10).query, tables.signal_candidates.c.signal_id,
                        tables.signal_candidates.c.created_at, 10)

    def rows(*seconds: float) -> list[dict]:
        return [{**r, "created_at": t0 + timedelta(seconds=s)} for r, s in zip(signal_rows(len(seconds)), seconds,
                                                                                  strict=True)]

    with get_engine(warehouse_url).begin() as conn:
        conn.execute(tables.signal_candidates.insert(), rows(0))
        cursor.start(conn)
        assert cursor.read(conn) == []  # present at start
        new = rows(5, 5, 20)
        conn.execute(tables.signal_candidates.insert(), new)
        assert sorted(r.signal_id for r in cursor.read(conn)) == sorted(r["signal_id"] for r in new)
        late, too_late = rows(15), rows(9)  # the newest seen is at 20 s: 15 s is inside the 10 s lookback
        conn.execute(tables.signal_candidates.insert(), late + too_late)
        assert [r.signal_id for r in cursor.read(conn)] == [late[0]["signal_id"]]
        assert cursor.read(conn) == []
