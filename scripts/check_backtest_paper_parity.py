"""Price the same signals through the backtest and through the paper venue's fill model; report the gap.

    python scripts/check_backtest_paper_parity.py --track liquid --target BTC
        [--start ISO --end ISO | --days 7] [--horizon 24h] [--model-version champion]
        [--tolerance-bps 25] [--fee-bps 5 --slippage-bps 5] [--threshold-bps X] [--strategy-id S] [--top 5]

The window's snapshots are scored by the model version and sized as the backtest sizes them
(``sizing="horizon"``); each hour's position change becomes the market IOC order execution/run
would send and is priced by the paper venue's read-only fill model at that hour (L2 book when
fresh, else the bar with half spread + impact, the execution slippage cap); the fills and funding
go through the ledger. Nothing is written to the warehouse. See ``omniwatch/trading/parity.py``
for why the two can differ; the JSON report splits the divergence into price, fees, slippage and
funding, in total and for the hours of largest gap.

Settings come from the environment as the API reads them: OMNIWATCH_HOME / OMNIWATCH_DATABASE_URL /
OMNIWATCH_MLFLOW_TRACKING_URI (or --database-url / --tracking-uri), the paper venue's costs
(OMNIWATCH_PAPER_*), capital and max_weight_per_asset (OMNIWATCH_CAPITAL_USD, OMNIWATCH_RISK_LIMITS
of the strategy), the slippage cap (OMNIWATCH_EXECUTION_MAX_SLIPPAGE_BPS), the forecast threshold
of the horizon (OMNIWATCH_SIGNAL_THRESHOLD_BPS_*) and the no-trade band (OMNIWATCH_SIZING_WEIGHT_BAND).

Exit codes: 0 the divergence is within --tolerance-bps, 1 it is past it, 2 the window cannot be
replayed (no snapshots or prices, no such model version: the refusal's code is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.settings import Settings  # noqa: E402

DEFAULT_TOLERANCE_BPS = 25.0


def _utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from omniwatch.ml.versions import load_version, resolve
    from omniwatch.resources.compute import resolve_device
    from omniwatch.serving.settings import ServingSettings
    from omniwatch.trading.backtest import BacktestParams, check_in_sample, replay
    from omniwatch.trading.paper import PaperSettings
    from omniwatch.trading.parity import PaperExecution, check, default_window

    serving = ServingSettings()
    url, name = settings.warehouse_url, "omniwatch-liquid"
    strategy = args.strategy_id or serving.signal_strategy_id
    limits = serving.risk_settings().limits_for(args.track, strategy)
    if args.start and args.end:
        start, end = _utc(args.start), _utc(args.end)
    else:
        start, end = default_window(url, args.target, args.days, args.track)
        start = _utc(args.start) if args.start else start
        end = _utc(args.end) if args.end else end
    if end <= start:
        raise SystemExit("--end must be after --start")
    threshold = args.threshold_bps if args.threshold_bps is not None else serving.thresholds_bps()[args.horizon]
    version = resolve(settings.mlflow_uri, name, args.model_version)
    loaded = load_version(settings.mlflow_uri, name, version, resolve_device(settings.serving_device)[0])
    params = BacktestParams(
        model_name=name, model_version=loaded.version, start=start, end=end, targets=[args.target],
        horizon=args.horizon, band_bps=threshold, fee_bps=args.fee_bps,
        slippage_bps=args.slippage_bps, include_funding=True, allow_in_sample=True, sizing="horizon",
        weight_band=serving.sizing_weight_band, target_annual_vol=limits.target_annual_vol)
    # Parity compares two cost models on the same positions, so an in-sample window is as good as
    # any other; the flag is reported, not refused.
    inside = check_in_sample(params, loaded.train_span, f"{name} version {loaded.version}")
    rep = replay(url, loaded.model, params)
    execution = PaperExecution(capital=limits.capital_usd, n_symbols=len(settings.liquid_symbols),
                               max_weight=limits.max_weight_per_asset,
                               max_slippage_bps=serving.execution_max_slippage_bps, track=args.track)
    report = check(url, rep, params, args.target, execution, PaperSettings(), args.tolerance_bps, args.top)
    return {"status": "ok" if report["within_tolerance"] else "diverged", "track": args.track,
            "strategy_id": strategy, "in_sample": inside, **report}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--track", default="liquid", choices=["liquid"])
    ap.add_argument("--target", required=True, help="a symbol of the track, e.g. BTC")
    ap.add_argument("--start", help="ISO time, window start (inclusive); default: --days before --end")
    ap.add_argument("--end", help="ISO time, window end (exclusive); default: the newest snapshot of the target")
    ap.add_argument("--days", type=float, default=7.0, help="window length when --start is not given (default 7)")
    ap.add_argument("--horizon", default="24h", choices=["1h", "4h", "24h"])
    ap.add_argument("--model-version", default="champion", help="a version number or an alias (default champion)")
    ap.add_argument("--tolerance-bps", type=float, default=DEFAULT_TOLERANCE_BPS,
                    help=f"largest |paper - backtest| net PnL accepted, in bps of the target's capital "
                         f"(default {DEFAULT_TOLERANCE_BPS:g})")
    ap.add_argument("--fee-bps", type=float, default=5.0, help="the backtest's fee per unit of turnover (default 5)")
    ap.add_argument("--slippage-bps", type=float, default=5.0,
                    help="the backtest's slippage per unit of turnover (default 5)")
    ap.add_argument("--threshold-bps", type=float,
                    help="forecast threshold of a tranche (default: the signal threshold of the horizon)")
    ap.add_argument("--strategy-id", help="whose risk limits give capital and max weight (default: the API's)")
    ap.add_argument("--top", type=int, default=5, help="hours of largest gap to list (default 5)")
    ap.add_argument("--database-url")
    ap.add_argument("--tracking-uri")
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in {"database_url": args.database_url,
                                   "mlflow_tracking_uri": args.tracking_uri}.items() if v}
    settings = Settings(**overrides)

    from omniwatch.ml.versions import ModelUnavailable
    from omniwatch.trading.backtest import BacktestRefused

    try:
        report = run(settings, args)
    except (BacktestRefused, ModelUnavailable) as exc:
        print(json.dumps({"status": "not_replayable", "code": str(exc.code), "detail": exc.detail,
                          **{k: v for k, v in exc.context.items() if isinstance(v, str | int | float | list)}},
                         indent=2))
        return 2
    print(json.dumps(report, indent=2))
    return 0 if report["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
