"""What a Coinbase product allows, and how an order is fitted to it before it is sent.

``GET /api/v3/brokerage/products/{product_id}`` gives each product's increments and bounds
(``base_increment``, ``base_min_size``, ``base_max_size``, ``price_increment``) and its trading
flags (``trading_disabled``, ``cancel_only``, ``limit_only``, ``is_disabled``, ``status``). The live
adapter reads them (cached for an hour) and, before anything is sent:

* rounds the size **down** to ``base_increment`` (never more than asked) and refuses locally, as a
  ``rejected`` report naming the rule, a size below ``base_min_size`` or above ``base_max_size``
  after rounding, and any order on a product that is disabled, cancel-only or not ``online``;
* bounds a market order's slippage when it carries ``max_slippage_bps`` (Coinbase market orders
  take no price limit): the best bid and ask come from ``GET /product_book?limit=1`` and the order
  is sent as an IOC limit (``sor_limit_ioc``; FOK: ``limit_limit_fok``) at the far side's best
  price moved by the cap, rounded to ``price_increment`` toward the better side (a buy's bound is
  rounded down, a sell's up), so no fill is worse than the cap. The book's mid is the order's
  reference price (slippage is measured against it, as the paper adapter does). A limit-only
  product gets the same treatment for every market order (the cap, or no bound without one is
  refused). A market order without a cap is sent as a market order: it takes the book as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

from omniwatch.connectors.http import parse_float
from omniwatch.trading.orders import OrderRequest


def _dec(text: Any, field: str) -> Decimal:
    value = str(text or "").strip()
    try:
        out = Decimal(value)
    except ArithmeticError:
        raise ValueError(f"Coinbase product field {field}={value!r} is not a decimal") from None
    if not out.is_finite():
        raise ValueError(f"Coinbase product field {field}={value!r} is not finite")
    return out


def plain(value: Decimal) -> str:
    """A venue decimal string: never an exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text not in ("-0", "") else "0"


@dataclass(frozen=True)
class ProductRules:
    product_id: str
    base_increment: Decimal
    base_min_size: Decimal
    base_max_size: Decimal
    price_increment: Decimal
    tradable: bool
    why_not: str          # empty when tradable
    limit_only: bool

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ProductRules:
        product = str(payload.get("product_id") or "")
        if not product:
            raise ValueError("Coinbase product answer without a product_id")
        flags = [name for name in ("trading_disabled", "cancel_only", "is_disabled", "view_only") if payload.get(name)]
        status = str(payload.get("status") or "")
        if status and status != "online":
            flags.append(f"status {status}")
        return cls(product, _dec(payload.get("base_increment"), "base_increment"),
                   _dec(payload.get("base_min_size"), "base_min_size"),
                   _dec(payload.get("base_max_size"), "base_max_size"),
                   _dec(payload.get("price_increment") or payload.get("quote_increment"), "price_increment"),
                   not flags, ", ".join(flags), bool(payload.get("limit_only")))

    def size(self, qty: float) -> Decimal:
        """``qty`` rounded down to the product's base increment."""
        if self.base_increment <= 0:
            return Decimal(repr(qty))
        steps = (Decimal(repr(qty)) / self.base_increment).to_integral_value(rounding=ROUND_DOWN)
        return steps * self.base_increment

    def refusal(self, order: OrderRequest) -> str | None:
        """Why the venue would not take ``order`` (checked here, before sending), or None."""
        if not self.tradable:
            return f"{self.product_id} does not take orders now ({self.why_not})"
        size = self.size(order.qty)
        if size < self.base_min_size or size <= 0:
            return (f"size {order.qty} rounds to {plain(size)} at {self.product_id}'s base increment "
                    f"{plain(self.base_increment)}, below its minimum {plain(self.base_min_size)}")
        if size > self.base_max_size:
            return f"size {plain(size)} is above {self.product_id}'s maximum {plain(self.base_max_size)}"
        if self.limit_only and order.order_type == "market" and order.max_slippage_bps is None:
            return f"{self.product_id} is limit-only: a market order needs max_slippage_bps to be sent as a limit"
        return None

    def slippage_bound(self, side: str, best_bid: float, best_ask: float, cap_bps: float) -> Decimal:
        """The worst price a market order capped at ``cap_bps`` may fill at, on the price grid."""
        if side == "buy":
            raw, rounding = Decimal(repr(best_ask * (1 + cap_bps / 1e4))), ROUND_FLOOR
        else:
            raw, rounding = Decimal(repr(best_bid * (1 - cap_bps / 1e4))), ROUND_CEILING
        if self.price_increment <= 0:
            return raw
        return (raw / self.price_increment).to_integral_value(rounding=rounding) * self.price_increment


def best_bid_ask(payload: dict[str, Any]) -> tuple[float, float]:
    """Best bid and ask of a ``product_book`` answer; ValueError when a side is empty."""
    book = payload.get("pricebook") or {}
    bids, asks = book.get("bids") or [], book.get("asks") or []
    if not bids or not asks:
        raise ValueError(f"Coinbase product book of {book.get('product_id')!r} has an empty side")
    bid = parse_float(bids[0].get("price"), field="bids[0].price")
    ask = parse_float(asks[0].get("price"), field="asks[0].price")
    if not (math.isfinite(bid) and math.isfinite(ask)) or bid <= 0 or ask < bid:
        raise ValueError(f"Coinbase product book has no sane best bid/ask ({bid}, {ask})")
    return bid, ask


def configuration(order: OrderRequest, size: Decimal, bound: Decimal | None) -> dict[str, dict[str, Any]]:
    """The ``order_configuration`` for ``order`` at ``size`` (and a market order's ``bound``)."""
    base = {"base_size": plain(size)}
    if order.order_type == "market" and bound is None:
        return {"market_market_fok" if order.time_in_force == "FOK" else "market_market_ioc": base}
    if order.order_type == "market":
        assert bound is not None  # a market order without a bound returned above
        price = bound
    else:
        price = Decimal(repr(order.limit_price))
    limit = {**base, "limit_price": plain(price)}
    if order.order_type == "limit" and order.time_in_force == "GTC":
        return {"limit_limit_gtc": {**limit, "post_only": False}}
    return {"limit_limit_fok" if order.time_in_force == "FOK" else "sor_limit_ioc": limit}


__all__ = ["ProductRules", "best_bid_ask", "configuration", "plain"]
