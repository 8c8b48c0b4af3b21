"""Check that the Coinbase Advanced Trade keys work, without trading: one read-only call.

Calls ``GET /api/v3/brokerage/key_permissions`` with a JWT signed by the configured CDP key (the
same client the live adapter uses) and prints one JSON report: connectivity, authentication and
what the key may do (``can_view``, ``can_trade``), plus whether ``OMNIWATCH_LIVE_TRADING`` is on.

Exit codes: 0 ok; 1 failed (unreachable, 5xx after retries, refused key, unreadable private
key); 3 skipped: no keys are set (``OMNIWATCH_COINBASE_API_KEY_NAME`` and
``OMNIWATCH_COINBASE_API_PRIVATE_KEY``), so CI without secrets can tell "not configured" from
"broken". ``--base-url`` (or ``OMNIWATCH_COINBASE_ADVANCED_BASE_URL``) points it elsewhere.
The report never contains the private key.

    python scripts/validate_coinbase_live.py [--base-url URL] [--timeout-s 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from omniwatch.trading.coinbase_auth import CoinbaseKeyError
from omniwatch.trading.coinbase_live import CoinbaseApiError, CoinbaseLiveAdapter, CoinbaseLiveSettings
from omniwatch.trading.orders import VenueUnavailable

OK, FAILED, SKIPPED = 0, 1, 3


def validate(settings: CoinbaseLiveSettings) -> tuple[int, dict[str, Any]]:
    """``(exit code, report)`` for one read-only probe of the configured key."""
    report: dict[str, Any] = {"base_url": settings.coinbase_advanced_base_url,
                              "key_name": settings.coinbase_api_key_name, "live_trading": settings.live_trading}
    if not settings.keys_set():
        return SKIPPED, {"status": "skipped", **report,
                         "reason": "OMNIWATCH_COINBASE_API_KEY_NAME and OMNIWATCH_COINBASE_API_PRIVATE_KEY are not set"}
    adapter = CoinbaseLiveAdapter(settings)
    started = time.perf_counter()
    try:
        permissions = adapter.key_permissions()
    except (VenueUnavailable, CoinbaseApiError, CoinbaseKeyError) as exc:
        return FAILED, {"status": "failed", **report, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        adapter.close()
    return OK, {"status": "ok", **report, "latency_ms": round(1000 * (time.perf_counter() - started), 1),
                "can_view": permissions.get("can_view"), "can_trade": permissions.get("can_trade"),
                "portfolio_uuid": permissions.get("portfolio_uuid")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="Advanced Trade API root (default: the setting, api.coinbase.com)")
    parser.add_argument("--timeout-s", type=float, help="per-attempt HTTP timeout")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.base_url:
        overrides["coinbase_advanced_base_url"] = args.base_url
    if args.timeout_s:
        overrides["coinbase_timeout_s"] = args.timeout_s
    code, report = validate(CoinbaseLiveSettings(**overrides))
    print(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
