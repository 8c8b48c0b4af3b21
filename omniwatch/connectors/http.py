"""Shared HTTP plumbing for the live market-data connectors.

``HttpClient`` wraps one lazily built ``httpx.Client`` with what every public market-data API
needs: a client-side rate limit (pyrate-limiter; shared by every process through Redis when a
Redis URL is configured), bounded retries with exponential backoff and jitter (tenacity; honouring
``Retry-After`` on 429), and errors that say which URL failed, with which status, after how many
attempts and what the server said. Venue clients (Coinbase, Binance, Coin Metrics) build on it;
their pure parsers raise ``MalformedPayloadError`` when a payload does not have the expected shape.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pandas as pd
from pyrate_limiter import InMemoryBucket, Limiter, Rate, RedisBucket
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

# Statuses worth another try: rate limited, or the server (or a proxy in front of it) failed.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SNIPPET_CHARS = 200
# Query parameters whose values must never reach a log line or an exception message.
_SECRET_PARAMS = frozenset({"api_key", "apikey", "key", "secret", "signature", "passphrase",
                            "access_token", "token"})


class ConnectorError(Exception):
    """A connector call failed; the message names the URL, HTTP status, attempts and body snippet."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 attempts: int = 0, body: str | bytes | None = None) -> None:
        self.url = redact_url(url) if url else None
        self.status = status
        self.attempts = attempts
        self.body_snippet = _snippet(body)
        details = [f"url={self.url}"] if self.url else []
        if status is not None:
            details.append(f"status={status}")
        if attempts:
            details.append(f"attempts={attempts}")
        if self.body_snippet:
            details.append(f"body={self.body_snippet!r}")
        super().__init__(f"{message} [{', '.join(details)}]" if details else message)
        # Set by HttpClient on the failures that asking again can fix (429, 5xx, timeouts,
        # connection errors); the retry policy reads it. ``retry_after_s``: what a 429 asked for.
        self.retryable = False
        self.retry_after_s: float | None = None


class ConnectorTimeout(ConnectorError):
    """The server did not answer within the client timeout, on every attempt."""


class ConnectorHTTPError(ConnectorError):
    """The server answered with a non-success status (after retries, where retrying made sense)."""


class MalformedPayloadError(ConnectorError):
    """A payload was not what the API documents: bad JSON, a missing field, a wrong-length row."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None,
                 **kwargs: Any) -> None:
        self.field = field
        self.row = row
        super().__init__(message, **kwargs)


def redact_url(url: str) -> str:
    """``url`` with its password (``user:pw@host``) and the values of secret-looking query
    parameters replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
        url = urlunsplit(parts)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe=",:*")))


def _snippet(body: str | bytes | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    body = " ".join(body.split())
    return body if len(body) <= _SNIPPET_CHARS else body[:_SNIPPET_CHARS] + "..."


def utc_timestamp(value: Any) -> pd.Timestamp:
    """A tz-aware UTC ``pd.Timestamp``; naive inputs are read as UTC (the project's only zone)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def decode_json(raw: str | bytes | bytearray, *, url: str | None = None) -> Any:
    """Parse JSON text, turning a decode failure (e.g. a truncated body) into MalformedPayloadError."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayloadError(f"response is not valid JSON ({exc})", url=url,
                                    body=bytes(raw) if isinstance(raw, bytearray) else raw) from None


def load_payload(payload: Any) -> Any:
    """Decoded JSON as-is; JSON text (a replayed file's content) is decoded first."""
    return decode_json(payload) if isinstance(payload, (str, bytes, bytearray)) else payload


def _bad(what: str, value: Any, field: str, row: int | None) -> MalformedPayloadError:
    where = f"row {row}, field {field!r}" if row is not None else f"field {field!r}"
    return MalformedPayloadError(f"{where}: {what}, got {value!r:.60}", field=field, row=row)


def parse_float(value: Any, *, field: str, row: int | None = None, allow_missing: bool = False
                ) -> float:
    """A finite float from a JSON number or numeric string, else MalformedPayloadError naming it.

    ``allow_missing`` maps ``None`` and ``""`` to NaN (Binance sends ``""`` for an unknown mark).
    """
    if allow_missing and (value is None or value == ""):
        return math.nan
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise _bad("expected a number", value, field, row) from None
    if not math.isfinite(number):
        raise _bad("expected a finite number", value, field, row)
    return number


def parse_utc(value: Any, *, field: str, row: int | None = None, unit: str | None = None
              ) -> pd.Timestamp:
    """A UTC timestamp from an ISO string (or epoch number with ``unit``), else a named error."""
    try:
        if unit is None:
            ts = utc_timestamp(value)
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        else:
            ts = pd.Timestamp(value if isinstance(value, int) else float(value), unit=unit, tz="UTC")
    except (TypeError, ValueError, OverflowError):
        raise _bad("expected a timestamp", value, field, row) from None
    if pd.isna(ts):
        raise _bad("expected a timestamp", value, field, row)
    return ts


def rate_limiter(requests_per_second: float | None, *, key: str, redis_url: str | None = None
                 ) -> Limiter | None:
    """A limiter that spaces request starts at least ``1 / requests_per_second`` apart.

    One request per interval rather than a burst-allowing budget: the public endpoints we call
    publish per-second or per-window limits, and a steady pace never trips them. With
    ``redis_url`` the budget lives in Redis under ``key``, so every run process calling the same
    API shares it; otherwise it is this process's. ``None`` when no rate is set.
    """
    if not requests_per_second:
        return None
    # The sliding window is in whole milliseconds; round up so the pace never exceeds the rate.
    rates = [Rate(1, max(1, math.ceil(1000 / requests_per_second)))]
    if redis_url is None:
        bucket: InMemoryBucket | RedisBucket = InMemoryBucket(rates)
    else:
        import redis

        try:
            bucket = RedisBucket.init(rates, redis.Redis.from_url(redis_url),
                                      f"omniwatch:ratelimit:{key}")
        except redis.RedisError as exc:
            error = ConnectorError(f"rate-limit store unreachable at {redact_url(redis_url)} "
                                   f"({type(exc).__name__}: {exc})")
            error.retryable = True  # the store may come back: a retrying request waits for it
            raise error from exc
    # buffer_ms: what the limiter sleeps beyond the computed wait; small, as all processes
    # read the same machine clock.
    return Limiter(bucket, buffer_ms=2)


class HttpClient:
    """GETs JSON from one API with rate limiting, retries and descriptive errors.

    ``max_retries`` counts extra attempts: a request is tried at most ``max_retries + 1`` times.
    Retried: 429, 5xx, transport timeouts and connection errors. Not retried: other 4xx (asking
    again will not fix a bad request) and malformed payloads. Backoff between attempts is
    exponential with "equal jitter" (half fixed, half random) so several workers retrying the same
    outage do not hammer the API in lockstep; a 429's ``Retry-After`` (capped) replaces it.

    ``rate_limit_redis_url`` shares the rate budget across processes through Redis under
    ``rate_limit_key`` (default: the API's host), e.g. every run process of a deployment.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0, max_retries: int = 3,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 max_retry_after_s: float = 120.0, requests_per_second: float | None = None,
                 rate_limit_redis_url: str | None = None, rate_limit_key: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.requests_per_second = requests_per_second
        self.rate_limit_redis_url = rate_limit_redis_url
        self.rate_limit_key = rate_limit_key or urlsplit(self.base_url).netloc or "default"
        # Equal jitter: ceiling/2 fixed plus uniform(0, ceiling/2), ceiling = base * 2^(n-1).
        self._backoff = (wait_exponential(multiplier=backoff_base_s / 2, max=backoff_max_s / 2)
                         + wait_random_exponential(multiplier=backoff_base_s / 2,
                                                   max=backoff_max_s / 2))
        self._headers = {"Accept": "application/json", "User-Agent": "omniwatch/0.1",
                         **(headers or {})}
        self._client: httpx.Client | None = None
        self._limiter: Limiter | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        """The underlying httpx client, built on first use so constructing a connector is free."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout,
                                            headers=self._headers, follow_redirects=True)
            return self._client

    @property
    def limiter(self) -> Limiter | None:
        """The rate limiter (None without a rate), built on first use like the client."""
        with self._lock:
            if self._limiter is None and self.requests_per_second:
                self._limiter = rate_limiter(self.requests_per_second, key=self.rate_limit_key,
                                             redis_url=self.rate_limit_redis_url)
            return self._limiter

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._limiter is not None:
                self._limiter.close()
                self._limiter = None

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def now() -> pd.Timestamp:
        """The client clock (UTC); a fallback when a payload carries no time of its own."""
        return pd.Timestamp.now(tz="UTC")

    # -- requests ----------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` (relative to base_url, or an absolute URL) and return a 2xx response."""
        url = self._display_url(path, params)
        client = self.client  # built before a rate slot is taken
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry_if_exception(lambda exc: getattr(exc, "retryable", False)),
            wait=self._wait_s, before_sleep=self._log_retry, reraise=True)
        for attempt in retrying:
            with attempt:
                self._take_slot(url)
                return self._send(client, path, params, url, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable")  # Retrying returns the result or re-raises

    def _take_slot(self, url: str) -> None:
        """Wait for a rate slot. Without its Redis (down, or restarted empty: the limiter's Lua
        script is gone and every call would fail with NoScriptError) the limiter is dropped, to
        be rebuilt by the next attempt, and the attempt fails retryable: no request goes out
        without a slot (fail closed), and the backoff waits for Redis to return."""
        limiter = self.limiter
        if limiter is None:
            return
        if self.rate_limit_redis_url is None:
            acquired = limiter.try_acquire(self.rate_limit_key)
        else:
            import redis

            try:
                acquired = limiter.try_acquire(self.rate_limit_key)
            except redis.RedisError as exc:
                with self._lock:
                    if self._limiter is limiter:
                        self._limiter = None
                limiter.close()  # stops its leak thread; errors inside are logged, not raised
                error = ConnectorError(f"rate-limit store unreachable at {redact_url(self.rate_limit_redis_url)} "
                                       f"({type(exc).__name__}: {exc})", url=url)
                error.retryable = True
                raise error from None
        if not acquired:
            raise ConnectorError("rate limiter refused a slot", url=url)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None
                 ) -> tuple[Any, httpx.Response]:
        """GET and decode JSON; returns ``(payload, response)`` so callers can read headers."""
        response = self.get(path, params)
        return decode_json(response.content, url=str(response.request.url)), response

    # -- helpers -----------------------------------------------------------------------------
    def _send(self, client: httpx.Client, path: str, params: Mapping[str, Any] | None, url: str,
              attempt: int) -> httpx.Response:
        """One attempt: the 2xx response, or the ConnectorError that describes the failure."""
        log.debug("GET %s (attempt %d/%d)", url, attempt, self.max_retries + 1)
        try:
            response = client.get(path, params=params)
        except httpx.TimeoutException as exc:
            error: ConnectorError = ConnectorTimeout(
                f"timed out after {self.timeout}s ({type(exc).__name__})", url=url, attempts=attempt)
            error.retryable = True
            raise error from None
        except httpx.TransportError as exc:
            error = ConnectorError(f"connection failed ({type(exc).__name__}: {exc})", url=url,
                                   attempts=attempt)
            error.retryable = True
            raise error from None
        if response.is_success:
            return response
        error = ConnectorHTTPError(f"HTTP {response.status_code} {response.reason_phrase}",
                                   url=url, status=response.status_code, attempts=attempt,
                                   body=response.content)
        error.retryable = response.status_code in RETRY_STATUSES
        if response.status_code == 429:
            error.retry_after_s = self._retry_after_s(response)
        raise error

    def _wait_s(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after_s", None)
        return retry_after if retry_after is not None else self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retrying in %.2fs (attempt %d of %d)", error, delay,
                    state.attempt_number, self.max_retries + 1)

    def _display_url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(
                {k: v for k, v in params.items() if v is not None}, safe=",:")
        return redact_url(url)

    def _retry_after_s(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:  # the HTTP-date form
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - time.time()
        return min(max(seconds, 0.0), self.max_retry_after_s)
