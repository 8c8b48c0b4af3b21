"""The order state machine: legal edges only, fills deduplicated and bounded, lifecycle append-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniwatch.trading.orders import (
    LEGAL,
    TERMINAL,
    FillReport,
    IllegalTransition,
    OrderError,
    OrderRequest,
    OrderStatus,
    Overfill,
    VenueReport,
    apply_report,
    new_order,
    transition,
)

S = OrderStatus
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
REPORTABLE = [S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED]


def _submitted(make_request, qty: float = 1.0):
    order = new_order(make_request(qty=qty), "paper", "paper", T0)
    return transition(order, S.SUBMITTED, T0, "sent")


def _fill(fid: str, qty: float, price: float = 100.0, minutes: int = 0) -> FillReport:
    return FillReport(fid, T0 + timedelta(minutes=minutes), qty, price, qty * price * 1e-3, "taker")


def test_every_state_has_its_edges_and_terminal_states_have_none():
    assert set(LEGAL) == set(OrderStatus)
    assert all(not LEGAL[t] for t in TERMINAL)
    assert LEGAL[S.INITIALIZED] == {S.DENIED, S.SUBMITTED}
    assert S.SUBMITTED not in LEGAL[S.ACCEPTED]


def test_a_denied_order_cannot_be_submitted(make_request):
    order = transition(new_order(make_request(), "paper", "paper", T0), S.DENIED, T0, "daily_loss_exceeded")
    with pytest.raises(IllegalTransition, match="denied -> submitted"):
        transition(order, S.SUBMITTED, T0)
    assert [(e.from_, e.to, e.reason) for e in order.lifecycle] == [
        (None, S.INITIALIZED, "created"), (S.INITIALIZED, S.DENIED, "daily_loss_exceeded")]


def test_a_report_before_submission_is_illegal(make_request):
    with pytest.raises(IllegalTransition):
        apply_report(new_order(make_request(), "paper", "paper", T0), VenueReport("v", S.ACCEPTED, (), ""), T0)


def test_partial_fills_accumulate_and_repeated_fills_count_once(make_request):
    order = _submitted(make_request, qty=2.0)
    order = apply_report(order, VenueReport("v1", S.ACCEPTED, (), "open", reference_price=99.0), T0)
    a = _fill("f1", 0.5, 100.0)
    order = apply_report(order, VenueReport("v1", S.PARTIALLY_FILLED, (a,), ""), T0 + timedelta(minutes=1))
    b = _fill("f2", 1.5, 104.0, minutes=2)
    # The venue repeats f1 in its cumulative list; a second report of the same list changes nothing.
    order = apply_report(order, VenueReport("v1", S.FILLED, (a, b), ""), T0 + timedelta(minutes=2))
    again = apply_report(order, VenueReport("v1", S.FILLED, (a, b), ""), T0 + timedelta(minutes=3))
    assert again == order
    assert order.status == S.FILLED and order.filled_qty == pytest.approx(2.0)
    assert order.avg_fill_price == pytest.approx((0.5 * 100 + 1.5 * 104) / 2)
    assert order.fee == pytest.approx(0.05 + 0.156)
    assert order.reference_price == 99.0 and order.venue_order_id == "v1"
    assert [e.to for e in order.lifecycle] == [S.INITIALIZED, S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED,
                                               S.FILLED]


def test_an_open_report_with_fills_is_a_partial_fill_and_a_late_open_is_not_a_step_back(make_request):
    order = _submitted(make_request)
    order = apply_report(order, VenueReport("v", S.ACCEPTED, (_fill("f1", 0.4),), ""), T0)
    assert order.status == S.PARTIALLY_FILLED
    late = apply_report(order, VenueReport("v", S.ACCEPTED, (_fill("f1", 0.4),), ""), T0)
    assert late.status == S.PARTIALLY_FILLED and late.lifecycle == order.lifecycle


def test_filled_without_fills_waits_for_them_as_accepted(make_request):
    order = apply_report(_submitted(make_request), VenueReport("v", S.FILLED, (), "done"), T0)
    assert order.status == S.ACCEPTED
    order = apply_report(order, VenueReport("v", S.FILLED, (_fill("f1", 1.0),), ""), T0)
    assert order.status == S.FILLED and order.filled_qty == 1.0


def test_more_fills_than_the_order_is_an_overfill(make_request):
    with pytest.raises(Overfill):
        apply_report(_submitted(make_request), VenueReport("v", S.FILLED, (_fill("a", 0.6), _fill("b", 0.6)), ""),
                     T0)


def test_a_fill_after_cancel_is_refused(make_request):
    order = apply_report(_submitted(make_request), VenueReport("v", S.CANCELED, (), "user"), T0)
    with pytest.raises(IllegalTransition):
        apply_report(order, VenueReport("v", S.CANCELED, (_fill("late", 0.1),), ""), T0)


def test_lifecycle_times_never_go_backwards(make_request):
    order = _submitted(make_request)
    order = transition(order, S.ACCEPTED, T0 - timedelta(hours=1), "venue clock behind")
    assert order.lifecycle[-1].ts == T0


# ----------------------------------------------------------------------------- properties
fill_st = st.builds(
    lambda i, q, p, m: FillReport(f"f{i}", T0 + timedelta(minutes=m), q, p, q * p * 6e-4, "taker"),
    st.integers(0, 8), st.floats(0.01, 0.6), st.floats(50.0, 150.0), st.integers(-30, 300))
report_st = st.builds(lambda status, fills, reason: VenueReport("v", status, tuple(fills), reason),
                      st.sampled_from(REPORTABLE), st.lists(fill_st, max_size=3), st.sampled_from(["", "why"]))


@settings(max_examples=300, deadline=None)
@given(reports=st.lists(st.tuples(report_st, st.integers(-60, 600)), max_size=8), deny=st.booleans())
def test_random_report_sequences_stay_on_the_legal_graph(reports, deny):
    request = OrderRequest("c1", "liquid", "s1", "BTC", "buy", 1.0, "market", None, "IOC", None)
    order = new_order(request, "paper", "paper", T0)
    order = transition(order, S.DENIED if deny else S.SUBMITTED, T0, "")
    history = [order]
    for report, minutes in reports:
        try:
            order = apply_report(order, report, T0 + timedelta(minutes=minutes))
        except OrderError:
            continue  # a refused report leaves the order as it was
        history.append(order)
    for before, after in zip(history, history[1:], strict=False):
        assert after.lifecycle[: len(before.lifecycle)] == before.lifecycle       # append only
        assert {f.venue_fill_id for f in before.fills} <= {f.venue_fill_id for f in after.fills}
        if before.is_terminal:
            assert after.status == before.status and after.fills == before.fills
    events = order.lifecycle
    assert events[0].from_ is None and events[0].to == S.INITIALIZED
    for prev, event in zip(events, events[1:], strict=False):
        assert event.from_ == prev.to and event.to in LEGAL[prev.to]
        assert event.ts >= prev.ts
    assert events[-1].to == order.status
    assert order.filled_qty <= order.request.qty * (1 + 1e-9)
    assert len({f.venue_fill_id for f in order.fills}) == len(order.fills)
    if order.status == S.FILLED:
        assert order.filled_qty > 0
