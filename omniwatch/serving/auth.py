"""API keys: mutations always need one; reads only when ``OMNIWATCH_API_OPEN_READS`` is false.

Keys come from ``OMNIWATCH_API_KEYS`` (comma-separated), each ``name:secret`` or a bare
``secret``. The name is who the audit log says acted (``model_promotions.actor``); a bare key is
named by a fingerprint, ``key-`` and the first 8 hex digits of its SHA-256, which names it
without revealing it. Keys are compared in constant time against every configured key (no early
exit, so timing does not tell which one matched). With no key configured, every mutation is
refused: an unset variable must not open the API.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from omniwatch.serving.errors import ApiError, ApiErrorCode

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="Key from OMNIWATCH_API_KEYS.")


RESERVED_NAMES = frozenset({"system"})  # the sensors' actor: no API key may act under it


def named_key(entry: str) -> tuple[str, str]:
    """(name, secret) of one ``OMNIWATCH_API_KEYS`` entry; a reserved name is a configuration error."""
    name, sep, secret = entry.partition(":")
    if sep and name.strip() and secret:
        if name.strip().lower() in RESERVED_NAMES:
            raise ValueError(f"OMNIWATCH_API_KEYS: the key name {name.strip()!r} is reserved for the scheduler")
        return name.strip(), secret
    return f"key-{hashlib.sha256(entry.encode()).hexdigest()[:8]}", entry


def key_matches(given: str, keys: list[str]) -> bool:
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given.encode(), key.encode())
    return matched


def key_name(given: str, keys: list[tuple[str, str]]) -> str | None:
    """The name of the key ``given`` is, compared with every key; None when none matches."""
    found = None
    for name, secret in keys:
        if hmac.compare_digest(given.encode(), secret.encode()):
            found = name
    return found


async def require_api_key(request: Request, api_key: str | None = Security(API_KEY_HEADER)) -> str:
    """The caller's key name (the audit log's actor); 401 without a valid key."""
    keys = request.app.state.services.named_keys
    name = key_name(api_key, keys) if api_key else None
    if name is None:
        detail = "a valid X-API-Key header is required" if keys else "no API key is configured on this server"
        raise ApiError(401, ApiErrorCode.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "ApiKey"})
    return name
