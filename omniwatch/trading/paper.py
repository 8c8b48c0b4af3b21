"""The paper venue: an :class:`ExecutionAdapter` that fills orders against stored market data.

What fills, at what price (also in the README, in the style of freqtrade's dry-run notes):
- **Market orders** walk the newest stored L2 book available at ``now`` and at most
  ``book_max_age`` old, level by level, at each level's price (taker). Without such a book they
  fill at the newest bar close available at ``now`` (at most ``bar_max_age`` old) moved against
  the order by ``half_spread_bps + impact_bps * sqrt(notional / hourly dollar volume)``: half a
  spread for crossing it, plus the square-root market-impact law (impact grows with the square
  root of the order's share of volume; Almgren et al. 2005, the usual choice when only bars are
  known). The hourly dollar volume is the mean ``close * volume`` of the last ``volume_bars`` bars.
  A market order never rests: what cannot fill now is canceled.
- **Limit orders** take what is marketable now the same way, never beyond the limit. A GTC rest
  waits as ``accepted``; each ``get`` replays it over the books and bars stored since, filling at
  the limit price as maker when a book offers liquidity at or through it, or when a bar that
  opened after the order touches it (buy: low <= limit; sell: high >= limit; the whole rest fills).
  IOC fills what it can now and cancels the rest; FOK fills everything now or nothing (canceled).
- **max_slippage_bps** bounds every fill price to the reference price (book mid, or bar close)
  moved by the cap: levels beyond it are not taken, the bar model fills only the quantity whose
  impact stays within it, and an order that can fill nothing within the cap is rejected.
- **Fees**: ``taker_fee_bps`` / ``maker_fee_bps`` of notional, in USD.
- Only rows whose ``available_time`` is at or before ``now`` are read, and the venue keeps its own
  record of each order (``paper_orders``), so the same stored data always gives the same fills.
"""

from __future__ import annotations

import math
import uuid
from bisect import bisect_right
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, select

from omniwatch.trading import ledger, store
from omniwatch.trading.orders import (
    FillReport,
    OrderRequest,
    OrderStatus,
    UnknownVenueOrder,
    VenueReport,
    as_utc,
)
from omniwatch.trading.paper_market import (
    Bar,
    Book,
    bars_between,
    books_between,
    funding_between,
    hourly_dollar_volume,
    latest_bar,
    latest_book,
)
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import reading, transaction
from omniwatch.warehouse.upsert import insert_new

S = OrderStatus
EPS = 1e-12
NAMESPACE = uuid.UUID("0b1c5e0e-8f59-4a4e-9d8e-5a7f7d3c2b11")


class PaperSettings(BaseSettings):
    """The paper venue's costs and data-age limits (``OMNIWATCH_PAPER_*``). Fee and spread defaults
    match the backtest's 5 bps fee and 5 bps slippage per unit of turnover, so the two agree."""

    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_PAPER_", extra="ignore", frozen=True)

    taker_fee_bps: float = Field(default=5.0, ge=0)
    maker_fee_bps: float = Field(default=2.5, ge=0)
    half_spread_bps: float = Field(default=2.5, ge=0, description="bar model: cost of crossing half the spread")
    impact_bps: float = Field(default=10.0, ge=0, description="bar model: impact of trading one hour's volume")
    volume_bars: int = Field(default=24, ge=1, description="bars averaged for the hourly dollar volume")
    bar_interval: str = "1h"
    book_max_age: timedelta = timedelta(minutes=5)
    bar_max_age: timedelta = timedelta(hours=2)
    funding_venue: str | None = Field(default=None, description="funding_rates venue; None: first by name")


Take = tuple[float, float]   # (price, qty)


@dataclass(frozen=True)
class Quote:
    """What the venue could do for an order at one instant."""

    takes: tuple[Take, ...]
    reference: float
    cap_blocked: bool          # the slippage cap, not the limit or the depth, stopped the fill
    source: str                # book | bar


def cap_price(side: str, reference: float, cap_bps: float | None) -> float | None:
    if cap_bps is None:
        return None
    return reference * (1 + (1 if side == "buy" else -1) * cap_bps / 1e4)


def _beyond(side: str, price: float, bound: float | None) -> bool:
    return bound is not None and (price - bound) * (1 if side == "buy" else -1) > 1e-9 * bound


def walk_book(request: OrderRequest, book: Book, qty: float) -> Quote:
    """Take levels best first up to ``qty``, never past the limit or the slippage cap."""
    reference = book.mid
    assert reference is not None
    cap = cap_price(request.side, reference, request.max_slippage_bps)
    takes: list[Take] = []
    left, blocked = qty, False
    for price, size in book.opposite(request.side):
        if left <= EPS or _beyond(request.side, price, request.limit_price):
            break
        if _beyond(request.side, price, cap):
            blocked = True
            break
        take = min(size, left)
        takes.append((price, take))
        left -= take
    return Quote(tuple(takes), reference, blocked, "book")


def bar_slippage_bps(notional: float, dollar_volume: float, settings: PaperSettings) -> float:
    """Half spread plus square-root impact; with no volume stored, impact as for one hour's volume."""
    share = notional / dollar_volume if dollar_volume > 0 else 1.0
    return settings.half_spread_bps + settings.impact_bps * math.sqrt(share)


def fill_at_bar(request: OrderRequest, bar: Bar, dollar_volume: float, qty: float, settings: PaperSettings) -> Quote:
    """One fill at the bar close moved by the slippage model; with a cap, only the quantity whose
    slippage stays within it; with a limit, nothing unless the price is within the limit."""
    close, cap, blocked = bar.close, request.max_slippage_bps, False
    slip = bar_slippage_bps(qty * close, dollar_volume, settings)
    if cap is not None and slip > cap:
        blocked = True
        room = cap - settings.half_spread_bps
        if room < 0 or settings.impact_bps <= 0 or dollar_volume <= 0:
            return Quote((), close, True, "bar")
        qty = min(qty, dollar_volume / close * (room / settings.impact_bps) ** 2)
        slip = bar_slippage_bps(qty * close, dollar_volume, settings)
    price = close * (1 + (1 if request.side == "buy" else -1) * slip / 1e4)
    if qty <= EPS or _beyond(request.side, price, request.limit_price):
        return Quote((), close, blocked, "bar")
    return Quote(((price, qty),), close, blocked, "bar")


def quote_now(conn: Connection, request: OrderRequest, now: datetime, settings: PaperSettings) -> Quote | None:
    """The order's immediate (taker) fills at ``now``: the book if fresh, else the bar; None when
    neither is stored recently enough."""
    book = latest_book(conn, request.symbol, now, now - settings.book_max_age)
    if book is not None:
        return walk_book(request, book, request.qty)
    bar = latest_bar(conn, request.symbol, settings.bar_interval, now, now - settings.bar_max_age)
    if bar is None:
        return None
    volume = hourly_dollar_volume(conn, request.symbol, settings.bar_interval, now, settings.volume_bars)
    return fill_at_bar(request, bar, volume, request.qty, settings)


def resting_fills(conn: Connection, request: OrderRequest, bound: float, since: datetime, until: datetime,
                  qty: float, interval: str) -> list[tuple[datetime, str, float]]:
    """(time, source id, qty) a resting limit order at ``bound`` gets from data stored in
    ``(since, until]``: a book's size at or through the bound, or the whole rest on a bar touch."""
    events: list[tuple[datetime, int, Book | Bar]] = [(b.ts, 0, b) for b in books_between(conn, request.symbol,
                                                                                          since, until)]
    events += [(b.ts, 1, b) for b in bars_between(conn, request.symbol, interval, since, until)]
    out, left = [], qty
    for ts, kind, ev in sorted(events, key=lambda e: (e[0], e[1])):
        if left <= EPS:
            break
        if isinstance(ev, Book):
            size = sum(s for p, s in ev.opposite(request.side) if not _beyond(request.side, p, bound))
            take = min(size, left)
        else:
            touched = ev.low <= bound if request.side == "buy" else ev.high >= bound
            take = left if touched else 0.0
        if take > EPS:
            out.append((ts, f"m{kind}-{int(ts.timestamp() * 1000)}", take))
            left -= take
    return out


class PaperAdapter:
    """Paper execution over the warehouse at ``url`` (see the module docstring for the rules)."""

    name = "paper"
    venue = "paper"
    in_warehouse = True  # its records live in the warehouse: an order and its fills commit together

    def __init__(self, url: str, settings: PaperSettings | None = None):
        self.url = url
        self.settings = settings or PaperSettings()

    @staticmethod
    def venue_order_id(client_order_id: str) -> str:
        return f"paper-{uuid.uuid5(NAMESPACE, client_order_id)}"

    def submit(self, order: OrderRequest, now: datetime) -> VenueReport:
        """Record the order as the venue received it (once per client order id) and answer."""
        voi = self.venue_order_id(order.client_order_id)
        submitted = as_utc(now)
        row = {"venue_order_id": voi, "client_order_id": order.client_order_id, "request": asdict(order),
               "submitted_at": submitted}
        with transaction(self.url) as conn:
            new = insert_new(conn, tables.paper_orders, row, key=["client_order_id"])
        if new:  # the venue's record is this request now: no need to read it back
            return self._replay(voi, order, submitted, submitted, False)
        return self.get(voi, now)  # seen before (a reconcile): the stored request and time answer

    def get(self, venue_order_id: str, now: datetime) -> VenueReport:
        request, submitted, canceled = self._load(venue_order_id)
        until = min(as_utc(now), canceled) if canceled else as_utc(now)
        return self._replay(venue_order_id, request, submitted, until, canceled is not None)

    def cancel(self, venue_order_id: str, now: datetime) -> VenueReport:
        request, submitted, canceled = self._load(venue_order_id)
        if canceled is None:
            report = self._replay(venue_order_id, request, submitted, as_utc(now), False)
            if report.status in (S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED):
                return report   # too late: the venue had already finished it
            t = tables.paper_orders
            with transaction(self.url) as conn:
                conn.execute(t.update().where(t.c.venue_order_id == venue_order_id, t.c.canceled_at.is_(None))
                             .values(canceled_at=as_utc(now)))
        return self.get(venue_order_id, now)

    def _load(self, venue_order_id: str) -> tuple[OrderRequest, datetime, datetime | None]:
        t = tables.paper_orders
        with reading(self.url) as conn:
            row = conn.execute(select(t).where(t.c.venue_order_id == venue_order_id)).mappings().first()
        if row is None:
            raise UnknownVenueOrder(venue_order_id)
        return OrderRequest(**row["request"]), row["submitted_at"], row["canceled_at"]

    def _fill(self, voi: str, tag: str, ts: datetime, price: float, qty: float, maker: bool) -> FillReport:
        bps = self.settings.maker_fee_bps if maker else self.settings.taker_fee_bps
        return FillReport(f"{voi}:{tag}", ts, qty, price, qty * price * bps / 1e4, "maker" if maker else "taker")

    def _replay(self, voi: str, request: OrderRequest, submitted: datetime, until: datetime,
                canceled: bool) -> VenueReport:
        """The order's whole history from ``submitted`` to ``until``, recomputed from stored data."""
        with reading(self.url) as conn:
            quote = quote_now(conn, request, submitted, self.settings)
            if quote is None:
                return VenueReport(voi, S.REJECTED, (), f"no book or bar of {request.symbol} available at "
                                   f"{submitted.isoformat()}")
            fills = [self._fill(voi, f"t{i}", submitted, p, q, False) for i, (p, q) in enumerate(quote.takes)]
            done = math.fsum(q for _, q in quote.takes)
            complete = done >= request.qty * (1 - 1e-9)
            ref = quote.reference
            cap_note = f"max_slippage_bps {request.max_slippage_bps} reached at {quote.source} reference {ref:g}"
            if complete:
                return VenueReport(voi, S.FILLED, tuple(fills), "", ref)
            if request.time_in_force == "FOK":
                return VenueReport(voi, S.REJECTED if quote.cap_blocked else S.CANCELED, (), (
                    cap_note if quote.cap_blocked else f"FOK: {done:g} of {request.qty:g} available") , ref)
            if request.order_type == "market" or request.time_in_force == "IOC":
                if not fills:
                    status, why = (S.REJECTED, cap_note) if quote.cap_blocked else (S.CANCELED, "nothing to take")
                    return VenueReport(voi, status, (), why, ref)
                why = cap_note if quote.cap_blocked else "the rest found no liquidity"
                return VenueReport(voi, S.CANCELED, tuple(fills), f"{done:g} of {request.qty:g} filled; {why}", ref)
            bound = self._resting_bound(request, ref)
            for ts, tag, q in resting_fills(conn, request, bound, submitted, until, request.qty - done,
                                             self.settings.bar_interval):
                fills.append(self._fill(voi, tag, ts, bound, q, True))
                done += q
        if done >= request.qty * (1 - 1e-9):
            return VenueReport(voi, S.FILLED, tuple(fills), "", ref)
        if canceled:
            return VenueReport(voi, S.CANCELED, tuple(fills), "canceled by request", ref)
        return VenueReport(voi, S.PARTIALLY_FILLED if fills else S.ACCEPTED, tuple(fills), "resting", ref)

    @staticmethod
    def _resting_bound(request: OrderRequest, reference: float) -> float:
        """A resting order's price: its limit, pulled in to the slippage cap of its reference."""
        assert request.limit_price is not None
        cap = cap_price(request.side, reference, request.max_slippage_bps)
        if cap is None:
            return request.limit_price
        return min(request.limit_price, cap) if request.side == "buy" else max(request.limit_price, cap)


def accrue_funding(url: str, track: str, strategy_id: str, now: datetime,
                   settings: PaperSettings | None = None) -> int:
    """Charge every funding settlement known at ``now`` to the position held at its time (fills at
    that instant count), perpetual convention: ``amount = qty * mark * rate``, so a long pays a
    positive rate and a short receives it. The mark is the settlement's mark price, else the newest
    bar close then, else the last fill price. Idempotent per settlement; returns payments added."""
    settings = settings or PaperSettings()
    now = as_utc(now)
    payments: list[dict[str, Any]] = []
    with reading(url) as conn:
        events = ledger.read_events(conn, track, strategy_id, until=now)
        fills = [e for e in events if isinstance(e, ledger.LedgerFill)]
        charged = {(e.symbol, e.ts) for e in events if isinstance(e, ledger.FundingPayment)}
        for symbol in sorted({f.symbol for f in fills}):
            mine = [f for f in fills if f.symbol == symbol]
            times = [f.ts for f in mine]
            held = [0.0]
            for f in mine:
                held.append(held[-1] + (f.qty if f.side == "buy" else -f.qty))
            # Settlements before the first fill find no position: read from it on (a settlement at
            # the fill's instant counts), and skip those already charged.
            since = times[0] - timedelta(microseconds=1)
            for ts, venue, rate, mark in funding_between(conn, symbol, since, now, settings.funding_venue):
                i = bisect_right(times, ts)
                qty = held[i]
                if i == 0 or abs(qty) <= EPS or (symbol, ts) in charged:
                    continue
                if mark is None:
                    mark = ledger.latest_closes(url, [symbol], ts).get(symbol, mine[i - 1].price)
                payments.append({"track": track, "strategy_id": strategy_id, "symbol": symbol, "funding_time": ts,
                                 "venue": venue, "funding_rate": rate, "mark_price": mark, "position_qty": qty,
                                 "amount": qty * mark * rate})
    return store.record_funding(url, payments)
