"""Backtest/paper parity: the same sized positions priced by the backtest and by the paper venue.

The backtest side is the backtest itself: the window's rows scored by one model version
(:func:`omniwatch.trading.backtest.replay`), sized with the same rule (``sizing_rule`` and
:func:`omniwatch.trading.sizing.sized_positions`) and charged by ``omniwatch.ml.metrics.hourly_pnl``
(log-return units of the capital the target holds). The paper side turns each hour's position
change into the order ``execution/run`` would send (weight / ``n_symbols``, capped at
``max_weight_per_asset``, times capital, at the hour's close, less the quantity held: a market
IOC with the execution slippage cap) and prices it with the paper venue's own read-only fill model
at that hour (:func:`omniwatch.trading.paper.quote_now`: the fresh L2 book, else the bar). Funding
settlements are charged as the paper venue charges them (``accrue_funding``'s rule, computed here
without writing). The simulated fills and payments go through the ledger (``apply_fill`` /
``apply_funding``) and hourly equity is marked at the stored closes. Nothing is written: no
order, fill or payment is left behind.

Why the two differ, even on the same positions:

- **Fees**: the backtest charges ``fee_bps`` per unit of turnover (weight change); paper charges
  ``taker_fee_bps`` of each fill's notional, at the fill price (a hair more on a buy, less on a sell).
- **Slippage**: the backtest charges a flat ``slippage_bps`` per unit of turnover; paper walks the
  book level by level, or fills at the bar close moved by ``half_spread_bps + impact_bps *
  sqrt(notional / hourly dollar volume)``, and the ``max_slippage_bps`` cap can cut or refuse an
  order (then the paper position lags the backtest's until the next order).
- **Price**: the backtest earns ``weight * log return`` and in effect rebalances to a constant
  weight every hour for free; paper holds a constant quantity between orders (its weight drifts
  with the price) and earns the simple return. Both are second order per hour, and add up.
- **Funding timing**: the backtest charges the settlements in ``(t, t + 1h]`` to the position of
  hour ``t``; paper charges a settlement to the position held at its instant, counting a fill made
  at that same instant (an order placed at 08:00 pays the 08:00 settlement). With several funding
  venues stored, the backtest's label sums their rates per settlement; paper charges one venue's
  (``funding_venue``, else the first by name).

The gap of each hour is split into those four causes (paper minus backtest, as each adds to net
PnL); they sum to the hour's gap exactly. Units: the target's capital (``capital / n_symbols``);
the report is in basis points of it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from omniwatch.jsonsafe import json_safe
from omniwatch.ml.metrics import hourly_pnl, positions_from_predictions
from omniwatch.trading import ledger
from omniwatch.trading.backtest import (
    MIN_PRICED_HOURS,
    PRED_OF,
    BacktestErrorCode,
    BacktestParams,
    BacktestRefused,
    Replay,
    sizing_rule,
)
from omniwatch.trading.execution import MIN_ORDER_QTY
from omniwatch.trading.orders import OrderRequest
from omniwatch.trading.paper import PaperSettings, quote_now
from omniwatch.trading.paper_market import funding_between, latest_bar
from omniwatch.trading.sizing import sized_positions
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

HOUR = timedelta(hours=1)
PARTS = ("gross", "fees", "slippage", "funding", "net")
CAUSES = ("price", "fees", "slippage", "funding")
PARITY_STRATEGY = "parity"   # the simulated orders' strategy id; they are never stored


@dataclass(frozen=True)
class PaperExecution:
    """How execution sizes and caps the orders of the paper side."""

    capital: float               # capital_usd: a weight of 1.0
    n_symbols: int               # the book's symbols: each holds 1/n of the backtest's weight
    max_weight: float            # max_weight_per_asset
    max_slippage_bps: float | None
    track: str = "liquid"

    @property
    def target_capital(self) -> float:
        return self.capital / self.n_symbols


@dataclass(frozen=True)
class SimOrder:
    """One simulated order and what the paper fill model gave it."""

    ts: datetime
    side: str
    qty: float
    filled: float
    avg_price: float | None
    reference: float | None
    source: str | None           # book | bar | None (no data: the venue would reject it)
    note: str


def backtest_hours(rep: Replay, params: BacktestParams, target: str) -> pd.DataFrame:
    """The target's hourly backtest PnL (log-return units), as ``evaluate`` prices it, with its
    held ``position``; indexed by ``as_of_ts``."""
    rows = rep.rows[rep.rows["symbol"] == target].dropna(subset=["next_hour_return"]).sort_values("as_of_ts")
    if len(rows) < MIN_PRICED_HOURS:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_PRICES,
                              f"{len(rows)} hour(s) of {target} have a next-hour price; at least "
                              f"{MIN_PRICED_HOURS} needed", targets=[target])
    forecast = rows[PRED_OF[params.horizon]]
    rule = sizing_rule(params)
    vols = rows["vol_24h"].to_numpy(float) if "vol_24h" in rows else None
    pos = (sized_positions(forecast.to_numpy(float), vols, rule) if rule
           else positions_from_predictions(forecast / 1e4, params.band_bps / 1e4))
    fund = rows["next_hour_funding"] if params.include_funding else None
    pnl = hourly_pnl(pos, rows["next_hour_return"], fund, fee_bps=params.fee_bps, slippage_bps=params.slippage_bps)
    pnl.index = pd.DatetimeIndex(rows["as_of_ts"], name="as_of_ts")
    return pnl.assign(position=pos, next_hour_return=rows["next_hour_return"].to_numpy(float))


def _close(conn: Connection, symbol: str, at: datetime, settings: PaperSettings) -> float:
    bar = latest_bar(conn, symbol, settings.bar_interval, at, at - settings.bar_max_age)
    if bar is None:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_PRICES,
                              f"no {settings.bar_interval} bar of {symbol} available at {at.isoformat()} "
                              f"(within {settings.bar_max_age}) to size or mark the paper position",
                              targets=[symbol])
    return float(bar.close)


def _order(conn: Connection, target: str, ts: datetime, qty: float, execution: PaperExecution,
           settings: PaperSettings) -> tuple[SimOrder, list[ledger.LedgerFill]]:
    """A market IOC of signed ``qty`` priced by the paper venue at ``ts`` (nothing stored)."""
    side = "buy" if qty > 0 else "sell"
    request = OrderRequest(client_order_id=f"{PARITY_STRATEGY}-{target}-{ts:%Y%m%dT%H%M}", track=execution.track,
                           strategy_id=PARITY_STRATEGY, symbol=target, side=side, qty=abs(qty), order_type="market",
                           limit_price=None, time_in_force="IOC", max_slippage_bps=execution.max_slippage_bps)
    quote = quote_now(conn, request, ts, settings)
    if quote is None:
        return SimOrder(ts, side, abs(qty), 0.0, None, None, None, "no book or bar available: rejected"), []
    sign = request.sign
    fills = [ledger.LedgerFill(ts, target, side, q, p, q * p * settings.taker_fee_bps / 1e4,
                               q * (p - quote.reference) * sign) for p, q in quote.takes]
    filled = math.fsum(q for _, q in quote.takes)
    avg = math.fsum(p * q for p, q in quote.takes) / filled if filled > 0 else None
    complete = filled >= abs(qty) * (1 - 1e-9)
    note = ("filled" if complete else
            f"{filled:g} of {abs(qty):g} filled: " + ("max_slippage_bps reached" if quote.cap_blocked
                                                      else "no more liquidity"))
    return SimOrder(ts, side, abs(qty), filled, avg, quote.reference, quote.source, note), fills


def _funding(conn: Connection, target: str, fills: list[ledger.LedgerFill], after: datetime, until: datetime,
             settings: PaperSettings) -> list[ledger.FundingPayment]:
    """``accrue_funding``'s charges for settlements in ``(after, until]``: the quantity held at the
    settlement (a fill at that instant counts) times its mark (else the close then, else the last
    fill price) times the rate."""
    times = [f.ts for f in fills]
    held = [0.0]
    for f in fills:
        held.append(held[-1] + (f.qty if f.side == "buy" else -f.qty))
    out = []
    for ts, _venue, rate, mark in funding_between(conn, target, after, until, settings.funding_venue):
        i = bisect_right(times, ts)
        if i == 0 or abs(held[i]) <= ledger.EPS:
            continue
        if mark is None:
            bar = latest_bar(conn, target, settings.bar_interval, ts, ts - settings.bar_max_age)
            mark = bar.close if bar is not None else fills[i - 1].price
        out.append(ledger.FundingPayment(ts, target, held[i] * mark * rate))
    return out


def paper_hours(url: str, target: str, positions: pd.Series, execution: PaperExecution,
                settings: PaperSettings, include_funding: bool = True) -> tuple[pd.DataFrame, list[SimOrder]]:
    """Paper PnL of the backtest's hourly ``positions`` (index: as_of_ts), per hour, in units of
    the target's capital, and the simulated orders. Hour ``t`` holds the fills at ``t`` and the
    funding in ``(t, t + 1h]``; its PnL is the ledger equity after them marked at the close of
    ``t + 1h`` less the equity after hour ``t - 1h`` marked at the close of ``t``."""
    hours = [pd.Timestamp(t).to_pydatetime() for t in positions.index]
    orders: list[SimOrder] = []
    fills: list[ledger.LedgerFill] = []
    by_hour: dict[datetime, list[ledger.LedgerFill]] = {}
    held, last_w = 0.0, 0.0
    with get_engine(url).connect() as conn:
        closes = {t: _close(conn, target, t, settings) for t in [*hours, hours[-1] + HOUR]}
        for t, unit in zip(hours, positions.to_numpy(float), strict=True):
            w = max(-execution.max_weight, min(execution.max_weight, unit / execution.n_symbols))
            if w == last_w:
                continue
            last_w = w
            delta = w * execution.capital / closes[t] - held
            if abs(delta) < MIN_ORDER_QTY:
                continue
            order, made = _order(conn, target, t, delta, execution, settings)
            orders.append(order)
            fills += made
            by_hour[t] = made
            held += math.fsum(f.qty if f.side == "buy" else -f.qty for f in made)
        payments = (_funding(conn, target, fills, hours[0], hours[-1] + HOUR, settings) if include_funding else [])
    return _ledger_hours(target, hours, closes, by_hour, payments, execution.target_capital), orders


def _ledger_hours(target: str, hours: list[datetime], closes: dict[datetime, float],
                  by_hour: dict[datetime, list[ledger.LedgerFill]], payments: list[ledger.FundingPayment],
                  capital: float) -> pd.DataFrame:
    pos, prev_equity, rows = ledger.Position(target), 0.0, []
    for t in hours:
        made = by_hour.get(t, [])
        paid = [p for p in payments if t < p.ts <= t + HOUR]
        for f in made:
            pos, _ = ledger.apply_fill(pos, f)
        for p in paid:
            pos = ledger.apply_funding(pos, p)
        equity = pos.equity(closes[t + HOUR])
        fees, slip = math.fsum(f.fee for f in made), math.fsum(f.slippage_cost for f in made)
        funding = math.fsum(p.amount for p in paid)
        net = equity - prev_equity
        rows.append({"as_of_ts": t, "gross": (net + fees + slip + funding) / capital, "fees": fees / capital,
                     "slippage": slip / capital, "funding": funding / capital, "net": net / capital,
                     "turnover": math.fsum(f.qty * closes[t] for f in made) / capital,
                     "qty": pos.qty, "weight": pos.qty * closes[t + HOUR] / capital})
        prev_equity = equity
    return pd.DataFrame(rows).set_index(pd.DatetimeIndex([r["as_of_ts"] for r in rows], name="as_of_ts")) \
        .drop(columns="as_of_ts")


def gaps(backtest: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per hour: what each cause adds to ``paper.net - backtest.net`` (they sum to ``gap``)."""
    out = pd.DataFrame({"price": paper["gross"] - backtest["gross"]}, index=backtest.index)
    for cost in ("fees", "slippage", "funding"):
        out[cost] = backtest[cost] - paper[cost]
    out["gap"] = paper["net"] - backtest["net"]
    return out


def _bps(frame: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, float]:
    return {c: float(frame[c].sum() * 1e4) for c in columns}


def _totals(frame: pd.DataFrame) -> dict[str, float]:
    return {**_bps(frame, PARTS), "turnover": float(frame["turnover"].sum())}


def price_detail(backtest: pd.DataFrame, paper: pd.DataFrame) -> dict[str, float]:
    """The price gap in two parts (bps): ``compounding``, the backtest's log return against the
    simple return at the same weight; ``holding``, the rest: paper's constant quantity between
    orders (its weight drifts with the price) and any fill short of the order."""
    r = backtest["next_hour_return"]
    compounding = float((backtest["position"] * (np.expm1(r) - r)).sum() * 1e4)
    total = float((paper["gross"] - backtest["gross"]).sum() * 1e4)
    return {"compounding": compounding, "holding": total - compounding}


def compare(backtest: pd.DataFrame, paper: pd.DataFrame, orders: list[SimOrder], tolerance_bps: float,
            top: int = 5) -> dict[str, Any]:
    """Totals both ways, the divergence by cause, and the ``top`` hours of largest gap."""
    g = gaps(backtest, paper)
    divergence = float(g["gap"].sum() * 1e4)
    by_ts = {pd.Timestamp(o.ts): o for o in orders}
    largest = []
    size = g["gap"].abs()
    for ts in size[size > 0].sort_values(ascending=False, kind="stable").index[:top]:
        causes = {c: float(g.at[ts, c] * 1e4) for c in CAUSES}
        order = by_ts.get(pd.Timestamp(ts))
        largest.append({"as_of_ts": ts, "gap_bps": float(g.at[ts, "gap"] * 1e4),
                        "cause": max(causes, key=lambda c: abs(causes[c])), "causes_bps": causes,
                        "backtest_position": float(backtest.at[ts, "position"]),
                        "paper_weight": float(paper.at[ts, "weight"]), "order": order})
    filled = [o for o in orders if o.filled >= o.qty * (1 - 1e-9)]
    out: dict[str, Any] = json_safe({
        "unit": "bps of the target's capital (capital_usd / n_symbols); backtest in log-return units, paper "
                "in USD from the ledger",
        "hours": len(g), "totals_bps": {"backtest": _totals(backtest), "paper": _totals(paper)},
        "divergence_bps": divergence, "divergence_by_cause_bps": _bps(g, CAUSES),
        "price_detail_bps": price_detail(backtest, paper),
        "tolerance_bps": tolerance_bps, "within_tolerance": bool(abs(divergence) <= tolerance_bps),
        "orders": {"sent": len(orders), "filled": len(filled),
                   "partial": sum(1 for o in orders if 0 < o.filled < o.qty * (1 - 1e-9)),
                   "unfilled": sum(1 for o in orders if o.filled <= 0),
                   "by_source": {s: sum(1 for o in orders if o.source == s) for s in ("book", "bar")}},
        "largest_hours": largest,
    })
    return out


def check(url: str, rep: Replay, params: BacktestParams, target: str, execution: PaperExecution,
          settings: PaperSettings, tolerance_bps: float, top: int = 5) -> dict[str, Any]:
    """The parity report of ``target`` over the replayed window (see the module docstring)."""
    bt = backtest_hours(rep, params, target)
    paper, orders = paper_hours(url, target, bt["position"], execution, settings, params.include_funding)
    report = compare(bt, paper, orders, tolerance_bps, top)
    costs = {"backtest": {"fee_bps": params.fee_bps, "slippage_bps": params.slippage_bps},
             "paper": {"taker_fee_bps": settings.taker_fee_bps, "half_spread_bps": settings.half_spread_bps,
                       "impact_bps": settings.impact_bps, "max_slippage_bps": execution.max_slippage_bps}}
    head = {"target": target, "model_name": params.model_name, "model_version": params.model_version,
            "horizon": params.horizon, "sizing": params.sizing, "start": params.start, "end": params.end,
            "input_digest": rep.input_digest, "capital_usd": execution.capital, "n_symbols": execution.n_symbols,
            "target_capital_usd": execution.target_capital}
    out: dict[str, Any] = json_safe({**head, "costs": costs, **report})
    return out


def default_window(url: str, target: str, days: float, track: str = "liquid") -> tuple[datetime, datetime]:
    """The last ``days`` of the target's stored snapshots: ``[newest - days, newest)``."""
    t = tables.feature_snapshots
    with get_engine(url).connect() as conn:
        newest = conn.execute(select(t.c.as_of_ts).where(t.c.track == track, t.c.target == target)
                              .order_by(t.c.as_of_ts.desc()).limit(1)).scalar()
    if newest is None:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_FEATURES, f"no feature snapshots of {target}",
                              targets=[target])
    end = pd.Timestamp(newest).tz_localize("UTC") if pd.Timestamp(newest).tzinfo is None \
        else pd.Timestamp(newest).tz_convert("UTC")
    return (end - pd.Timedelta(days=days)).to_pydatetime(), end.to_pydatetime()


__all__ = ["PaperExecution", "SimOrder", "backtest_hours", "check", "compare", "default_window", "gaps",
           "paper_hours", "price_detail"]
