"""Fan-out of stream messages to WebSocket connections, with a bound on what a slow one may cost.

Each connection is a :class:`Subscriber`: a bounded ``asyncio.Queue`` and a sender task
(:meth:`Subscriber.pump`) that drains up to ``batch_size`` queued messages into one frame and
sends it under ``send_timeout_s``. :meth:`Broker.publish` never awaits a client: it only
``put_nowait``\\ s, so the tailer that publishes and every other connection go on at their pace.
A connection ends, and what it had not been sent is counted in
``omniwatch_websocket_dropped_messages_total{reason}``, when:

- ``queue_overflow``: a publish found its queue full (the client reads slower than the topic
  flows); the queued messages, the batch in flight and the refused one are counted;
- ``send_timeout``: one frame took longer than ``send_timeout_s`` to hand to the socket (the
  client stopped reading and the socket's buffers are full); the batch and the queue are counted;
- ``client_gone``: the client closed or the connection broke; the batch and the queue are counted.

Both slow-client endings are closed with code 1013 (try again later) and the reason as text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Counter
from starlette.websockets import WebSocketDisconnect

QUEUE_OVERFLOW: Final = "queue_overflow"
SEND_TIMEOUT: Final = "send_timeout"
CLIENT_GONE: Final = "client_gone"
SHUTDOWN: Final = "shutdown"  # the server stops: not a drop reason, nothing is counted
SLOW_CLIENT_CLOSE_CODE: Final = 1013  # "try again later": the client did not keep up


@dataclass(frozen=True)
class Message:
    """One row of a topic: its payload (for the filters) and the payload's JSON, encoded once
    for every connection it goes to."""

    topic: str
    key: str
    payload: dict[str, Any] = field(compare=False)
    encoded: str = field(compare=False)

    @classmethod
    def of(cls, topic: str, key: str, payload: dict[str, Any]) -> Message:
        return cls(topic, key, payload, json.dumps(payload, separators=(",", ":"), allow_nan=False))


def frame(topic: str, batch: list[Message]) -> str:
    """``{"topic": ..., "type": "messages", "messages": [payload, ...]}``."""
    return f'{{"topic":{json.dumps(topic)},"type":"messages","messages":[{",".join(m.encoded for m in batch)}]}}'


class Subscriber:
    """One connection's queue and sender. ``accepts`` is its filter; ``send`` hands one text
    frame to the socket (raising ``WebSocketDisconnect`` or ``OSError`` once the client is gone)."""

    def __init__(self, topic: str, accepts: Callable[[dict[str, Any]], bool], send: Callable[[str], Awaitable[None]],
                 *, queue_size: int, batch_size: int, send_timeout_s: float, dropped: Counter):
        self.topic, self.accepts, self.send = topic, accepts, send
        self.batch_size, self.send_timeout_s, self.dropped = batch_size, send_timeout_s, dropped
        self.queue: asyncio.Queue[Message] = asyncio.Queue(queue_size)
        self.reason: str | None = None  # why it ended; None while it runs
        self.ended = asyncio.Event()
        self.sent = 0  # messages handed to the socket
        self._in_flight = 0

    def offer(self, message: Message) -> None:
        """Queue ``message`` if the filter accepts it; a full queue ends the connection."""
        if self.reason is not None or not self.accepts(message.payload):
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.end(QUEUE_OVERFLOW, refused=1)

    def end(self, reason: str, refused: int = 0) -> None:
        """End once: count what will not be sent under ``reason`` and wake the connection's handler."""
        if self.reason is not None:
            return
        self.reason = reason
        lost = self.queue.qsize() + self._in_flight + refused
        if lost and reason != SHUTDOWN:
            self.dropped.labels(reason=reason).inc(lost)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.ended.set()

    async def pump(self, greeting: str | None = None) -> None:
        """Send ``greeting``, then batches, until the connection ends (the handler cancels it then)."""
        if greeting is not None and not await self._send(greeting):
            return
        while self.reason is None:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self._in_flight = len(batch)
            if not await self._send(frame(self.topic, batch)):
                return
            self._in_flight = 0
            self.sent += len(batch)

    async def _send(self, text: str) -> bool:
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self.send(text)
        except TimeoutError:
            self.end(SEND_TIMEOUT)
            return False
        except (WebSocketDisconnect, OSError):
            self.end(CLIENT_GONE)
            return False
        return True


class Broker:
    """The connections of each topic; publishing queues each message on each connection."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = {}

    def add(self, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(subscriber.topic, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        self._subscribers.get(subscriber.topic, set()).discard(subscriber)

    def count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def publish(self, topic: str, messages: list[Message]) -> None:
        for subscriber in list(self._subscribers.get(topic, ())):
            for message in messages:
                subscriber.offer(message)
                if subscriber.reason is not None:
                    self.remove(subscriber)
                    break

    def close_all(self) -> None:
        for subscribers in self._subscribers.values():
            for subscriber in list(subscribers):
                subscriber.end(SHUTDOWN)
            subscribers.clear()
