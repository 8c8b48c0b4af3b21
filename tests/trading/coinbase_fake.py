"""A loopback Coinbase Advanced Trade (API v3) server that speaks the recorded wire format.

``CoinbaseFake`` extends ``tests.connectors.loopback.LoopbackServer`` (request log, per-path faults
such as a delay longer than the client timeout or a 503) with POST and with the behaviour of the
order endpoints, built from the recorded payloads in ``tests/fixtures/api_samples/coinbase_advanced``
(PROVENANCE.md there): every reply is a recorded reply with its ids, sizes and times filled in.

* Authentication as Coinbase checks it: ``Authorization: Bearer <JWT>`` signed by the test key
  (ES256 or EdDSA), ``iss`` cdp, ``sub`` and header ``kid`` the key name, a ``nonce`` never seen
  before, a lifetime of at most 120 s, and ``uri`` = ``"METHOD host/path"`` of this very request.
  Anything else is answered 401 ``Unauthorized`` and counted in ``auth_failures``.
* ``POST /orders``: a repeated ``client_order_id`` returns the existing order (no second one); a
  BUY costing more than the recorded USD balance, or a SELL of more than the recorded base
  balance, gets the recorded ``INSUFFICIENT_FUND`` reply. A market order fills at once at
  ``marks[product]`` (taker); a limit order that crosses the mark fills at once; a GTC limit that
  does not rests OPEN; an IOC/FOK limit that does not is CANCELLED (the fake's assumption).
* ``fill(order_id, size, price)`` is the venue executing a resting order (maker), for partial fills.
* ``GET /orders/historical/{id}``, ``GET /orders/historical/fills?order_ids=`` (paged by ``limit``
  and ``cursor``), ``POST /orders/batch_cancel``, ``GET /key_permissions``, ``GET /accounts``.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from connectors.loopback import LoopbackServer, Reply, json_reply

from omniwatch.trading.coinbase_auth import JWT_LIFETIME_S, PublicKey, algorithm_for, jwt_uri

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "api_samples" / "coinbase_advanced"
API = "/api/v3/brokerage"
FEE_RATE = {"MAKER": 0.004, "TAKER": 0.006}  # Coinbase's entry tier, fraction of notional
UNAUTHORIZED = Reply(401, b"Unauthorized\n", "text/plain")
TIF = {"market_market_ioc": "IMMEDIATE_OR_CANCEL", "market_market_fok": "FILL_OR_KILL",
       "sor_limit_ioc": "IMMEDIATE_OR_CANCEL", "limit_limit_fok": "FILL_OR_KILL",
       "limit_limit_gtc": "GOOD_UNTIL_CANCELLED"}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float) -> str:
    return format(round(value, 10), "f").rstrip("0").rstrip(".") or "0"


class CoinbaseFake(LoopbackServer):
    not_found = json_reply(404, {"error": "NOT_FOUND", "error_details": "Not Found", "message": "Not Found"})

    def __init__(self, key_name: str, public_key: PublicKey, marks: dict[str, float] | None = None) -> None:
        super().__init__()
        self.key_name, self.public_key = key_name, public_key
        self.marks = {"BTC-USD": 45123.45, "ETH-USD": 3076.92, "SOL-USD": 150.0, **(marks or {})}
        accounts = sample("accounts.json")["accounts"]
        self.balances = {a["currency"]: float(a["available_balance"]["value"]) for a in accounts}
        self.book_marks: dict[str, float] = {}  # where the book is centred when not at the mark (a moving market)
        self.product_overrides: dict[str, dict[str, Any]] = {}  # product id -> fields replaced in its answer
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: dict[str, list[dict[str, Any]]] = {}
        self.by_client_id: dict[str, str] = {}
        self.posted: list[tuple[str, Any]] = []  # (path, decoded JSON body) of every POST
        self.auth_failures = 0
        self._nonces: set[str] = set()
        self._state = threading.RLock()
        self._local = threading.local()

    # -- what the venue does on its own --------------------------------------------------------
    def fill(self, order_id: str, size: float, price: float, liquidity: str = "MAKER") -> None:
        """The venue executes ``size`` of an order at ``price``."""
        with self._state:
            order = self.orders[order_id]
            record = copy.deepcopy(sample("orders_historical_fills.json")["fills"][0])
            record.update(entry_id=str(uuid.uuid4()), trade_id=str(uuid.uuid4()), order_id=order_id,
                          trade_time=_now(), sequence_timestamp=_now(), price=_num(price), size=_num(size),
                          commission=_num(price * size * FEE_RATE[liquidity]), product_id=order["product_id"],
                          liquidity_indicator=liquidity, side=order["side"])
            self.fills[order_id].append(record)
            filled = float(order["filled_size"]) + size
            value = float(order["filled_value"]) + price * size
            fees = float(order["total_fees"]) + float(record["commission"])
            ordered = float(next(iter(order["order_configuration"].values()))["base_size"])
            order.update(filled_size=_num(filled), filled_value=_num(value), average_filled_price=_num(value / filled),
                         number_of_fills=str(len(self.fills[order_id])), total_fees=_num(fees),
                         completion_percentage=_num(min(100.0, 100 * filled / ordered)),
                         last_fill_time=record["trade_time"])
            if filled >= ordered * (1 - 1e-9):
                order.update(status="FILLED", settled=True)

    # -- HTTP ------------------------------------------------------------------------------------
    def route(self, path: str, params: dict[str, str]) -> Reply | None:
        method, body, headers = self._local.method, self._local.body, self._local.headers
        if not self._authorized(method, path, headers):
            return UNAUTHORIZED
        with self._state:
            if method == "POST":
                self.posted.append((path, body))
                if path == f"{API}/orders":
                    return self._create(body)
                if path == f"{API}/orders/batch_cancel":
                    return self._cancel(body["order_ids"])
                return None
            if path == f"{API}/orders/historical/fills":
                return self._list_fills(params)
            if path.startswith(f"{API}/orders/historical/"):
                order = self.orders.get(path.rsplit("/", 1)[1])
                if order is None:
                    return json_reply(404, {"error": "NOT_FOUND", "error_details": "order with this orderID was "
                                            "not found", "message": "order with this orderID was not found"})
                return json_reply(200, {"order": copy.deepcopy(order)})
            if path.startswith(f"{API}/products/"):
                return self._product(path.rsplit("/", 1)[1])
            if path == f"{API}/product_book":
                return self._book(params.get("product_id", ""), int(params.get("limit") or 50))
            if path == f"{API}/key_permissions":
                return json_reply(200, sample("key_permissions.json"))
            if path == f"{API}/accounts":
                return json_reply(200, sample("accounts.json"))
        return None

    def _authorized(self, method: str, path: str, headers: dict[str, str]) -> bool:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=[algorithm_for(self.public_key)], issuer="cdp",
                                options={"require": ["exp", "nbf", "iss", "sub", "uri"]})
        except jwt.PyJWTError:
            claims, header = {}, {}
        host = urlsplit(self.url).netloc
        nonce = str(header.get("nonce") or "")
        ok = (bool(claims) and header.get("kid") == self.key_name and claims["sub"] == self.key_name
              and claims["uri"] == jwt_uri(method, host, path) and 0 < claims["exp"] - claims["nbf"] <= JWT_LIFETIME_S
              and bool(nonce))
        with self._state:
            ok = ok and nonce not in self._nonces
            self._nonces.add(nonce)
            self.auth_failures += not ok
        return ok

    def _create(self, body: dict[str, Any]) -> Reply:
        known = self.by_client_id.get(body.get("client_order_id", ""))
        if known is not None:  # a repeated client_order_id returns the order it created
            return json_reply(200, self._created(self.orders[known]))
        (kind, config), = body["order_configuration"].items()
        product, side = body["product_id"], body["side"]
        if kind not in TIF or product not in self.marks or side not in ("BUY", "SELL"):
            return json_reply(400, {"error": "INVALID_ARGUMENT", "error_details": f"invalid order {kind} {product}",
                                    "message": f"invalid order {kind} {product}"})
        increment = Decimal(self.product_overrides.get(product, {}).get(
            "base_increment", sample("products_product.json")["base_increment"]))
        if Decimal(config["base_size"]) % increment != 0:
            return json_reply(400, {"error": "INVALID_ARGUMENT", "error_details": "Too many decimals in order amount",
                                    "message": "Too many decimals in order amount"})
        size, mark = float(config["base_size"]), self.marks[product]
        limit = float(config["limit_price"]) if "limit_price" in config else None
        base, quote = product.split("-")
        cost = size * (limit or mark)
        if (side == "BUY" and cost > self.balances.get(quote, 0.0)) or (
                side == "SELL" and size > self.balances.get(base, 0.0)):
            return json_reply(200, sample("orders_create_insufficient_fund.json"))
        order = copy.deepcopy(sample("orders_historical_order.json")["order"])
        order.update(order_id=str(uuid.uuid4()), product_id=product, side=side,
                     client_order_id=body["client_order_id"], order_configuration={kind: config}, status="OPEN",
                     time_in_force=TIF[kind], created_time=_now(), completion_percentage="0", filled_size="0",
                     average_filled_price="0", number_of_fills="0", filled_value="0", total_fees="0",
                     total_value_after_fees="0", order_type="MARKET" if kind.startswith("market") else "LIMIT",
                     outstanding_hold_amount="0", last_fill_time=None)
        self.orders[order["order_id"]] = order
        self.fills[order["order_id"]] = []
        self.by_client_id[order["client_order_id"]] = order["order_id"]
        crosses = limit is None or (limit >= mark if side == "BUY" else limit <= mark)
        if crosses:
            self.fill(order["order_id"], size, mark, "TAKER")
        elif kind != "limit_limit_gtc":
            order.update(status="CANCELLED", cancel_message="Order not filled immediately")
        return json_reply(200, self._created(order))

    def _product(self, product: str) -> Reply:
        if product not in self.marks:
            return json_reply(404, {"error": "NOT_FOUND", "error_details": "product not found",
                                    "message": "product not found"})
        base, quote = product.split("-")
        reply = sample("products_product.json")
        reply.update(product_id=product, display_name=product, base_currency_id=base, quote_currency_id=quote,
                     base_display_symbol=base, quote_display_symbol=quote, price=_num(self.marks[product]),
                     **self.product_overrides.get(product, {}))
        return json_reply(200, reply)

    def _book(self, product: str, limit: int) -> Reply:
        if product not in self.marks:
            return json_reply(400, {"error": "INVALID_ARGUMENT", "error_details": f"invalid product {product}",
                                    "message": f"invalid product {product}"})
        reply = sample("product_book.json")
        ratio = self.book_marks.get(product, self.marks[product]) / float(reply["mid_market"])
        book = reply["pricebook"]
        for side in ("bids", "asks"):
            book[side] = [{"price": _num(round(float(level["price"]) * ratio, 2)), "size": level["size"]}
                          for level in book[side][:max(1, limit)]]
        book.update(product_id=product, time=_now())
        mid = (float(book["bids"][0]["price"]) + float(book["asks"][0]["price"])) / 2
        reply.update(mid_market=_num(mid), last=_num(mid))
        return json_reply(200, reply)

    def _created(self, order: dict[str, Any]) -> dict[str, Any]:
        reply = sample("orders_create_success.json")
        reply["success_response"] = {k: order[k] for k in ("order_id", "product_id", "side", "client_order_id")}
        reply["order_configuration"] = copy.deepcopy(order["order_configuration"])
        return reply

    def _cancel(self, order_ids: list[str]) -> Reply:
        template = sample("orders_batch_cancel.json")["results"][0]
        results = []
        for order_id in order_ids:
            order = self.orders.get(order_id)
            if order is None:
                results.append({**template, "success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER",
                                "order_id": order_id})
            elif order["status"] != "OPEN":
                results.append({**template, "success": False, "failure_reason": "INVALID_CANCEL_REQUEST",
                                "order_id": order_id})
            else:
                order.update(status="CANCELLED", cancel_message="User requested cancel")
                results.append({**template, "order_id": order_id})
        return json_reply(200, {"results": results})

    def _list_fills(self, params: dict[str, str]) -> Reply:
        order_id = params.get("order_ids") or params.get("order_id", "")
        rows = sorted(self.fills.get(order_id, []), key=lambda f: f["trade_time"], reverse=True)
        start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 100)
        page = rows[start:start + limit]
        cursor = str(start + limit) if start + limit < len(rows) else ""
        return json_reply(200, {"fills": copy.deepcopy(page), "cursor": cursor})

    def _handler_class(self):  # type: ignore[no-untyped-def]
        """loopback's handler, with POST and the method/body/headers handed to ``route``."""
        base = super()._handler_class()
        server = self

        class Handler(base):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._serve("GET", None)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._serve("POST", json.loads(raw) if raw else None)

            def _serve(self, method: str, body: Any) -> None:
                server._local.method, server._local.body = method, body
                server._local.headers = dict(self.headers.items())
                parts = urlsplit(self.path)
                reply = server._answer(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                                       dict(self.headers.items()))
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
