"""The paper books between executions: funding charged and positions marked every hour.

``execution/run`` accrues funding when it runs, but a position held for days between runs must
still pay its perpetual funding and be marked at each new bar, or the day-loss breaker, the PnL
attribution and ``positions_snapshots`` would only move when somebody trades. The
``paper_books`` asset calls :func:`update_paper_books` after each hour's market data (live or
replayed), each strategy under its lock (``omniwatch.trading.locks``): for every paper strategy
that has filled an order, every funding settlement known by then is charged to the position held
at its time (idempotent per settlement), and every open position gets a ``mark`` snapshot at the
newest close available then (point in time).
Live (Coinbase) positions are not touched: the venue's own fills and fees are the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from omniwatch.trading import ledger, store
from omniwatch.trading.locks import strategy_lock
from omniwatch.trading.paper import PaperSettings, accrue_funding
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine


@dataclass(frozen=True)
class BookUpdate:
    """What one paper strategy's hourly update did, and where its book stands after it."""

    track: str
    strategy_id: str
    funding_payments: int          # settlements charged now (0 when all were charged before)
    marked: int                    # open positions given a mark snapshot
    open_positions: dict[str, float]
    unmarked: tuple[str, ...]      # open symbols without any close available at the time
    net_pnl: float | None          # realised + marked, after fees and funding (None when unmarked)


def paper_strategies(url: str) -> list[tuple[str, str]]:
    """``(track, strategy_id)`` of every strategy with a paper fill, in order."""
    o, f = tables.orders_sim, tables.fills
    query = (select(f.c.track, f.c.strategy_id).select_from(f.join(o, o.c.order_id == f.c.order_id))
             .where(o.c.adapter == "paper").distinct().order_by(f.c.track, f.c.strategy_id))
    with get_engine(url).connect() as conn:
        return [(r.track, r.strategy_id) for r in conn.execute(query)]


def update_paper_books(url: str, now: datetime, settings: PaperSettings | None = None) -> list[BookUpdate]:
    """Charge funding and mark the open positions of every paper strategy as of ``now``."""
    settings = settings or PaperSettings()
    updates = []
    for track, strategy in paper_strategies(url):
        # Under the strategy's lock, as every writer of its ledger: an execution run deciding for
        # it meanwhile reads its book once and must not see it move under it.
        with strategy_lock(url, track, strategy):
            paid = accrue_funding(url, track, strategy, now, settings)
            book = ledger.positions(url, track, strategy)
            held = {s: p.qty for s, p in book.items() if abs(p.qty) > ledger.EPS}
            marks = ledger.latest_closes(url, held, now)
            marked = store.mark_positions(url, track, strategy, marks, now)
        unmarked = tuple(sorted(set(held) - set(marks)))
        net = None if unmarked else sum(p.equity(marks.get(s)) for s, p in book.items())
        updates.append(BookUpdate(track, strategy, paid, marked, held, unmarked, net))
    return updates


__all__ = ["BookUpdate", "paper_strategies", "update_paper_books"]
