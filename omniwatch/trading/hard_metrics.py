"""Hard metrics of the trading actually executed: Sharpe, max drawdown and reject rate, against thresholds.

Everything is read from what execution stored (``orders_sim``, ``fills``, ``funding_payments``,
``market_bars``), never from a backtest. Definitions (also in the README):

- **Equity**: the ledger's replay of the strategy's fills and funding payments
  (:mod:`omniwatch.trading.ledger`): net realised PnL after fees and funding, plus the open
  positions marked at the newest stored close available at each whole hour (point in time; the
  first venue by name; a close older than ``mark_max_age`` is no mark). Account value
  ``V_h = capital + equity_h`` on every whole hour from the last one before the first fill (or
  ``start``) to the window end (``end``, else the newest close every traded symbol has).
- **Sharpe**: mean / std (ddof 1) of the hourly log returns ``ln(V_h / V_{h-1})``, times
  ``sqrt(24 * 365)`` (:func:`omniwatch.ml.metrics.sharpe`).
- **Max drawdown**: the deepest fall of ``V`` from its running peak, a positive fraction of the
  peak (:func:`omniwatch.ml.metrics.max_drawdown` of the same returns, sign flipped).
- **Reject rate**: orders the venue rejected, or that the ``max_slippage_bps`` cap stopped
  (rejected, or cut short with the cap named as the reason: the drift rule's own predicate,
  :func:`omniwatch.modelops.drift.cap_stopped`), over the orders sent (every order a venue saw:
  neither ``initialized`` nor ``denied``). Orders risk denied never reached a venue: they are
  counted apart (``denied``, ``denial_rate``), not as rejects.

Verdict: ``fail`` when a metric that could be computed is past its threshold (a known failure is
reported even if another metric lacks data); otherwise ``insufficient`` when one cannot be
computed (each missing piece named, :class:`Missing`); otherwise ``pass``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import Connection, select

from omniwatch.ml.metrics import HOURS_PER_YEAR, max_drawdown, sharpe
from omniwatch.modelops.drift import cap_stopped
from omniwatch.trading import ledger
from omniwatch.trading.orders import OrderStatus, as_utc
from omniwatch.warehouse import tables

HOUR = timedelta(hours=1)
NOT_SENT = frozenset({OrderStatus.INITIALIZED.value, OrderStatus.DENIED.value})
Closes = dict[str, list[tuple[datetime, float]]]   # symbol -> (available_time, close), oldest first


@dataclass(frozen=True)
class HardThresholds:
    """What passes (defaults in the README): Sharpe at least ``min_sharpe``, drawdown at most
    ``max_drawdown`` of the peak, reject rate at most ``max_reject_rate``; fewer than ``min_hours``
    hourly returns or ``min_orders`` orders sent is not enough data."""

    min_sharpe: float = 0.5
    max_drawdown: float = 0.15
    max_reject_rate: float = 0.10
    min_hours: int = 24
    min_orders: int = 10
    mark_max_age: timedelta = timedelta(hours=2)


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"


class Missing(StrEnum):
    NO_ORDERS = "no_orders_sent"          # the reject rate has no denominator
    TOO_FEW_ORDERS = "too_few_orders"
    NO_FILLS = "no_fills"                 # no equity curve at all
    TOO_FEW_HOURS = "too_few_hours"
    NO_MARK = "no_mark"                   # an open position without a recent close
    FLAT_EQUITY = "flat_equity"           # no variance: Sharpe undefined


class Shortfall(BaseModel):
    code: Missing
    detail: str


class OrderCounts(BaseModel):
    total: int
    sent: int
    denied: int
    rejected: int          # by the venue, any reason
    capped: int            # stopped by max_slippage_bps (rejected or cut short)
    rejected_or_capped: int
    reject_rate: float | None
    denial_rate: float | None


class HardMetricsReport(BaseModel):
    verdict: Verdict
    track: str
    strategy_id: str
    capital_usd: float
    start: datetime | None
    end: datetime | None
    hours: int
    sharpe: float | None
    max_drawdown: float | None
    net_pnl_usd: float | None
    return_total: float | None
    orders: OrderCounts
    thresholds: dict[str, Any]
    failures: list[str]
    missing: list[Shortfall]


class MarkMissing(LookupError):
    """An open position has no close recent enough to mark it."""

    def __init__(self, symbol: str, at: datetime):
        super().__init__(f"no close of {symbol} within the mark age at {at.isoformat()} for its open position")
        self.symbol, self.at = symbol, at


def order_counts(rows: Iterable[tuple[str, Any]]) -> OrderCounts:
    """Counts of ``(status, lifecycle)`` rows (see the module docstring for each definition)."""
    total = sent = denied = rejected = capped = either = 0
    for status, lifecycle in rows:
        total += 1
        if status == OrderStatus.DENIED.value:
            denied += 1
        if status in NOT_SENT:
            continue
        sent += 1
        is_rejected, is_capped = status == OrderStatus.REJECTED.value, cap_stopped(status, lifecycle)
        rejected += is_rejected
        capped += is_capped
        either += is_rejected or is_capped
    return OrderCounts(total=total, sent=sent, denied=denied, rejected=rejected, capped=capped,
                       rejected_or_capped=either, reject_rate=either / sent if sent else None,
                       denial_rate=denied / (sent + denied) if sent + denied else None)


def hour_grid(first: datetime, end: datetime) -> list[datetime]:
    """Whole hours from the hour of ``first`` to the hour of ``end``, both included."""
    start = pd.Timestamp(as_utc(first)).floor("h")
    stop = pd.Timestamp(as_utc(end)).floor("h")
    return [t.to_pydatetime() for t in pd.date_range(start, stop, freq="h")] if stop >= start else []


def mark_at(closes: Sequence[tuple[datetime, float]], at: datetime, max_age: timedelta) -> float | None:
    """The newest close available at ``at`` and at most ``max_age`` old."""
    i = bisect_right([ts for ts, _ in closes], at)
    if i == 0 or at - closes[i - 1][0] > max_age:
        return None
    return closes[i - 1][1]


def hourly_equity(events: Sequence[ledger.LedgerEvent], closes: Closes, hours: Sequence[datetime],
                  max_age: timedelta) -> list[float]:
    """Ledger equity after the events up to each hour, marked at that hour's closes. Raises
    :class:`MarkMissing` for an open position without a mark."""
    ordered = sorted(events, key=lambda e: (e.ts, 1 if isinstance(e, ledger.FundingPayment) else 0))
    book: dict[str, ledger.Position] = {}
    out, i = [], 0
    for h in hours:
        while i < len(ordered) and ordered[i].ts <= h:
            e = ordered[i]
            pos = book.get(e.symbol, ledger.Position(e.symbol))
            book[e.symbol] = (ledger.apply_funding(pos, e) if isinstance(e, ledger.FundingPayment)
                              else ledger.apply_fill(pos, e)[0])
            i += 1
        marks = {}
        for symbol, pos in book.items():
            if abs(pos.qty) <= ledger.EPS:
                continue
            mark = mark_at(closes.get(symbol, []), h, max_age)
            if mark is None:
                raise MarkMissing(symbol, h)
            marks[symbol] = mark
        out.append(ledger.equity(book, marks))
    return out


def _last_hour(fills: Sequence[ledger.LedgerFill], closes: Closes, end: datetime | None) -> datetime:
    """``end``, else the newest time every traded symbol has a close for (else the last fill)."""
    if end is not None:
        return as_utc(end)
    newest = [series[-1][0] for symbol in {f.symbol for f in fills} if (series := closes.get(symbol))]
    return min(newest) if newest else max(f.ts for f in fills)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def evaluate(*, track: str, strategy_id: str, capital: float, orders: Iterable[tuple[str, Any]],
             events: Sequence[ledger.LedgerEvent], closes: Closes, start: datetime | None, end: datetime | None,
             thresholds: HardThresholds) -> HardMetricsReport:
    """The report of one strategy (plain rows in, see the module docstring for the rules)."""
    t = thresholds
    counts = order_counts(orders)
    missing: list[Shortfall] = []
    failures: list[str] = []
    if counts.sent == 0:
        missing.append(Shortfall(code=Missing.NO_ORDERS, detail="no order of the strategy reached a venue "
                                 f"({counts.denied} denied by risk)"))
    elif counts.sent < t.min_orders:
        missing.append(Shortfall(code=Missing.TOO_FEW_ORDERS,
                                 detail=f"{counts.sent} order(s) sent; at least {t.min_orders} needed"))
    elif counts.reject_rate is not None and counts.reject_rate > t.max_reject_rate:
        failures.append(f"reject rate {counts.reject_rate:.1%} > {t.max_reject_rate:.1%} "
                        f"({counts.rejected_or_capped} of {counts.sent} orders sent: {counts.rejected} rejected, "
                        f"{counts.capped} stopped by max_slippage_bps)")
    fills = [e for e in events if isinstance(e, ledger.LedgerFill)]
    sharpe_v = dd = net = total = None
    hours: list[datetime] = []
    if not fills:
        missing.append(Shortfall(code=Missing.NO_FILLS, detail="no fill of the strategy is stored: no equity curve"))
    else:
        # The curve starts at the last whole hour before the first fill, so its costs count.
        before = pd.Timestamp(min(f.ts for f in fills)).ceil("h").to_pydatetime() - HOUR
        hours = hour_grid(before if start is None else max(before, as_utc(start)), _last_hour(fills, closes, end))
        try:
            equity = hourly_equity(events, closes, hours, t.mark_max_age)
        except MarkMissing as exc:
            missing.append(Shortfall(code=Missing.NO_MARK, detail=str(exc)))
            equity = []
        if equity:
            value = capital + np.asarray(equity, float)
            returns = np.diff(np.log(value))
            net, total = float(equity[-1] - equity[0]), float(value[-1] / value[0] - 1)
            dd = -max_drawdown(returns) if len(returns) else None
            sharpe_v = _num(sharpe(returns, HOURS_PER_YEAR))
            if len(returns) < t.min_hours:
                missing.append(Shortfall(code=Missing.TOO_FEW_HOURS, detail=f"{len(returns)} hourly return(s) "
                                         f"from {hours[0].isoformat()}; at least {t.min_hours} needed"))
            elif sharpe_v is None:
                missing.append(Shortfall(code=Missing.FLAT_EQUITY, detail="the account value never moved over "
                                         f"{len(returns)} hours: Sharpe is undefined"))
            else:
                if sharpe_v < t.min_sharpe:
                    failures.append(f"Sharpe {sharpe_v:.2f} < {t.min_sharpe:g} over {len(returns)} hours")
                if dd is not None and dd > t.max_drawdown:
                    failures.append(f"max drawdown {dd:.2%} > {t.max_drawdown:.2%} of the peak account value")
    verdict = Verdict.FAIL if failures else Verdict.INSUFFICIENT if missing else Verdict.PASS
    return HardMetricsReport(
        verdict=verdict, track=track, strategy_id=strategy_id, capital_usd=capital,
        start=hours[0] if hours else start, end=hours[-1] if hours else end, hours=max(len(hours) - 1, 0),
        sharpe=sharpe_v, max_drawdown=dd, net_pnl_usd=net, return_total=total, orders=counts,
        thresholds={"min_sharpe": t.min_sharpe, "max_drawdown": t.max_drawdown, "max_reject_rate": t.max_reject_rate,
                    "min_hours": t.min_hours, "min_orders": t.min_orders,
                    "mark_max_age_s": t.mark_max_age.total_seconds()},
        failures=failures, missing=missing)


# ----------------------------------------------------------------------------- warehouse readers
def read_orders(conn: Connection, track: str, strategy_id: str, start: datetime | None,
                end: datetime | None) -> list[tuple[str, Any]]:
    """``(status, lifecycle)`` of the strategy's orders created in ``[start, end]``."""
    o = tables.orders_sim
    query = select(o.c.status, o.c.lifecycle).where(o.c.track == track, o.c.strategy_id == strategy_id)
    if start is not None:
        query = query.where(o.c.created_at >= start)
    if end is not None:
        query = query.where(o.c.created_at <= end)
    return [(r.status, r.lifecycle) for r in conn.execute(query.order_by(o.c.created_at, o.c.order_id))]


def read_closes(conn: Connection, symbols: Iterable[str], until: datetime | None, interval: str = "1h") -> Closes:
    """Every stored close of ``symbols`` available by ``until``, one per time (first venue by name)."""
    b = tables.market_bars
    out: Closes = {}
    for symbol in sorted(set(symbols)):
        query = select(b.c.available_time, b.c.close).where(b.c.symbol == symbol, b.c.interval == interval)
        if until is not None:
            query = query.where(b.c.available_time <= until)
        seen: dict[datetime, float] = {}
        for r in conn.execute(query.order_by(b.c.available_time, b.c.venue)):
            seen.setdefault(as_utc(r.available_time), float(r.close))
        out[symbol] = sorted(seen.items())
    return out


def load(conn: Connection, *, track: str, strategy_id: str, capital: float, start: datetime | None,
         end: datetime | None, thresholds: HardThresholds) -> HardMetricsReport:
    """Read the strategy's orders, ledger events and closes and :func:`evaluate` them."""
    orders = read_orders(conn, track, strategy_id, start, end)
    events = ledger.read_events(conn, track, strategy_id, until=end)
    closes = read_closes(conn, {e.symbol for e in events if isinstance(e, ledger.LedgerFill)}, end)
    return evaluate(track=track, strategy_id=strategy_id, capital=capital, orders=orders, events=events,
                    closes=closes, start=start, end=end, thresholds=thresholds)

