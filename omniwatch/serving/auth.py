"""API keys: mutations always need one; reads only when ``OMNIWATCH_API_OPEN_READS`` is false.

Keys come from ``OMNIWATCH_API_KEYS`` (comma-separated) and are compared in constant time
against every configured key (no early exit, so timing does not tell which one matched). With no
key configured, every mutation is refused: an unset variable must not open the API.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from omniwatch.serving.errors import ApiError, ApiErrorCode

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="Key from OMNIWATCH_API_KEYS.")


def key_matches(given: str, keys: list[str]) -> bool:
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given.encode(), key.encode())
    return matched


async def require_api_key(request: Request, api_key: str | None = Security(API_KEY_HEADER)) -> None:
    keys = request.app.state.services.api_keys
    if not api_key or not key_matches(api_key, keys):
        detail = "a valid X-API-Key header is required" if keys else "no API key is configured on this server"
        raise ApiError(401, ApiErrorCode.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "ApiKey"})
