"""Backtest/paper parity (omniwatch/trading/parity.py): the gap arithmetic on tiny frames, the paper
side on hand-built bars and funding (both backends, nothing written), and the whole check on the
trained home: within tolerance as configured, past it with a deliberately wrong cost."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_home  # the root conftest
from sqlalchemy import func, select

from omniwatch.trading import ledger
from omniwatch.trading.backtest import BacktestErrorCode, BacktestParams, BacktestRefused, evaluate, replay
from omniwatch.trading.paper import PaperSettings, bar_slippage_bps
from omniwatch.trading.parity import PaperExecution, backtest_hours, check, compare, gaps, paper_hours
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

H = timedelta(hours=1)
T0 = datetime(2024, 6, 1, 0, tzinfo=UTC)
WRITTEN = (tables.orders_sim, tables.fills, tables.paper_orders, tables.funding_payments,
           tables.positions_snapshots)


def frame(**cols: list[float]) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    return pd.DataFrame(cols, index=pd.DatetimeIndex([T0 + k * H for k in range(n)], name="as_of_ts"))


# --- (a) the gap arithmetic ---------------------------------------------------------------------
def test_the_causes_of_each_hour_sum_to_its_gap():
    bt = frame(gross=[0.010, -0.002], fees=[0.0005, 0.0], slippage=[0.0005, 0.0], funding=[0.0, 0.0001],
               net=[0.009, -0.0021], position=[1.0, 1.0], next_hour_return=[0.01, -0.002], turnover=[1.0, 0.0])
    paper = frame(gross=[0.0101, -0.0021], fees=[0.0005, 0.0], slippage=[0.0002, 0.0], funding=[0.0, 0.0],
                  net=[0.0094, -0.0021], weight=[1.0, 1.0], turnover=[1.0, 0.0])
    g = gaps(bt, paper)
    assert np.allclose(g[["price", "fees", "slippage", "funding"]].sum(axis=1), g["gap"])
    assert g.loc[T0, "slippage"] == pytest.approx(0.0003) and g.loc[T0 + H, "funding"] == pytest.approx(0.0001)

    report = compare(bt, paper, [], tolerance_bps=5.0)
    assert report["divergence_bps"] == pytest.approx(4.0)
    assert report["within_tolerance"] is True
    assert report["largest_hours"][0]["cause"] == "slippage"
    assert compare(bt, paper, [], tolerance_bps=3.9)["within_tolerance"] is False


# --- (b) the paper side on hand-built data ------------------------------------------------------
@pytest.fixture
def market(warehouse_url, put_bars) -> str:
    """BTC hourly bars closing at T0-24h .. T0+4h (close 100 at T0, +1 an hour after), volume 1e6
    (dollar volume ~1e8 an hour), and funding settlements at T0+1h and T0+2h."""
    bars = []
    for k in range(-25, 4):
        close = 100.0 + max(k + 1, 0)
        bars.append((T0 + k * H, close, close + 1, close - 1, close, 1e6))
    put_bars(warehouse_url, "BTC", bars)
    with get_engine(warehouse_url).begin() as conn:
        conn.execute(tables.funding_rates.insert(), [
            {"symbol": "BTC", "venue": "perp", "venue_symbol": "BTCUSDT", "event_time": T0 + k * H,
             "available_time": T0 + k * H, "funding_rate": 1e-4, "mark_price": None, "source": "test"}
            for k in (1, 2)])
    return warehouse_url


def _rows(url: str) -> dict[str, int]:
    with get_engine(url).connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in WRITTEN}


def test_paper_side_prices_orders_with_the_bar_model_charges_funding_and_writes_nothing(market):
    settings = PaperSettings()
    ex = PaperExecution(capital=100_000.0, n_symbols=1, max_weight=1.0, max_slippage_bps=50.0)
    positions = pd.Series([0.3, 0.3, 0.0, -0.3], index=pd.DatetimeIndex([T0 + k * H for k in range(4)]))
    hours, orders = paper_hours(market, "BTC", positions, ex, settings)

    assert [(o.ts, o.side, o.source) for o in orders] == [(T0, "buy", "bar"), (T0 + 2 * H, "sell", "bar"),
                                                         (T0 + 3 * H, "sell", "bar")]
    first = orders[0]
    assert first.qty == pytest.approx(0.3 * 100_000 / 100.0)
    volume = np.mean([(100.0 + max(k + 1, 0)) * 1e6 for k in range(-24, 0)])  # the 24 bars available at T0
    slip = bar_slippage_bps(first.qty * 100.0, volume, settings)
    assert first.avg_price == pytest.approx(100.0 * (1 + slip / 1e4))
    assert hours.loc[T0, "slippage"] == pytest.approx(first.qty * 100.0 * slip / 1e4 / 100_000)
    assert hours.loc[T0, "fees"] == pytest.approx(first.qty * first.avg_price * 5e-4 / 100_000)
    assert orders[1].qty == pytest.approx(first.qty)          # back to flat: exactly what is held
    assert orders[2].qty == pytest.approx(0.3 * 100_000 / 103.0)

    # The T0+1h settlement is paid by the long held since T0 (hour T0's interval); at T0+2h the
    # closing fill of that same instant counts, so nothing is paid (the backtest would charge it).
    assert hours.loc[T0, "funding"] == pytest.approx(first.qty * 101.0 * 1e-4 / 100_000)
    assert hours.loc[T0 + H, "funding"] == 0.0

    fills = [ledger.LedgerFill(o.ts, "BTC", o.side, o.filled, o.avg_price, o.filled * o.avg_price * 5e-4)
             for o in orders]
    book, _ = ledger.replay([*fills, ledger.FundingPayment(T0 + H, "BTC", first.qty * 101.0 * 1e-4)])
    assert hours["net"].sum() == pytest.approx(ledger.equity(book, {"BTC": 104.0}) / 100_000)
    assert _rows(market) == dict.fromkeys((t.name for t in WRITTEN), 0)


def test_paper_side_is_what_the_paper_adapter_executes_and_the_ledger_books(market):
    """The simulated orders sent for real (PaperAdapter, store, accrue_funding) give the same PnL."""
    from omniwatch.trading import store
    from omniwatch.trading.orders import OrderRequest, OrderStatus, apply_report, new_order, transition
    from omniwatch.trading.paper import PaperAdapter, accrue_funding

    ex = PaperExecution(capital=100_000.0, n_symbols=2, max_weight=1.0, max_slippage_bps=50.0)
    positions = pd.Series([0.6, 0.6, 0.0, -0.6], index=pd.DatetimeIndex([T0 + k * H for k in range(4)]))
    hours, orders = paper_hours(market, "BTC", positions, ex, PaperSettings())
    adapter = PaperAdapter(market)
    for i, o in enumerate(orders):
        request = OrderRequest(f"real-{i}", "liquid", "s1", "BTC", o.side, o.qty, "market", None, "IOC", 50.0)
        stored = store.create_order(market, new_order(request, "paper", "paper", o.ts))
        stored = store.save_order(market, transition(stored, OrderStatus.SUBMITTED, o.ts, "sent"))
        stored = store.save_order(market, apply_report(stored, adapter.submit(request, o.ts), o.ts))
        assert stored.filled_qty == pytest.approx(o.filled) and stored.avg_fill_price == pytest.approx(o.avg_price)
    assert accrue_funding(market, "liquid", "s1", T0 + 4 * H) == 1
    book, _ = ledger.replay(ledger.load_events(market, "liquid", "s1"))
    assert hours["net"].sum() * ex.target_capital == pytest.approx(ledger.equity(book, {"BTC": 104.0}), rel=1e-12)


def test_the_slippage_cap_cuts_the_paper_order_and_the_gap_shows_it(market):
    ex = PaperExecution(capital=100_000.0, n_symbols=1, max_weight=1.0, max_slippage_bps=2.6)
    positions = pd.Series([1.0, 1.0], index=pd.DatetimeIndex([T0, T0 + H]))
    hours, orders = paper_hours(market, "BTC", positions, ex, PaperSettings())
    assert 0 < orders[0].filled < orders[0].qty and "max_slippage_bps" in orders[0].note
    assert hours.loc[T0, "weight"] < 1.0


def test_a_window_without_bars_is_refused(warehouse_url):
    ex = PaperExecution(capital=100_000.0, n_symbols=1, max_weight=1.0, max_slippage_bps=None)
    with pytest.raises(BacktestRefused) as refused:
        paper_hours(warehouse_url, "BTC", pd.Series([0.5], index=pd.DatetimeIndex([T0])), ex, PaperSettings())
    assert refused.value.code == BacktestErrorCode.INSUFFICIENT_PRICES


# --- (c) the whole check on the trained home ----------------------------------------------------
START, END = datetime(2024, 8, 28, tzinfo=UTC), datetime(2024, 8, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def home(trained_home, tmp_path_factory) -> Path:
    return copy_home(trained_home, tmp_path_factory.mktemp("parity") / "home")


@pytest.fixture(scope="module")
def model(home):
    from omniwatch.ml.versions import load_version

    return load_version(f"sqlite:///{home / 'mlflow.db'}", "omniwatch-liquid", "1", "cpu")


def params(**overrides) -> BacktestParams:
    values = dict(model_name="omniwatch-liquid", model_version="1", start=START, end=END, targets=["BTC"],
                  horizon="24h", band_bps=0.01, fee_bps=5.0, slippage_bps=5.0, include_funding=True,
                  allow_in_sample=True)
    return BacktestParams(**{**values, **overrides})


EXECUTION = PaperExecution(capital=100_000.0, n_symbols=3, max_weight=0.5, max_slippage_bps=50.0)


def test_the_backtest_side_is_the_backtest(home, model):
    url, p = f"sqlite:///{home / 'warehouse.db'}", params()
    rep = replay(url, model.model, p)
    bt = backtest_hours(rep, p, "BTC")
    breakdown, _ = evaluate(rep, p)
    assert bt["net"].sum() == pytest.approx(breakdown["by_target"]["BTC"]["net"], abs=1e-12)
    assert bt["turnover"].sum() > 0.5   # it trades: the comparison is not vacuous


def test_parity_holds_as_configured_and_fails_with_a_wrong_fee(home, model):
    url = f"sqlite:///{home / 'warehouse.db'}"
    rep = replay(url, model.model, params())
    report = check(url, rep, params(), "BTC", EXECUTION, PaperSettings(), tolerance_bps=25.0)
    assert report["within_tolerance"], report["divergence_bps"]
    assert report["orders"]["sent"] > 5 and report["orders"]["filled"] == report["orders"]["sent"]
    parts = report["divergence_by_cause_bps"]
    assert math.isclose(sum(parts.values()), report["divergence_bps"], abs_tol=1e-9)
    # The paper venue's fee is the backtest's: the fee gap is only the fill price against the close.
    assert abs(parts["fees"]) < 1.0

    wrong = params(fee_bps=50.0)   # ten times the venue's taker fee
    bad = check(url, replay(url, model.model, wrong), wrong, "BTC", EXECUTION, PaperSettings(), tolerance_bps=25.0)
    assert not bad["within_tolerance"]
    assert bad["divergence_bps"] > 25.0
    assert max(bad["divergence_by_cause_bps"], key=lambda c: abs(bad["divergence_by_cause_bps"][c])) == "fees"
    assert bad["largest_hours"][0]["cause"] == "fees"


# --- (d) the operator script, as a subprocess over a copy of the trained home ---------------------
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_backtest_paper_parity.py"


def run_script(home: Path, *args: str, **env: str) -> tuple[int, dict]:
    skip = ("OMNIWATCH_DATABASE_URL", "OMNIWATCH_MLFLOW_TRACKING_URI", "OMNIWATCH_PAPER_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    environ.update(OMNIWATCH_HOME=str(home), OMNIWATCH_SERVING_DEVICE="cpu", **env)
    out = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--track", "liquid", "--target", "BTC", *args],
                         env=environ, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip(), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def run_main(home: Path, monkeypatch, capsys, *args: str, **env: str) -> tuple[int, dict]:
    """The script's ``main`` in this process (no interpreter start-up): the same code as the
    subprocess, for the cases after the first."""
    import runpy

    for key in [k for k in os.environ if k.startswith(("OMNIWATCH_DATABASE_URL", "OMNIWATCH_MLFLOW_TRACKING_URI",
                                                        "OMNIWATCH_PAPER_"))]:
        monkeypatch.delenv(key)
    for key, value in {"OMNIWATCH_HOME": str(home), "OMNIWATCH_SERVING_DEVICE": "cpu", **env}.items():
        monkeypatch.setenv(key, value)
    main = runpy.run_path(str(SCRIPT), run_name="parity_script")["main"]
    capsys.readouterr()
    code = main(["--track", "liquid", "--target", "BTC", *args])
    return code, json.loads(capsys.readouterr().out)


def test_script_passes_on_the_default_window_and_fails_with_a_wrong_paper_fee(home, monkeypatch, capsys):
    code, report = run_script(home, "--days", "3", "--threshold-bps", "0.01")
    assert code == 0, report
    assert report["status"] == "ok" and report["end"] == "2024-09-01T00:00:00+00:00"
    assert report["model_version"] == "1" and report["orders"]["sent"] > 0 and report["in_sample"] is True

    code, report = run_main(home, monkeypatch, capsys, "--days", "3", "--threshold-bps", "0.01",
                            OMNIWATCH_PAPER_TAKER_FEE_BPS="60")
    assert code == 1, report
    assert report["status"] == "diverged" and report["costs"]["paper"]["taker_fee_bps"] == 60.0
    assert report["divergence_by_cause_bps"]["fees"] < -25.0


def test_script_refuses_a_window_it_cannot_replay(home, monkeypatch, capsys):
    code, report = run_main(home, monkeypatch, capsys, "--start", "2030-01-01T00:00:00Z",
                            "--end", "2030-01-02T00:00:00Z")
    assert (code, report["status"], report["code"]) == (2, "not_replayable", "insufficient_features")
    code, report = run_main(home, monkeypatch, capsys, "--model-version", "7")
    assert (code, report["code"]) == (2, "model_artifact_missing")
