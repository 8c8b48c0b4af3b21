"""The trading plane: the paper books kept current between executions (see omniwatch.trading.book)."""

import dagster as dg
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, table_metadata
from omniwatch.resources.modelops import ModelOpsResource


@dg.asset(
    deps=["market_bars", "funding_rates"],
    kinds={"python", "sql"},
    code_version="paper-books-v1",
    # Hourly, once that hour's bars are in (live refresh or a replay-as-live tick).
    automation_condition=dg.AutomationCondition.on_cron("5 * * * *"),
    metadata=table_metadata("positions_snapshots"),
    **labels("liquid", "ops"),
)
def paper_books(context: AssetExecutionContext, modelops: ModelOpsResource) -> dg.MaterializeResult:
    """Every paper strategy's perpetual funding charged (``funding_payments``, once per
    settlement) and its open positions marked at the newest close (``positions_snapshots``,
    reason ``mark``), as of the run's clock: the data clock in a replay, the wall clock live."""
    from omniwatch.trading.book import update_paper_books

    ops = modelops.context()
    now = ops.clock()
    updates = update_paper_books(ops.database_url, now)
    for u in updates:
        if u.unmarked:
            context.log.warning(f"{u.track}:{u.strategy_id}: no close available at {now.isoformat()} for "
                                f"{', '.join(u.unmarked)}; those positions keep their last mark")
    return dg.MaterializeResult(metadata={
        "clock": dg.MetadataValue.text(now.isoformat()),
        "strategies": dg.MetadataValue.int(len(updates)),
        "funding_payments": dg.MetadataValue.int(sum(u.funding_payments for u in updates)),
        "positions_marked": dg.MetadataValue.int(sum(u.marked for u in updates)),
        "books": dg.MetadataValue.json([
            {"track": u.track, "strategy_id": u.strategy_id, "open_positions": u.open_positions,
             "net_pnl_usd": u.net_pnl, "unmarked": list(u.unmarked)} for u in updates]),
    })
