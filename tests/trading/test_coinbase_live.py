"""The Coinbase live adapter over HTTP against a loopback server speaking the recorded wire format.

The fake (``coinbase_fake.CoinbaseFake``) verifies each request's JWT with the public half of a
throwaway key generated here, so every test that gets an answer also proves the authentication.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from connectors.loopback import Fault
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from omniwatch.trading.coinbase_auth import CoinbaseKeyError, build_rest_jwt, load_private_key
from omniwatch.trading.coinbase_live import (
    CoinbaseApiError,
    CoinbaseLiveAdapter,
    CoinbaseLiveSettings,
    LiveGate,
    live_trading_allowed,
    order_configuration,
    venue_client_order_id,
)
from omniwatch.trading.orders import OrderStatus, UnknownVenueOrder, VenueUnavailable

from .coinbase_fake import API, FEE_RATE, CoinbaseFake

KEY_NAME = "organizations/test-org/apiKeys/test-key"
ENV = ("OMNIWATCH_LIVE_TRADING", "OMNIWATCH_COINBASE_API_KEY_NAME", "OMNIWATCH_COINBASE_API_PRIVATE_KEY",
       "OMNIWATCH_COINBASE_ADVANCED_BASE_URL")


def pem_of(key: ec.EllipticCurvePrivateKey) -> str:
    """PEM as the CDP portal hands it out (SEC1 ``EC PRIVATE KEY``)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def venue(ec_key) -> Iterator[CoinbaseFake]:
    with CoinbaseFake(KEY_NAME, ec_key.public_key()) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def settings_for(server: CoinbaseFake, key: ec.EllipticCurvePrivateKey, **overrides) -> CoinbaseLiveSettings:
    values = dict(live_trading=True, coinbase_api_key_name=KEY_NAME, coinbase_api_private_key=pem_of(key),
                  coinbase_advanced_base_url=server.url, coinbase_timeout_s=5.0, coinbase_max_retries=2,
                  coinbase_backoff_base_s=0.01)
    return CoinbaseLiveSettings(**{**values, **overrides})


@pytest.fixture
def adapter(venue, ec_key) -> Iterator[CoinbaseLiveAdapter]:
    live = CoinbaseLiveAdapter(settings_for(venue, ec_key))
    yield live
    live.close()


# -- authentication ----------------------------------------------------------------------------
def test_jwt_has_coinbase_s_wire_format(ec_key):
    token = build_rest_jwt(KEY_NAME, ec_key, "GET", "api.coinbase.com", "/api/v3/brokerage/accounts?limit=1",
                           now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], options={"verify_exp": False})
    assert header["alg"] == "ES256" and header["kid"] == KEY_NAME and len(header["nonce"]) == 64
    assert claims == {"sub": KEY_NAME, "iss": "cdp", "nbf": 1_700_000_000, "exp": 1_700_000_120,
                      "uri": "GET api.coinbase.com/api/v3/brokerage/accounts"}
    again = build_rest_jwt(KEY_NAME, ec_key, "GET", "api.coinbase.com", "/x", now=1_700_000_000)
    assert jwt.get_unverified_header(again)["nonce"] != header["nonce"]


def test_ed25519_keys_sign_with_eddsa():
    raw = ed25519.Ed25519PrivateKey.generate()
    seed = raw.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    key = load_private_key(base64.b64encode(seed + bytes(32)).decode())  # 64-byte form, as the portal gives
    token = build_rest_jwt(KEY_NAME, key, "POST", "api.coinbase.com", "/api/v3/brokerage/orders")
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert jwt.decode(token, raw.public_key(), algorithms=["EdDSA"])["uri"].startswith("POST api.coinbase.com/")


def test_escaped_newlines_of_an_env_file_are_accepted(ec_key):
    assert isinstance(load_private_key(pem_of(ec_key).replace("\n", "\\n")), ec.EllipticCurvePrivateKey)


def test_the_fake_refuses_missing_reused_foreign_and_misdirected_tokens(venue, ec_key):
    path = f"{API}/key_permissions"
    host = venue.url.split("//", 1)[1]
    good = build_rest_jwt(KEY_NAME, ec_key, "GET", host, path)
    assert httpx.get(venue.url + path, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    attempts = [
        {},                                                        # no token
        {"Authorization": f"Bearer {good}"},                       # the same token again (nonce reuse)
        {"Authorization": "Bearer " + build_rest_jwt(KEY_NAME, ec.generate_private_key(ec.SECP256R1()),
                                                     "GET", host, path)},   # signed by another key
        {"Authorization": "Bearer " + build_rest_jwt(KEY_NAME, ec_key, "GET", host, f"{API}/accounts")},
        {"Authorization": "Bearer " + build_rest_jwt(KEY_NAME, ec_key, "POST", host, path)},
        {"Authorization": "Bearer " + build_rest_jwt("organizations/o/apiKeys/other", ec_key, "GET", host, path)},
        {"Authorization": "Bearer " + build_rest_jwt(KEY_NAME, ec_key, "GET", host, path, now=time.time() - 600)},
    ]
    assert [httpx.get(venue.url + path, headers=h).status_code for h in attempts] == [401] * len(attempts)
    assert venue.auth_failures == len(attempts)


def test_a_key_the_venue_does_not_know_is_refused(venue):
    stranger = CoinbaseLiveAdapter(settings_for(venue, ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CoinbaseApiError) as caught:
        stranger.get("any-order", now=None)  # type: ignore[arg-type]
    assert caught.value.status == 401


# -- orders ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("order_type", "tif", "expected"), [
    ("market", "IOC", {"market_market_ioc": {"base_size": "0.015"}}),
    ("market", "GTC", {"market_market_ioc": {"base_size": "0.015"}}),
    ("market", "FOK", {"market_market_fok": {"base_size": "0.015"}}),
    ("limit", "GTC", {"limit_limit_gtc": {"base_size": "0.015", "limit_price": "40000.5", "post_only": False}}),
    ("limit", "IOC", {"sor_limit_ioc": {"base_size": "0.015", "limit_price": "40000.5"}}),
    ("limit", "FOK", {"limit_limit_fok": {"base_size": "0.015", "limit_price": "40000.5"}}),
])
def test_order_configuration_follows_type_and_time_in_force(make_request, order_type, tif, expected):
    order = make_request(qty=0.015, order_type=order_type, time_in_force=tif,
                         limit_price=40000.5 if order_type == "limit" else None)
    assert order_configuration(order) == expected


def test_client_order_ids_reach_coinbase_as_stable_uuids():
    own = "9a44aedd-6c8a-4a26-ad8d-9b0ed1dd1912"
    assert venue_client_order_id(own) == own
    derived = venue_client_order_id("liquid:s1:BTC:2024-06-01T12")
    assert str(uuid.UUID(derived)) == derived and derived == venue_client_order_id("liquid:s1:BTC:2024-06-01T12")
    assert derived != venue_client_order_id("liquid:s1:BTC:2024-06-01T13")


def test_sizes_are_plain_decimals_never_exponents(make_request):
    order = make_request(qty=1e-8, order_type="limit", limit_price=1e5, time_in_force="FOK")
    assert order_configuration(order) == {"limit_limit_fok": {"base_size": "0.00000001", "limit_price": "100000"}}


def test_a_market_buy_fills_at_once_with_its_fills(adapter, venue, make_request, t0):
    report = adapter.submit(make_request(client_order_id="9a44aedd-6c8a-4a26-ad8d-9b0ed1dd1912", qty=0.01), t0)
    assert venue.posted == [(f"{API}/orders", {"client_order_id": "9a44aedd-6c8a-4a26-ad8d-9b0ed1dd1912",
                                               "product_id": "BTC-USD", "side": "BUY",
                                               "order_configuration": {"market_market_ioc": {"base_size": "0.01"}}})]
    assert report.status is OrderStatus.FILLED and report.venue_order_id in venue.orders
    (fill,) = report.fills
    assert (fill.qty, fill.price, fill.liquidity) == (0.01, 45123.45, "taker")
    assert fill.fee == pytest.approx(0.01 * 45123.45 * FEE_RATE["TAKER"]) and fill.ts.tzinfo is not None


def test_a_limit_order_rests_fills_partly_then_fully(adapter, venue, make_request, t0):
    order = make_request(side="sell", qty=0.02, order_type="limit", limit_price=50000.0, time_in_force="GTC")
    placed = adapter.submit(order, t0)
    assert placed.status is OrderStatus.ACCEPTED and placed.fills == ()
    venue_id = placed.venue_order_id
    venue.fill(venue_id, 0.005, 50000.0)
    partial = adapter.get(venue_id, t0)
    assert partial.status is OrderStatus.PARTIALLY_FILLED and [f.qty for f in partial.fills] == [0.005]
    assert partial.fills[0].liquidity == "maker"
    venue.fill(venue_id, 0.015, 50001.0)
    full = adapter.get(venue_id, t0)
    assert full.status is OrderStatus.FILLED
    assert sum(f.qty for f in full.fills) == pytest.approx(0.02) and len({f.venue_fill_id for f in full.fills}) == 2
    assert full.fills[0] == partial.fills[0]  # cumulative: the earlier fill is reported again, unchanged


def test_fills_are_read_across_pages(adapter, venue, make_request, t0):
    placed = adapter.submit(make_request(side="sell", qty=0.5, order_type="limit", limit_price=60000.0,
                                         time_in_force="GTC"), t0)
    for _ in range(250):
        venue.fill(placed.venue_order_id, 0.001, 60000.0)
    report = adapter.get(placed.venue_order_id, t0)
    assert len(report.fills) == 250 and report.status is OrderStatus.PARTIALLY_FILLED
    assert len(venue.seen(f"{API}/orders/historical/fills")) == 3  # pages of 100


def test_insufficient_funds_is_a_rejected_report_not_an_exception(adapter, venue, make_request, t0):
    report = adapter.submit(make_request(qty=1.0), t0)  # 1 BTC costs more than the recorded 10,000.50 USD
    assert report.status is OrderStatus.REJECTED and report.venue_order_id is None and report.fills == ()
    assert report.reason == "INSUFFICIENT_FUND: Insufficient balance in source account"
    assert venue.orders == {}


def test_a_product_the_venue_does_not_list_is_rejected_before_sending(venue, ec_key, make_request, t0):
    live = CoinbaseLiveAdapter(settings_for(venue, ec_key, coinbase_products={"BTC": "BTC-EUR"}))
    report = live.submit(make_request(qty=0.01), t0)
    assert report.status is OrderStatus.REJECTED
    assert report.reason.startswith("not sent: Coinbase does not list BTC-EUR")
    assert venue.posted == []
    with pytest.raises(ValueError, match="no Coinbase product"):
        live.submit(make_request(symbol="DOGE"), t0)


def test_a_4xx_on_create_is_a_rejected_report(adapter, venue, make_request, t0):
    """The product's increment changed after the adapter read it (cached for an hour): the venue
    answers 400 to a size off its new grid, and that is a rejected report, not an exception."""
    assert adapter.submit(make_request(qty=0.0123), t0).status is OrderStatus.FILLED  # reads (caches) the rules
    venue.product_overrides["BTC-USD"] = {"base_increment": "0.001"}
    report = adapter.submit(make_request(qty=0.0123), t0)
    assert report.status is OrderStatus.REJECTED and report.reason.startswith("HTTP 400: INVALID_ARGUMENT")


def test_an_ioc_limit_that_does_not_cross_is_canceled(adapter, make_request, t0):
    report = adapter.submit(make_request(qty=0.01, order_type="limit", limit_price=30000.0, time_in_force="IOC"), t0)
    assert report.status is OrderStatus.CANCELED and report.fills == ()


def test_cancel_a_resting_order_keeps_its_fills(adapter, venue, make_request, t0):
    placed = adapter.submit(make_request(qty=0.1, order_type="limit", limit_price=40000.0, time_in_force="GTC"), t0)
    venue.fill(placed.venue_order_id, 0.04, 40000.0)
    canceled = adapter.cancel(placed.venue_order_id, t0)
    assert canceled.status is OrderStatus.CANCELED and [f.qty for f in canceled.fills] == [0.04]
    assert venue.posted[-1] == (f"{API}/orders/batch_cancel", {"order_ids": [placed.venue_order_id]})
    again = adapter.cancel(placed.venue_order_id, t0)
    assert again.status is OrderStatus.CANCELED and "cancel refused (INVALID_CANCEL_REQUEST)" in again.reason


def test_unknown_order_ids_raise_unknown_venue_order(adapter, t0):
    with pytest.raises(UnknownVenueOrder):
        adapter.get("no-such-order", t0)
    with pytest.raises(UnknownVenueOrder):
        adapter.cancel("no-such-order", t0)
    with pytest.raises(UnknownVenueOrder):  # an id is one path segment, never a path
        adapter.get("../key_permissions", t0)


# -- timeouts and retries ----------------------------------------------------------------------
SLOW_S = 1.0  # a venue answer slower than the impatient client's timeout


@pytest.fixture
def impatient(venue, ec_key) -> Iterator[CoinbaseLiveAdapter]:
    live = CoinbaseLiveAdapter(settings_for(venue, ec_key, coinbase_timeout_s=0.4))
    yield live
    live.close()


def test_a_create_slower_than_the_timeout_is_unavailable_then_settled_by_the_same_request(
        impatient, venue, make_request, t0):
    adapter = impatient
    order = make_request(client_order_id="cid-slow", qty=0.01)
    venue.inject(f"{API}/orders", *[Fault(delay_s=SLOW_S)] * 3)  # every attempt outlives the timeout
    with pytest.raises(VenueUnavailable, match="timed out"):
        adapter.submit(order, t0)
    time.sleep(SLOW_S + 0.3)  # the venue still answers (late) and created the order once, despite three attempts
    assert len(venue.orders) == 1
    settled = adapter.submit(order, t0)  # the same client_order_id: the venue returns that order
    assert len(venue.orders) == 1 and settled.venue_order_id in venue.orders
    assert settled.status is OrderStatus.FILLED and adapter.get(settled.venue_order_id, t0) == settled


def test_a_slow_read_is_unavailable_and_a_later_read_reconciles(impatient, venue, make_request, t0):
    adapter = impatient
    placed = adapter.submit(make_request(qty=0.1, order_type="limit", limit_price=40000.0, time_in_force="GTC"), t0)
    venue.fill(placed.venue_order_id, 0.1, 40000.0)
    venue.inject(f"{API}/orders/historical/{placed.venue_order_id}", *[Fault(delay_s=SLOW_S)] * 3)
    with pytest.raises(VenueUnavailable):
        adapter.get(placed.venue_order_id, t0)
    assert adapter.get(placed.venue_order_id, t0).status is OrderStatus.FILLED


def test_5xx_is_retried_then_unavailable(adapter, venue, make_request, t0):
    placed = adapter.submit(make_request(qty=0.01), t0)
    path = f"{API}/orders/historical/{placed.venue_order_id}"
    venue.inject(path, Fault(status=503), Fault(status=502))
    assert adapter.get(placed.venue_order_id, t0).status is OrderStatus.FILLED
    assert len(venue.seen(path)) == 1 + 3  # the submit's read, then two failures and the answer
    venue.inject(path, *[Fault(status=500)] * 3)
    with pytest.raises(VenueUnavailable, match="HTTP 500"):
        adapter.get(placed.venue_order_id, t0)


def test_a_5xx_on_create_is_retried_without_a_second_order(adapter, venue, make_request, t0):
    venue.inject(f"{API}/orders", Fault(status=503))
    report = adapter.submit(make_request(qty=0.01), t0)
    assert report.status is OrderStatus.FILLED and len(venue.orders) == 1
    assert len(venue.seen(f"{API}/orders")) == 2


# -- the live gate -----------------------------------------------------------------------------
def test_live_trading_is_off_by_default():
    settings = CoinbaseLiveSettings()
    assert not settings.live_trading
    assert live_trading_allowed(settings, {"live"}) == (False, LiveGate.OFF)


def test_live_trading_needs_keys_and_the_live_scope(monkeypatch, ec_key):
    monkeypatch.setenv("OMNIWATCH_LIVE_TRADING", "1")
    assert live_trading_allowed(CoinbaseLiveSettings(), {"live"}) == (False, LiveGate.KEYS_MISSING)
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_KEY_NAME", KEY_NAME)
    assert live_trading_allowed(CoinbaseLiveSettings(), {"live"}) == (False, LiveGate.KEYS_MISSING)
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_PRIVATE_KEY", pem_of(ec_key))
    assert live_trading_allowed(CoinbaseLiveSettings(), set()) == (False, LiveGate.SCOPE_MISSING)
    assert live_trading_allowed(CoinbaseLiveSettings(), {"read"}) == (False, LiveGate.SCOPE_MISSING)
    assert live_trading_allowed(CoinbaseLiveSettings(), {"live"}) == (True, LiveGate.ALLOWED)
    monkeypatch.setenv("OMNIWATCH_LIVE_TRADING", "0")
    assert live_trading_allowed(CoinbaseLiveSettings(), {"live"}) == (False, LiveGate.OFF)


def test_the_adapter_refuses_to_start_without_keys():
    with pytest.raises(ValueError, match="keys are not set"):
        CoinbaseLiveAdapter(CoinbaseLiveSettings(live_trading=True, coinbase_api_key_name=KEY_NAME))


# -- the private key stays private -------------------------------------------------------------
def test_the_private_key_never_reaches_logs_reprs_or_errors(venue, ec_key, make_request, t0, caplog):
    pem = pem_of(ec_key)
    secret_lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    settings = settings_for(venue, ec_key)
    live = CoinbaseLiveAdapter(settings)
    caplog.set_level(logging.DEBUG)
    texts = [repr(settings), str(settings), settings.model_dump_json(), repr(live), str(live)]
    venue.inject(f"{API}/orders", Fault(status=503))
    live.submit(make_request(qty=0.01), t0)                              # a retry is logged
    venue.inject(f"{API}/orders", *[Fault(status=500)] * 3)
    with pytest.raises(VenueUnavailable) as unavailable:
        live.submit(make_request(qty=0.01), t0)
    texts.append(str(unavailable.value))
    broken = pem.replace(secret_lines[1], secret_lines[1][::-1])
    with pytest.raises(CoinbaseKeyError) as bad_key:
        load_private_key(broken)
    texts += [str(bad_key.value), repr(bad_key.value), str(bad_key.value.__cause__)]
    stranger = CoinbaseLiveAdapter(settings_for(venue, ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CoinbaseApiError) as refused:
        stranger.get("x", t0)
    texts += [str(refused.value), caplog.text, json.dumps([r.getMessage() for r in caplog.records])]
    assert "Coinbase request failed" in caplog.text  # the logs were captured, so the check below can fail
    for text in texts:
        for line in secret_lines:
            assert line not in text


# -- scripts/validate_coinbase_live.py ---------------------------------------------------------
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_coinbase_live.py"


def load_script():
    spec = importlib.util.spec_from_file_location("validate_coinbase_live", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validate_script_is_skipped_with_its_own_exit_code_without_keys():
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["status"] == "skipped"


def test_validate_script_reports_ok_against_the_venue(venue, ec_key, monkeypatch, capsys):
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_KEY_NAME", KEY_NAME)
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_PRIVATE_KEY", pem_of(ec_key))
    assert load_script().main(["--base-url", venue.url, "--timeout-s", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["can_view"] is True and report["can_trade"] is False
    assert report["base_url"] == venue.url and report["live_trading"] is False
    assert venue.seen(f"{API}/key_permissions") and venue.auth_failures == 0


def test_validate_script_fails_with_a_key_the_venue_refuses(venue, monkeypatch, capsys):
    stranger = pem_of(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_KEY_NAME", KEY_NAME)
    monkeypatch.setenv("OMNIWATCH_COINBASE_API_PRIVATE_KEY", stranger)
    monkeypatch.setenv("OMNIWATCH_COINBASE_ADVANCED_BASE_URL", venue.url)
    assert load_script().main([]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["status"] == "failed" and "401" in out
    assert not any(line in out for line in stranger.splitlines() if not line.startswith("-----"))
