from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omniwatch.modelops.evidence import WindowMetrics, paired, score_window

T0 = pd.Timestamp("2025-01-01 00:00", tz="UTC")
T1 = pd.Timestamp("2025-01-01 01:00", tz="UTC")


def four_rows() -> pd.DataFrame:
    # forecast / realised in bps
    return pd.DataFrame({
        "target": ["A", "A", "B", "B"],
        "as_of_ts": [T0, T1, T0, T1],
        "forecast": [10.0, -5.0, 3.0, 4.0],
        "realised": [20.0, 10.0, -6.0, 8.0],
    })


def test_score_window_matches_hand_computation():
    m = score_window(four_rows(), "1h", label="w", fee_bps=5.0, slippage_bps=5.0)

    assert (m.n, m.n_errors) == (4, 0)
    # mean f = 3, mean r = 8; deviations (7,-8,0,1) and (12,2,-14,0): cov 68, ss 114 and 344
    assert m.ic == pytest.approx(68 / math.sqrt(114 * 344))
    # ranks f (4,1,2,3), r (4,3,1,2): sum d^2 = 6 -> 1 - 6*6 / (4*15) = 0.4
    assert m.rank_ic == pytest.approx(0.4)
    # hits: A@T0 yes, A@T1 no, B@T0 no, B@T1 yes
    assert m.hit_rate == pytest.approx(0.5)
    # positions A: +1, -1 (traded 1 + 2), B: +1, +1 (traded 1 + 0) -> 4 units at 10 bps
    assert m.turnover == pytest.approx(1.0)
    assert m.net_pnl == pytest.approx((20 - 10 - 6 + 8) - 40)
    # per hour: T0 = (20 - 10) + (-6 - 10) = -6; T1 = (-10 - 20) + 8 = -22 -> cum -6, -28
    assert m.max_drawdown == pytest.approx(-28.0)


def test_score_window_log_return_units_convert_costs():
    frame = four_rows().assign(forecast=lambda f: f.forecast / 1e4, realised=lambda f: f.realised / 1e4)
    m = score_window(frame, "1h", label="w", unit_bps=1e4)
    assert m.net_pnl == pytest.approx(-28 / 1e4)


def test_score_window_counts_errors_and_ignores_unmatured():
    frame = pd.concat([four_rows(), pd.DataFrame({
        "target": ["C", "C", "C"], "as_of_ts": [T0, T1, T1],
        "forecast": [np.nan, 1.0, 2.0], "realised": [5.0, 5.0, np.nan],
    })], ignore_index=True)
    frame["error"] = [None] * 5 + ["boom", None]
    m = score_window(frame, "1h", label="w")
    # C@T0 has no forecast, C@T1 first row carries an error, last row has not matured
    assert (m.n, m.n_errors) == (4, 2)
    assert m.error_rate == pytest.approx(2 / 6)
    assert m.ic == pytest.approx(68 / math.sqrt(114 * 344))


def test_score_window_too_few_pairs_or_constant_gives_none():
    m = score_window(four_rows().iloc[:2], "1h", label="w")
    assert m.ic is None and m.rank_ic is None
    flat = four_rows().assign(forecast=1.0)
    m = score_window(flat, "1h", label="w")
    assert m.ic is None and m.hit_rate == pytest.approx(0.75)  # always long: 3 of 4 realised > 0


def test_error_rate_is_zero_without_rows():
    assert WindowMetrics(label="empty").error_rate == 0.0
    assert WindowMetrics(label="x", n=98, n_errors=2).error_rate == pytest.approx(0.02)


def test_paired_keeps_common_hours_and_candidate_errors():
    candidate = four_rows().assign(forecast=[1.0, np.nan, 2.0, 3.0])
    reference = four_rows().iloc[[0, 1, 2]]  # no B@T1
    cand, ref = paired(candidate, reference)
    assert list(zip(cand.target, cand.as_of_ts, strict=True)) == [("A", T0), ("A", T1), ("B", T0)]
    assert len(ref) == 3
    assert score_window(cand, "1h", label="w").n_errors == 1


def test_score_window_ignores_frame_index():
    frame = four_rows().set_axis([7, 7, 3, 3])
    assert score_window(frame, "1h", label="w").net_pnl == pytest.approx(-28.0)
