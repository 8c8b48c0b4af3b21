"""Which checks apply to which asset, and one call that runs them all on a batch.

The lists (``MARKET_BAR_CHECKS`` ...) are what an asset declares as ``check_specs``; blocking
checks gate downstream steps, report-only ones (funding coverage) never do. :func:`run_checks`
evaluates every registered check on the batch about to be written and returns outcomes in
registry order, so an asset body can yield ``to_asset_check_result(o)`` for each.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from omniwatch import frames
from omniwatch.checks import book, events, funding, market, onchain
from omniwatch.checks.common import TimeLike
from omniwatch.checks.expectations import check_ohlcv_sanity
from omniwatch.checks.generic import check_no_duplicate_keys, check_required_not_null
from omniwatch.checks.outcome import CheckOutcome, to_asset_check_result
from omniwatch.checks.schemas import check_schema

if TYPE_CHECKING:
    from dagster import AssetCheckResult, AssetCheckSpec, AssetKey

MARKET_BAR_REQUIRED = [c for c in frames.MARKET_BAR_COLUMNS if c != "quote"]
WINDOW_ARGS = ("window_start", "window_end", "now")


class CheckSpec(NamedTuple):
    """What an asset declares: the check's predicate name, what it tests, whether it gates."""

    name: str
    description: str
    blocking: bool


@dataclass(frozen=True)
class _Registered:
    spec: CheckSpec
    fn: Callable[..., CheckOutcome]
    fixed: dict[str, Any] = field(default_factory=dict)


def _schema(asset: str) -> _Registered:
    return _Registered(CheckSpec("match_schema", f"{asset} matches its pandera schema: canonical columns, "
                                 "float64 values, tz-aware UTC times, allowed symbols/intervals/sides", True),
                       check_schema, {"asset_name": asset})


def _keys(asset: str, key: list[str]) -> _Registered:
    return _Registered(CheckSpec("have_no_duplicate_keys",
                                 f"no two {asset} rows share the natural key ({', '.join(key)})", True),
                       check_no_duplicate_keys, {"asset_name": asset, "key": key})


def _event_checks(asset: str) -> list[_Registered]:
    fixed = {"asset_name": asset}
    return [
        _Registered(CheckSpec("match_schema", "canonical event columns, known source and track, "
                              "non-empty source id, UTC times", True), events.check_event_schema, fixed),
        _Registered(CheckSpec("have_no_duplicate_source_ids", "each (source, source_id) occurs once", True),
                    events.check_event_duplicates, fixed),
        _Registered(CheckSpec("have_parseable_dates", "event_time and available_time parsed", True),
                    events.check_event_dates_parse, fixed),
        _Registered(CheckSpec("have_no_future_timestamps", "nothing is stamped after now", True),
                    events.check_event_not_in_future, fixed),
        _Registered(CheckSpec("have_text", "every event has a non-empty title", True),
                    events.check_event_text, fixed),
    ]


_REGISTRY: dict[str, list[_Registered]] = {
    "news_events": _event_checks("news_events"),
    "sec_filings": _event_checks("sec_filings"),
    "sec_filings_archive": _event_checks("sec_filings_archive"),
    "market_bars": [
        _schema("market_bars"),
        _Registered(CheckSpec("have_no_null_required_values",
                              "no nulls in key, time or OHLCV columns (e.g. a NaN close)", True),
                    check_required_not_null, {"asset_name": "market_bars", "required_columns": MARKET_BAR_REQUIRED}),
        _keys("market_bars", frames.MARKET_BAR_KEY),
        _Registered(CheckSpec("have_sane_ohlcv",
                              "low <= open, close <= high; low <= high; volume >= 0 (Great Expectations suite)", True),
                    check_ohlcv_sanity),
        _Registered(CheckSpec("have_no_hourly_gaps",
                              "per symbol, missing hourly bars stay within the allowed ratio of those expected", True),
                    market.check_hourly_gaps),
        _Registered(CheckSpec("are_fresh",
                              "per symbol, the newest bar became available within max_lag of min(now, window end)",
                              True), market.check_freshness),
        _Registered(CheckSpec("have_no_outlier_returns",
                              "no hourly log return beyond the bound (bad prints, unit errors)", True),
                    market.check_outlier_returns),
    ],
    "funding_rates": [
        _schema("funding_rates"),
        _keys("funding_rates", frames.FUNDING_KEY),
        _Registered(CheckSpec("within_bounds", "every funding rate is present and |rate| <= 0.05", True),
                    funding.check_funding_rate_bounds),
        _Registered(CheckSpec("cover_settlements",
                              "report-only: lists missing 8-hourly settlements per symbol as ranges", False),
                    funding.check_funding_coverage),
    ],
    "onchain_signals": [
        _schema("onchain_signals"),
        _keys("onchain_signals", frames.ONCHAIN_KEY),
        _Registered(CheckSpec("are_non_negative", "every on-chain value is present and >= 0", True),
                    onchain.check_onchain_non_negative),
        _Registered(CheckSpec("are_point_in_time",
                              "every row becomes available strictly after its event time", True),
                    onchain.check_point_in_time),
    ],
    "trades_ticks": [
        _schema("trades_ticks"),
        _keys("trades_ticks", frames.TRADE_KEY),
        _Registered(CheckSpec("have_positive_price_and_size", "every trade has price > 0 and size > 0",
                              True), book.check_trades_positive),
    ],
    "orderbook_l2": [
        _schema("orderbook_l2"),
        _keys("orderbook_l2", frames.ORDERBOOK_KEY),
        _Registered(CheckSpec("have_positive_price_and_size",
                              "every book level has price > 0 and size > 0", True), book.check_book_positive),
        _Registered(CheckSpec("is_not_crossed", "at every snapshot the best bid is below the best ask",
                              True), book.check_book_not_crossed),
    ],
}

CHECKS_BY_ASSET: dict[str, list[CheckSpec]] = {a: [r.spec for r in regs] for a, regs in _REGISTRY.items()}
MARKET_BAR_CHECKS = CHECKS_BY_ASSET["market_bars"]
FUNDING_CHECKS = CHECKS_BY_ASSET["funding_rates"]
ONCHAIN_CHECKS = CHECKS_BY_ASSET["onchain_signals"]
TRADE_CHECKS = CHECKS_BY_ASSET["trades_ticks"]
ORDERBOOK_CHECKS = CHECKS_BY_ASSET["orderbook_l2"]


def _keyword_params(fn: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def accepted_thresholds(asset_name: str | None = None) -> set[str]:
    """Threshold keywords that some check of ``asset_name`` (of any asset if None) accepts."""
    regs = _registered(asset_name) if asset_name else [r for rs in _REGISTRY.values() for r in rs]
    return set().union(*(_keyword_params(r.fn) for r in regs))


def _registered(asset_name: str) -> list[_Registered]:
    try:
        return _REGISTRY[asset_name]
    except KeyError:
        raise KeyError(f"no checks registered for asset {asset_name!r}; known: {sorted(_REGISTRY)}") from None


def run_checks(
    asset_name: str,
    frame: pd.DataFrame,
    window_start: TimeLike,
    window_end: TimeLike,
    now: TimeLike,
    reuse: dict[str, CheckOutcome] | None = None,
    **thresholds: Any,
) -> list[CheckOutcome]:
    """Run every check registered for ``asset_name`` on ``frame``, in registry order.

    ``reuse`` maps check names to outcomes computed already (a day inside a range that passed a
    frame-only check: see :func:`frame_only_checks`); those checks are not run again.

    ``thresholds`` go to each check that takes a keyword of that name (``max_gap_ratio``,
    ``max_lag``, ``symbols``, ``max_abs_log_return``, ``max_robust_z``, ``max_abs_funding_rate``,
    ``allow_null``...), so one set of thresholds can be passed for every asset; a keyword that no
    registered check accepts is an error, so a typo cannot silently loosen a gate.
    """
    registered = _registered(asset_name)
    unknown = set(thresholds) - accepted_thresholds()
    if unknown:
        raise TypeError(f"unknown thresholds {sorted(unknown)}; accepted: {sorted(accepted_thresholds())}")
    window = dict(zip(WINDOW_ARGS, (window_start, window_end, now), strict=True))
    outcomes = []
    for reg in registered:
        if reuse and reg.spec.name in reuse:
            outcomes.append(reuse[reg.spec.name])
            continue
        params = inspect.signature(reg.fn).parameters
        kwargs = {**reg.fixed, **{k: v for k, v in window.items() if k in params}}
        kwargs.update({k: v for k, v in thresholds.items() if k in _keyword_params(reg.fn)})
        result = reg.fn(frame, **kwargs)
        if result.name != reg.spec.name:
            raise RuntimeError(f"check {result.name!r} is registered as {reg.spec.name!r}")
        outcomes.append(result)
    return outcomes


def frame_only_checks(asset_name: str) -> set[str]:
    """Checks of ``asset_name`` that depend on the rows alone (not on the window or the clock):
    schema, nulls, duplicates, OHLC sanity, outliers. If a range passes one of them, every day of
    the range passes it too (a day's rows are a subset, and a day sees fewer consecutive pairs)."""
    return {reg.spec.name for reg in _registered(asset_name)
            if not set(WINDOW_ARGS) & set(inspect.signature(reg.fn).parameters)}


def asset_check_specs(asset_name: str, asset: AssetKey | str | Sequence[str] | None = None) -> list[AssetCheckSpec]:
    """``dagster.AssetCheckSpec`` for every check of ``asset_name`` (asset key defaults to it)."""
    import dagster as dg

    return [dg.AssetCheckSpec(s.name, asset=asset or asset_name, description=s.description, blocking=s.blocking)
            for s in CHECKS_BY_ASSET[asset_name]]


check_specs_for = asset_check_specs  # the name the asset modules use


def run_asset_checks(
    asset_name: str,
    frame: pd.DataFrame,
    window_start: TimeLike,
    window_end: TimeLike,
    now: TimeLike,
    *,
    asset_key: AssetKey | str | Sequence[str] | None = None,
    **thresholds: Any,
) -> list[AssetCheckResult]:
    """:func:`run_checks` translated to ``dagster.AssetCheckResult`` (for an asset body to yield)."""
    outcomes = run_checks(asset_name, frame, window_start, window_end, now, **thresholds)
    return [to_asset_check_result(o, asset_key=asset_key) for o in outcomes]
