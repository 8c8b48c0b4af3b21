"""execution/run, execution/orders, execution/audit and metrics/pnl-attribution over real HTTP,
on a private copy of the trained warehouse (SQLite and PostgreSQL): the paper adapter fills against
the stored bars, the risk guard refuses with 423, and the audit chain links every step."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import func, select

from omniwatch.trading import ledger
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for

P = "/api/v2"


def _count(url: str, table, *where) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_execution_run_sizes_checks_fills_and_chains_every_step(own_warehouse):
    url = own_warehouse.warehouse_url
    with client_for(own_warehouse) as c:
        # The fixture scored no earlier hours: one forecast hour of 24 is a 24th of a tranche, inside
        # the default no-trade band (0.05 per symbol): every target holds and nothing is sent.
        r = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert {d["action"] for d in r.json()["decisions"]} == {"hold"}
        reasons = [d["reason"] for d in r.json()["decisions"]]
        assert any("no-trade band" in x for x in reasons), reasons
        assert _count(url, tables.orders_sim) == 0
    with client_for(own_warehouse, sizing_weight_band=0.0) as c:
        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "adapter": "paper"}, headers=AUTH)
        assert r.status_code == 200, r.text
        out = r.json()
        assert {d["symbol"] for d in out["decisions"]} == {"BTC", "ETH", "SOL"}
        traded = [d for d in out["decisions"] if d["action"] == "trade"]
        assert traded, out["decisions"]
        for d in out["decisions"]:
            # One forecast hour of 24: the target is a 24th of a tranche, split over three symbols.
            assert abs(d["target_weight"]) <= 1 / 3 + 1e-9
        d = traded[0]
        order = d["order"]
        assert order["status"] in ("filled", "partially_filled") and order["adapter"] == "paper"
        assert [e["to"] for e in order["lifecycle"]][:2] == ["initialized", "submitted"]
        assert order["model_version"] == "1" and order["signal_id"] == d["signal_id"]
        signed = order["filled_qty"] * (1 if order["side"] == "buy" else -1)
        assert signed * d["price"] / 100_000 == pytest.approx(d["new_weight"] - d["held_weight"], rel=0.02)

        chain = c.get(f"{P}/execution/audit/{d['decision_id']}").json()
        assert chain["decision"]["action"] == "trade" and chain["signal"]["signal_id"] == d["signal_id"]
        assert chain["prediction"]["model_version"] == "1" == chain["model"]["version"]
        assert chain["feature_snapshot"]["id"] == chain["prediction"]["snapshot_id"]
        assert chain["order"]["order_id"] == order["order_id"] and chain["order"]["lifecycle"] == order["lifecycle"]
        assert math.fsum(f["qty"] for f in chain["fills"]) == pytest.approx(order["filled_qty"])
        assert chain["position"]["after_order"]["qty"] == pytest.approx(signed)
        assert chain["pnl"]["order_contribution"] == pytest.approx(
            signed * (chain["pnl"]["mark_price"] - order["avg_fill_price"]) - order["fee"])
        assert c.get(f"{P}/execution/orders/{order['order_id']}").json() == chain["order"]

        # The same signals again: nothing is traded twice (the signal's order exists, or the
        # position is at its target).
        orders_before = _count(url, tables.orders_sim)
        again = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH).json()
        assert {x["action"] for x in again["decisions"]} == {"hold"}
        # A retried signal answers with the order it placed (no new risk check, no new order).
        traded_symbols = {x["symbol"] for x in traded}
        assert all(x["order"]["order_id"] == next(t["order"]["order_id"] for t in traded if t["symbol"] == x["symbol"])
                   for x in again["decisions"] if x["symbol"] in traded_symbols)
        assert _count(url, tables.orders_sim) == orders_before
        assert _count(url, tables.execution_decisions) == 9  # every decision is recorded, holds too

        # Unknown ids of any format: 404.
        for bad in ("does-not-exist-123", str(uuid.uuid4()), "1"):
            assert c.get(f"{P}/execution/orders/{bad}").status_code == 404
            assert c.get(f"{P}/execution/audit/{bad}").status_code == 404

        # Executed PnL: by symbol and by model version, each summing to the ledger's PnL.
        attr = c.get(f"{P}/metrics/pnl-attribution", params={"track": "liquid"}).json()
        total = attr["total"]
        assert total["net"] == pytest.approx(total["gross"] - total["slippage"] - total["fees"] - total["funding"])
        for group in ("by_symbol", "by_model_version"):
            assert math.fsum(p["net"] for p in attr[group].values()) == pytest.approx(total["net"], abs=1e-9)
        assert set(attr["by_model_version"]) == {"1"}
        book = ledger.positions(url, "liquid", "liquid_v2")
        expected = math.fsum(p.equity(attr["marks"][s]) for s, p in book.items())
        assert total["net"] == pytest.approx(expected, abs=1e-9)


def test_a_kill_switch_refuses_execution_with_423_and_the_denied_orders_are_audited(own_warehouse):
    url = own_warehouse.warehouse_url
    with client_for(own_warehouse, sizing_weight_band=0.0) as c:
        r = c.post(f"{P}/risk/kill-switch/trigger", json={"track": "liquid", "strategy_id": "liquid_v2",
                                                          "reason": "test: venue incident"}, headers=AUTH)
        assert r.status_code == 200, r.text
        r = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH)
        assert r.status_code == 423, r.text
        body = r.json()
        assert body["code"] == "kill_switch_triggered:liquid:liquid_v2"
        assert "kill_switch_triggered:liquid:liquid_v2" in body["context"]["codes"]
        denied = [d for d in body["context"]["decisions"] if d["action"] == "denied"]
        assert denied and all(d["order"]["status"] == "denied" for d in denied)
        assert all(d["order"]["lifecycle"][-1]["reason"].startswith("kill_switch_triggered") for d in denied)
        assert _count(url, tables.fills) == 0
        assert _count(url, tables.risk_events, tables.risk_events.c.code.like("kill_switch_triggered%")) == len(denied)
        chain = c.get(f"{P}/execution/audit/{denied[0]['decision_id']}").json()
        assert chain["decision"]["action"] == "denied" and chain["order"]["status"] == "denied"
        # A single order is refused the same way.
        one = c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.001}, headers=AUTH)
        assert one.status_code == 423 and one.json()["code"] == "kill_switch_triggered:liquid:liquid_v2"
        # After a keyed reset the same run trades.
        assert c.post(f"{P}/risk/kill-switch/reset", json={"track": "liquid", "strategy_id": "liquid_v2",
                                                           "reason": "test: resolved"}, headers=AUTH).status_code == 200
        r = c.post(f"{P}/execution/run", json={"horizon": "24h"}, headers=AUTH)
        assert r.status_code == 200 and any(d["action"] == "trade" for d in r.json()["decisions"]), r.text


def test_orders_are_idempotent_by_client_order_id_and_live_needs_its_gate(own_home):
    with client_for(own_home) as c:
        body = {"symbol": "ETH", "side": "buy", "qty": 0.05, "client_order_id": "test-idem-1"}
        first = c.post(f"{P}/execution/orders", json=body, headers=AUTH)
        assert first.status_code == 200, first.text
        second = c.post(f"{P}/execution/orders", json=body, headers=AUTH)
        assert second.json()["order_id"] == first.json()["order_id"]
        assert first.json()["status"] == "filled" and first.json()["fills"]
        assert c.post(f"{P}/execution/orders", json=body).status_code == 401
        # An absurd price is refused as input (its notional would overflow to inf), not a 500.
        absurd = c.post(f"{P}/execution/orders", json={**body, "order_type": "limit", "limit_price": 1e308,
                                                        "client_order_id": "test-absurd"}, headers=AUTH)
        assert absurd.status_code == 422 and absurd.json()["errors"][0]["field"] == "body.limit_price"
        live = c.post(f"{P}/execution/orders", json={**body, "adapter": "coinbase_live",
                                                      "client_order_id": "test-live-1"}, headers=AUTH)
        assert live.status_code == 403 and live.json()["code"] == "live_trading_disabled"
        assert live.json()["context"]["gate"] == "live_trading_off"
        # A resting limit far from the market stays open; cancel closes it (allowed in any state).
        rest = c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.01,
                                                      "order_type": "limit", "limit_price": 1.0,
                                                      "time_in_force": "GTC"}, headers=AUTH).json()
        assert rest["status"] == "accepted", rest
        canceled = c.post(f"{P}/execution/orders/{rest['order_id']}/cancel", headers=AUTH).json()
        assert canceled["status"] == "canceled"
        assert [e["to"] for e in canceled["lifecycle"]] == ["initialized", "submitted", "accepted", "canceled"]


def test_each_order_is_checked_again_when_sent_against_the_fills_of_the_run(own_home):
    """Two orders that each pass the gross limit alone breach it together: the first trades, the
    next is refused when it is sent (stored denied), the rest is not sent, and the run answers 423."""
    with client_for(own_home, sizing_weight_band=0.0) as c:
        probe = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "probe"}, headers=AUTH).json()
    notionals = sorted(abs(d["new_weight"]) * 100_000 for d in probe["decisions"] if d["action"] == "trade")
    assert len(notionals) == 3
    cap = notionals[-1] * 1.2  # each order alone passes; any two together do not
    assert notionals[0] + notionals[1] > cap
    limits = {"liquid:gross_test": {"max_gross_exposure_usd": cap}}
    with client_for(own_home, sizing_weight_band=0.0, risk_limits=limits) as c:
        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "gross_test"}, headers=AUTH)
    assert r.status_code == 423, r.text
    assert r.json()["code"] == "max_gross_exposure"
    actions = [d["action"] for d in r.json()["context"]["decisions"]]
    assert actions == ["trade", "denied", "not_sent"], actions
    book = ledger.positions(own_home.warehouse_url, "liquid", "gross_test")
    assert sum(1 for p in book.values() if abs(p.qty) > 0) == 1


class SwitchedDuringTheRun:
    """The paper venue, with an operator triggering the strategy's kill switch while the run's first
    order is at the venue (its controls are written by a request that does not hold the strategy's
    lock)."""

    def __init__(self, inner, guard, clock):
        self.inner, self.guard, self.clock, self.sent = inner, guard, clock, 0
        self.name, self.venue, self.in_warehouse = inner.name, inner.venue, inner.in_warehouse

    def submit(self, request, now):
        self.sent += 1
        if self.sent == 1:
            self.guard.trigger_kill_switch(request.track, request.strategy_id, "alice", "halt now", self.clock())
        return self.inner.submit(request, now)

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_kill_switch_triggered_while_a_run_is_sending_stops_its_next_order(own_home):
    """A run decides on the strategy's book read once, but the switches are read again before each
    order is sent: one triggered after the run began refuses the next order (stored denied, 423)."""
    with client_for(own_home, sizing_weight_band=0.0) as c:
        execution = c.app.state.services.execution
        adapters = execution.executor.adapters
        adapters["paper"] = SwitchedDuringTheRun(adapters["paper"], execution.guard, execution.clock)
        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "ks_mid"}, headers=AUTH)
    assert r.status_code == 423, r.text
    assert r.json()["code"] == "kill_switch_triggered:liquid:ks_mid"
    assert [d["action"] for d in r.json()["context"]["decisions"]] == ["trade", "denied", "not_sent"]
    book = ledger.positions(own_home.warehouse_url, "liquid", "ks_mid")
    assert sum(1 for p in book.values() if abs(p.qty) > 0) == 1


def test_signals_the_run_could_not_store_are_a_503_and_nothing_trades(own_home):
    """A run writes its predictions and signals itself before sizing from them: when that write
    fails it answers 503 ``signals_not_stored`` naming the table, stores none of them, sends
    nothing, and works again once writes do."""
    with client_for(own_home, sizing_weight_band=0.0) as c:
        writer = c.app.state.services.writer
        good = writer.database_url
        signals_before = _count(own_home.warehouse_url, tables.signal_candidates)
        writer.database_url = f"sqlite:///{own_home.home / 'elsewhere' / 'empty.db'}"  # no tables: inserts fail
        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "w1"}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "signals_not_stored", r.text
        assert "were not stored" in r.json()["detail"] and "writing predictions_v2" in r.json()["detail"]
        assert _count(own_home.warehouse_url, tables.orders_sim) == 0
        assert _count(own_home.warehouse_url, tables.signal_candidates) == signals_before
        writer.database_url = good
        r = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "w1"}, headers=AUTH)
        assert r.status_code == 200 and {d["action"] for d in r.json()["decisions"]} & {"trade"}, r.text


def test_the_audit_chain_shows_the_position_after_its_own_order_not_a_later_one_at_the_same_instant(own_home):
    """In replay every order of an hour shares the decision clock: a later order filled at the same
    instant must not leak into an earlier order's "position after", and the ledger applies the
    two fills in the order they were executed."""
    url = own_home.warehouse_url
    with client_for(own_home, sizing_weight_band=0.0) as c:
        out = c.post(f"{P}/execution/run", json={"horizon": "24h", "strategy_id": "same_instant"}, headers=AUTH)
        assert out.status_code == 200, out.text
        d = next(x for x in out.json()["decisions"] if x["action"] == "trade")
        order = d["order"]
        signed = order["filled_qty"] * (1 if order["side"] == "buy" else -1)
        # The opposite side, twice the size, same strategy and symbol, same decision clock.
        later = c.post(f"{P}/execution/orders", json={
            "symbol": d["symbol"], "side": "sell" if signed > 0 else "buy", "qty": 2 * abs(signed),
            "strategy_id": "same_instant"}, headers=AUTH).json()
        assert later["status"] == "filled" and later["fills"][0]["ts"] == order["fills"][-1]["ts"]
        chain = c.get(f"{P}/execution/audit/{d['decision_id']}").json()
    after = chain["position"]["after_order"]
    assert after["qty"] == pytest.approx(signed) and after["order_id"] == order["order_id"]
    assert after["avg_price"] == pytest.approx(order["avg_fill_price"])
    assert chain["position"]["now"]["qty"] == pytest.approx(-signed)
    # Executed order: the first fill opened the position, the second closed it and opened the
    # other side, so exactly one round trip closed, at the first order's entry price.
    trades = ledger.closed_trade_pnls(url, "liquid", "same_instant")
    assert len(trades) == 1
    assert ledger.positions(url, "liquid", "same_instant")[d["symbol"]].avg_price == pytest.approx(
        later["avg_fill_price"])
