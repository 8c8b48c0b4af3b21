"""Sharpe, max drawdown and reject rate of the trading actually executed, against thresholds.

    python scripts/evaluate_hard_metrics.py --track liquid [--strategy-id S]
        [--min-sharpe 0.5 --max-drawdown 0.15 --max-reject-rate 0.10]
        [--min-hours 24 --min-orders 10] [--start ISO --end ISO] [--api-base URL]

Reads the strategy's stored orders (``orders_sim``), fills and funding payments, replays them
through the ledger and marks the hourly equity at the stored closes (see
``omniwatch/trading/hard_metrics.py`` for every definition). Capital (the account value the
returns are measured on) is the strategy's ``capital_usd``: from this process's environment as the
API reads it (OMNIWATCH_CAPITAL_USD, OMNIWATCH_RISK_LIMITS), or with --api-base from the running
API's ``GET /api/v2/risk/limits`` (the limits it enforces; OMNIWATCH_API_KEY is sent when set).
The warehouse comes from OMNIWATCH_HOME / OMNIWATCH_DATABASE_URL or --database-url.

Prints a JSON report. Exit codes: 0 pass, 1 a metric past its threshold, 2 not enough data
(``missing`` names what: no orders sent, too few orders or hours, no fills, no mark, flat equity).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.settings import Settings  # noqa: E402
from omniwatch.trading.hard_metrics import HardThresholds, Verdict  # noqa: E402

EXIT = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INSUFFICIENT: 2}
DEFAULTS = HardThresholds()


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def api_capital(base: str, track: str, strategy_id: str) -> float:
    """``capital_usd`` of the scope as the API at ``base`` enforces it."""
    import httpx

    key = os.environ.get("OMNIWATCH_API_KEY")
    response = httpx.get(f"{base.rstrip('/')}/api/v2/risk/limits", params={"track": track, "strategy_id": strategy_id},
                         headers={"X-API-Key": key} if key else {}, timeout=30)
    response.raise_for_status()
    for scope in response.json()["effective"]:
        if scope["track"] == track and scope["strategy_id"] == strategy_id:
            return float(scope["limits"]["capital_usd"])
    raise LookupError(f"{base} reports no limits of {track}:{strategy_id}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--track", default="liquid", choices=["liquid"])
    ap.add_argument("--strategy-id", help="default: the API's default strategy (OMNIWATCH_SIGNAL_STRATEGY_ID)")
    ap.add_argument("--min-sharpe", type=float, default=DEFAULTS.min_sharpe,
                    help=f"annualised Sharpe of hourly account returns at least this (default {DEFAULTS.min_sharpe:g})")
    ap.add_argument("--max-drawdown", type=float, default=DEFAULTS.max_drawdown,
                    help=f"deepest fall from the peak account value, a fraction (default {DEFAULTS.max_drawdown:g})")
    ap.add_argument("--max-reject-rate", type=float, default=DEFAULTS.max_reject_rate,
                    help="(venue rejects + orders stopped by max_slippage_bps) / orders sent "
                         f"(default {DEFAULTS.max_reject_rate:g})")
    ap.add_argument("--min-hours", type=int, default=DEFAULTS.min_hours,
                    help=f"fewer hourly returns is not enough data (default {DEFAULTS.min_hours})")
    ap.add_argument("--min-orders", type=int, default=DEFAULTS.min_orders,
                    help=f"fewer orders sent is not enough data (default {DEFAULTS.min_orders})")
    ap.add_argument("--start", help="ISO time: orders created and hours from here (default: the first fill)")
    ap.add_argument("--end", help="ISO time: events and hours up to here (default: the newest stored close)")
    ap.add_argument("--api-base", help="read capital_usd from this API's GET /api/v2/risk/limits")
    ap.add_argument("--database-url")
    args = ap.parse_args(argv)
    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))

    from omniwatch.serving.settings import ServingSettings
    from omniwatch.trading.hard_metrics import load
    from omniwatch.warehouse.engine import get_engine

    serving = ServingSettings()
    strategy = args.strategy_id or serving.signal_strategy_id
    capital = (api_capital(args.api_base, args.track, strategy) if args.api_base
               else serving.risk_settings().limits_for(args.track, strategy).capital_usd)
    thresholds = HardThresholds(min_sharpe=args.min_sharpe, max_drawdown=args.max_drawdown,
                                max_reject_rate=args.max_reject_rate, min_hours=args.min_hours,
                                min_orders=args.min_orders)
    with get_engine(settings.warehouse_url).connect() as conn:
        report = load(conn, track=args.track, strategy_id=strategy, capital=capital, start=_utc(args.start),
                      end=_utc(args.end), thresholds=thresholds)
    print(report.model_dump_json(indent=2))
    return EXIT[report.verdict]


if __name__ == "__main__":
    sys.exit(main())
