"""Orders: the types every adapter and caller shares, and the order state machine.

The states follow NautilusTrader's explicit order states, reduced to what a paper fill simulator
and Coinbase Advanced Trade can report. A local refusal (risk) is ``denied``; a venue's refusal
is ``rejected``: the two are different facts and the audit keeps them apart. Only the edges in
:data:`LEGAL` exist; anything else raises :class:`IllegalTransition`, so a report that would move
an order backwards (a late "open" after a fill) or out of a terminal state is caught, not stored.

Every transition is appended to the order's ``lifecycle`` as ``{ts, from, to, reason}``; the list
is never rewritten and its times never go backwards (a venue clock behind ours is clamped to the
last event, so the order of events stays the order we learnt them in).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol


class OrderStatus(StrEnum):
    INITIALIZED = "initialized"
    DENIED = "denied"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


S = OrderStatus
TERMINAL = frozenset({S.DENIED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED})
OPEN = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED})

LEGAL: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.DENIED, S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.FILLED, S.PARTIALLY_FILLED, S.CANCELED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    **{t: frozenset() for t in TERMINAL},
}

# Fill quantities are floats summed from venue strings: a relative tolerance decides "all of it".
QTY_RTOL = 1e-9


class OrderError(Exception):
    """Base of the typed order errors."""


class IllegalTransition(OrderError):
    def __init__(self, order_id: str, from_: OrderStatus, to: OrderStatus, reason: str = ""):
        super().__init__(f"order {order_id}: {from_} -> {to} is not a legal transition"
                         + (f" ({reason})" if reason else ""))
        self.order_id, self.from_, self.to = order_id, from_, to


class Overfill(OrderError):
    """A venue reported more filled quantity than the order asked for."""


class VenueUnavailable(Exception):
    """Timeouts or 5xx after retries: the order's state at the venue is unknown (it stays
    ``submitted``) until ``get`` answers. Never a sentinel report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownVenueOrder(LookupError):
    """``get``/``cancel`` of a venue order id the venue does not know."""


@dataclass(frozen=True)
class OrderRequest:
    """What sizing or a client asks for, before any venue."""

    client_order_id: str
    track: str
    strategy_id: str
    symbol: str
    side: str
    qty: float
    order_type: str
    limit_price: float | None
    time_in_force: str
    max_slippage_bps: float | None
    signal_id: str | None = None
    decision_id: str | None = None

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, not {self.side!r}")
        if not (self.qty > 0 and math.isfinite(self.qty)):
            raise ValueError(f"qty must be a positive number, not {self.qty!r}")
        if self.order_type not in ("market", "limit"):
            raise ValueError(f"order_type must be market or limit, not {self.order_type!r}")
        if self.order_type == "limit" and not (self.limit_price and self.limit_price > 0):
            raise ValueError("a limit order needs a positive limit_price")
        if self.time_in_force not in ("GTC", "IOC", "FOK"):
            raise ValueError(f"time_in_force must be GTC, IOC or FOK, not {self.time_in_force!r}")
        if self.max_slippage_bps is not None and self.max_slippage_bps < 0:
            raise ValueError("max_slippage_bps must be >= 0")

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


@dataclass(frozen=True)
class FillReport:
    """One execution as a venue (or the paper adapter) reports it; ``fee`` in USD, >= 0."""

    venue_fill_id: str
    ts: datetime
    qty: float
    price: float
    fee: float
    liquidity: str


@dataclass(frozen=True)
class VenueReport:
    """The venue's answer to submit/get/cancel; ``fills`` are all fills known so far."""

    venue_order_id: str | None
    status: OrderStatus
    fills: tuple[FillReport, ...]
    reason: str
    reference_price: float | None = None


class ExecutionAdapter(Protocol):
    """A venue. One that keeps its state in the warehouse (the paper venue) sets ``in_warehouse``
    True: an order's record, the venue's answer and its fills are then written as one transaction
    (``omniwatch.warehouse.engine.unit_of_work``). A real venue must not: its order is committed
    as ``submitted`` before the venue hears of it, so a crash never loses one."""

    name: str
    venue: str

    def submit(self, order: OrderRequest, now: datetime) -> VenueReport: ...

    def get(self, venue_order_id: str, now: datetime) -> VenueReport: ...

    def cancel(self, venue_order_id: str, now: datetime) -> VenueReport: ...


@dataclass(frozen=True)
class LifecycleEvent:
    ts: datetime
    from_: OrderStatus | None
    to: OrderStatus
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"ts": self.ts.isoformat(), "from": self.from_.value if self.from_ else None,
                "to": self.to.value, "reason": self.reason}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LifecycleEvent:
        return cls(datetime.fromisoformat(raw["ts"]), OrderStatus(raw["from"]) if raw["from"] else None,
                   OrderStatus(raw["to"]), raw.get("reason", ""))


@dataclass(frozen=True)
class Order:
    """An order and everything known about it; changed only through this module's functions."""

    order_id: str
    request: OrderRequest
    adapter: str
    venue: str
    status: OrderStatus
    lifecycle: tuple[LifecycleEvent, ...]
    fills: tuple[FillReport, ...] = ()
    venue_order_id: str | None = None
    reference_price: float | None = None
    model_version: str | None = None
    snapshot_id: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def filled_qty(self) -> float:
        return math.fsum(f.qty for f in self.fills)

    @property
    def avg_fill_price(self) -> float | None:
        qty = self.filled_qty
        return math.fsum(f.qty * f.price for f in self.fills) / qty if qty > 0 else None

    @property
    def fee(self) -> float:
        return math.fsum(f.fee for f in self.fills)

    @property
    def updated_at(self) -> datetime:
        return self.lifecycle[-1].ts if self.lifecycle else self.created_at

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def as_utc(ts: datetime) -> datetime:
    """``ts`` as aware UTC (a naive time is taken to be UTC, as everywhere in Omniwatch)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def new_order(request: OrderRequest, adapter: str, venue: str, now: datetime, *, order_id: str | None = None,
              model_version: str | None = None, snapshot_id: int | None = None) -> Order:
    """A fresh ``initialized`` order whose lifecycle starts with its creation event."""
    now = as_utc(now)
    return Order(order_id=order_id or str(uuid.uuid4()), request=request, adapter=adapter, venue=venue,
                 status=S.INITIALIZED, lifecycle=(LifecycleEvent(now, None, S.INITIALIZED, "created"),),
                 model_version=model_version, snapshot_id=snapshot_id, created_at=now)


def transition(order: Order, to: OrderStatus, ts: datetime, reason: str = "") -> Order:
    """``order`` moved to ``to``, with the event appended; raises :class:`IllegalTransition`."""
    to = OrderStatus(to)
    if to not in LEGAL[order.status]:
        raise IllegalTransition(order.order_id, order.status, to, reason)
    ts = max(as_utc(ts), order.lifecycle[-1].ts) if order.lifecycle else as_utc(ts)
    return replace(order, status=to, lifecycle=(*order.lifecycle, LifecycleEvent(ts, order.status, to, reason)))


def merge_fills(known: tuple[FillReport, ...], reported: tuple[FillReport, ...]) -> tuple[FillReport, ...]:
    """Known fills plus the reported ones not yet known (by ``venue_fill_id``), in report order."""
    seen = {f.venue_fill_id for f in known}
    out = list(known)
    for f in reported:
        if f.venue_fill_id not in seen:
            seen.add(f.venue_fill_id)
            out.append(f)
    return tuple(out)


def _target(order: Order, report: VenueReport, filled: float) -> OrderStatus:
    """The status the report moves the order to, given the fills it knows of. A venue still saying
    "accepted" while fills exist means partially filled; a non-terminal report whose fills cover
    the whole quantity means filled. "Filled" with no fill listed yet (a venue whose fills lag its
    status) waits as accepted: a terminal order could not take the fills when they come."""
    status = OrderStatus(report.status)
    complete = filled >= order.request.qty * (1 - QTY_RTOL)
    if status == S.FILLED and filled <= 0:
        return S.ACCEPTED if order.status in (S.SUBMITTED, S.ACCEPTED) else order.status
    if status in (S.ACCEPTED, S.PARTIALLY_FILLED) and filled > 0:
        return S.FILLED if complete else S.PARTIALLY_FILLED
    return status


def apply_report(order: Order, report: VenueReport, ts: datetime) -> Order:
    """``order`` after a venue report: new fills added (deduplicated by ``venue_fill_id``), then the
    transition the report implies. A report that only repeats what is known changes nothing; one
    that would move the order backwards (``accepted`` after a partial fill) keeps its status but
    still adds its fills. Raises :class:`IllegalTransition` or :class:`Overfill`."""
    fills = merge_fills(order.fills, report.fills)
    filled = math.fsum(f.qty for f in fills)
    if filled > order.request.qty * (1 + QTY_RTOL):
        raise Overfill(f"order {order.order_id}: fills total {filled} > qty {order.request.qty}")
    target = _target(order, report, filled)
    new_fills = len(fills) > len(order.fills)
    if order.status == S.INITIALIZED:
        raise IllegalTransition(order.order_id, order.status, target, "a venue report before submission")
    updated = replace(order, fills=fills,
                      venue_order_id=report.venue_order_id or order.venue_order_id,
                      reference_price=order.reference_price if order.reference_price is not None
                      else report.reference_price)
    if target == order.status and not (target == S.PARTIALLY_FILLED and new_fills):
        if new_fills and order.is_terminal:
            raise IllegalTransition(order.order_id, order.status, target, "fills after a terminal state")
        return updated
    if target == S.ACCEPTED and order.status == S.PARTIALLY_FILLED:
        return updated  # the venue's "open" lags its own fills: not a step back
    reason = report.reason or (f"{len(fills) - len(order.fills)} new fill(s)" if new_fills else "venue report")
    return transition(updated, target, ts, reason)
