"""API keys: mutations always need one; reads only when ``OMNIWATCH_API_OPEN_READS`` is false.

Keys come from ``OMNIWATCH_API_KEYS`` (comma-separated), each ``name:secret`` or a bare
``secret``. The name is who the audit log says acted (``model_promotions.actor``); a bare key is
named by a fingerprint, ``key-`` and the first 8 hex digits of its SHA-256, which names it
without revealing it. Keys are compared in constant time against every configured key (no early
exit, so timing does not tell which one matched). With no key configured, every mutation is
refused: an unset variable must not open the API. A key may also come as ``Authorization: Bearer
<secret>`` (Alertmanager's webhook cannot set ``X-API-Key``).

Scopes: a key may do what any key may, plus what its scopes allow. ``OMNIWATCH_API_KEY_SCOPES``
names keys by their name: comma-separated ``name=scope`` entries, several scopes joined by ``+``
(``trader=live,ops=live+admin``; a repeated name adds scopes). A bare key is named by its
fingerprint (``key-1a2b3c4d=live``). Scopes live in their own variable so ``OMNIWATCH_API_KEYS``
keeps its syntax and no secret has to change to grant or revoke one. ``require_scope("live")``
answers 401 like ``require_api_key`` without a valid key, and 403 ``missing_scope`` (naming the
scope and the key, never the secret) when the key lacks the scope; it returns the key's name.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import lru_cache

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from omniwatch.serving.errors import ApiError, ApiErrorCode

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="Key from OMNIWATCH_API_KEYS.")
# The same secrets as ``Authorization: Bearer <secret>``, for clients that cannot set a custom
# header (Alertmanager 0.25's webhook ``http_config.authorization``); X-API-Key wins when both come.
BEARER = HTTPBearer(auto_error=False, description="A key from OMNIWATCH_API_KEYS, as a bearer token.")


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


async def require_api_key(request: Request, api_key: str | None = Security(API_KEY_HEADER),
                          bearer: HTTPAuthorizationCredentials | None = Security(BEARER)) -> str:
    """The caller's key name (the audit log's actor); 401 without a valid key."""
    keys = request.app.state.services.named_keys
    given = api_key or (bearer.credentials if bearer else None)
    name = key_name(given, keys) if given else None
    if name is None:
        detail = "a valid X-API-Key header is required" if keys else "no API key is configured on this server"
        raise ApiError(401, ApiErrorCode.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "ApiKey"})
    return name


class ScopeErrorCode(StrEnum):
    MISSING_SCOPE = "missing_scope"  # 403: a valid key without the scope the route needs


@lru_cache(maxsize=16)
def parse_key_scopes(spec: str) -> dict[str, frozenset[str]]:
    """``"trader=live,ops=live+admin"`` -> ``{"trader": {"live"}, "ops": {"live", "admin"}}``.

    A malformed entry (no ``=``, an empty name or scope) is a configuration error, like a
    reserved key name: it must not silently grant or drop a scope."""
    scopes: dict[str, set[str]] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        name, sep, granted = entry.partition("=")
        names = [s.strip() for s in granted.split("+")]
        if not sep or not name.strip() or not all(names):
            raise ValueError(f"OMNIWATCH_API_KEY_SCOPES: {entry!r} is not name=scope[+scope...]")
        scopes.setdefault(name.strip(), set()).update(names)
    return {name: frozenset(granted) for name, granted in scopes.items()}


def key_scopes(request: Request, name: str) -> frozenset[str]:
    """The scopes the key called ``name`` holds on this app (empty when it holds none)."""
    return parse_key_scopes(request.app.state.services.serving.api_key_scopes).get(name, frozenset())


def require_scope(scope: str) -> Callable[..., Awaitable[str]]:
    """A dependency: the caller's key name when its key holds ``scope``; 401 without a key, 403 without the scope."""

    async def dependency(request: Request, name: str = Security(require_api_key)) -> str:
        if scope not in key_scopes(request, name):
            raise ApiError(403, ScopeErrorCode.MISSING_SCOPE, f"the API key {name!r} lacks the {scope!r} scope",
                           context={"scope": scope, "key": name})
        return name

    dependency.__name__ = f"require_scope_{scope}"
    return dependency
