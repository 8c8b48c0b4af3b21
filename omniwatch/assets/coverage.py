"""What the market plane holds for a window, per symbol: the first consumer of the raw assets.

It runs only after every blocking check of its inputs passed in the same run, and reads what was
stored (not what was fetched), so its table is the plane's coverage as downstream steps see it:
bars present and missing, funding settlements and gaps, on-chain days per symbol.
"""


import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels
from omniwatch.partitions import daily_partitions, single_run_backfill
from omniwatch.resources.liquid import LiquidTrackResource
from omniwatch.resources.warehouse import WarehouseResource

FUNDING_PERIOD = pd.Timedelta(hours=8)


def _missing_ranges(present: pd.Series, start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta) -> list[str]:
    """Expected grid points between start and end without a row, compressed into ranges."""
    grid = pd.date_range(start, end - step, freq=step, tz="UTC") if end > start else pd.DatetimeIndex([])
    missing = grid.difference(pd.DatetimeIndex(present))
    ranges: list[str] = []
    if len(missing):
        run_start = prev = missing[0]
        for t in missing[1:]:
            if t - prev != step:
                ranges.append(f"{run_start:%Y-%m-%d %H:%M} .. {prev:%Y-%m-%d %H:%M}")
                run_start = t
            prev = t
        ranges.append(f"{run_start:%Y-%m-%d %H:%M} .. {prev:%Y-%m-%d %H:%M}")
    return ranges


def coverage_table(
    bars: pd.DataFrame, funding: pd.DataFrame, onchain: pd.DataFrame, symbols: list[str],
    start: pd.Timestamp, end: pd.Timestamp,
) -> pd.DataFrame:
    rows = []
    expected_hours = int((end - start) / pd.Timedelta(hours=1))
    for symbol in symbols:
        b = bars[bars["symbol"] == symbol]
        f = funding[funding["symbol"] == symbol]
        o = onchain[onchain["symbol"] == symbol]
        gaps = _missing_ranges(f["event_time"], start, end, FUNDING_PERIOD) if len(f) else ["all"]
        rows.append({
            "symbol": symbol,
            "bars": len(b),
            "bars_expected": expected_hours,
            "first_bar": b["event_time"].min().isoformat() if len(b) else None,
            "last_bar": b["event_time"].max().isoformat() if len(b) else None,
            "funding_settlements": len(f),
            "funding_missing": "; ".join(gaps) if gaps else "",
            "onchain_days": int(o["event_time"].nunique()) if len(o) else 0,
            "onchain_metrics": int(o["metric"].nunique()) if len(o) else 0,
        })
    return pd.DataFrame(rows)


@dg.asset(
    deps=["market_bars", "funding_rates", "onchain_signals", "trades_ticks", "orderbook_l2"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"python"},
    code_version="1",
    **labels("liquid", "checked"),
)
def market_coverage(
    context: AssetExecutionContext, warehouse: WarehouseResource, liquid: LiquidTrackResource
) -> dg.MaterializeResult:
    """Per-symbol coverage of the stored market plane for the window: bars present vs expected,
    funding settlements and the windows missing (reported, never filled), on-chain days."""
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    table = coverage_table(
        warehouse.read_window("market_bars", start, end, liquid.symbols),
        warehouse.read_window("funding_rates", start, end, liquid.symbols),
        warehouse.read_window("onchain_signals", start, end, liquid.symbols),
        liquid.symbols, start, end,
    )
    return dg.MaterializeResult(metadata={
        "coverage": dg.MetadataValue.md(table.to_markdown(index=False)),
        "coverage_json": dg.MetadataValue.json(table.to_dict(orient="records")),
        "window": dg.MetadataValue.text(f"{start.isoformat()} .. {end.isoformat()}"),
    })
