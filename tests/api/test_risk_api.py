"""risk/* over HTTP against a real migrated warehouse (SQLite and PostgreSQL): limits, what-if
checks, keyed and audited kill switches and breaker resets, state that survives a new app, and
every documented error of these routes provoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from omniwatch.serving.risk.service import risk_refused
from omniwatch.settings import Settings
from omniwatch.trading import store
from omniwatch.trading.orders import (
    FillReport,
    OrderRequest,
    OrderStatus,
    VenueReport,
    apply_report,
    new_order,
    transition,
)
from omniwatch.trading.risk import BreakerState, KillSwitch, RiskContext, RiskLimits, check_order
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, KEY, client_for

P = "/api/v2/risk"
ALICE = {"X-API-Key": "al1ce-secret"}
KEYS = [KEY, "alice:al1ce-secret"]
T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
AT = {"as_of": T0.isoformat()}


@pytest.fixture
def home(warehouse_url, tmp_path) -> Settings:
    """An empty home whose warehouse is a migrated one on each backend (no model needed)."""
    return Settings(home=tmp_path / "home", database_url=warehouse_url)


def _rows(url, table):
    with get_engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def _bar(url, symbol, close, at):
    with get_engine(url).begin() as conn:
        conn.execute(tables.market_bars.insert().values(
            symbol=symbol, venue="test", venue_symbol=f"{symbol}-USD", quote="USD", interval="1h",
            event_time=at - timedelta(hours=1), available_time=at, open=close, high=close, low=close, close=close,
            volume=1.0, source="test"))


def _fill(url, strategy_id, when, side, price, qty=1.0):
    """One paper order filled in full, stored as execution stores it."""
    request = OrderRequest(f"{strategy_id}-{when.isoformat()}-{side}", "liquid", strategy_id, "BTC", side, qty,
                           "market", None, "IOC", None)
    order = transition(store.create_order(url, new_order(request, "paper", "paper", when)), OrderStatus.SUBMITTED,
                       when, "sent")
    report = VenueReport(f"v-{request.client_order_id}", OrderStatus.FILLED,
                         (FillReport("f1", when, qty, price, 0.0, "taker"),), "", reference_price=price)
    store.save_order(url, apply_report(order, report, when))


def _round_trip(url, strategy_id, opened, entry, exit_):
    _fill(url, strategy_id, opened, "buy", entry)
    _fill(url, strategy_id, opened + timedelta(minutes=30), "sell", exit_)


def test_limits_show_the_defaults_the_overrides_and_the_effective_set(home):
    overrides = {"liquid:*": {"capital_usd": 50_000}, "liquid:s1": {"max_order_notional_usd": 1_000}}
    with client_for(home, risk_limits=overrides, capital_usd=20_000) as c:
        out = c.get(f"{P}/limits").json()
        assert out["defaults"]["capital_usd"] == 20_000 and out["defaults"]["max_weight_per_asset"] == 0.5
        effective = {(e["track"], e["strategy_id"]): e for e in out["effective"]}
        assert set(effective) == {("liquid", "liquid_v2"), ("liquid", "*"), ("liquid", "s1")}
        s1 = effective[("liquid", "s1")]
        assert s1["sources"] == ["defaults", "liquid:*", "liquid:s1"]
        assert (s1["limits"]["capital_usd"], s1["limits"]["max_order_notional_usd"]) == (50_000, 1_000)
        one = c.get(f"{P}/limits", params={"strategy_id": "s2"}).json()["effective"]
        assert [(e["strategy_id"], e["limits"]["capital_usd"]) for e in one] == [("s2", 50_000)]
        # the rebalance reads the same set: the default strategy's limits
        assert c.app.state.services.limits == c.app.state.services.risk.guard.limits("liquid", "liquid_v2")


def test_check_decides_without_executing_or_recording(home):
    with client_for(home, api_keys=KEYS, max_order_notional_usd=10_000) as c:
        body = {"symbol": "BTC", "side": "buy", "qty": 0.1, "price": 60_000.0, **AT}
        r = c.post(f"{P}/check", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["allowed"] and out["state"] == "ACTIVE" and out["strategy_id"] == "liquid_v2"
        assert out["notional"] == pytest.approx(6_000.0) and out["limits"]["max_order_notional_usd"] == 10_000
        r = c.post(f"{P}/check", json={**body, "qty": 0.2})
        assert r.status_code == 200 and not r.json()["allowed"]
        (v,) = r.json()["violations"]
        assert (v["code"], v["value"], v["threshold"]) == ("max_order_notional", pytest.approx(12_000.0), 10_000)
        assert _rows(home.warehouse_url, tables.risk_events) == []   # a what-if leaves no row


def test_check_prices_from_the_limit_or_the_newest_bar_else_names_the_missing_price(home):
    _bar(home.warehouse_url, "ETH", 2_000.0, T0 - timedelta(hours=1))
    with client_for(home) as c:
        out = c.post(f"{P}/check", json={"symbol": "ETH", "side": "buy", "qty": 1, **AT}).json()
        assert out["price"] == 2_000.0
        out = c.post(f"{P}/check", json={"symbol": "ETH", "side": "buy", "qty": 1, "order_type": "limit",
                                         "limit_price": 1_900.0, **AT}).json()
        assert out["price"] == 1_900.0
        r = c.post(f"{P}/check", json={"symbol": "SOL", "side": "buy", "qty": 1, **AT})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.price"
        r = c.post(f"{P}/check", json={"symbol": "ETH", "side": "buy", "qty": 1, "order_type": "limit"})
        assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_kill_switch_is_keyed_audited_and_survives_a_new_app(home):
    body = {"strategy_id": "liquid_v2", "reason": "fills far from the book"}
    check = {"symbol": "BTC", "side": "sell", "qty": 0.1, "price": 60_000.0, **AT}
    with client_for(home, api_keys=KEYS) as c:
        for headers in ({}, {"X-API-Key": "wrong"}):
            r = c.post(f"{P}/kill-switch/trigger", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert _rows(home.warehouse_url, tables.risk_controls) == []
        r = c.post(f"{P}/kill-switch/trigger", json=body, headers=ALICE)
        assert r.status_code == 200, r.text
        assert r.json()["triggered"] and r.json()["triggered_by"] == "alice"

    with client_for(home, api_keys=KEYS) as c:   # a restarted API reads the switch from the warehouse
        out = c.post(f"{P}/check", json=check).json()
        assert out["state"] == "HALTED" and [v["code"] for v in out["violations"]] == [
            "kill_switch_triggered:liquid:liquid_v2"]
        assert (out["violations"][0]["track"], out["violations"][0]["strategy_id"]) == ("liquid", "liquid_v2")
        switches = c.get(f"{P}/kill-switch").json()["kill_switches"]
        assert [(s["strategy_id"], s["triggered"], s["reason"]) for s in switches] == [
            ("liquid_v2", True, "fills far from the book")]
        assert c.get(f"{P}/state").json()["state"] == "HALTED"
        assert c.post(f"{P}/kill-switch/reset", json={**body, "reason": "checked"}).status_code == 401
        r = c.post(f"{P}/kill-switch/reset", json={**body, "reason": "venue glitch, fixed"}, headers=AUTH)
        assert r.status_code == 200 and not r.json()["triggered"] and r.json()["reset_by"].startswith("key-")
        assert c.post(f"{P}/check", json=check).json()["allowed"]
    audit = _rows(home.warehouse_url, tables.risk_controls)
    assert [(a["action"], a["actor"], a["reason"]) for a in audit] == [
        ("trigger", "alice", "fills far from the book"), ("reset", audit[1]["actor"], "venue glitch, fixed")]


def test_a_track_wide_switch_is_named_star(home):
    with client_for(home) as c:
        r = c.post(f"{P}/kill-switch/trigger", json={"strategy_id": "*", "reason": "exchange incident"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["strategy_id"] == "*"
        out = c.post(f"{P}/check", json={"symbol": "BTC", "side": "buy", "qty": 1, "price": 1.0,
                                         "strategy_id": "any"}).json()
        assert [v["code"] for v in out["violations"]] == ["kill_switch_triggered:liquid:*"]
        r = c.post(f"{P}/kill-switch/trigger", json={"strategy_id": "a b", "reason": "x y z"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.strategy_id"


def test_consecutive_loss_breaker_reset_is_keyed_and_audited(home):
    for i in range(5):   # five losing round trips: the default breaker trips at five
        _round_trip(home.warehouse_url, "liquid_v2", T0 + timedelta(hours=i), 100.0, 99.0)
    with client_for(home, api_keys=KEYS) as c:
        state = c.get(f"{P}/state").json()
        assert state["state"] == "REDUCING" and state["consecutive_losses"] == 5
        body = {"strategy_id": "liquid_v2", "reason": "a volatility spike, the model is fine"}
        path = f"{P}/breakers/consecutive-loss/reset"
        assert c.post(path, json=body).status_code == 401
        r = c.post(path, json=body, headers=ALICE)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["state"] == "ACTIVE" and out["consecutive_losses"] == 0 and out["consecutive_reset_by"] == "alice"
    (row,) = _rows(home.warehouse_url, tables.risk_controls)
    assert (row["control"], row["action"], row["actor"]) == ("consecutive_loss", "reset", "alice")


def test_daily_loss_puts_the_strategy_in_reducing_at_the_decision_clock(home):
    midnight = datetime(2024, 6, 1, tzinfo=UTC)
    _fill(home.warehouse_url, "liquid_v2", midnight - timedelta(hours=12), "buy", 60_000.0, qty=0.8)
    _bar(home.warehouse_url, "BTC", 60_000.0, midnight)
    _bar(home.warehouse_url, "BTC", 55_000.0, T0)      # -4,000 USD today; the limit is 2% of 100,000
    with client_for(home) as c:
        state = c.get(f"{P}/state", params=AT).json()
        assert state["state"] == "REDUCING" and state["day_pnl"] == pytest.approx(-4_000.0)
        assert state["daily_loss_limit_usd"] == 2_000.0 and state["daily_loss_tripped"]
        yesterday = c.get(f"{P}/state", params={"as_of": (midnight - timedelta(hours=1)).isoformat()}).json()
        assert yesterday["state"] == "ACTIVE"
        buy = c.post(f"{P}/check", json={"symbol": "BTC", "side": "buy", "qty": 0.05, **AT}).json()
        assert not buy["allowed"] and [v["code"] for v in buy["violations"]] == ["daily_loss_exceeded"]
        sell = c.post(f"{P}/check", json={"symbol": "BTC", "side": "sell", "qty": 0.5, **AT}).json()
        assert sell["allowed"] and sell["reducing"] and sell["state"] == "REDUCING"


def test_a_refusal_answers_423_with_the_first_violation_s_code():
    limits = RiskLimits(0.4, 0.5, 1.0, 1.0, 0.01)
    order = OrderRequest("c-1", "liquid", "s1", "BTC", "buy", 1.0, "market", None, "IOC", None)
    switch = KillSwitch("liquid", "s1", True, "alice", T0, "halt")
    decision = check_order(order, 60_000.0, RiskContext({}, {}, -5_000.0), limits, BreakerState((switch,)))
    err = risk_refused(decision)
    assert err.status == 423 and err.code == "kill_switch_triggered:liquid:s1"
    assert err.context is not None and err.context["codes"] == [
        "kill_switch_triggered:liquid:s1", "daily_loss_exceeded", "max_order_notional", "max_position_notional",
        "max_weight_per_asset"]
    assert err.context["state"] == "HALTED"


BAD_QUERY = {"string_pattern_mismatch": "not valid!", "datetime_from_date_parsing": "yesterday"}


def test_every_documented_error_of_the_risk_routes_is_answered(home):
    """What tests/api/test_openapi_examples.py provokes for every route, here for these alone (no
    trained home): 401 from an app with keyed reads, each validation example answered as written."""
    with client_for(home) as main, client_for(home, api_open_reads=False) as closed:
        spec = main.get("/openapi.json").json()
        components = spec["components"]["schemas"]
        provoked = set()
        for path, item in spec["paths"].items():
            for method, op in item.items() if path.startswith(P) else ():
                ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
                body = components[ref["$ref"].rsplit("/", 1)[-1]]["examples"][0] if ref else None
                for status, response in op["responses"].items():
                    for code, example in response.get("content", {}).get("application/json", {}).get(
                            "examples", {}).items():
                        if code == "unauthorized":
                            r = closed.request(method.upper(), path, json=body)
                        elif code == "not_found":  # risk/check: a model version the registry lacks
                            r = main.request(method.upper(), path, json={**body, "model_version": "99"})
                        else:
                            assert code == "validation_error", (path, code)
                            error = example["value"]["errors"][0]
                            where, _, name = error["field"].partition(".")
                            if where == "body":
                                sent = {k: v for k, v in body.items() if k != name}
                                r = main.request(method.upper(), path, json=sent, headers=AUTH)
                            else:
                                r = main.request(method.upper(), path, params={name: BAD_QUERY[error["type"]]})
                            assert r.json()["errors"] == example["value"]["errors"], (path, r.text)
                        assert (r.status_code, r.json()["code"]) == (int(status), code), (path, r.text)
                        provoked.add((method, path, int(status)))
    assert len(provoked) == 15   # 7 routes, each documenting 401 and 422, and risk/check's 404


# ----------------------------------------------------------------------------- generated requests
def _risk_schema():
    import tempfile
    from pathlib import Path

    import schemathesis

    from omniwatch.serving.app import create_app

    from .conftest import serving

    spec = create_app(Settings(home=Path(tempfile.mkdtemp(prefix="omniwatch-risk-openapi-"))), serving()).openapi()
    return schemathesis.openapi.from_dict(spec).include(path_regex="^/api/v2/risk/")


def test_generated_requests_to_the_risk_routes_get_no_5xx_and_conform(home):
    """tests/api/test_schemathesis.py's checks over these routes alone, on each backend (a string
    longer than its column would be a PostgreSQL 500); that test needs the trained home, this not."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

    from omniwatch.serving.app import create_app

    from .conftest import serving

    def no_5xx(ctx, response, case) -> None:
        assert response.status_code < 500, f"{response.status_code} from {case.method} {case.path}: {response.text}"

    checks = [no_5xx, status_code_conformance, content_type_conformance, response_schema_conformance]
    schemathesis.check(no_5xx)

    app = create_app(home, serving())
    calls: list[str] = []
    try:
        for result in _risk_schema().get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            def run(case):
                calls.append(f"{case.method} {case.path}")
                case.call_and_validate(app=app, headers=AUTH, checks=checks)

            run()
    finally:
        app.state.services.close()
    assert len(set(calls)) == 7 and len(calls) >= 7 * 5, sorted(set(calls))
