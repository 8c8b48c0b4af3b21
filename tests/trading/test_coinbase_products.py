"""The live adapter fits an order to its Coinbase product before sending it: size increments and
bounds, products that take no orders, and the slippage bound of a market order (an IOC limit at
the cap from the product book), against the local wire-format server."""

# ruff: noqa: F811
from __future__ import annotations

import json
import math

import pytest

from omniwatch.trading.coinbase_live import CoinbaseLiveAdapter
from omniwatch.trading.orders import OrderStatus

# The adapter, the fake venue and the key are the live adapter tests' own pytest fixtures: imported
# here to be registered, then taken as parameters (hence F811 for the whole file).
from .test_coinbase_live import adapter, clean_env, ec_key, settings_for, venue  # noqa: F401


def test_sizes_are_rounded_down_to_the_products_increment_and_refused_below_its_minimum(
        adapter, venue, make_request, t0):
    venue.product_overrides["ETH-USD"] = {"base_increment": "0.0001", "base_min_size": "0.001"}
    report = adapter.submit(make_request(symbol="ETH", qty=0.123456789), t0)
    (path, body), = venue.posted
    assert body["order_configuration"] == {"market_market_ioc": {"base_size": "0.1234"}}  # down, never up
    assert report.status is OrderStatus.FILLED and report.fills[0].qty == pytest.approx(0.1234)
    tiny = adapter.submit(make_request(symbol="ETH", qty=0.00099), t0)
    assert tiny.status is OrderStatus.REJECTED and tiny.venue_order_id is None
    assert "below its minimum 0.001" in tiny.reason and len(venue.posted) == 1  # nothing sent


@pytest.mark.parametrize("flags", [{"trading_disabled": True}, {"cancel_only": True}, {"status": "delisted"}])
def test_a_product_that_takes_no_orders_is_refused_before_sending(venue, ec_key, make_request, t0, flags):
    venue.product_overrides["SOL-USD"] = flags
    live = CoinbaseLiveAdapter(settings_for(venue, ec_key))
    report = live.submit(make_request(symbol="SOL", qty=1.0), t0)
    assert report.status is OrderStatus.REJECTED and "does not take orders now" in report.reason
    assert venue.posted == []
    live.close()


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_a_capped_market_order_goes_as_an_ioc_limit_at_the_cap(adapter, venue, make_request, t0, side):
    report = adapter.submit(make_request(qty=0.01, side=side, max_slippage_bps=20.0), t0)
    (_, body), = venue.posted
    (kind, config), = body["order_configuration"].items()
    book = json.loads(venue._book("BTC-USD", 1).body)["pricebook"]
    bid, ask = (float(book[s][0]["price"]) for s in ("bids", "asks"))
    bound = ask * 1.002 if side == "buy" else bid * 0.998
    limit = float(config["limit_price"])
    assert kind == "sor_limit_ioc" and config["base_size"] == "0.01"
    # on the 0.01 price grid, rounded toward the better side: never past the cap
    assert limit == pytest.approx(math.floor(bound * 100) / 100 if side == "buy" else math.ceil(bound * 100) / 100)
    assert report.status is OrderStatus.FILLED and report.reference_price == pytest.approx((bid + ask) / 2)


def test_a_capped_market_order_does_not_fill_past_the_cap_when_the_market_moved(adapter, venue, make_request, t0):
    """The book read says 45,000 but the venue now trades 0.5 % higher: an uncapped market order
    would fill there; the capped one (20 bps) is canceled unfilled instead."""
    venue.book_marks["BTC-USD"] = venue.marks["BTC-USD"] / 1.005
    report = adapter.submit(make_request(qty=0.01, max_slippage_bps=20.0), t0)
    assert report.status is OrderStatus.CANCELED and report.fills == ()
    uncapped = adapter.submit(make_request(qty=0.01), t0)
    assert uncapped.status is OrderStatus.FILLED and uncapped.fills[0].price == venue.marks["BTC-USD"]


def test_a_limit_only_product_needs_a_cap_for_market_orders(venue, ec_key, make_request, t0):
    venue.product_overrides["BTC-USD"] = {"limit_only": True}
    live = CoinbaseLiveAdapter(settings_for(venue, ec_key))
    refused = live.submit(make_request(qty=0.01), t0)
    assert refused.status is OrderStatus.REJECTED and "limit-only" in refused.reason and venue.posted == []
    capped = live.submit(make_request(qty=0.01, max_slippage_bps=50.0), t0)
    assert capped.status is OrderStatus.FILLED and "sor_limit_ioc" in venue.posted[0][1]["order_configuration"]
    live.close()
