"""Pandera schemas, as code, for the canonical frames of :mod:`omniwatch.frames`, and the check
that validates a batch against them.

A schema states the shape a table must have before anything reads it: exactly the canonical
columns, strings where strings belong, float64 numbers, tz-aware UTC times (any resolution:
pandas 3 infers ``us`` or ``s`` as readily as ``ns``), and the allowed symbols, intervals and
sides. Identity and time columns may not be null (a row without its key cannot be stored or
joined); value columns may, because nulls in values are a separate property checked on its own
(:func:`omniwatch.checks.generic.check_required_not_null`, the bounds and positivity checks).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from omniwatch import frames
from omniwatch.checks.outcome import CheckOutcome, failure, make_outcome

TRACK_SYMBOLS = ("BTC", "ETH", "SOL")
BAR_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "6h", "1d")
TRADE_SIDES = ("buy", "sell")
BOOK_SIDES = ("bid", "ask")
UTC_CHECK_ERROR = "must be a tz-aware UTC datetime column"


def _is_utc_datetime(series: pd.Series) -> bool:
    dtype = series.dtype
    return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) in ("UTC", "utc")


def _utc_time() -> pa.Column:
    return pa.Column(
        None, nullable=False, checks=pa.Check(_is_utc_datetime, name="utc_datetime", error=UTC_CHECK_ERROR)
    )


def _text(nullable: bool = False, allowed: tuple[str, ...] | None = None) -> pa.Column:
    checks = [pa.Check.isin(list(allowed))] if allowed else [pa.Check.str_length(min_value=1)]
    return pa.Column(str, nullable=nullable, checks=checks)


def _number(nullable: bool = True) -> pa.Column:
    return pa.Column("float64", nullable=nullable)


def _any(nullable: bool) -> pa.Column:
    return pa.Column(None, nullable=nullable)


def _schema(name: str, columns: dict[str, pa.Column], canonical: list[str]) -> pa.DataFrameSchema:
    assert list(columns) == canonical, f"{name} schema drifted from omniwatch.frames"
    return pa.DataFrameSchema(columns, name=name, strict=True, ordered=False)


MARKET_BAR_SCHEMA = _schema("market_bars", {
    "symbol": _text(allowed=TRACK_SYMBOLS), "venue": _text(), "venue_symbol": _text(),
    "quote": _text(nullable=True), "interval": _text(allowed=BAR_INTERVALS),
    "event_time": _utc_time(), "available_time": _utc_time(),
    "open": _number(), "high": _number(), "low": _number(), "close": _number(), "volume": _number(),
    "source": _text(),
}, frames.MARKET_BAR_COLUMNS)

FUNDING_SCHEMA = _schema("funding_rates", {
    "symbol": _text(allowed=TRACK_SYMBOLS), "venue": _text(), "venue_symbol": _text(),
    "event_time": _utc_time(), "available_time": _utc_time(),
    "funding_rate": _number(), "mark_price": _number(), "source": _text(),
}, frames.FUNDING_COLUMNS)

ONCHAIN_SCHEMA = _schema("onchain_signals", {
    "symbol": _text(allowed=TRACK_SYMBOLS), "provider": _text(), "metric": _text(),
    "event_time": _utc_time(), "available_time": _utc_time(), "value": _number(), "source": _text(),
}, frames.ONCHAIN_COLUMNS)

TRADE_SCHEMA = _schema("trades_ticks", {
    "symbol": _text(allowed=TRACK_SYMBOLS), "venue": _text(), "venue_symbol": _text(),
    "quote": _text(nullable=True), "trade_id": _any(nullable=False),
    "event_time": _utc_time(), "available_time": _utc_time(),
    "price": _number(), "size": _number(), "side": _text(nullable=True, allowed=TRADE_SIDES),
    "source": _text(),
}, frames.TRADE_COLUMNS)

ORDERBOOK_SCHEMA = _schema("orderbook_l2", {
    "symbol": _text(allowed=TRACK_SYMBOLS), "venue": _text(), "venue_symbol": _text(),
    "quote": _text(nullable=True), "event_time": _utc_time(), "available_time": _utc_time(),
    "sequence": _any(nullable=True), "side": _text(allowed=BOOK_SIDES), "level": _any(nullable=False),
    "price": _number(), "size": _number(), "num_orders": _any(nullable=True), "source": _text(),
}, frames.ORDERBOOK_COLUMNS)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    s.name: s for s in (MARKET_BAR_SCHEMA, FUNDING_SCHEMA, ONCHAIN_SCHEMA, TRADE_SCHEMA, ORDERBOOK_SCHEMA)
}


def _normalise_empty(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """An empty frame holds no values, so its ``object`` columns (``frames.empty_frame`` makes
    every non-time column ``object``) take the schema's float64/str dtype; column presence and
    time dtypes are still enforced."""
    out = frame.copy()
    for name, column in schema.columns.items():
        if name in out.columns and out[name].dtype == object and column.dtype is not None:
            out[name] = out[name].astype("float64" if str(column.dtype) == "float64" else "str")
    return out


def _reason(check: str, column: str | None, frame: pd.DataFrame) -> str:
    if check == "column_in_dataframe":
        return "required column is missing"
    if check == "column_in_schema":
        return "column is not in the canonical schema"
    if check == UTC_CHECK_ERROR and column in frame.columns:
        return f"{UTC_CHECK_ERROR}, got {frame[column].dtype}"
    if check.startswith("dtype("):
        got = frame[column].dtype if column in frame.columns else "?"
        return f"expected {check}, got {got}"
    if check == "not_nullable":
        return f"{column} is null"
    return f"failed {check}"


def _failures_from(errors: pa.errors.SchemaErrors, frame: pd.DataFrame) -> list[dict[str, Any]]:
    cases = errors.failure_cases
    out: list[dict[str, Any]] = []
    for case in cases.itertuples(index=False):
        column = case.column if isinstance(case.column, str) else None
        value = case.failure_case
        if case.check in ("column_in_dataframe", "column_in_schema"):
            column, value = str(value), None
        elif case.check == UTC_CHECK_ERROR and column in frame.columns:
            value = str(frame[column].dtype)
        row_index = case.index
        symbol = event_time = None
        if row_index is not None and not pd.isna(row_index) and row_index in frame.index:
            row = frame.loc[row_index]
            symbol, event_time = row.get("symbol"), row.get("event_time")
        out.append(
            failure(
                symbol=symbol if isinstance(symbol, str) else None,
                event_time=event_time if isinstance(event_time, pd.Timestamp) else None,
                column=column,
                value=value,
                reason=_reason(str(case.check), column, frame),
                check=str(case.check),
                row=None if row_index is None or pd.isna(row_index) else int(row_index),
            )
        )
    return out


def check_schema(frame: pd.DataFrame, asset_name: str) -> CheckOutcome:
    """Validate ``frame`` against the pandera schema of ``asset_name`` (all failures, lazily).

    Fails on missing or extra columns, wrong dtypes, naive or non-UTC times, unknown symbols,
    intervals or sides, empty strings, and nulls in identity/time columns. Each failure names the
    column, the failing value and, where pandera reports a row, its symbol and event time.
    """
    schema = SCHEMAS[asset_name]
    data = frame.reset_index(drop=True)
    if len(data) == 0:
        data = _normalise_empty(data, schema)
    name = "match_schema"
    description = f"{asset_name} has the canonical columns, dtypes (UTC times, float64 values) and domains"
    failures: list[dict[str, Any]] = []
    try:
        schema.validate(data, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = _failures_from(errors, data)
    except pa.errors.SchemaError as error:  # raised unlazily by some pandera paths
        failures = [failure(column=getattr(error.schema, "name", None), reason=str(error)[:300])]
    return make_outcome(
        name,
        description,
        failures,
        metadata={"rows_checked": len(data), "schema": schema.name, "columns": list(schema.columns)},
    )

