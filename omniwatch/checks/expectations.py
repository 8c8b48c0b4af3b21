"""OHLCV sanity of market bars as a Great Expectations 1.x suite.

A bar whose high sits below its low (or whose open/close lies outside [low, high], or whose
volume is negative) is a broken record from the venue or the parser: returns, volatility and
every feature built on it would be wrong. The rules are kept as a GX ``ExpectationSuite`` so they
read as declarative expectations and run with GX's own result format, which names the failing
rows by ``symbol`` and ``event_time``.

``great_expectations`` costs seconds to import, so it is imported only inside these functions,
never at module import (a test guards this). Each run uses a fresh ephemeral, in-memory data
context with analytics and progress bars off; nothing is written to disk.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from omniwatch.checks.common import missing_columns
from omniwatch.checks.outcome import MAX_LISTED_FAILURES, CheckOutcome, failure, make_outcome

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

SUITE_NAME = "market_bars_ohlcv_sanity"
CHECK_NAME = "have_sane_ohlcv"
DESCRIPTION = "market bars have low <= open, close <= high, low <= high and volume >= 0 (GX suite)"
INDEX_COLUMNS = ["symbol", "event_time"]
# (column_A, column_B): expect A >= B on every row where both are present.
PAIR_RULES = (("open", "low"), ("close", "low"), ("high", "open"), ("high", "close"), ("high", "low"))
NON_NEGATIVE = ("volume",)
REQUIRED_COLUMNS = [*INDEX_COLUMNS, "open", "high", "low", "close", "volume"]


def build_ohlcv_suite(context: Any | None = None) -> ExpectationSuite:
    """The expectation suite: each price pair ordered (nulls are left to the null check) and a
    non-negative volume. GX binds suites to the active data context, so one is made (ephemeral)
    unless given."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if context is None:
        _ephemeral_context()

    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for column_a, column_b in PAIR_RULES:
        suite.add_expectation(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=column_a, column_B=column_b, or_equal=True, ignore_row_if="either_value_is_missing"
            )
        )
    for column in NON_NEGATIVE:
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    return suite


def _ephemeral_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _rule_text(kwargs: dict[str, Any]) -> tuple[str, str]:
    if "column_A" in kwargs:
        return kwargs["column_A"], f"{kwargs['column_A']} >= {kwargs['column_B']}"
    return kwargs["column"], f"{kwargs['column']} >= {kwargs.get('min_value')}"


def _failures_of(result: Any) -> tuple[int, list[dict[str, Any]], str]:
    kwargs = dict(result.expectation_config.kwargs)
    column, rule = _rule_text(kwargs)
    info = result.exception_info or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message"))[:300]
        return 1, [failure(column=column, reason=f"expectation {rule} raised: {message}")], rule
    details = result.result or {}
    out = []
    for row in (details.get("unexpected_index_list") or [])[:MAX_LISTED_FAILURES]:
        value = row.get(column)
        if "column_B" in kwargs:
            other = kwargs["column_B"]
            reason = f"{column} {value} < {other} {row.get(other)}"
        else:
            reason = f"{column} {value} < {kwargs.get('min_value')}"
        out.append(failure(symbol=row.get("symbol"), event_time=row.get("event_time"),
                           column=column, value=value, reason=reason, rule=rule))
    return int(details.get("unexpected_count") or 0), out, rule


def check_ohlcv_sanity(frame: pd.DataFrame) -> CheckOutcome:
    """Run :func:`build_ohlcv_suite` on the batch; ``failed_count`` sums unexpected rows over the
    expectations (a bar breaking two rules counts twice). An empty batch passes without loading
    GX (there is nothing to contradict the rules; emptiness is the gap/freshness checks' concern).
    """
    data = frame.reset_index(drop=True)
    if missing := missing_columns(data, REQUIRED_COLUMNS):
        absent = [failure(column=c, reason="column needed by this check is missing") for c in missing]
        return make_outcome(CHECK_NAME, DESCRIPTION, absent, metadata={"rows_checked": len(data)})
    if len(data) == 0:
        return make_outcome(CHECK_NAME, DESCRIPTION, [], metadata={"rows_checked": 0, "gx_ran": False})

    started = time.perf_counter()
    context = _ephemeral_context()
    batch_definition = (
        context.data_sources.add_pandas(name="omniwatch_checks")
        .add_dataframe_asset(name="market_bars")
        .add_batch_definition_whole_dataframe("batch")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    validation = batch.validate(
        build_ohlcv_suite(context),
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": INDEX_COLUMNS},
    )
    failures: list[dict[str, Any]] = []
    total, per_rule = 0, {}
    for result in validation.results:
        count, found, rule = _failures_of(result)
        per_rule[rule] = count
        total += count
        failures.extend(found)
    failures.sort(key=lambda f: (str(f["symbol"]), str(f["event_time"]), str(f["column"])))
    return make_outcome(
        CHECK_NAME,
        DESCRIPTION,
        failures,
        failed_count=total,
        passed=bool(validation.success) and total == 0,
        metadata={
            "rows_checked": len(data),
            "gx_ran": True,
            "suite": SUITE_NAME,
            "unexpected_by_rule": per_rule,
            "gx_seconds": round(time.perf_counter() - started, 3),
        },
    )
