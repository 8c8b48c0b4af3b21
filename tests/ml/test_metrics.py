"""Every metric on small cases whose expected values are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omniwatch.ml.metrics import (
    HOURS_PER_YEAR,
    circular_shift_null,
    evaluate_strategy,
    hit_rate,
    hourly_pnl,
    ic_summary,
    max_drawdown,
    positions_from_predictions,
    sharpe,
    strategy_pnl,
    summarize,
    to_markdown,
    window_ics,
)

approx = pytest.approx
T0 = pd.Timestamp("2025-03-01 00:00", tz="UTC")


def _hours(n: int) -> pd.DatetimeIndex:
    return pd.date_range(T0, periods=n, freq="h")


# ---------------------------------------------------------------- IC


def test_perfect_and_inverted_predictors():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.zeros(4)
    assert window_ics(x, 2 * x, w).iloc[0] == approx(1.0)
    assert window_ics(x, -2 * x, w).iloc[0] == approx(-1.0)
    # A monotone but non-linear label: Rank IC is exactly 1, Pearson is below 1.
    cubic = x**3
    assert window_ics(x, cubic, w, method="spearman").iloc[0] == approx(1.0)
    assert window_ics(x, cubic, w).iloc[0] < 0.99


def test_pearson_and_rank_ic_by_hand():
    # x = [1,2,3], y = [1,3,2]: deviations (-1,0,1) and (-1,1,0); sum of products = 1,
    # sum of squares 2 and 2 -> r = 1 / sqrt(2 * 2) = 0.5 (already ranks, so Spearman = 0.5).
    assert window_ics([1, 2, 3], [1, 3, 2], [0, 0, 0]).iloc[0] == approx(0.5)
    assert window_ics([1, 2, 3], [1, 3, 2], [0, 0, 0], method="spearman").iloc[0] == approx(0.5)
    # Ties get the average rank: x = [1,1,2] -> ranks (1.5,1.5,3), y ranks (1,2,3).
    # Deviations (-0.5,-0.5,1) and (-1,0,1): products 0.5+0+1 = 1.5; squares 1.5 and 2
    # -> r = 1.5 / sqrt(3) = 0.8660254.
    assert window_ics([1, 1, 2], [1, 2, 3], [0, 0, 0], method="spearman").iloc[0] == approx(1.5 / math.sqrt(3))


def test_ic_summary_windows_nan_handling_and_icir():
    nan = np.nan
    rows = [
        # window A: the 0.5 case above
        ("A", 1, 1), ("A", 2, 3), ("A", 3, 2),
        # window B: y = 2x after dropping the NaN pair -> IC 1.0
        ("B", 1, 2), ("B", 2, 4), ("B", 3, 6), ("B", 4, 8), ("B", nan, 1),
        # window C: only 2 complete pairs -> NaN, excluded
        ("C", 1, 1), ("C", 2, 2), ("C", nan, 5), ("C", 3, nan),
        # window D: constant prediction -> zero variance -> NaN, excluded
        ("D", 1, 1), ("D", 1, 2), ("D", 1, 3),
    ]
    w, p, r = zip(*rows, strict=False)
    s = ic_summary(p, r, w)
    # ICs 0.5 and 1.0: mean 0.75; std (ddof=1) = |1.0 - 0.5| / sqrt(2) = 0.3535534;
    # ICIR = 0.75 / 0.3535534 = 1.5 * sqrt(2) = 2.1213203.
    assert s.ic_mean == approx(0.75)
    assert s.ic_std == approx(0.5 / math.sqrt(2))
    assert s.icir == approx(1.5 * math.sqrt(2))
    assert (s.n_windows, s.n_windows_dropped) == (2, 2)
    assert s.rank_ic_mean == approx(0.75)  # both windows are already rank-linear
    assert list(window_ics(p, r, w).index) == ["A", "B", "C", "D"]


def test_icir_undefined_with_a_single_window():
    s = ic_summary([1, 2, 3], [1, 3, 2], ["A"] * 3)
    assert s.ic_mean == approx(0.5) and math.isnan(s.icir) and s.n_windows == 1


# ---------------------------------------------------------------- hit rate


def test_hit_rate_threshold_and_coverage():
    pred = [0.5, -0.2, 0.05, -0.8, 0.3, 0.0, np.nan]
    real = [0.1, 0.3, -0.1, -0.2, 0.0, 0.4, 0.2]
    # The NaN row is dropped: n = 6.
    # threshold 0.1: active = 0.5, -0.2, -0.8, 0.3 (4 of 6 -> coverage 2/3);
    #   hits: 0.5/0.1 yes, -0.2/0.3 no, -0.8/-0.2 yes, 0.3/0.0 no (realized 0 = miss) -> 2/4.
    hr = hit_rate(pred, real, threshold=0.1)
    assert (hr.hit_rate, hr.coverage, hr.n_active, hr.n) == (approx(0.5), approx(4 / 6), 4, 6)
    # threshold 0: 0.05/-0.1 joins as a miss; 0.0 stays inactive -> 2/5 hits, coverage 5/6.
    hr0 = hit_rate(pred, real)
    assert (hr0.hit_rate, hr0.coverage) == (approx(0.4), approx(5 / 6))
    assert math.isnan(hit_rate([0.0, 0.0], [1.0, -1.0]).hit_rate)


# ---------------------------------------------------------------- strategy


def test_six_hour_position_path_turnover_fees_funding():
    pred = [0.3, 0.2, -0.1, -0.4, 0.0, 0.5]
    r = [0.01, -0.02, 0.03, -0.01, 0.02, 0.01]
    funding = [0.0, 0.0001, 0.0, 0.0002, 0.0003, 0.0]  # settlements in hours 1, 3 and 4
    pos = positions_from_predictions(pred)
    assert list(pos) == [1, 1, -1, -1, 0, 1]
    pnl = hourly_pnl(pos, r, funding, fee_bps=10, slippage_bps=2)
    # turnover |1-0|, |1-1|, |-1-1|, 0, |0+1|, |1-0| = 1, 0, 2, 0, 1, 1 -> 5
    assert list(pnl.turnover) == [1, 0, 2, 0, 1, 1]
    # gross = 0.01 - 0.02 - 0.03 + 0.01 + 0 + 0.01 = -0.02
    assert pnl.gross.sum() == approx(-0.02)
    # fees 5 * 10 bps = 0.005; slippage 5 * 2 bps = 0.001
    assert pnl.fees.sum() == approx(0.005)
    assert pnl.slippage.sum() == approx(0.001)
    # funding: long pays 0.0001 in hour 1, short receives 0.0002 in hour 3, flat in hour 4 -> -0.0001
    assert pnl.funding.sum() == approx(-0.0001)
    # net = -0.02 - 0.005 - 0.001 + 0.0001 = -0.0259
    assert pnl.net.sum() == approx(-0.0259)


def test_no_trade_band_holds_the_previous_position():
    # band 0.1: 0.3 -> +1; 0.05 and -0.02 hold +1; -0.4 -> -1; 0.1 (not > band) and NaN hold -1;
    # 0.5 -> +1.
    pred = [0.3, 0.05, -0.02, -0.4, 0.1, np.nan, 0.5]
    assert list(positions_from_predictions(pred, band=0.1)) == [1, 1, 1, -1, -1, -1, 1]
    # Below the first signal the position is flat; without a band NaN is flat too.
    assert list(positions_from_predictions([0.05, 0.2], band=0.1)) == [0, 1]
    assert list(positions_from_predictions([np.nan, -0.2])) == [0, -1]
    with pytest.raises(ValueError):
        positions_from_predictions([1.0], band=-0.1)


def test_max_drawdown_by_hand():
    # equity 1 -> 1.1 -> 0.55 -> 0.66 -> 0.99; running max 1.1 from bar 1 on;
    # drawdowns 0, 0, -0.5, -0.4, -0.1 -> -0.5
    assert max_drawdown(np.log([1.1, 0.5, 1.2, 1.5])) == approx(-0.5)
    # A loss on the first bar counts against the starting equity of 1: 0.8 / 1 - 1 = -0.2.
    assert max_drawdown(np.log([0.8, 1.1])) == approx(-0.2)
    assert max_drawdown([0.01, 0.02]) == 0.0


def test_sharpe_by_hand():
    # x = [0.01, -0.01, 0.02, 0.0]: mean 0.005; squared deviations 2.5e-5 + 2.25e-4 + 2.25e-4 + 2.5e-5
    # = 5e-4; variance (ddof=1) 5e-4 / 3; (mean/std)^2 = 2.5e-5 / (5e-4 / 3) = 0.15;
    # Sharpe = sqrt(0.15 * 8760) = sqrt(1314) = 36.249
    assert sharpe([0.01, -0.01, 0.02, 0.0]) == approx(math.sqrt(1314))
    assert math.isnan(sharpe([0.01, 0.01, 0.01]))
    assert HOURS_PER_YEAR == 8760


def _two_symbols() -> pd.DataFrame:
    t = _hours(2)
    return pd.DataFrame({
        "as_of_ts": list(t) * 2,
        "symbol": ["A", "A", "B", "B"],
        "prediction": [1.0, 1.0, 1.0, 1.0],
        "next_hour_return": [0.01, 0.03, -0.01, 0.01],
        "funding": [0.0, 0.0, 0.0, 0.0],
    })


def test_equal_weight_pool_and_constant_baselines():
    frame = _two_symbols()
    long = evaluate_strategy(frame, constant=1.0, fee_bps=10, slippage_bps=0)
    # A: gross 0.04, entry fee 10 bps -> net 0.039; B: gross 0.0 -> net -0.001.
    assert long.loc["A", "net_return"] == approx(0.039)
    assert long.loc["B", "net_return"] == approx(-0.001)
    # Pool hour 0: (0.01 - 0.001 - 0.01 - 0.001) / 2 = -0.001; hour 1: (0.03 + 0.01) / 2 = 0.02
    # -> 0.019; pool turnover (1 + 1) / 2 = 1 over 2 hours -> 1 / 2 * 8760 = 4380 a year.
    pooled = long.loc["pooled"]
    assert pooled.net_return == approx(0.019)
    assert pooled.turnover == approx(1.0)
    assert pooled.turnover_annual == approx(4380)
    assert pooled.n_hours == 2
    zero = evaluate_strategy(frame, constant=0.0)
    assert (zero.net_return == 0).all() and (zero.turnover == 0).all() and (zero.max_drawdown == 0).all()
    assert zero.sharpe.isna().all()
    short = evaluate_strategy(frame, constant=-1.0, fee_bps=10, slippage_bps=0)
    # Always short: -gross - entry fee; A: -0.04 - 0.001 = -0.041.
    assert short.loc["A", "net_return"] == approx(-0.041)


def test_pool_averages_the_symbols_present_and_skips_missing_returns():
    frame = _two_symbols()
    frame.loc[3, "next_hour_return"] = np.nan  # B's hour 1 is not tradable
    pnl = strategy_pnl(frame, constant=1.0, fee_bps=0, slippage_bps=0)
    assert len(pnl["B"]) == 1
    # hour 0: (0.01 - 0.01) / 2 = 0; hour 1: A alone = 0.03.
    assert list(pnl["pooled"].net) == approx([0.0, 0.03])
    frame.loc[1, "as_of_ts"] = frame.loc[0, "as_of_ts"]
    with pytest.raises(ValueError):
        strategy_pnl(frame)


# ---------------------------------------------------------------- circular-shift null


def test_circular_shift_null_of_a_perfect_predictor():
    rng = np.random.default_rng(0)
    n = 60 * 24
    realized = rng.normal(size=n)
    frame = pd.DataFrame({"as_of_ts": _hours(n), "symbol": "BTC", "prediction": realized, "realized": realized})
    res = circular_shift_null(frame, n_shifts=20)
    # 60 days: shifts round(i * 60 / 21), i = 1..20, are 20 distinct whole days in 3..57.
    assert len(res.shifts_days) == 20 and res.shifts_days[0] == 3 and res.shifts_days[-1] == 57
    assert res.observed == approx(1.0)
    # No rotation beats a perfect IC: p = (1 + 0) / (1 + 20).
    assert res.p_value == approx(1 / 21)
    assert abs(res.null_mean) < 0.05 and res.z > 10


# ---------------------------------------------------------------- summarize


def test_summarize_table_on_the_six_hour_path():
    r = [0.01, -0.02, 0.03, -0.01, 0.02, 0.01]
    frame = pd.DataFrame({
        "as_of_ts": _hours(6), "symbol": "BTC", "horizon": "1h",
        "prediction": [0.3, 0.2, -0.1, -0.4, 0.0, 0.5], "realized": r, "next_hour_return": r,
        "funding": [0.0, 0.0001, 0.0, 0.0002, 0.0003, 0.0],
    })
    table = summarize(frame, fee_bps=10, slippage_bps=2)
    # 1 horizon x 4 strategies x (1 symbol + pooled)
    assert len(table) == 8
    model = table[(table.strategy == "model") & (table.symbol == "BTC")].iloc[0]
    assert model.net_return == approx(-0.0259)  # as in the six-hour path test
    assert model.gross_return - model.fees - model.slippage - model.funding == approx(model.net_return)
    assert model.turnover == 5
    # hits: 0.3/0.01 yes, 0.2/-0.02 no, -0.1/0.03 no, -0.4/-0.01 yes, 0.5/0.01 yes; 0.0 inactive
    # -> 3/5, coverage 5/6.
    assert (model.hit_rate, model.coverage) == (approx(0.6), approx(5 / 6))
    assert model.n_windows == 1
    assert math.isnan(model.rank_ic_null_mean)  # 6 hours: no whole-day rotation
    pooled = table[(table.strategy == "model") & (table.symbol == "pooled")].iloc[0]
    assert pooled.net_return == approx(model.net_return)  # one symbol: the pool is that symbol
    long = table[(table.strategy == "always_long") & (table.symbol == "BTC")].iloc[0]
    # gross = sum(r) = 0.04; one entry: 12 bps; funding paid 0.0001 + 0.0002 + 0.0003 = 0.0006
    assert long.net_return == approx(0.04 - 0.0012 - 0.0006)
    assert math.isnan(long.ic_mean) and long.coverage == 1.0
    md = to_markdown(table)
    assert md.splitlines()[0].startswith("| horizon") and "pooled" in md


def test_summarize_multi_horizon_multi_symbol_columns():
    rng = np.random.default_rng(1)
    t = _hours(72)
    parts = []
    for h in ("1h", "24h"):
        for sym in ("BTC", "ETH"):
            r = rng.normal(0, 0.01, len(t))
            parts.append(pd.DataFrame({"as_of_ts": t, "symbol": sym, "horizon": h, "prediction": r,
                                       "realized": r, "next_hour_return": r, "funding": 0.0}))
    table = summarize(pd.concat(parts, ignore_index=True), null_shifts=5)
    assert len(table) == 2 * 4 * 3
    for col in ("ic_mean", "rank_ic_mean", "icir", "n_windows", "hit_rate", "coverage", "net_return",
                "gross_return", "fees", "slippage", "funding", "turnover", "max_drawdown", "sharpe",
                "rank_ic_null_p"):
        assert col in table.columns
    model = table[table.strategy == "model"]
    assert (model.ic_mean.round(12) == 1.0).all() and (model.hit_rate == 1.0).all()
    with pytest.raises(ValueError, match="lacks"):
        summarize(pd.DataFrame({"as_of_ts": t}))
