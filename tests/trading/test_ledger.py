"""The ledger: positions, realised PnL and round trips, with expected numbers worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omniwatch.trading import ledger, store
from omniwatch.trading.ledger import FundingPayment, LedgerFill, day_pnl_of, replay
from omniwatch.trading.orders import FillReport, OrderStatus, VenueReport, apply_report, new_order, transition

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fill(minutes: int, side: str, qty: float, price: float, fee: float, symbol: str = "BTC") -> LedgerFill:
    return LedgerFill(T0 + timedelta(minutes=minutes), symbol, side, qty, price, fee)


def test_long_round_trip():
    # buy 2 @ 100 (fee 0.20), sell 2 @ 110 (fee 0.22): price PnL 2 * 10 = 20, after fees 19.58
    book, trades = replay([fill(0, "buy", 2, 100, 0.20), fill(5, "sell", 2, 110, 0.22)])
    pos = book["BTC"]
    assert pos.qty == 0 and pos.avg_price is None
    assert pos.realized_pnl == pytest.approx(20.0) and pos.fees == pytest.approx(0.42)
    assert pos.net_realized == pytest.approx(19.58)
    assert [(t.opened_at, t.closed_at) for t in trades] == [(T0, T0 + timedelta(minutes=5))]
    assert trades[0].pnl == pytest.approx(19.58)


def test_short_round_trip():
    # sell 1 @ 200 (fee 0.10), buy 1 @ 180 (fee 0.09): a short gains 20, after fees 19.81
    _, trades = replay([fill(0, "sell", 1, 200, 0.10), fill(1, "buy", 1, 180, 0.09)])
    assert [t.pnl for t in trades] == [pytest.approx(19.81)]


def test_adding_averages_the_entry_and_a_partial_close_keeps_it():
    # buy 1 @ 100, buy 1 @ 110 -> 2 @ 105; sell 0.5 @ 120 realises 0.5 * 15 = 7.5, avg stays 105
    book, trades = replay([fill(0, "buy", 1, 100, 0), fill(1, "buy", 1, 110, 0), fill(2, "sell", 0.5, 120, 0)])
    pos = book["BTC"]
    assert (pos.qty, pos.avg_price, pos.realized_pnl) == (pytest.approx(1.5), pytest.approx(105.0),
                                                          pytest.approx(7.5))
    assert trades == []
    assert pos.unrealized(100.0) == pytest.approx(1.5 * -5)


def test_partial_close_then_close_is_one_losing_trade():
    # buy 3 @ 100 (0.30); sell 1 @ 110 (0.11) realises +10; sell 2 @ 90 (0.18) realises -20.
    # One round trip: 10 - 20 - 0.30 - 0.11 - 0.18 = -10.59
    _, trades = replay([fill(0, "buy", 3, 100, 0.30), fill(1, "sell", 1, 110, 0.11), fill(2, "sell", 2, 90, 0.18)])
    assert len(trades) == 1 and trades[0].pnl == pytest.approx(-10.59)


def test_a_flip_closes_one_trade_and_opens_the_next_with_its_share_of_the_fee():
    # buy 1 @ 100 (0.10); sell 3 @ 110 (0.33): closes 1 (+10, a third of the fee 0.11) -> trade 9.79,
    # opens short 2 @ 110 carrying 0.22 of fee; buy 2 @ 100 (0.20): +20 -> trade 20 - 0.22 - 0.20 = 19.58
    book, trades = replay([fill(0, "buy", 1, 100, 0.10), fill(1, "sell", 3, 110, 0.33)])
    assert book["BTC"].qty == pytest.approx(-2) and book["BTC"].avg_price == 110
    assert [t.pnl for t in trades] == [pytest.approx(9.79)]
    book, trades = replay([fill(0, "buy", 1, 100, 0.10), fill(1, "sell", 3, 110, 0.33), fill(2, "buy", 2, 100, 0.20)])
    assert [t.pnl for t in trades] == [pytest.approx(9.79), pytest.approx(19.58)]
    assert trades[1].opened_at == T0 + timedelta(minutes=1)
    assert book["BTC"].net_realized == pytest.approx(30 - 0.63)


def test_funding_paid_is_a_cost_of_the_trade_it_falls_in():
    # long 2 @ 100; pays 0.5 funding; closes @ 101: 2 - 0.5 = 1.5
    events = [fill(0, "buy", 2, 100, 0), FundingPayment(T0 + timedelta(minutes=30), "BTC", 0.5),
              fill(60, "sell", 2, 101, 0)]
    book, trades = replay(events)
    assert book["BTC"].funding == 0.5 and trades[0].pnl == pytest.approx(1.5)


def test_day_pnl_is_the_change_of_marked_equity_since_midnight():
    # bought 1 @ 100 (fee 0.10) yesterday; midnight mark 105; sold today @ 112 (fee 0.112); and today
    # a new long 1 @ 110 marked at 108 now. Day: (112 - 105) - 0.112 + (108 - 110) = 4.888
    day = T0.date()
    yesterday = LedgerFill(T0 - timedelta(days=1), "BTC", "buy", 1, 100, 0.10)
    events = [yesterday, fill(0, "sell", 1, 112, 0.112), fill(10, "buy", 1, 110, 0.0, symbol="ETH")]
    assert day_pnl_of(events, day, {"BTC": 105.0}, {"ETH": 108.0}) == pytest.approx(4.888)
    tomorrow = LedgerFill(T0 + timedelta(days=1), "ETH", "sell", 1, 200, 0.0)
    assert day_pnl_of([*events, tomorrow], day, {"BTC": 105.0}, {"ETH": 108.0}) == pytest.approx(4.888)


def test_an_open_position_without_a_mark_is_an_error():
    with pytest.raises(ValueError, match="no mark for the open BTC"):
        day_pnl_of([fill(0, "buy", 1, 100, 0)], T0.date(), {}, {})


def test_slippage_cost_recovers_the_reference_price():
    # a buy at 100.5 against a reference of 100 slipped 50 bps: 2 units cost 2 * 0.5 = 1.0
    assert ledger.slippage_cost("buy", 2, 100.5, 50.0) == pytest.approx(1.0)
    # a sell at 99.5 against 100: also 50 bps adverse
    assert ledger.slippage_cost("sell", 2, 99.5, 50.0) == pytest.approx(1.0)


def _execute(url, make_request, when, side, qty, price, fee, symbol="BTC"):
    order = new_order(make_request(side=side, qty=qty, symbol=symbol), "paper", "paper", when)
    order = store.create_order(url, order)
    order = transition(order, OrderStatus.SUBMITTED, when, "sent")
    report = VenueReport(f"v-{order.request.client_order_id}", OrderStatus.FILLED,
                         (FillReport("f1", when, qty, price, fee, "taker"),), "", reference_price=price)
    return store.save_order(url, apply_report(order, report, when))


def test_readers_replay_the_stored_fills(warehouse_url, make_request, put_bars):
    midnight = datetime(2024, 6, 1, tzinfo=UTC)
    _execute(warehouse_url, make_request, midnight - timedelta(hours=2), "buy", 1, 100, 0.10)
    put_bars(warehouse_url, "BTC", [(midnight - timedelta(hours=1), 104, 106, 103, 105, 10)])
    _execute(warehouse_url, make_request, T0, "sell", 1, 112, 0.112)
    _execute(warehouse_url, make_request, T0 + timedelta(minutes=10), "buy", 2, 110, 0.0, symbol="ETH")

    held = ledger.positions(warehouse_url, "liquid", "s1")
    assert held["BTC"].qty == 0 and held["ETH"].qty == 2 and held["ETH"].avg_price == 110
    assert ledger.closed_trade_pnls(warehouse_url, "liquid", "s1") == [(T0, pytest.approx(12 - 0.212))]
    # (112 - 105) - 0.112 + 2 * (108 - 110) = 2.888
    assert ledger.day_pnl(warehouse_url, "liquid", "s1", T0.date(), {"ETH": 108.0}) == pytest.approx(2.888)
    assert ledger.positions(warehouse_url, "liquid", "other") == {}
