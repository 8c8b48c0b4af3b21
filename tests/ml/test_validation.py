"""Purged K-fold, walk-forward and the label-overlap check, on small hand-sized grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omniwatch.ml.validation import (
    PurgedKFold,
    circular_shift_positions,
    day_shifts,
    label_windows_overlap,
    walk_forward,
    window_keys,
)

H = pd.Timedelta
SYMBOLS = ("BTC", "ETH", "SOL")


def _panel(start: str, hours: int, shuffle: bool = True) -> pd.DataFrame:
    """(as_of_ts, symbol) rows for 3 symbols, hourly, in a scrambled row order.

    Scrambling proves the splits return positions into the input, not into a sorted copy.
    """
    t = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    frame = pd.DataFrame({"as_of_ts": np.repeat(t, len(SYMBOLS)), "symbol": np.tile(SYMBOLS, hours)})
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    return frame


def _hours(frame: pd.DataFrame, idx: np.ndarray) -> set[int]:
    """Hour offsets (from the first timestamp) of the rows at the given positions."""
    t0 = frame.as_of_ts.min()
    return set(((frame.as_of_ts.iloc[idx] - t0) // H("1h")).astype(int))


# ---------------------------------------------------------------- PurgedKFold


def test_test_folds_partition_the_data_in_contiguous_time_blocks():
    frame = _panel("2025-01-01", 48)
    folds = list(PurgedKFold(4, horizon=H("4h"), embargo=H("0h")).split(frame.as_of_ts))
    tests = [test for _, test in folds]
    # Every row is in exactly one test fold.
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(len(frame)))
    # 48 hours / 4 folds = 12 consecutive hours each, in time order, all 3 symbols of an hour together.
    for k, test in enumerate(tests):
        assert _hours(frame, test) == set(range(12 * k, 12 * k + 12))
        assert len(test) == 12 * 3


def test_no_training_label_window_overlaps_the_test_label_span():
    frame = _panel("2025-01-01", 48)
    h = H("4h")
    for train, test in PurgedKFold(4, horizon=h, embargo=H("2h")).split(frame.as_of_ts):
        tr, te = frame.as_of_ts.iloc[train], frame.as_of_ts.iloc[test]
        start, end = te.min(), te.max()
        # (t, t+h] intersects the closed span [start, end+h] iff t+h >= start and t < end+h.
        hits = (tr + h >= start) & (tr < end + h)
        assert not hits.any()
        assert not label_windows_overlap(tr, te, h)
        assert not set(train) & set(test)


def test_purge_and_embargo_remove_exactly_the_expected_rows():
    frame = _panel("2025-01-01", 48)
    h = H("4h")
    # Second test block = hours 12..23. Purge, h = 4 h:
    #   before: t in [12-4, 12) -> hours 8, 9, 10, 11
    #   after:  t in (23, 23+4) -> hours 24, 25, 26   (hour 27's window (27, 31] starts after 27 = 23+4)
    # so train = hours 0..7 and 27..47 = 8 + 21 = 29 hours = 87 rows.
    folds = list(PurgedKFold(4, horizon=h, embargo=H("0h")).split(frame.as_of_ts))
    train = folds[1][0]
    assert _hours(frame, train) == set(range(8)) | set(range(27, 48))
    assert len(train) == 29 * 3
    # Embargo 6 h drops t in (23, 29]; hours 24-26 are already purged, so it removes exactly
    # hours 27, 28, 29 = 9 rows.
    emb = list(PurgedKFold(4, horizon=h, embargo=H("6h")).split(frame.as_of_ts))[1][0]
    assert _hours(frame, np.setdiff1d(train, emb)) == {27, 28, 29}
    assert len(train) - len(emb) == 9
    # An embargo shorter than the horizon adds nothing: the purge already covers it.
    short = list(PurgedKFold(4, horizon=h, embargo=H("2h")).split(frame.as_of_ts))[1][0]
    assert np.array_equal(short, train)
    # First block (hours 0..11): nothing before it; after it the purge drops 12, 13, 14.
    assert _hours(frame, folds[0][0]) == set(range(15, 48))
    # Last block (hours 36..47): the purge drops hours 32..35 before it, nothing after.
    assert _hours(frame, folds[3][0]) == set(range(32))


def test_unpurged_split_is_caught_by_the_overlap_check():
    frame = _panel("2025-01-01", 48)
    h = H("4h")
    t = frame.as_of_ts
    caught = 0
    for _, test in PurgedKFold(4, horizon=h, embargo=H("0h")).split(t):
        naive_train = np.setdiff1d(np.arange(len(t)), test)  # plain K-fold: everything else trains
        caught += label_windows_overlap(t.iloc[naive_train], t.iloc[test], h)
    assert caught == 4


def test_overlap_check_boundaries():
    t0 = pd.Timestamp("2025-01-01 00:00", tz="UTC")
    h = H("4h")
    # (00:00, 04:00] and (04:00, 08:00] share only the end point 04:00: no common increment.
    assert not label_windows_overlap([t0], [t0 + h], h)
    # (00:00, 04:00] and (03:00, 07:00] share (03:00, 04:00].
    assert label_windows_overlap([t0], [t0 + H("3h")], h)
    # Symmetric: a training window after the test window overlaps as well.
    assert label_windows_overlap([t0 + H("3h")], [t0], h)
    assert not label_windows_overlap([], [t0], h)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_splits": 1, "horizon": H("1h"), "embargo": H("0h")},
        {"n_splits": 3, "horizon": H("0h"), "embargo": H("0h")},
        {"n_splits": 3, "horizon": H("-1h"), "embargo": H("0h")},
        {"n_splits": 3, "horizon": H("1h"), "embargo": H("-1h")},
    ],
)
def test_purged_kfold_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        PurgedKFold(**kwargs)


def test_purged_kfold_needs_enough_timestamps():
    t = pd.date_range("2025-01-01", periods=3, freq="h")
    with pytest.raises(ValueError):
        list(PurgedKFold(4, horizon=H("1h"), embargo=H("0h")).split(t))


# ---------------------------------------------------------------- walk_forward


def _wf_panel() -> pd.DataFrame:
    # 2025-01-01 00:00 .. 2025-04-15 23:00 hourly: Jan 31 d, Feb 28 d, Mar 31 d, Apr 15 d = 105 d.
    return _panel("2025-01-01", 105 * 24)


def test_walk_forward_folds_by_month_expanding_with_gap():
    frame = _wf_panel()
    h = H("24h")
    folds = walk_forward(frame.as_of_ts, horizon=h, gap=h, min_train=H("30D"))
    # January has no training data (cut-off Dec 31); February's cut-off Jan 31 00:00 gives exactly
    # 30 days of history, so it is the first fold.
    assert [f.name for f in folds] == ["2025-02", "2025-03", "2025-04"]
    feb = folds[0]
    assert feb.test_start == pd.Timestamp("2025-02-01", tz="UTC")
    assert feb.test_end == pd.Timestamp("2025-03-01", tz="UTC")
    assert feb.train_end == pd.Timestamp("2025-01-31", tz="UTC")
    # Training: t <= Jan 31 00:00 = 30 * 24 + 1 = 721 hours; test: 28 * 24 = 672 hours; x 3 symbols.
    assert len(feb.train_idx) == 721 * 3
    assert len(feb.test_idx) == 672 * 3
    assert len(folds[2].test_idx) == 15 * 24 * 3
    for prev, cur in zip(folds, folds[1:], strict=False):
        assert set(prev.train_idx) < set(cur.train_idx)  # expanding window
    # February's test rows are all training rows by April (cut-off Mar 31 00:00).
    assert set(folds[0].test_idx) <= set(folds[2].train_idx)
    for fold in folds:
        tr, te = frame.as_of_ts.iloc[fold.train_idx], frame.as_of_ts.iloc[fold.test_idx]
        assert (tr + h <= fold.test_start).all()  # gap respected
        assert te.min() >= fold.test_start and te.max() < fold.test_end
        assert not label_windows_overlap(tr, te, h)
    # Test windows are disjoint.
    all_test = np.concatenate([f.test_idx for f in folds])
    assert len(all_test) == len(set(all_test))


def test_walk_forward_min_train_and_test_windows():
    frame = _wf_panel()
    h = H("1h")
    # Feb cut-off with a 1 h gap = Jan 31 23:00: 30 d 23 h of history, < 31 d -> Feb dropped.
    names = [f.name for f in walk_forward(frame.as_of_ts, horizon=h, gap=h, min_train=H("31D"))]
    assert names == ["2025-03", "2025-04"]
    last = walk_forward(frame.as_of_ts, horizon=h, gap=h, min_train=H("0D"), test_windows=2)
    assert [f.name for f in last] == ["2025-03", "2025-04"]
    with pytest.raises(ValueError):
        walk_forward(frame.as_of_ts, horizon=h, gap=h, min_train=H("0D"), test_windows=5)


def test_walk_forward_rejects_gap_shorter_than_horizon():
    frame = _wf_panel()
    with pytest.raises(ValueError, match="gap"):
        walk_forward(frame.as_of_ts, horizon=H("24h"), gap=H("4h"), min_train=H("0D"))


def test_walk_forward_weekly_windows_are_named_by_day():
    t = pd.date_range("2025-01-06", periods=21 * 24, freq="h", tz="UTC")  # Mon Jan 6 .. Sun Jan 26
    folds = walk_forward(t, horizon=H("1h"), gap=H("1h"), min_train=H("0D"), window="W-MON")
    assert [f.name for f in folds] == ["2025-01-13", "2025-01-20"]
    assert all(len(f.test_idx) == 7 * 24 for f in folds)


def test_window_keys_are_calendar_month_starts():
    t = pd.DatetimeIndex(["2025-01-31 23:00", "2025-02-01 00:00", "2025-02-28 12:00"], tz="UTC")
    keys = window_keys(t)
    assert list(keys) == [pd.Timestamp("2025-01-01", tz="UTC")] + [pd.Timestamp("2025-02-01", tz="UTC")] * 2


# ---------------------------------------------------------------- circular shifts


def test_day_shifts_are_whole_days_spread_over_the_sample():
    t = pd.date_range("2025-01-01", periods=10 * 24, freq="h")
    # round(i * 10 / 21) for i = 1..20 gives 0,1,1,2,...,9,10; 0 and 10 (the full circle) dropped.
    assert day_shifts(t, 20) == list(range(1, 10))
    with pytest.raises(ValueError):
        day_shifts(pd.date_range("2025-01-01", periods=24, freq="h"), 20)


def test_circular_shift_positions_rotate_within_each_symbol():
    t = pd.date_range("2025-01-01", periods=72, freq="h", tz="UTC")
    # Row i (hour i) receives the value of hour i - 24, wrapping around the 72-hour circle.
    assert np.array_equal(circular_shift_positions(t, np.zeros(72), 1), (np.arange(72) - 24) % 72)
    # Two symbols interleaved; B lacks hour 0, so B's hour 24 has no source row (-1).
    times = list(t) + list(t[1:])
    groups = ["A"] * 72 + ["B"] * 71
    pos = circular_shift_positions(pd.DatetimeIndex(times), groups, 1)
    assert pos[72 + 23] == -1  # B's hour 24 is row 72 + 23
    assert pos[72 + 24] == 72  # B's hour 25 <- B's hour 1 (row 72)
    assert pos[24] == 0  # A's hour 24 <- A's hour 0
