"""One tailer per topic and the broker they publish to: the streams of one API process.

The warehouse is the one source of every stream: rows come from this process, from other
workers and from Dagster runs alike, so each worker tails the tables itself and serves its own
connections. A tailer polls its table every ``stream_poll_interval_s`` while its topic has a
connection (reads run in a worker thread, off the event loop) and publishes the new rows; with
no connection it reads nothing and starts again at the table's end when one arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from omniwatch.serving.metrics import Instruments
from omniwatch.serving.settings import ServingSettings
from omniwatch.serving.streams.broker import Broker, Message
from omniwatch.serving.streams.keys import mask_keys_in_logs
from omniwatch.serving.streams.topics import TOPICS, Topic
from omniwatch.warehouse.engine import get_engine

log = logging.getLogger(__name__)


class Tailer:
    def __init__(self, topic: Topic, url: str, lookback_s: float):
        self.topic, self.url = topic, url
        self.cursor = topic.cursor(lookback_s)
        self.lock = asyncio.Lock()  # one read at a time: the cursor is not shared between threads

    def _read(self) -> list[Message]:
        with get_engine(self.url).connect() as conn:
            if not self.cursor.ready:
                self.cursor.start(conn)
                return []
            rows = self.cursor.read(conn)
            return self.topic.messages(conn, rows) if rows else []

    async def read(self) -> list[Message]:
        async with self.lock:
            return await asyncio.to_thread(self._read)

    async def ready(self) -> None:
        """Place the cursor at the table's end if it is not placed yet (a first connection)."""
        async with self.lock:
            if not self.cursor.ready:
                await asyncio.to_thread(self._read)


class StreamHub:
    def __init__(self, url: str, serving: ServingSettings, instruments: Instruments):
        self.serving, self.instruments = serving, instruments
        self.broker = Broker()
        self.tailers = {name: Tailer(topic, url, serving.stream_lookback_s) for name, topic in TOPICS.items()}
        self._tasks: list[asyncio.Task[None]] = []

    async def _tail(self, tailer: Tailer) -> None:
        name = tailer.topic.name
        while True:
            if self.broker.count(name) == 0:
                tailer.cursor.reset()
            else:
                try:
                    messages = await tailer.read()
                except SQLAlchemyError as exc:  # the warehouse is away: keep the connections, try again
                    log.warning("stream %s: reading the warehouse failed: %s", name, exc)
                except Exception:  # a row the payload cannot carry must not end the topic for everyone
                    log.exception("stream %s: publishing failed", name)
                else:
                    await self._publish(name, messages)
            await asyncio.sleep(self.serving.stream_poll_interval_s)

    async def _publish(self, name: str, messages: list[Message]) -> None:
        """In slices of one frame, yielding between them: each sender sends a slice before the next
        is queued, so a burst larger than a queue evicts only the clients that cannot take it."""
        step = self.serving.stream_batch_size
        for start in range(0, len(messages), step):
            self.broker.publish(name, messages[start:start + step])
            await asyncio.sleep(0)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._tail(t), name=f"stream-tailer-{n}") for n, t in self.tailers.items()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.broker.close_all()


@asynccontextmanager
async def serving_streams(app: FastAPI) -> AsyncIterator[StreamHub]:
    """The app's hub, running while the app runs (``app.state.streams``; the app lifespan enters it)."""
    services = app.state.services
    mask_keys_in_logs()
    hub = StreamHub(services.database_url, services.serving, app.state.metrics.instruments)
    hub.start()
    app.state.streams = hub
    try:
        yield hub
    finally:
        app.state.streams = None
        await hub.stop()
