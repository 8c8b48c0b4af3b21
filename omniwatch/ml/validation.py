"""Leak-free splits for time-indexed samples whose labels look forward.

A sample is a row ``(as_of_ts, symbol)``; its label is the forward log return over the label
window ``(t, t + horizon]``. Several symbols share each timestamp, so every split here works on
*timestamps*: all rows of one timestamp always land on the same side of a split.

Two schemes:

* :class:`PurgedKFold` -- contiguous time blocks as test folds, training on both sides with the
  overlapping labels purged and an embargo after each test block (for model selection).
* :func:`walk_forward` -- expanding-window folds with one calendar period per test window and a
  gap of at least one label horizon before it (for the reported, out-of-sample evaluation).

:func:`circular_shift_positions` builds the whole-day time rotations behind the IC null.

:func:`label_windows_overlap` is the independent check that a split does not leak labels.
All index arrays are integer *positions* into the ``times`` passed in (not labels).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

TimesLike = pd.Series | pd.DatetimeIndex | np.ndarray


def _as_index(times: TimesLike) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(times)
    if idx.hasnans:
        raise ValueError("times contain NaT")
    return idx


def _ns(times: TimesLike) -> np.ndarray:
    """Nanoseconds since the epoch (UTC for tz-aware input), so arrays of any unit compare."""
    idx = _as_index(times)
    if idx.tz is not None:
        idx = idx.tz_convert(None)
    return idx.as_unit("ns").asi8


def _timedelta(value: pd.Timedelta | str, name: str) -> pd.Timedelta:
    td = pd.Timedelta(value)
    if pd.isna(td):
        raise ValueError(f"{name} must be a Timedelta, got NaT")
    return td


class PurgedKFold:
    """K contiguous test blocks in time order, with purging and an embargo.

    For each test block spanning timestamps ``[test_start, test_end]`` the test label span is
    ``[test_start, test_end + horizon]``. A training row at ``t`` is

    * **purged** if its label window ``(t, t + horizon]`` intersects that span, i.e.
      ``test_start - horizon <= t < test_end + horizon`` (both sides of the block; the closed
      left end makes the purge one bar conservative, a label ending exactly at ``test_start``
      is dropped too);
    * **embargoed** if ``test_end < t <= test_end + embargo`` (serial correlation of features
      just after the block; only matters when ``embargo >= horizon``, since the purge already
      drops ``t < test_end + horizon``).

    The purge is tied to the label horizon, so it is never shorter than the label.
    """

    def __init__(self, n_splits: int, horizon: pd.Timedelta, embargo: pd.Timedelta) -> None:
        self.horizon = _timedelta(horizon, "horizon")
        self.embargo = _timedelta(embargo, "embargo")
        if int(n_splits) != n_splits or n_splits < 2:
            raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
        if self.horizon <= pd.Timedelta(0):
            raise ValueError(f"horizon must be positive, got {self.horizon}")
        if self.embargo < pd.Timedelta(0):
            raise ValueError(f"embargo must be >= 0, got {self.embargo}")
        self.n_splits = int(n_splits)

    def get_n_splits(self) -> int:
        return self.n_splits

    def split(self, times: TimesLike) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` integer positions, test blocks in time order."""
        idx = _as_index(times)
        uniq = idx.unique().sort_values()
        if len(uniq) < self.n_splits:
            raise ValueError(f"{len(uniq)} distinct timestamps < n_splits={self.n_splits}")
        for block in np.array_split(np.arange(len(uniq)), self.n_splits):
            start, end = uniq[block[0]], uniq[block[-1]]
            is_test = (idx >= start) & (idx <= end)
            purged = (idx >= start - self.horizon) & (idx < end + self.horizon)
            embargoed = (idx > end) & (idx <= end + self.embargo)
            train = ~(is_test | purged | embargoed)
            yield np.flatnonzero(train), np.flatnonzero(is_test)


def label_windows_overlap(train_times: TimesLike, test_times: TimesLike, horizon: pd.Timedelta) -> bool:
    """True if any training label window ``(t, t+h]`` intersects any test window ``(s, s+h]``.

    Two such half-open windows of equal length intersect iff ``|t - s| < h``; sharing only an
    end point (a training label ending where a test label starts) is not an overlap, because
    the two returns then have no price increment in common.
    """
    h = _timedelta(horizon, "horizon").as_unit("ns").value
    train, test = _ns(train_times), np.sort(_ns(test_times))
    if len(train) == 0 or len(test) == 0:
        return False
    # Nearest test time on either side of each training time decides the minimum distance.
    pos = np.searchsorted(test, train)
    left = test[np.clip(pos - 1, 0, len(test) - 1)]
    right = test[np.clip(pos, 0, len(test) - 1)]
    dist = np.minimum(np.abs(train - left), np.abs(train - right))
    return bool((dist < h).any())


def period_bounds(times: TimesLike, window: str | pd.DateOffset = "MS") -> pd.DatetimeIndex:
    """Calendar period boundaries ``b0 < b1 < ... < bn`` with ``b0 <= min(times) < ... < bn``.

    ``window`` is a pandas offset alias anchored at period starts ("MS" = calendar months,
    "W-MON" = weeks starting Monday, "D" = days). Boundaries keep the timezone of ``times``.
    """
    idx = _as_index(times)
    if len(idx) == 0:
        raise ValueError("times is empty")
    off = to_offset(window)
    first = off.rollback(idx.min().normalize())
    bounds = pd.date_range(first, idx.max(), freq=off)
    return bounds.append(pd.DatetimeIndex([bounds[-1] + off]))


def window_keys(times: TimesLike, window: str | pd.DateOffset = "MS") -> pd.DatetimeIndex:
    """Start of the calendar period that contains each time (the grouping key for per-window IC)."""
    idx = _as_index(times)
    bounds = period_bounds(idx, window)
    return bounds[bounds.searchsorted(idx, side="right") - 1]


def _period_name(start: pd.Timestamp, window: str | pd.DateOffset) -> str:
    if isinstance(to_offset(window), pd.offsets.MonthBegin):
        return start.strftime("%Y-%m")
    if start == start.normalize():
        return start.strftime("%Y-%m-%d")
    return start.strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, eq=False)
class Fold:
    """One walk-forward fold.

    ``train_end`` is the last training timestamp; the test window is the half-open calendar
    period ``[test_start, test_end)``; ``name`` labels it (e.g. "2025-03" for monthly windows).
    """

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def walk_forward(
    times: TimesLike,
    *,
    horizon: pd.Timedelta,
    gap: pd.Timedelta,
    min_train: pd.Timedelta,
    test_windows: int | None = None,
    window: str | pd.DateOffset = "MS",
) -> list[Fold]:
    """Expanding-window folds, one calendar period per test window, in time order.

    Training set of a fold = every sample with ``t + gap <= test_start``; ``gap >= horizon`` is
    required so that no training label window reaches into the test period. A fold is kept only
    if ``test_start - gap - min(times) >= min_train`` (enough history) and its period holds data.
    ``test_windows`` keeps the most recent N such folds (ValueError if fewer exist).
    """
    idx = _as_index(times)
    horizon, gap = _timedelta(horizon, "horizon"), _timedelta(gap, "gap")
    min_train = _timedelta(min_train, "min_train")
    if horizon <= pd.Timedelta(0):
        raise ValueError(f"horizon must be positive, got {horizon}")
    if gap < horizon:
        raise ValueError(f"gap {gap} < horizon {horizon}: training labels would overlap the test period")
    if min_train < pd.Timedelta(0):
        raise ValueError(f"min_train must be >= 0, got {min_train}")
    if test_windows is not None and test_windows < 1:
        raise ValueError(f"test_windows must be >= 1, got {test_windows}")
    t0 = idx.min()
    bounds = period_bounds(idx, window)
    folds: list[Fold] = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        test = (idx >= start) & (idx < end)
        cutoff = start - gap
        train = idx <= cutoff
        if not test.any() or not train.any() or cutoff - t0 < min_train:
            continue
        folds.append(
            Fold(
                name=_period_name(start, window),
                train_idx=np.flatnonzero(train),
                test_idx=np.flatnonzero(test),
                train_end=idx[train].max(),
                test_start=start,
                test_end=end,
            )
        )
    if test_windows is not None:
        if len(folds) < test_windows:
            raise ValueError(f"only {len(folds)} eligible test windows, {test_windows} requested")
        folds = folds[-test_windows:]
    return folds


_DAY_NS = 86_400 * 10**9


def _circle(times: TimesLike) -> tuple[np.ndarray, int, int]:
    """Times in ns, the first time, and the circle length (span plus one bar)."""
    ns = _ns(times)
    uniq = np.unique(ns)
    if len(uniq) < 2:
        raise ValueError("need at least two distinct timestamps to rotate")
    return ns, int(uniq[0]), int(uniq[-1] - uniq[0] + np.diff(uniq).min())


def day_shifts(times: TimesLike, n_shifts: int = 20) -> list[int]:
    """Whole-day rotations ``round(i * n_days / (n_shifts + 1))``, i = 1..n_shifts, deduplicated,
    without 0 and the full circle (ValueError if none is left: under two days of data)."""
    n_days = _circle(times)[2] // _DAY_NS
    shifts = sorted({round(i * n_days / (n_shifts + 1)) for i in range(1, n_shifts + 1)} - {0, n_days})
    if not shifts:
        raise ValueError("sample shorter than two days: no whole-day circular shift exists")
    return shifts


def circular_shift_positions(times: TimesLike, groups, days: int) -> np.ndarray:
    """For each row, the position of the row of the same group ``days`` earlier on the time circle.

    ``values[result]`` rotates a per-row series forward in time by ``days`` (wrapping from the end
    of the sample to its start); -1 where that source row does not exist (a gap in the data).
    """
    ns, t0, period = _circle(times)
    key = pd.DataFrame({"g": np.asarray(groups), "t": ns, "pos": np.arange(len(ns))})
    if key.duplicated(["g", "t"]).any():
        raise ValueError("duplicate (group, time) rows")
    want = pd.DataFrame({"g": key.g, "t": t0 + (ns - t0 - days * _DAY_NS) % period})
    # A left merge keeps the left frame's row order, so the result is aligned with ``times``.
    return want.merge(key, on=["g", "t"], how="left").pos.fillna(-1).to_numpy(np.int64)
