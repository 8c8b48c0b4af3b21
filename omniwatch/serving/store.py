"""Writing predictions (and the signals that cite them) off the request path, in batches.

A request only enqueues its rows; one background thread writes whatever has queued every
``interval_s`` in a single transaction, predictions before the rows that reference them. The
predictions go through the driver's ``executemany`` (SQLite's C loop binds each row and steps
without the GIL), not through SQLAlchemy's per-row Python, so the writer barely competes with the
event loop. ``pending`` is bounded: past ``max_pending`` rows the fast path declines and slow-path
requests wait in ``submit``, so sustained overload slows answers instead of growing memory.
Readers that need a just-made prediction call :meth:`flush` first. A failed batch is logged and
counted (``failures``, shown by /api/v2/health); it is not retried.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

log = logging.getLogger(__name__)
# Tables in foreign-key order: a batch writes the referenced rows first.
ORDER = ("predictions_v2", "signal_candidates")
KEYS = {"signal_candidates": ("strategy_id", "target", "horizon", "as_of_ts")}
ROWS_PER_STATEMENT = 2000  # 11 binds a row: under SQLite's 32,766 and PostgreSQL's 65,535
PREDICTION_COLUMNS = ("prediction_id", "track", "target", "model_name", "model_version", "as_of_ts", "snapshot_id",
                      "train_lineage_id", "infer_lineage_id", "request_key", "horizon_predictions")


def _insert_predictions(conn: Connection, rows: list[dict]) -> None:
    """Multi-row ``INSERT ... VALUES (...), (...)`` through the driver, values in each backend's
    native form (SQLite keeps UTC timestamps as SQLAlchemy does, JSON as text). One statement per
    chunk matters: SQLite releases and re-takes the GIL at every statement step, and a per-row
    ``executemany`` would make the event loop thread give up the GIL once per row."""
    sqlite = conn.dialect.name == "sqlite"
    mark, json_mark = ("?", "?") if sqlite else ("%s", "%s::json")
    one = "(" + ", ".join([mark] * (len(PREDICTION_COLUMNS) - 1) + [json_mark]) + ")"
    head = f"INSERT INTO predictions_v2 ({', '.join(PREDICTION_COLUMNS)}) VALUES "
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[start:start + ROWS_PER_STATEMENT]
        params: list[Any] = []
        for r in part:
            as_of = r["as_of_ts"].strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else r["as_of_ts"]
            params += [r["prediction_id"], r["track"], r["target"], r["model_name"], r["model_version"], as_of,
                       r["snapshot_id"], r["train_lineage_id"], r["infer_lineage_id"], r["request_key"],
                       _json(r["horizon_predictions"])]
        conn.exec_driver_sql(head + ", ".join([one] * len(part)), tuple(params))


def _json(value: Any) -> str:
    """JSON text; the predictor hands over its cached record already serialised."""
    return value if isinstance(value, str) else json.dumps(value)


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
        self.failures = self.pending = 0

    @property
    def saturated(self) -> bool:
        return self.pending >= self.max_pending

    def submit(self, table: str, rows: Sequence[dict[str, Any]], wait: bool = False) -> None:
        """Queue rows; with ``wait`` (thread-pool callers), block while the queue is full."""
        if table not in ORDER:
            raise ValueError(f"the prediction writer does not write {table}")
        self._ensure_thread()
        if wait and self.saturated:
            with self._room:
                self._room.wait_for(lambda: not self.saturated, timeout=30)
        with self._room:
            self.pending += len(rows)
        self._queue.put((table, list(rows)))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted before this call is written (or failed)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self.flush()
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="omniwatch-prediction-writer",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not isinstance(first, threading.Event) and self.interval_s > 0:
                time.sleep(self.interval_s)  # let concurrent requests join this batch
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

    def _write(self, batch: list[tuple[str, list[dict]]]) -> None:
        grouped: dict[str, list[dict]] = {t: [] for t in ORDER}
        for table, rows in batch:
            grouped[table].extend(rows)
        n = sum(len(r) for r in grouped.values())
        try:
            with get_engine(self.database_url).begin() as conn:
                if grouped["predictions_v2"]:
                    _insert_predictions(conn, grouped["predictions_v2"])
                for name in ORDER[1:]:
                    if grouped[name]:
                        # Later requests win on a natural key (the newest signal of an hour).
                        last = {tuple(r[c] for c in KEYS[name]): r for r in grouped[name]}
                        grouped[name] = list(last.values())
                        upsert_rows(conn, tables.metadata.tables[name], grouped[name], KEYS[name])
            for name, rows in grouped.items():
                self.written[name] += len(rows)
        except Exception:  # the request already answered; count it so health shows the loss
            log.exception("writing %d prediction-side rows failed", n)
            self.failures += n
        finally:
            with self._room:
                self.pending -= n
                self._room.notify_all()


def load_prediction(database_url: str, prediction_id: str) -> dict | None:
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        row = conn.execute(select(t).where(t.c.prediction_id == prediction_id)).mappings().first()
    return dict(row) if row is not None else None
