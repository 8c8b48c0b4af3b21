"""Hard metrics of executed trading (omniwatch/trading/hard_metrics.py): the definitions on plain
rows, then pass / fail / insufficient on orders and fills stored through omniwatch.trading.store
(SQLite and PostgreSQL), then scripts/evaluate_hard_metrics.py as a subprocess over a real home."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import copy_home  # the root conftest
from servers import free_port, running

from omniwatch.trading import ledger, store
from omniwatch.trading.hard_metrics import (
    HardThresholds,
    MarkMissing,
    Missing,
    Verdict,
    evaluate,
    hourly_equity,
    load,
    order_counts,
)
from omniwatch.trading.orders import FillReport, OrderStatus, VenueReport, apply_report, new_order, transition
from omniwatch.warehouse.engine import get_engine

S = OrderStatus
H = timedelta(hours=1)
T0 = datetime(2024, 6, 1, tzinfo=UTC)
CAP = "max_slippage_bps 50 reached at bar reference 100"
AGE = timedelta(hours=2)


def lifecycle(*reasons: str) -> list[dict]:
    return [{"ts": T0.isoformat(), "from": None, "to": "initialized", "reason": "created"},
            *({"ts": T0.isoformat(), "from": "submitted", "to": "x", "reason": r} for r in reasons)]


# --- (a) definitions on plain rows ----------------------------------------------------------------
def test_reject_rate_counts_venue_rejects_and_cap_stops_over_orders_sent_and_denials_apart():
    counts = order_counts([
        ("filled", lifecycle("")), ("filled", lifecycle("")),
        ("rejected", lifecycle("insufficient balance")),                # the venue refused
        ("rejected", lifecycle(CAP)),                                   # the cap refused all of it
        ("canceled", lifecycle(f"3 of 10 filled; {CAP}")),              # the cap cut it short
        ("canceled", lifecycle("the rest found no liquidity")),         # depth, not the cap
        ("denied", lifecycle("max_order_notional")), ("initialized", lifecycle()),
    ])
    assert (counts.total, counts.sent, counts.denied) == (8, 6, 1)
    assert (counts.rejected, counts.capped, counts.rejected_or_capped) == (2, 2, 3)
    assert counts.reject_rate == pytest.approx(3 / 6) and counts.denial_rate == pytest.approx(1 / 7)


def test_hourly_equity_is_the_ledger_marked_at_the_closes_of_each_hour():
    events = [ledger.LedgerFill(T0, "BTC", "buy", 2.0, 100.0, 1.0),
              ledger.LedgerFill(T0 + 2 * H, "BTC", "sell", 2.0, 105.0, 1.0),
              ledger.FundingPayment(T0 + H, "BTC", 0.5)]
    closes = {"BTC": [(T0, 100.0), (T0 + H, 110.0), (T0 + 2 * H, 104.0)]}
    assert hourly_equity(events, closes, [T0, T0 + H, T0 + 2 * H, T0 + 3 * H], AGE) == pytest.approx(
        [-1.0, 18.5, 7.5, 7.5])   # flat at the end: no mark needed
    with pytest.raises(MarkMissing, match="BTC"):
        hourly_equity(events[:1], closes, [T0 + 5 * H], AGE)   # the newest close is 5 h old


def _fills(n: int, price: float = 100.0) -> list[ledger.LedgerFill]:
    return [ledger.LedgerFill(T0 + k * H, "BTC", "buy", 10.0, price, 0.0) for k in range(n)]


def test_a_failure_is_reported_even_when_other_data_is_missing():
    closes = {"BTC": [(T0 + k * H, 100.0 - k) for k in range(6)]}
    report = evaluate(track="liquid", strategy_id="s1", capital=10_000.0, orders=[("rejected", lifecycle(CAP))] * 3,
                      events=_fills(1), closes=closes, start=None, end=None,
                      thresholds=HardThresholds(min_orders=2, min_hours=24))
    assert report.verdict == Verdict.FAIL
    assert [m.code for m in report.missing] == [Missing.TOO_FEW_HOURS]
    assert report.failures and "reject rate 100.0%" in report.failures[0]


def test_flat_equity_leaves_sharpe_undefined():
    closes = {"BTC": [(T0 + k * H, 100.0) for k in range(30)]}
    report = evaluate(track="liquid", strategy_id="s1", capital=10_000.0, orders=[("filled", [])] * 10,
                      events=_fills(1), closes=closes, start=None, end=None, thresholds=HardThresholds())
    assert report.verdict == Verdict.INSUFFICIENT and [m.code for m in report.missing] == [Missing.FLAT_EQUITY]


def test_an_open_position_without_a_close_is_named():
    report = evaluate(track="liquid", strategy_id="s1", capital=10_000.0, orders=[("filled", [])] * 10,
                      events=_fills(2), closes={}, start=None, end=T0 + 30 * H, thresholds=HardThresholds())
    assert report.verdict == Verdict.INSUFFICIENT
    assert [m.code for m in report.missing] == [Missing.NO_MARK] and "BTC" in report.missing[0].detail


# --- (b) orders and fills stored through omniwatch.trading.store (both backends) --------------------
def put_order(url, make_request, ts, side, qty, price, status=S.FILLED, reason="", filled=None, strategy="s1"):
    """One order the way execution stores it: created, submitted, then the venue's report."""
    request = make_request(side=side, qty=qty, max_slippage_bps=50.0, strategy_id=strategy)
    order = store.create_order(url, new_order(request, "paper", "paper", ts))
    if status == S.DENIED:
        return store.save_order(url, transition(order, S.DENIED, ts, "max_order_notional"))
    order = store.save_order(url, transition(order, S.SUBMITTED, ts, "sent to paper"))
    q = qty if filled is None else filled
    fills = (FillReport(f"f-{request.client_order_id}", ts, q, price, q * price * 5e-4, "taker"),) if q > 0 else ()
    report = VenueReport(f"v-{request.client_order_id}", status, fills, reason, price)
    return store.save_order(url, apply_report(order, report, ts))


def closes_of(drift: float, hours: int = 48) -> list[float]:
    """A steady trend with a small alternating wiggle (so returns vary)."""
    return [100.0 * math.exp(drift * k + 0.0003 * (-1) ** k) for k in range(hours + 1)]


def put_market(url, put_bars, closes: list[float]) -> None:
    put_bars(url, "BTC", [(T0 + (k - 1) * H, c, c, c, c, 1e6) for k, c in enumerate(closes)])  # close k at T0+k


def buy_ten(url, make_request, closes, strategy="s1") -> None:
    for k in range(10):
        put_order(url, make_request, T0 + k * H, "buy", 40.0, closes[k], strategy=strategy)


def report_of(url, strategy="s1", **thresholds):
    with get_engine(url).connect() as conn:
        return load(conn, track="liquid", strategy_id=strategy, capital=100_000.0, start=None, end=None,
                    thresholds=HardThresholds(**thresholds))


def test_steady_gains_pass(warehouse_url, make_request, put_bars):
    closes = closes_of(0.001)
    put_market(warehouse_url, put_bars, closes)
    buy_ten(warehouse_url, make_request, closes)
    report = report_of(warehouse_url)
    assert report.verdict == Verdict.PASS, report
    assert report.start == T0 - H and report.hours == 49   # from the hour before the first fill
    assert report.orders.sent == 10 and report.orders.reject_rate == 0.0
    assert report.sharpe > 5 and 0 <= report.max_drawdown < 0.01
    book, _ = ledger.replay(ledger.load_events(warehouse_url, "liquid", "s1"))
    assert report.net_pnl_usd == pytest.approx(ledger.equity(book, {"BTC": closes[-1]}))   # every fee counted


def test_losses_fail_sharpe_and_drawdown(warehouse_url, make_request, put_bars):
    closes = closes_of(-0.002)
    put_market(warehouse_url, put_bars, closes)
    buy_ten(warehouse_url, make_request, closes)
    report = report_of(warehouse_url, max_drawdown=0.01)
    assert report.verdict == Verdict.FAIL
    assert report.sharpe < 0 and report.max_drawdown > 0.01
    assert [f.split()[0] for f in report.failures] == ["Sharpe", "max"]


def test_rejects_and_cap_stops_fail_the_reject_rate_and_denials_are_apart(warehouse_url, make_request, put_bars):
    closes = closes_of(0.001)
    put_market(warehouse_url, put_bars, closes)
    buy_ten(warehouse_url, make_request, closes)
    url, t = warehouse_url, T0 + 11 * H
    put_order(url, make_request, t, "buy", 10.0, closes[11], S.CANCELED, f"4 of 10 filled; {CAP}", filled=4.0)
    put_order(url, make_request, t, "buy", 10.0, closes[11], S.REJECTED, CAP, filled=0.0)
    put_order(url, make_request, t, "buy", 10.0, closes[11], S.REJECTED, "insufficient balance", filled=0.0)
    for _ in range(3):
        put_order(url, make_request, t, "buy", 1e6, closes[11], S.DENIED)
    report = report_of(url)
    assert report.verdict == Verdict.FAIL
    assert (report.orders.sent, report.orders.rejected_or_capped, report.orders.denied) == (13, 3, 3)
    assert report.orders.reject_rate == pytest.approx(3 / 13)
    assert len(report.failures) == 1 and report.failures[0].startswith("reject rate")


def test_too_little_is_insufficient_and_says_what(warehouse_url, make_request, put_bars):
    closes = closes_of(0.001, hours=5)
    put_market(warehouse_url, put_bars, closes)
    for k in range(3):
        put_order(warehouse_url, make_request, T0 + k * H, "buy", 40.0, closes[k])
    report = report_of(warehouse_url)
    assert report.verdict == Verdict.INSUFFICIENT
    assert [m.code for m in report.missing] == [Missing.TOO_FEW_ORDERS, Missing.TOO_FEW_HOURS]
    nothing = report_of(warehouse_url, strategy="nobody")
    assert [m.code for m in nothing.missing] == [Missing.NO_ORDERS, Missing.NO_FILLS]


# --- (c) the operator script, as a subprocess over a copy of the trained home ---------------------
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "evaluate_hard_metrics.py"


@pytest.fixture(scope="module")
def traded_home(trained_home, tmp_path_factory) -> Path:
    """The trained home with twelve hand-built paper orders of strategy ``liquid_v2`` at stored
    BTC closes in August 2024 (ten filled, one cut by the cap, one denied by risk)."""
    from omniwatch.trading.orders import OrderRequest

    home = copy_home(trained_home, tmp_path_factory.mktemp("hard") / "home")
    url = f"sqlite:///{home / 'warehouse.db'}"
    counter = iter(range(1, 100))

    def make(**kw):
        values = dict(client_order_id=f"h-{next(counter)}", track="liquid", strategy_id="liquid_v2", symbol="BTC",
                      side="buy", qty=1.0, order_type="market", limit_price=None, time_in_force="IOC",
                      max_slippage_bps=50.0)
        return OrderRequest(**{**values, **kw})

    start = datetime(2024, 8, 1, tzinfo=UTC)
    for k in range(10):
        ts = start + k * 6 * H
        price = ledger.latest_closes(url, ["BTC"], ts)["BTC"]
        put_order(url, make, ts, "buy" if k % 2 == 0 else "sell", 0.5 if k % 2 == 0 else 0.25, price,
                  strategy="liquid_v2")
    ts = start + 61 * H
    price = ledger.latest_closes(url, ["BTC"], ts)["BTC"]
    put_order(url, make, ts, "buy", 1.0, price, S.CANCELED, f"0.5 of 1 filled; {CAP}", filled=0.5,
              strategy="liquid_v2")
    put_order(url, make, ts, "buy", 100.0, price, S.DENIED, strategy="liquid_v2")
    get_engine(url).dispose()
    return home


def run_script(home: Path, *args: str, **env: str) -> tuple[int, dict]:
    skip = ("OMNIWATCH_DATABASE_URL", "OMNIWATCH_CAPITAL_USD", "OMNIWATCH_RISK_LIMITS", "OMNIWATCH_API_KEY")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    environ.update(OMNIWATCH_HOME=str(home), **env)
    out = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--track", "liquid", *args], env=environ,
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip(), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def test_script_exit_codes_over_a_real_home(traded_home):
    code, report = run_script(traded_home, "--min-sharpe", "-1000", "--max-drawdown", "0.99", "--max-reject-rate",
                              "0.2")
    assert code == 0, report
    assert report["verdict"] == "pass" and report["strategy_id"] == "liquid_v2"
    assert report["orders"]["sent"] == 11 and report["orders"]["denied"] == 1 and report["orders"]["capped"] == 1
    assert report["end"] == "2024-09-01T00:00:00Z" and report["hours"] == 31 * 24 + 1
    assert report["capital_usd"] == 100_000.0

    code, report = run_script(traded_home, "--min-sharpe", "1000")
    assert code == 1 and report["verdict"] == "fail" and report["failures"][0].startswith("Sharpe"), report

    code, report = run_script(traded_home, "--strategy-id", "nobody")
    assert code == 2 and [m["code"] for m in report["missing"]] == ["no_orders_sent", "no_fills"], report


def test_script_reads_capital_from_the_running_api(traded_home, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMNIWATCH_HOME": str(traded_home), "DAGSTER_HOME": str(tmp_path),
           "OMNIWATCH_API_PORT": str(port), "OMNIWATCH_API_HOST": "127.0.0.1", "OMNIWATCH_CAPITAL_USD": "50000"}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    with running([sys.executable, "-W", "ignore", "-m", "omniwatch.serving.app"], env=env, cwd=REPO,
                 log_path=tmp_path / "api.log", ready=lambda: httpx.get(f"{base}/api/v2/health").status_code == 200,
                 what="the API", timeout_s=120):
        code, report = run_script(traded_home, "--api-base", base, "--min-sharpe", "-1000", "--max-drawdown", "0.99",
                                  "--max-reject-rate", "0.2")
    assert code == 0, report
    assert report["capital_usd"] == 50_000.0   # the API's, not this process's default of 100,000
