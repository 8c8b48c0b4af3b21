"""The Coinbase Advanced Trade (API v3) execution adapter: create, get, cancel, fills.

What is sent follows Coinbase's own SDK (``coinbase/coinbase-advanced-py`` @ 54fb8ed,
``coinbase/rest/orders.py``) and its API reference; the replies it reads are the recorded ones
in ``tests/fixtures/api_samples/coinbase_advanced/`` (see PROVENANCE.md there).

* ``submit``: ``POST /api/v3/brokerage/orders`` with the request's ``client_order_id`` (sent as is
  when it is a UUID, else as a UUID derived from it, always the same one: Coinbase documents its
  ids as UUIDs, and a stable id is what makes a repeated create safe, see below). The order
  configuration follows order type and time in force: market -> ``market_market_ioc`` (FOK ->
  ``market_market_fok``), limit GTC -> ``limit_limit_gtc``, limit IOC -> ``sor_limit_ioc``, limit
  FOK -> ``limit_limit_fok``; a market order with ``max_slippage_bps`` goes as an IOC/FOK limit
  at the cap (see ``omniwatch.trading.coinbase_products``, which also fits the size to the
  product's increment and refuses what the product would). Sizes are always ``base_size`` (the
  request's ``qty`` is in base units; a ``quote_size`` would make the filled quantity depend on
  the price). ``success: false``
  (e.g. ``INSUFFICIENT_FUND``) and a 4xx answer are a REJECTED report, never an exception: the
  order does not exist at the venue. A success is followed by one ``get`` so a market order
  comes back with its fills.
* ``get``: ``GET /orders/historical/{id}`` and, once something filled, the fills
  (``GET /orders/historical/fills?order_ids=...``, every page). OPEN/PENDING/QUEUED (and the
  *_QUEUED states of a live order) are accepted, or partially_filled once ``filled_size`` > 0;
  FILLED, CANCELLED, EXPIRED map one to one; FAILED is rejected with its reject reason.
* ``cancel``: ``POST /orders/batch_cancel``, then ``get`` (the cancel result's failure reason,
  e.g. an order that filled first, is the report's reason).

Timeouts, connection errors, 429 and 5xx are retried (tenacity, exponential backoff with jitter,
a fresh JWT per attempt) and raise :class:`VenueUnavailable` once retries are spent. Retrying a
create is safe because the ``client_order_id`` is the same on every attempt, and Coinbase's Create
Order reference says of it: "If the ID provided is not unique, the order will not be created and
the order corresponding with that ID will be returned instead." The same rule is how a caller
settles a create that timed out: submit the same request again. An unknown order id is
:class:`UnknownVenueOrder`. The private key is a ``SecretStr`` until it is parsed, once, into a
key object; no log line, repr or error carries it (only the key *name* is shown).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from cachetools import TTLCache
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from omniwatch.connectors.http import RETRY_STATUSES, parse_float, parse_utc
from omniwatch.trading.coinbase_auth import PrivateKey, build_rest_jwt, load_private_key
from omniwatch.trading.coinbase_products import ProductRules, best_bid_ask, configuration
from omniwatch.trading.orders import (
    FillReport,
    OrderRequest,
    OrderStatus,
    UnknownVenueOrder,
    VenueReport,
    VenueUnavailable,
)

log = logging.getLogger(__name__)

API = "/api/v3/brokerage"
LIVE_SCOPE = "live"
_SNIPPET = 200


class CoinbaseLiveSettings(BaseSettings):
    """The live adapter's knobs (``OMNIWATCH_*``); the private key is never shown."""

    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_", extra="ignore")

    live_trading: bool = Field(default=False, description="OMNIWATCH_LIVE_TRADING=1 turns live orders on.")
    coinbase_api_key_name: str | None = Field(
        default=None, description="CDP key name, organizations/{org_id}/apiKeys/{key_id}.")
    coinbase_api_private_key: SecretStr | None = Field(
        default=None, description="The CDP key's private key: EC PEM, or base64 Ed25519.")
    coinbase_advanced_base_url: str = Field(default="https://api.coinbase.com")
    coinbase_timeout_s: float = Field(default=10.0, gt=0, description="Per-attempt HTTP timeout.")
    coinbase_max_retries: int = Field(default=2, ge=0, description="Extra attempts on timeouts/429/5xx.")
    coinbase_backoff_base_s: float = Field(default=0.5, ge=0, description="First backoff ceiling.")
    coinbase_products: dict[str, str] = Field(
        default_factory=lambda: {"BTC": "BTC-USD", "ETH": "ETH-USD", "SOL": "SOL-USD"},
        description="Project symbol -> Coinbase product id (JSON in the environment).")

    def keys_set(self) -> bool:
        return bool(self.coinbase_api_key_name and self.coinbase_api_private_key
                    and self.coinbase_api_private_key.get_secret_value().strip())


class LiveGate(StrEnum):
    """Why live trading is (not) allowed for a call; the first failing condition wins."""

    ALLOWED = "live_trading_allowed"
    OFF = "live_trading_off"              # OMNIWATCH_LIVE_TRADING is not set to 1
    KEYS_MISSING = "coinbase_keys_missing"
    SCOPE_MISSING = "live_scope_missing"  # the calling API key has no `live` scope


def live_trading_allowed(settings: CoinbaseLiveSettings, key_scopes: Collection[str]) -> tuple[bool, LiveGate]:
    """Live orders need all three: the switch on, both Coinbase keys set, the caller's `live` scope."""
    if not settings.live_trading:
        return False, LiveGate.OFF
    if not settings.keys_set():
        return False, LiveGate.KEYS_MISSING
    if LIVE_SCOPE not in key_scopes:
        return False, LiveGate.SCOPE_MISSING
    return True, LiveGate.ALLOWED


class CoinbaseApiError(Exception):
    """A non-retryable answer to a read or cancel (401/403/400...): configuration or caller error."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    """One failed attempt worth another (timeout, connection error, 429, 5xx)."""


_CLIENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://omniwatch/coinbase_live/client_order_id")


def venue_client_order_id(client_order_id: str) -> str:
    """The ``client_order_id`` Coinbase sees: ours when it is a UUID, else a UUID derived from it."""
    try:
        return str(uuid.UUID(client_order_id))
    except ValueError:
        return str(uuid.uuid5(_CLIENT_ID_NAMESPACE, client_order_id))


def order_configuration(order: OrderRequest) -> dict[str, dict[str, Any]]:
    """The ``order_configuration`` object for a request as asked (no product rounding, no bound)."""
    return configuration(order, Decimal(repr(order.qty)), None)


_LIVE = frozenset({"OPEN", "PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"})
_FINAL = {"FILLED": OrderStatus.FILLED, "CANCELLED": OrderStatus.CANCELED, "EXPIRED": OrderStatus.EXPIRED,
          "FAILED": OrderStatus.REJECTED}
_UNSPECIFIED = ("", "REJECT_REASON_UNSPECIFIED", "UNKNOWN_FAILURE_REASON", "UNKNOWN_PREVIEW_FAILURE_REASON",
                "UNKNOWN_CANCEL_FAILURE_REASON")


def order_status(order: Mapping[str, Any]) -> OrderStatus:
    """Our status for a Coinbase order object."""
    status = str(order.get("status", ""))
    if status in _LIVE:
        filled = parse_float(order.get("filled_size") or 0, field="filled_size")
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    if status in _FINAL:
        return _FINAL[status]
    raise CoinbaseApiError(f"Coinbase order {order.get('order_id')!r} has an unknown status {status!r}")


def _reason(*parts: Any) -> str:
    return ": ".join(str(p) for p in parts if p and str(p) not in _UNSPECIFIED)


def fill_report(fill: Mapping[str, Any]) -> FillReport:
    """A FillReport from a Coinbase fill; a quote-denominated size is turned into base units."""
    price = parse_float(fill["price"], field="price")
    size = parse_float(fill["size"], field="size")
    return FillReport(
        venue_fill_id=str(fill.get("trade_id") or fill["entry_id"]),
        ts=parse_utc(fill["trade_time"], field="trade_time").to_pydatetime(),
        qty=size / price if fill.get("size_in_quote") else size,
        price=price, fee=abs(parse_float(fill.get("commission") or 0, field="commission")),
        liquidity="maker" if fill.get("liquidity_indicator") == "MAKER" else "taker")


class CoinbaseLiveAdapter:
    """Places and follows orders on Coinbase Advanced Trade (see the module docstring)."""

    name = "coinbase_live"
    venue = "coinbase"
    in_warehouse = False  # the order is committed as submitted before Coinbase hears of it

    def __init__(self, settings: CoinbaseLiveSettings) -> None:
        if not settings.keys_set():
            raise ValueError("Coinbase API keys are not set (OMNIWATCH_COINBASE_API_KEY_NAME, "
                             "OMNIWATCH_COINBASE_API_PRIVATE_KEY)")
        self.settings = settings
        self.base_url = settings.coinbase_advanced_base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc
        self._key_name = str(settings.coinbase_api_key_name)
        self._private_key: PrivateKey | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._products: TTLCache[str, ProductRules] = TTLCache(maxsize=64, ttl=3600)

    def __repr__(self) -> str:
        return f"CoinbaseLiveAdapter(base_url={self.base_url!r}, key_name={self._key_name!r})"

    # -- ExecutionAdapter ------------------------------------------------------------------
    def submit(self, order: OrderRequest, now: datetime) -> VenueReport:
        product = self.product_id(order.symbol)
        try:
            rules = self.rules(product)
        except CoinbaseApiError as exc:
            if exc.status != 404:
                raise
            return VenueReport(None, OrderStatus.REJECTED, (), f"not sent: Coinbase does not list {product} ({exc})")
        refusal = rules.refusal(order)
        if refusal is not None:  # the venue would refuse it: nothing is sent
            return VenueReport(None, OrderStatus.REJECTED, (), f"not sent: {refusal}")
        bound, reference = None, None
        if order.order_type == "market" and order.max_slippage_bps is not None:
            bid, ask = self.best_bid_ask(product)
            bound, reference = rules.slippage_bound(order.side, bid, ask, order.max_slippage_bps), (bid + ask) / 2
        body = {"client_order_id": venue_client_order_id(order.client_order_id), "product_id": product,
                "side": order.side.upper(), "order_configuration": configuration(order, rules.size(order.qty), bound)}
        report = self._create(order, body, now)
        return replace(report, reference_price=reference) if reference is not None else report

    def _create(self, order: OrderRequest, body: dict[str, Any], now: datetime) -> VenueReport:
        status, payload = self._call("POST", f"{API}/orders", body=body, accept_4xx=True)
        if status >= 400:
            return VenueReport(None, OrderStatus.REJECTED, (), _reason(f"HTTP {status}", _message(payload)))
        if not payload.get("success"):
            error = payload.get("error_response") or {}
            reason = _reason(error.get("error") or payload.get("failure_reason"), error.get("message"),
                             error.get("error_details"), error.get("preview_failure_reason"),
                             error.get("new_order_failure_reason"))
            return VenueReport(payload.get("order_id") or None, OrderStatus.REJECTED, (), reason or "rejected")
        venue_order_id = (payload.get("success_response") or {}).get("order_id") or payload.get("order_id")
        if not venue_order_id:
            raise CoinbaseApiError(f"Coinbase accepted order {order.client_order_id!r} without an order id")
        try:
            return self.get(str(venue_order_id), now)
        except VenueUnavailable as exc:  # created, state unknown: the id must not be lost
            return VenueReport(str(venue_order_id), OrderStatus.ACCEPTED, (), f"created; state not read ({exc.reason})")

    def get(self, venue_order_id: str, now: datetime) -> VenueReport:
        _, payload = self._call("GET", f"{API}/orders/historical/{quote(venue_order_id, safe='')}",
                                order_id=venue_order_id)
        order = payload.get("order")
        if not isinstance(order, dict):
            raise CoinbaseApiError(f"Coinbase answered order {venue_order_id!r} without an order object")
        status = order_status(order)
        filled = parse_float(order.get("filled_size") or 0, field="filled_size")
        fills = self.fills(venue_order_id) if filled > 0 else ()
        reason = ""
        if status is OrderStatus.REJECTED:
            reason = _reason(order.get("reject_reason"), order.get("reject_message")) or "FAILED"
        elif status is OrderStatus.CANCELED:
            reason = _reason(order.get("cancel_message"))
        return VenueReport(venue_order_id, status, fills, reason)

    def cancel(self, venue_order_id: str, now: datetime) -> VenueReport:
        _, payload = self._call("POST", f"{API}/orders/batch_cancel", body={"order_ids": [venue_order_id]},
                                order_id=venue_order_id)
        results = [r for r in payload.get("results", []) if r.get("order_id") == venue_order_id]
        failure = "" if results and results[0].get("success") else str(
            (results[0].get("failure_reason") if results else None) or "cancel not confirmed")
        if failure == "UNKNOWN_CANCEL_ORDER":
            raise UnknownVenueOrder(f"Coinbase does not know order {venue_order_id!r}")
        report = self.get(venue_order_id, now)
        if failure:
            return VenueReport(report.venue_order_id, report.status, report.fills,
                               _reason(f"cancel refused ({failure})", report.reason), report.reference_price)
        return report

    # -- reads -----------------------------------------------------------------------------
    def fills(self, venue_order_id: str) -> tuple[FillReport, ...]:
        """Every fill of an order (all pages), deduplicated by fill id, oldest first."""
        seen: dict[str, FillReport] = {}
        cursor = ""
        for _ in range(1000):  # a bound, not an expectation: one order never has 100k fills
            params = {"order_ids": venue_order_id, "limit": "100", **({"cursor": cursor} if cursor else {})}
            _, page = self._call("GET", f"{API}/orders/historical/fills", params=params)
            for raw in page.get("fills", []):
                if raw.get("order_id") == venue_order_id:
                    fill = fill_report(raw)
                    seen.setdefault(fill.venue_fill_id, fill)
            cursor = str(page.get("cursor") or "")
            if not cursor or not page.get("fills"):
                break
        return tuple(sorted(seen.values(), key=lambda f: f.ts))

    def rules(self, product_id: str) -> ProductRules:
        """The product's increments, bounds and trading flags (``GET /products/{id}``, cached 1 h)."""
        with self._lock:
            cached = self._products.get(product_id)
        if cached is not None:
            return cached
        _, payload = self._call("GET", f"{API}/products/{quote(product_id, safe='')}")
        rules = ProductRules.from_payload(payload)
        with self._lock:
            self._products[product_id] = rules
        return rules

    def best_bid_ask(self, product_id: str) -> tuple[float, float]:
        """The best bid and ask now (``GET /product_book?limit=1``)."""
        _, payload = self._call("GET", f"{API}/product_book", params={"product_id": product_id, "limit": "1"})
        return best_bid_ask(payload)

    def key_permissions(self) -> dict[str, Any]:
        """``GET /key_permissions``: what the key may do (read-only; the validation script's probe)."""
        _, payload = self._call("GET", f"{API}/key_permissions")
        return dict(payload)

    def product_id(self, symbol: str) -> str:
        try:
            return self.settings.coinbase_products[symbol.upper()]
        except KeyError:
            raise ValueError(f"no Coinbase product mapped for symbol {symbol!r} "
                             f"(OMNIWATCH_COINBASE_PRODUCTS)") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- HTTP ------------------------------------------------------------------------------
    def _parts(self) -> tuple[httpx.Client, PrivateKey]:
        with self._lock:
            if self._private_key is None:
                secret = self.settings.coinbase_api_private_key
                assert secret is not None  # keys_set() was checked in __init__
                self._private_key = load_private_key(secret.get_secret_value())
            if self._client is None:
                self._client = httpx.Client(base_url=self.base_url, timeout=self.settings.coinbase_timeout_s,
                                            headers={"User-Agent": "omniwatch/0.1"})
            return self._client, self._private_key

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: Mapping[str, Any] | None = None, accept_4xx: bool = False,
              order_id: str | None = None) -> tuple[int, dict[str, Any]]:
        """One request with retries: ``(status, json)``; 4xx are returned only with ``accept_4xx``."""
        client, key = self._parts()
        ceiling = self.settings.coinbase_backoff_base_s
        retrying = Retrying(stop=stop_after_attempt(self.settings.coinbase_max_retries + 1),
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                            wait=wait_random_exponential(multiplier=ceiling, max=30),
                            before_sleep=_log_retry, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send(client, key, method, path, params, body)
        except _Retryable as exc:
            raise VenueUnavailable(f"Coinbase {method} {path}: {exc} "
                                   f"(after {self.settings.coinbase_max_retries + 1} attempts)") from None
        payload = _json(response)
        if response.status_code == 404 and order_id is not None:
            raise UnknownVenueOrder(f"Coinbase does not know order {order_id!r}")
        if response.status_code >= 400 and not accept_4xx:
            raise CoinbaseApiError(f"Coinbase {method} {path}: HTTP {response.status_code} {_message(payload)}",
                                   response.status_code)
        return response.status_code, payload

    def _send(self, client: httpx.Client, key: PrivateKey, method: str, path: str,
              params: Mapping[str, str] | None, body: Mapping[str, Any] | None) -> httpx.Response:
        token = build_rest_jwt(self._key_name, key, method, self._host, path)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            response = client.request(method, path, params=params, json=body, headers=headers)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.settings.coinbase_timeout_s}s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status_code} {_snippet(response.text)}")
        return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = {"message": _snippet(response.text)}
    return payload if isinstance(payload, dict) else {"message": _snippet(response.text)}


def _message(payload: Mapping[str, Any]) -> str:
    return _reason(payload.get("error"), payload.get("message") or payload.get("error_details"))


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.warning("Coinbase request failed (%s); retrying in %.2fs (attempt %d)", error, delay, state.attempt_number)


__all__ = ["CoinbaseApiError", "CoinbaseLiveAdapter", "CoinbaseLiveSettings", "LiveGate", "fill_report",
           "live_trading_allowed", "order_configuration", "order_status", "venue_client_order_id"]
