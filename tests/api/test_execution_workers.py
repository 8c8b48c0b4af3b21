"""Two API workers (two apps: two processes' worth of locks and services) trading one strategy on
one warehouse: the strategy's lock in the warehouse keeps a risk check and the order it allows
atomic across them, on SQLite (a file lock) and PostgreSQL (an advisory lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from omniwatch.operations import data_clock
from omniwatch.trading import ledger
from omniwatch.trading.locks import StrategyBusy, strategy_lock

from .conftest import AUTH, client_for

P = "/api/v2"
VENUE_DELAY_S = 0.4


class SlowVenue:
    """The paper venue answering after a delay: the window in which a second worker, without the
    warehouse lock, would check risk against a book that does not hold the first order yet."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.venue = inner.name, inner.venue

    def submit(self, request, now):
        time.sleep(VENUE_DELAY_S)
        return self.inner.submit(request, now)

    def __getattr__(self, name):
        if name == "inner":  # not set yet (a copy): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


@contextmanager
def held_elsewhere(url: str, strategy_id: str) -> Iterator[threading.Event]:
    """Another process (a thread with its own lock handle) holds ``strategy_id``'s warehouse lock
    until the yielded event is set, or the block ends."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with strategy_lock(url, "liquid", strategy_id):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        yield release
    finally:
        release.set()
        thread.join()


def test_two_workers_cannot_both_pass_a_limit_only_one_order_fits(own_warehouse):
    url = own_warehouse.warehouse_url
    price = ledger.latest_closes(url, ["BTC"], data_clock(url))["BTC"]
    qty = 0.001
    limits = {"liquid:race": {"max_gross_exposure_usd": qty * price * 1.5}}  # one order fits, two do not
    with client_for(own_warehouse, risk_limits=limits) as a, client_for(own_warehouse, risk_limits=limits) as b:
        for c in (a, b):
            adapters = c.app.state.services.execution.executor.adapters
            adapters["paper"] = SlowVenue(adapters["paper"])
        body = {"symbol": "BTC", "side": "buy", "qty": qty, "strategy_id": "race"}
        start = threading.Barrier(2)

        def send(c, key):
            start.wait()
            return c.post(f"{P}/execution/orders", json={**body, "client_order_id": key}, headers=AUTH)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(send, (a, b), ("race-a", "race-b")))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 423], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 423).json()
    assert refused["code"] == "max_gross_exposure"
    book = ledger.positions(url, "liquid", "race")
    assert book["BTC"].qty == pytest.approx(qty)


def test_a_lock_held_past_the_wait_limit_is_strategy_busy_and_other_strategies_go_on(own_warehouse):
    url = own_warehouse.warehouse_url
    with held_elsewhere(url, "busy"):
        began = time.monotonic()
        with pytest.raises(StrategyBusy, match="liquid:busy"), strategy_lock(url, "liquid", "busy", timeout_s=0.3):
            pass
        assert 0.25 <= time.monotonic() - began < 5
        with strategy_lock(url, "liquid", "other", timeout_s=0.3):  # another strategy is not blocked
            pass
        with client_for(own_warehouse) as c:
            c.app.state.services.execution.lock_timeout_s = 0.3
            r = c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.001,
                                                      "strategy_id": "busy"}, headers=AUTH)
        assert r.status_code == 503 and r.json()["code"] == "strategy_busy", r.text
    with strategy_lock(url, "liquid", "busy", timeout_s=1):  # freed with its holder
        pass


def test_a_worker_waiting_for_one_strategy_still_serves_the_others(own_home):
    """The warehouse lock is taken before the process's decision lock: while a request waits for a
    strategy another process is deciding, this worker still trades other strategies."""
    with held_elsewhere(own_home.warehouse_url, "contended") as release, client_for(own_home) as c, \
            ThreadPoolExecutor(1) as pool:
        order = {"symbol": "BTC", "side": "buy", "qty": 0.001}
        waiting = pool.submit(c.post, f"{P}/execution/orders", json={**order, "strategy_id": "contended"},
                              headers=AUTH)
        time.sleep(0.5)  # the contended request is now waiting for the warehouse lock
        assert not waiting.done()
        began = time.monotonic()
        free = c.post(f"{P}/execution/orders", json={**order, "strategy_id": "free"}, headers=AUTH)
        took = time.monotonic() - began
        assert free.status_code == 200 and took < 5, (free.text, took)
        assert not waiting.done()
        release.set()
        assert waiting.result(timeout=30).status_code == 200


def test_many_strategies_at_once_do_not_exhaust_the_warehouse_pool(own_warehouse):
    """Twenty requests for twenty strategies at once: each holds its strategy's lock while it waits
    for its turn in the process. On PostgreSQL those locks live on connections of their own, not
    the warehouse pool's 15, or the request whose turn it is could not get one (a 30 s pool
    timeout, then a 500)."""
    with client_for(own_warehouse) as c, ThreadPoolExecutor(20) as pool:
        start = threading.Barrier(20)

        def send(i: int):
            start.wait()
            return c.post(f"{P}/execution/orders", json={"symbol": "BTC", "side": "buy", "qty": 0.001,
                                                         "strategy_id": f"many-{i}"}, headers=AUTH)

        began = time.monotonic()
        answers = list(pool.map(send, range(20)))
        took = time.monotonic() - began
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers if r.status_code != 200][:2]
    assert took < 20, took


def test_requests_of_one_strategy_queue_in_the_process_and_leave_no_turn_behind(own_home):
    """Within one process, a strategy's requests wait for their turn on an in-process lock (one of
    them at a time waits for the warehouse lock, instead of all polling it); a wait past the limit is
    strategy_busy, and a strategy's turn is dropped once nobody holds or waits for it (a fresh
    strategy per request must not grow the process). The queue is the process's own: one backend
    suffices."""
    with client_for(own_home) as c, ThreadPoolExecutor(2) as pool:
        execution = c.app.state.services.execution
        execution.executor.adapters["paper"] = SlowVenue(execution.executor.adapters["paper"])
        order = {"symbol": "BTC", "side": "buy", "qty": 0.001, "strategy_id": "queued"}
        first = pool.submit(c.post, f"{P}/execution/orders", json=order, headers=AUTH)
        time.sleep(0.15)                       # the first is deciding (the venue answers after 0.4 s)
        execution.lock_timeout_s = 0.1
        second = c.post(f"{P}/execution/orders", json=order, headers=AUTH)
        assert second.status_code == 503 and second.json()["code"] == "strategy_busy", second.text
        assert "another request of this process" in second.json()["detail"]
        assert first.result(timeout=30).status_code == 200
        execution.lock_timeout_s = 30.0
        answers = list(pool.map(lambda i: c.post(f"{P}/execution/orders", json={**order, "strategy_id": f"q-{i}"},
                                                 headers=AUTH), range(4)))
        assert [r.status_code for r in answers] == [200] * 4
        assert len(execution._turns) == 0
