"""The audit-trail gate reads rows stored before the checks dropped their asset prefix."""

from __future__ import annotations

import pandas as pd

from omniwatch.checks.gate import blocking_failures
from omniwatch.checks.outcome import make_outcome
from omniwatch.resources.warehouse import WarehouseResource

DAY = pd.Timestamp("2025-04-02", tz="UTC")
NEXT = DAY + pd.Timedelta(days=1)
BAD_BAR = [{"symbol": "BTC", "event_time": "2025-04-02T05:00:00+00:00", "reason": "high < low"}]


def _gate(wh: WarehouseResource) -> list[dict]:
    return blocking_failures(wh.read_audit(["market_bars"], DAY, NEXT), ["market_bars"], DAY, NEXT)


def test_a_failure_stored_under_the_old_name_blocks_under_the_new_one(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    wh.record_checks("market_bars", [make_outcome("market_bars_have_sane_ohlcv", "high below low", BAD_BAR)],
                     DAY.to_pydatetime(), NEXT.to_pydatetime(), "before-the-rename")
    [failure] = _gate(wh)
    assert (failure["check_name"], failure["days"], failure["run_id"]) == (
        "have_sane_ohlcv", ["2025-04-02"], "before-the-rename")


def test_a_passing_rerun_under_the_new_name_clears_a_failure_stored_under_the_old_one(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    wh.record_checks("market_bars", [make_outcome("market_bars_have_sane_ohlcv", "high below low", BAD_BAR)],
                     DAY.to_pydatetime(), NEXT.to_pydatetime(), "before-the-rename")
    wh.record_checks("market_bars", [make_outcome("have_sane_ohlcv", "sane", [])],
                     DAY.to_pydatetime(), NEXT.to_pydatetime(), "after-the-rename")
    assert _gate(wh) == []
