"""``/stream/signals``, ``/stream/events``, ``/stream/risk``: WebSocket streams of new warehouse rows.

The handshake is refused with an HTTP answer in the API's error shape (``{code, detail,
errors?}``), before the connection opens: 401 ``unauthorized`` when reads are keyed
(``OMNIWATCH_API_OPEN_READS=false``) and neither an ``X-API-Key`` header nor an ``api_key``
query parameter (for browsers, which cannot set headers) holds a valid key; 422
``validation_error`` for an unknown filter or value; 503 when the streams are not running. The
``api_key`` value is masked in the server's log lines.

Once open, the server sends text frames only, each a JSON object:
``{"topic", "type": "subscribed", "filters", "poll_interval_s"}`` first, then
``{"topic", "type": "messages", "messages": [payload, ...]}`` per batch (payloads:
``omniwatch.serving.streams.topics``). What the client sends is read and ignored. Close codes:
1013 with reason ``queue_overflow`` or ``send_timeout`` when the client did not keep up
(``omniwatch.serving.streams.broker``); 1012 (uvicorn) or 1001 when the server stops.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import suppress

import anyio
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from omniwatch.serving.errors import ApiErrorCode
from omniwatch.serving.streams.broker import (
    CLIENT_GONE,
    QUEUE_OVERFLOW,
    SEND_TIMEOUT,
    SHUTDOWN,
    SLOW_CLIENT_CLOSE_CODE,
    Subscriber,
)
from omniwatch.serving.streams.hub import StreamHub
from omniwatch.serving.streams.keys import KEY_PARAM, unauthorized
from omniwatch.serving.streams.topics import TOPICS, StreamFilters, Topic

router = APIRouter(tags=["streams"])
CLOSE_TIMEOUT_S = 1.0  # a client that stopped reading may never take the close frame either


def _filters(websocket: WebSocket, topic: Topic) -> StreamFilters | JSONResponse:
    query = websocket.query_params
    params = {k: ",".join(query.getlist(k)) for k in query if k != KEY_PARAM}
    try:
        return topic.filters.model_validate(params, context={"symbols": websocket.app.state.services.settings
                                                              .liquid_symbols})
    except ValidationError as exc:
        errors = [{"field": ".".join(["query", *map(str, e["loc"])]), "reason": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return JSONResponse({"code": ApiErrorCode.VALIDATION_ERROR, "detail": detail, "errors": errors}, 422)


async def _until_disconnect(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _run(websocket: WebSocket, subscriber: Subscriber, greeting: str) -> None:
    """Until the client leaves or the subscriber ends; then close with the reason."""
    # anyio, as Starlette: a cancellation from the server (or the test client) ends the three together.
    async with anyio.create_task_group() as tasks:
        async def first_to_end(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            tasks.cancel_scope.cancel()

        tasks.start_soon(first_to_end, lambda: subscriber.pump(greeting))
        tasks.start_soon(first_to_end, lambda: _until_disconnect(websocket))
        tasks.start_soon(first_to_end, subscriber.ended.wait)
    subscriber.end(CLIENT_GONE)  # a no-op when it ended first
    if subscriber.reason in (QUEUE_OVERFLOW, SEND_TIMEOUT, SHUTDOWN):
        code, reason = (1001, "server shutting down") if subscriber.reason == SHUTDOWN else (
            SLOW_CLIENT_CLOSE_CODE, subscriber.reason)
        # The close frame waits for room in the socket like any frame: a client that stopped
        # reading gets none, and uvicorn drops the connection once the handler returns.
        with anyio.move_on_after(CLOSE_TIMEOUT_S), suppress(WebSocketDisconnect, OSError, RuntimeError):
            await websocket.close(code, reason)


async def serve(websocket: WebSocket, topic: Topic) -> None:
    hub: StreamHub | None = getattr(websocket.app.state, "streams", None)
    if hub is None:
        await websocket.send_denial_response(JSONResponse(
            {"code": ApiErrorCode.HTTP_ERROR, "detail": "the streams are not running"}, 503))
        return
    refusal = unauthorized(websocket)
    filters = _filters(websocket, topic) if refusal is None else refusal
    if isinstance(filters, JSONResponse):
        await websocket.send_denial_response(filters)
        return
    settings = hub.serving
    subscriber = Subscriber(topic.name, filters.accepts, websocket.send_text, queue_size=settings.stream_queue_size,
                            batch_size=settings.stream_batch_size, send_timeout_s=settings.stream_send_timeout_s,
                            dropped=hub.instruments.ws_dropped)
    await websocket.accept()
    hub.instruments.ws_connections.inc()
    hub.broker.add(subscriber)  # before the cursor is placed: no row written after the greeting is missed
    try:
        await hub.tailers[topic.name].ready()
        greeting = json.dumps({"topic": topic.name, "type": "subscribed", "filters": filters.model_dump(
            exclude_none=True), "poll_interval_s": settings.stream_poll_interval_s})
        await _run(websocket, subscriber, greeting)
    finally:
        hub.broker.remove(subscriber)
        subscriber.end(SHUTDOWN)  # the handler was cancelled (server stop): nothing to count
        hub.instruments.ws_connections.dec()


@router.websocket("/stream/signals")
async def stream_signals(websocket: WebSocket) -> None:
    """New rows of signal_candidates (the default stream)."""
    await serve(websocket, TOPICS["signals"])


@router.websocket("/stream/events")
async def stream_events(websocket: WebSocket) -> None:
    """New rows of events."""
    await serve(websocket, TOPICS["events"])


@router.websocket("/stream/risk")
async def stream_risk(websocket: WebSocket) -> None:
    """New rows of risk_events (orders refused by a risk control)."""
    await serve(websocket, TOPICS["risk"])
