"""Data-quality checks for the raw market tables, run as blocking Dagster asset checks.

Each check is a pure function over a pandas frame that tests one property and returns a typed
:class:`CheckOutcome`; :func:`to_asset_check_result` turns it into a ``dagster.AssetCheckResult``
and :func:`run_checks` runs everything registered for an asset. Importing this package does not
import Great Expectations (that happens inside :func:`check_ohlcv_sanity`).
"""

from omniwatch.checks.book import check_book_not_crossed, check_book_positive, check_trades_positive
from omniwatch.checks.expectations import build_ohlcv_suite, check_ohlcv_sanity
from omniwatch.checks.funding import check_funding_coverage, check_funding_rate_bounds
from omniwatch.checks.generic import check_no_duplicate_keys, check_required_not_null, check_values_signed
from omniwatch.checks.market import check_freshness, check_hourly_gaps, check_outlier_returns
from omniwatch.checks.onchain import check_onchain_non_negative, check_point_in_time
from omniwatch.checks.outcome import (
    MAX_LISTED_FAILURES,
    CheckOutcome,
    Severity,
    failures_markdown,
    to_asset_check_result,
)
from omniwatch.checks.registry import (
    CHECKS_BY_ASSET,
    FUNDING_CHECKS,
    MARKET_BAR_CHECKS,
    ONCHAIN_CHECKS,
    ORDERBOOK_CHECKS,
    TRADE_CHECKS,
    CheckSpec,
    accepted_thresholds,
    asset_check_specs,
    check_specs_for,
    run_asset_checks,
    run_checks,
)
from omniwatch.checks.schemas import SCHEMAS, check_schema

__all__ = [
    "CHECKS_BY_ASSET", "FUNDING_CHECKS", "MARKET_BAR_CHECKS", "MAX_LISTED_FAILURES", "ONCHAIN_CHECKS",
    "ORDERBOOK_CHECKS", "SCHEMAS", "TRADE_CHECKS", "CheckOutcome", "CheckSpec", "Severity",
    "accepted_thresholds", "asset_check_specs", "build_ohlcv_suite", "check_book_not_crossed",
    "check_book_positive", "check_freshness", "check_funding_coverage", "check_funding_rate_bounds",
    "check_hourly_gaps", "check_no_duplicate_keys", "check_ohlcv_sanity", "check_onchain_non_negative",
    "check_outlier_returns", "check_point_in_time", "check_specs_for", "check_required_not_null", "check_schema",
    "check_trades_positive", "check_values_signed", "failures_markdown", "run_asset_checks", "run_checks",
    "to_asset_check_result",
]
