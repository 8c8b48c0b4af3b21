"""The paper venue against a real migrated warehouse with a hand-built book and bars.

Book at 11:59 (mid 100): bids 99 x 1, 98 x 2; asks 101 x 0.5, 102 x 1, 104 x 2.
Fees: taker 5 bps, maker 2.5 bps (the defaults).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from omniwatch.trading import ledger, store
from omniwatch.trading.orders import OrderStatus, UnknownVenueOrder, apply_report, new_order, transition
from omniwatch.trading.paper import PaperAdapter, PaperSettings, accrue_funding
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
S = OrderStatus
BIDS = [(99.0, 1.0), (98.0, 2.0)]
ASKS = [(101.0, 0.5), (102.0, 1.0), (104.0, 2.0)]


@pytest.fixture
def booked(warehouse_url, put_book):
    put_book(warehouse_url, "BTC", T0 - timedelta(minutes=1), BIDS, ASKS)
    return warehouse_url


def _summary(report):
    return report.status, [(f.price, pytest.approx(f.qty), f.liquidity) for f in report.fills]


def test_a_market_buy_walks_the_book(booked, make_request):
    report = PaperAdapter(booked).submit(make_request(qty=1.2), T0)
    assert _summary(report) == (S.FILLED, [(101.0, 0.5, "taker"), (102.0, 0.7, "taker")])
    assert report.reference_price == 100.0
    assert sum(f.fee for f in report.fills) == pytest.approx((0.5 * 101 + 0.7 * 102) * 5e-4)
    sell = PaperAdapter(booked).submit(make_request(side="sell", qty=0.5), T0)
    assert _summary(sell) == (S.FILLED, [(99.0, 0.5, "taker")])


def test_the_slippage_cap_leaves_levels_beyond_it(booked, make_request):
    # 150 bps over the mid 100 is 101.5: 101 is taken, 102 is not; the market order cancels the rest
    partial = PaperAdapter(booked).submit(make_request(qty=1.2, max_slippage_bps=150), T0)
    assert _summary(partial) == (S.CANCELED, [(101.0, 0.5, "taker")])
    assert "max_slippage_bps" in partial.reason
    # 50 bps (100.5) is below the best ask: nothing can fill, the order is rejected with the reason
    rejected = PaperAdapter(booked).submit(make_request(qty=1.2, max_slippage_bps=50), T0)
    assert rejected.status == S.REJECTED and rejected.fills == () and "max_slippage_bps 50" in rejected.reason


def test_limit_ioc_and_fok(booked, make_request):
    adapter = PaperAdapter(booked)
    limit = {"order_type": "limit", "limit_price": 102.0}
    ioc = adapter.submit(make_request(qty=2.0, time_in_force="IOC", **limit), T0)
    assert _summary(ioc) == (S.CANCELED, [(101.0, 0.5, "taker"), (102.0, 1.0, "taker")])
    away = adapter.submit(make_request(qty=1.0, time_in_force="IOC", order_type="limit", limit_price=100.5), T0)
    assert away.status == S.CANCELED and away.fills == ()
    fok_short = adapter.submit(make_request(qty=2.0, time_in_force="FOK", **limit), T0)
    assert fok_short.status == S.CANCELED and fok_short.fills == () and "FOK" in fok_short.reason
    fok = adapter.submit(make_request(qty=1.5, time_in_force="FOK", **limit), T0)
    assert _summary(fok) == (S.FILLED, [(101.0, 0.5, "taker"), (102.0, 1.0, "taker")])


def test_a_gtc_limit_rests_and_fills_on_later_books_and_bars(booked, make_request, put_book, put_bars):
    adapter = PaperAdapter(booked)
    placed = T0 + timedelta(seconds=30)
    report = adapter.submit(make_request(qty=1.0, time_in_force="GTC", order_type="limit", limit_price=100.0), placed)
    assert report.status == S.ACCEPTED and report.fills == ()
    voi = report.venue_order_id
    # a bar that opened before the order (12:00) dips to 90: its range may predate the order, no fill
    put_bars(booked, "BTC", [(T0, 100, 101, 90, 100.5, 10)])
    # a book at 12:10 offers 0.7 at or under the limit: those fill at the limit, as maker
    put_book(booked, "BTC", T0 + timedelta(minutes=10), [(99.0, 1.0)], [(99.5, 0.4), (100.0, 0.3), (100.5, 5.0)])
    later = adapter.get(voi, T0 + timedelta(hours=1))
    assert _summary(later) == (S.PARTIALLY_FILLED, [(100.0, 0.7, "maker")])
    assert later.fills[0].fee == pytest.approx(0.7 * 100 * 2.5e-4)
    assert adapter.get(voi, T0 + timedelta(hours=1)) == later            # deterministic
    # the 13:00 bar (closed 14:00) touches 99.8 <= 100: the rest fills then
    put_bars(booked, "BTC", [(T0 + timedelta(hours=1), 100.4, 100.9, 99.8, 100.2, 10)])
    assert adapter.get(voi, T0 + timedelta(hours=1, minutes=59)).status == S.PARTIALLY_FILLED  # not yet known
    done = adapter.get(voi, T0 + timedelta(hours=2))
    assert _summary(done) == (S.FILLED, [(100.0, 0.7, "maker"), (100.0, 0.3, "maker")])
    assert done.fills[1].ts == T0 + timedelta(hours=2)


def test_cancel_freezes_a_resting_order(booked, make_request, put_bars):
    adapter = PaperAdapter(booked)
    report = adapter.submit(make_request(time_in_force="GTC", order_type="limit", limit_price=95.0), T0)
    canceled = adapter.cancel(report.venue_order_id, T0 + timedelta(minutes=30))
    assert canceled.status == S.CANCELED and canceled.fills == ()
    put_bars(booked, "BTC", [(T0 + timedelta(hours=1), 96, 97, 90, 95, 10)])
    assert adapter.get(report.venue_order_id, T0 + timedelta(hours=3)).status == S.CANCELED
    with pytest.raises(UnknownVenueOrder):
        adapter.get("paper-unknown", T0)


def test_without_a_fresh_book_a_market_order_fills_at_the_bar_with_the_slippage_model(warehouse_url, make_request,
                                                                                      put_book, put_bars):
    put_book(warehouse_url, "BTC", T0 - timedelta(minutes=10), BIDS, ASKS)       # older than book_max_age
    put_book(warehouse_url, "BTC", T0 + timedelta(minutes=1), BIDS, [(50.0, 9.0)])  # not yet available
    put_bars(warehouse_url, "BTC", [(T0 - timedelta(hours=1), 99, 101, 98, 100.0, 400.0)])
    # dollar volume 100 * 400 = 40,000 an hour; 1 BTC = 100 USD is 0.25 % of it:
    # slippage 2.5 + 10 * sqrt(0.0025) = 3.0 bps -> 100.03
    report = PaperAdapter(warehouse_url).submit(make_request(qty=1.0), T0)
    assert _summary(report) == (S.FILLED, [(pytest.approx(100.03), 1.0, "taker")])
    assert report.reference_price == 100.0
    # a 2.75 bps cap leaves room for 0.25 bps of impact: 40,000 / 100 * (0.25 / 10)^2 = 0.25 BTC
    capped = PaperAdapter(warehouse_url).submit(make_request(qty=1.0, max_slippage_bps=2.75), T0)
    assert _summary(capped) == (S.CANCELED, [(pytest.approx(100.0275), 0.25, "taker")])
    # a cap under the half spread fills nothing
    rejected = PaperAdapter(warehouse_url).submit(make_request(qty=1.0, max_slippage_bps=2.0), T0)
    assert rejected.status == S.REJECTED
    # a limit order is marketable on the bar only if the modelled price is within its limit
    limit = {"order_type": "limit", "time_in_force": "GTC"}
    taken = PaperAdapter(warehouse_url).submit(make_request(qty=1.0, limit_price=100.05, **limit), T0)
    assert _summary(taken) == (S.FILLED, [(pytest.approx(100.03), 1.0, "taker")])
    resting = PaperAdapter(warehouse_url).submit(make_request(qty=1.0, limit_price=100.01, **limit), T0)
    assert resting.status == S.ACCEPTED and resting.fills == ()


def test_no_market_data_is_a_reject_and_submits_are_idempotent(warehouse_url, make_request):
    adapter = PaperAdapter(warehouse_url)
    request = make_request(client_order_id="same")
    first = adapter.submit(request, T0)
    assert first.status == S.REJECTED and "no book or bar" in first.reason
    assert adapter.submit(request, T0 + timedelta(minutes=1)).venue_order_id == first.venue_order_id
    with get_engine(warehouse_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.paper_orders)).scalar_one() == 1


def test_fees_come_from_the_settings(booked, make_request, monkeypatch):
    monkeypatch.setenv("OMNIWATCH_PAPER_TAKER_FEE_BPS", "10")
    settings = PaperSettings()
    assert settings.taker_fee_bps == 10.0
    report = PaperAdapter(booked, settings).submit(make_request(qty=0.5), T0)
    assert report.fills[0].fee == pytest.approx(0.5 * 101 * 10 / 1e4)


def _trade(url, make_request, side: str, when: datetime) -> None:
    adapter = PaperAdapter(url)
    order = store.create_order(url, new_order(make_request(side=side, qty=1.0), "paper", "paper", when))
    order = transition(order, S.SUBMITTED, when, "sent")
    store.save_order(url, apply_report(order, adapter.submit(order.request, when), when))


def _funding(url, rows):
    records = [{"symbol": "BTC", "venue": "binance", "venue_symbol": "BTCUSDT", "event_time": ts,
                "available_time": ts, "funding_rate": rate, "mark_price": mark, "source": "test"}
               for ts, rate, mark in rows]
    with get_engine(url).begin() as conn:
        conn.execute(tables.funding_rates.insert(), records)


def test_funding_longs_pay_positive_rates_and_shorts_receive(booked, make_request, put_book):
    _trade(booked, make_request, "buy", T0)        # long 1 (0.5 @ 101 + 0.5 @ 102)
    _funding(booked, [(T0 - timedelta(hours=8), 1e-4, 100.0), (T0 + timedelta(hours=8), 1e-4, 110.0),
                      (T0 + timedelta(hours=16), 2e-4, None)])
    assert accrue_funding(booked, "liquid", "s1", T0 + timedelta(hours=8)) == 1     # 16:00 not yet known
    assert accrue_funding(booked, "liquid", "s1", T0 + timedelta(hours=8)) == 0     # idempotent
    assert ledger.positions(booked, "liquid", "s1")["BTC"].funding == pytest.approx(1 * 110 * 1e-4)
    put_book(booked, "BTC", T0 + timedelta(hours=12), [(99.0, 5.0)], [(100.0, 5.0)])
    _trade(booked, make_request, "sell", T0 + timedelta(hours=12))  # flat @ 99 ...
    _trade(booked, make_request, "sell", T0 + timedelta(hours=12, minutes=1))  # ... then short 1
    # the 16:00 settlement has no mark: the last fill price (99) stands in; a short receives 0.0198
    assert accrue_funding(booked, "liquid", "s1", T0 + timedelta(hours=16)) == 1
    pos = ledger.positions(booked, "liquid", "s1")["BTC"]
    assert pos.qty == -1 and pos.funding == pytest.approx(0.011 - 0.0198)
