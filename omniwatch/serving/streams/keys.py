"""Stream keys: the same keys as the reads, from a header or (for browsers) the query string.

Browsers cannot set headers on a WebSocket handshake, so a stream also takes the key as
``?api_key=``; uvicorn logs every handshake's path with its query, so :class:`MaskKeys` masks
the value in those lines (installed when the streams start).
"""

from __future__ import annotations

import logging
import re

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from omniwatch.serving.auth import key_name
from omniwatch.serving.errors import ApiErrorCode

KEY_PARAM = "api_key"
_KEY_IN_TEXT = re.compile(rf"({KEY_PARAM}=)[^&\s\"]*")


class MaskKeys(logging.Filter):
    """Masks ``api_key=...`` in a record's arguments (uvicorn logs each handshake's path and query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(KEY_PARAM in str(a) for a in record.args):
            record.args = tuple(_KEY_IN_TEXT.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def mask_keys_in_logs() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskKeys) for f in logger.filters):
            logger.addFilter(MaskKeys())


def unauthorized(websocket: WebSocket) -> JSONResponse | None:
    services = websocket.app.state.services
    if services.serving.api_open_reads:
        return None
    given = websocket.headers.get("x-api-key") or websocket.query_params.get(KEY_PARAM)
    if given and key_name(given, services.named_keys) is not None:
        return None
    detail = ("a valid X-API-Key header or api_key query parameter is required" if services.named_keys
              else "no API key is configured on this server")
    return JSONResponse({"code": ApiErrorCode.UNAUTHORIZED, "detail": detail}, 401,
                        headers={"WWW-Authenticate": "ApiKey"})
