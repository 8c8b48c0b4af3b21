"""The registry: names, blocking flags, threshold routing, and use from a real Dagster asset."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from omniwatch import frames
from omniwatch.checks import (
    CHECKS_BY_ASSET,
    FUNDING_CHECKS,
    MARKET_BAR_CHECKS,
    CheckSpec,
    Severity,
    accepted_thresholds,
    asset_check_specs,
    check_specs_for,
    run_asset_checks,
    run_checks,
)

from . import builders as b

WINDOW = ("2024-01-01T00:00Z", "2024-01-02T00:00Z", "2024-01-03T00:00Z")
CLEAN = {
    "market_bars": lambda: b.market_bars(hours=24), "funding_rates": lambda: b.funding_rates(periods=3),
    "onchain_signals": b.onchain_signals, "trades_ticks": b.trades_ticks, "orderbook_l2": b.orderbook_l2,
}


def test_market_bar_registry_lists_one_predicate_per_property():
    assert [c.name for c in MARKET_BAR_CHECKS] == [
        "match_schema", "have_no_null_required_values", "have_no_duplicate_keys",
        "have_sane_ohlcv", "have_no_hourly_gaps", "are_fresh",
        "have_no_outlier_returns"]
    assert all(isinstance(c, CheckSpec) and c.blocking and c.description for c in MARKET_BAR_CHECKS)
    name, description, blocking = MARKET_BAR_CHECKS[0]
    assert (name, blocking) == ("match_schema", True)


def test_only_funding_coverage_is_report_only():
    report_only = [c.name for checks in CHECKS_BY_ASSET.values() for c in checks if not c.blocking]
    assert report_only == ["cover_settlements"]
    assert FUNDING_CHECKS[-1].name == "cover_settlements"


@pytest.mark.parametrize("asset", sorted(CLEAN))
def test_clean_batches_pass_every_check_in_registry_order(asset):
    outcomes = run_checks(asset, CLEAN[asset](), *WINDOW)
    assert [o.name for o in outcomes] == [c.name for c in CHECKS_BY_ASSET[asset]]
    assert all(o.passed for o in outcomes), [(o.name, o.failures) for o in outcomes if not o.passed]


def test_thresholds_are_routed_to_the_checks_that_take_them():
    bars = b.market_bars(hours=20)  # the last 4 hours of the day are missing
    by_name = {o.name: o for o in run_checks("market_bars", bars, *WINDOW)}
    assert not by_name["have_no_hourly_gaps"].passed
    assert not by_name["are_fresh"].passed
    relaxed = {o.name: o for o in run_checks("market_bars", bars, *WINDOW, max_gap_ratio=0.2, max_lag="5h")}
    assert relaxed["have_no_hourly_gaps"].passed and relaxed["are_fresh"].passed


def test_unknown_threshold_is_an_error():
    with pytest.raises(TypeError, match="max_gap_ration"):
        run_checks("market_bars", b.market_bars(), *WINDOW, max_gap_ration=0.5)
    assert "max_abs_funding_rate" in accepted_thresholds("funding_rates")
    assert "max_abs_funding_rate" not in accepted_thresholds("market_bars")
    with pytest.raises(KeyError, match="no_such_asset"):
        run_checks("no_such_asset", pd.DataFrame(), *WINDOW)


def test_one_threshold_set_serves_every_asset():
    shared = {"max_gap_ratio": 0.0, "max_abs_log_return": 0.25, "max_lag": pd.Timedelta(hours=2)}
    outcomes = run_checks("funding_rates", b.funding_rates(periods=3), *WINDOW, **shared)
    assert all(o.passed for o in outcomes)
    tight = run_checks("funding_rates", b.funding_rates(periods=3), *WINDOW, max_abs_funding_rate=0.00001)
    assert [o.name for o in tight if not o.passed] == ["within_bounds"]


def test_check_specs_for_declares_blocking_specs_on_the_asset():
    specs = check_specs_for("funding_rates")
    assert all(isinstance(s, dg.AssetCheckSpec) and s.asset_key == dg.AssetKey("funding_rates") for s in specs)
    assert {s.name: s.blocking for s in specs} == {c.name: c.blocking for c in FUNDING_CHECKS}
    assert [s.name for s in specs if not s.blocking] == ["cover_settlements"]


def test_severity_is_plain_text_for_storage():
    assert str(Severity.WARN) == "WARN" and Severity.ERROR == "ERROR"


def test_sol_funding_gap_does_not_block_but_is_reported():
    rates = b.funding_rates(start=b.ts("2024-11-01T00:00Z"), periods=3 * 120)
    in_gap = rates["event_time"].between(b.ts("2024-12-04T00:00Z"), b.ts("2025-01-31T16:00Z"))
    sample = rates.loc[~((rates["symbol"] == "SOL") & in_gap)]
    outcomes = run_checks("funding_rates", sample, "2024-11-01T00:00Z", "2025-03-01T00:00Z", "2026-01-01T00:00Z")
    failed = [(o.name, o.severity) for o in outcomes if not o.passed]
    assert failed == [("cover_settlements", Severity.WARN)]


def _market_assets(batch: pd.DataFrame):
    @dg.asset(name="market_bars", check_specs=asset_check_specs("market_bars"))
    def market_bars_asset():
        results = run_asset_checks("market_bars", batch, *WINDOW)
        return dg.MaterializeResult(metadata={"rows": len(batch)}, check_results=results)

    @dg.asset(deps=["market_bars"])
    def feature_snapshots():
        return None

    return [market_bars_asset, feature_snapshots]


def test_dagster_asset_reports_checks_and_a_blocking_failure_stops_downstream():
    clean = dg.materialize(_market_assets(b.market_bars(hours=24)))
    assert clean.success
    evaluations = clean.get_asset_check_evaluations()
    assert len(evaluations) == len(MARKET_BAR_CHECKS) and all(e.passed for e in evaluations)
    assert clean.asset_materializations_for_node("feature_snapshots")

    broken = b.market_bars(hours=24)
    broken.loc[b.row_index(broken, "BTC", "2024-01-01T10:00Z"), "close"] = float("nan")
    result = dg.materialize(_market_assets(broken), raise_on_error=False)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["have_no_null_required_values"]
    table = failed[0].metadata["failures"].value
    assert "| BTC | 2024-01-01T10:00:00+00:00 | close |" in table
    assert not result.success
    assert result.asset_materializations_for_node("feature_snapshots") == []


def test_empty_trade_and_book_batches_yield_passing_dagster_results():
    for asset, columns in (("trades_ticks", frames.TRADE_COLUMNS), ("orderbook_l2", frames.ORDERBOOK_COLUMNS)):
        results = run_asset_checks(asset, frames.empty_frame(columns), *WINDOW, asset_key=asset)
        assert results and all(r.passed for r in results)
        assert all(r.metadata["rows_checked"].value == 0 for r in results)
