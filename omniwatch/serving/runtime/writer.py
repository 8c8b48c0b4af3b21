"""Writing predictions (and the signals that cite them) off the request path, in batches.

A request only enqueues its rows; one background thread writes whatever has queued every
``interval_s`` in one transaction, predictions before the rows that reference them: the
predictions as one SQLAlchemy Core ``insert()`` with a list of rows (the driver's executemany),
signals as an upsert on their natural key. ``pending`` is bounded: past ``max_pending`` rows the
fast path declines and slow-path requests wait in ``submit``, so sustained overload slows answers
instead of growing memory. Readers that need a just-made prediction call :meth:`flush` first.
A failed batch is logged, counted, and not retried; ``failing`` holds the last error until a
batch succeeds again, and ``/api/v2/health`` says ``degraded`` meanwhile.

Inside :meth:`PredictionWriter.in_caller` a thread's rows are kept and written by that thread when
the block ends, in one transaction (the enclosing unit of work's when there is one), and a failure
raises :class:`RowsNotStored` to it. ``execution/run`` decides on the signals it has just made:
handing them to the writer thread and waiting for its batch took 40 % of the time the deciding
thread held the decision lock (py-spy, 16 concurrent requests), where the caller writing them
itself costs one statement per table.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine, transaction
from omniwatch.warehouse.upsert import upsert_rows

log = logging.getLogger(__name__)
# Tables in foreign-key order: a batch writes the referenced rows first.
ORDER = ("predictions_v2", "signal_candidates")
KEYS = {"signal_candidates": ("strategy_id", "target", "horizon", "as_of_ts")}
_IN_CALLER: ContextVar[list[tuple[str, list[dict]]] | None] = ContextVar("omniwatch_writer_in_caller", default=None)


class RowsNotStored(RuntimeError):
    """Rows written in the caller (:meth:`PredictionWriter.in_caller`) failed; the message names
    the error's kind and the tables, not the values (other clients' keys and features)."""


class PredictionWriter:
    def __init__(self, database_url: str, interval_s: float = 0.05, max_batch: int = 5000,
                 max_pending: int = 20_000):
        self.database_url, self.interval_s = database_url, interval_s
        self.max_batch, self.max_pending = max_batch, max_pending
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._room = threading.Condition()
        self.written = dict.fromkeys(ORDER, 0)  # rows stored per table
        self.failures = self.pending = 0         # rows lost in failed batches, rows queued
        self.failing: str | None = None          # the last batch's error, until a batch succeeds
        self._hurry = threading.Event()          # set by flush: cut the batching wait short

    @property
    def saturated(self) -> bool:
        return self.pending >= self.max_pending

    def submit(self, table: str, rows: Sequence[dict[str, Any]], wait: bool = False) -> None:
        """Queue rows; with ``wait`` (thread-pool callers), block while the queue is full."""
        if table not in ORDER:
            raise ValueError(f"the prediction writer does not write {table}")
        held = _IN_CALLER.get()
        if held is not None:
            held.append((table, list(rows)))
            return
        self._ensure_thread()
        if wait and self.saturated:
            with self._room:
                self._room.wait_for(lambda: not self.saturated, timeout=30)
        with self._room:
            self.pending += len(rows)
        self._queue.put((table, list(rows)))

    @contextmanager
    def in_caller(self) -> Iterator[None]:
        """Rows this thread submits inside the block are kept, and written by this thread when the
        block ends (not if it raises), in one transaction (:func:`omniwatch.warehouse.engine.transaction`:
        the caller's unit of work when it holds one), instead of queued for the writer thread.
        A failed write raises :class:`RowsNotStored`. No lock is taken while the block runs (a
        scoring that is not cached happens inside it)."""
        held: list[tuple[str, list[dict]]] = []
        token = _IN_CALLER.set(held)
        try:
            yield
        finally:
            _IN_CALLER.reset(token)
        if held:
            self._write_now(held)

    def _write_now(self, batch: list[tuple[str, list[dict]]]) -> None:
        grouped = self._grouped(batch)
        names = ", ".join(name for name in ORDER if grouped[name])
        try:
            with transaction(self.database_url) as conn:
                self._insert(conn, grouped)
        except Exception as exc:
            log.exception("writing %d rows of %s in the caller failed", sum(map(len, grouped.values())), names)
            raise RowsNotStored(f"{type(exc).__name__} writing {names} (see the API log)") from exc
        with self._room:
            for name, rows in grouped.items():
                self.written[name] += len(rows)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted before this call is written (or failed)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()  # a caller waits on these rows (execution/run reads its signals back)
        return done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self.flush()
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="omniwatch-prediction-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not isinstance(first, threading.Event) and self.interval_s > 0:
                self._hurry.wait(self.interval_s)  # let concurrent requests join this batch
            self._hurry.clear()
            items, stop = [first], False
            while len(items) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
            batch = [i for i in items if isinstance(i, tuple)]
            if batch:
                self._write(batch)
            for i in items:
                if isinstance(i, threading.Event):
                    i.set()
            if stop:
                return

    @staticmethod
    def _grouped(batch: list[tuple[str, list[dict]]]) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {t: [] for t in ORDER}
        for table, rows in batch:
            grouped[table].extend(rows)
        # Later requests win on a natural key (the newest signal of an hour).
        grouped["signal_candidates"] = list({tuple(r[c] for c in KEYS["signal_candidates"]): r
                                             for r in grouped["signal_candidates"]}.values())
        return grouped

    @staticmethod
    def _insert(conn: Connection, grouped: dict[str, list[dict]]) -> None:
        if grouped["predictions_v2"]:
            conn.execute(tables.predictions_v2.insert(), grouped["predictions_v2"])
        if grouped["signal_candidates"]:
            upsert_rows(conn, tables.signal_candidates, grouped["signal_candidates"], list(KEYS["signal_candidates"]))

    def _write(self, batch: list[tuple[str, list[dict]]]) -> None:
        grouped = self._grouped(batch)
        n = sum(len(r) for r in grouped.values())
        try:
            with get_engine(self.database_url).begin() as conn:
                self._insert(conn, grouped)
            with self._room:  # request threads count their in-caller writes too
                for name, rows in grouped.items():
                    self.written[name] += len(rows)
            self.failing = None
        except Exception as exc:  # the request already answered; count it so health shows the loss
            log.exception("writing %d prediction-side rows failed", n)
            self.failures += n
            # /health is open: it names the failure's kind and tables; the log holds the statement
            # and its values (other clients' request keys and features).
            tables_hit = ", ".join(name for name in ORDER if grouped.get(name))
            self.failing = f"{type(exc).__name__} writing {tables_hit} (see the API log)"
        finally:
            with self._room:
                self.pending -= n
                self._room.notify_all()


def load_prediction(database_url: str, prediction_id: str) -> dict | None:
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        row = conn.execute(select(t).where(t.c.prediction_id == prediction_id)).mappings().first()
    return dict(row) if row is not None else None
