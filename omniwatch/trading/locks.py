"""One decision at a time per strategy, across every process that trades on one warehouse.

A risk check and the orders it allows must be atomic per track and strategy: two orders that each
fit a gross limit alone must not both pass because two processes checked before either filled.
Inside one API process a lock does that; with several uvicorn workers or API replicas (README
"Going past one machine") the warehouse itself must. :func:`strategy_lock` holds:

- on PostgreSQL, a session-level advisory lock (``pg_advisory_lock``) on a dedicated connection,
  keyed by a hash of ``track|strategy_id``; the server frees it if the process dies, so a crash
  never leaves a strategy locked. Waiting is bounded by ``lock_timeout``. Session locks need a
  session: behind PgBouncer use session pooling, not transaction pooling. If the connection
  breaks while the lock is held, the server frees it at once, and another process may start
  deciding for that strategy before this one has noticed;
- on SQLite (one host by construction), an exclusive file lock (``filelock``: ``flock``) on a
  lock file beside the database, one per strategy; the kernel frees it with the process.

A wait past ``timeout_s`` raises :class:`StrategyBusy` (the API answers 503): another process is
deciding for that strategy and did not finish in time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from omniwatch.warehouse.engine import get_engine

NAMESPACE = "omniwatch-execution"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock wait past lock_timeout
log = logging.getLogger(__name__)


class StrategyBusy(TimeoutError):
    """Another process held the strategy's decision lock past the wait limit."""


def lock_key(track: str, strategy_id: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks (stable across processes and versions)."""
    digest = hashlib.sha256(f"{NAMESPACE}|{track}|{strategy_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def strategy_lock(url: str, track: str, strategy_id: str, timeout_s: float = 30.0) -> Iterator[None]:
    """Hold the warehouse-wide decision lock of ``track``/``strategy_id`` (see the module docstring)."""
    engine = get_engine(url)
    if engine.dialect.name == "postgresql":
        with _advisory(_lock_engine(engine.url.render_as_string(hide_password=False)),
                       lock_key(track, strategy_id), timeout_s, f"{track}:{strategy_id}"):
            yield
        return
    database = make_url(engine.url).database
    if not database or database == ":memory:":  # a private in-memory database: one process by definition
        yield
        return
    try:
        # Polled every 5 ms (filelock's default is 50): the lock changes hands between runs of a
        # few tens of ms, and a slow poll leaves it idle in between.
        held = FileLock(_lock_path(database, track, strategy_id), timeout=timeout_s).acquire(poll_interval=0.005)
    except Timeout as exc:
        raise StrategyBusy(f"strategy {track}:{strategy_id} is being decided by another process (waited "
                           f"{timeout_s:g} s)") from exc
    with held:
        yield


@lru_cache(maxsize=16)
def _lock_engine(url: str) -> Engine:
    """Connections that only hold advisory locks, apart from the warehouse's pool: a request holds
    one while it waits for its turn in the process, and 16 such requests must not take the
    connections the deciding request needs (the warehouse pool has 15). Two stay open; a burst
    opens more and closes them when released."""
    return create_engine(url, pool_size=2, max_overflow=-1, pool_pre_ping=True)


@contextmanager
def _advisory(engine: Engine, key: int, timeout_s: float, name: str) -> Iterator[None]:
    with engine.connect() as conn:
        try:
            with conn.begin():  # lock_timeout for this wait only; the lock itself outlives the transaction
                conn.execute(text(f"SET LOCAL lock_timeout = {max(1, int(timeout_s * 1000))}"))
                conn.execute(select(func.pg_advisory_lock(key)))
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise StrategyBusy(f"strategy {name} is being decided by another process (waited "
                                   f"{timeout_s:g} s)") from exc
            raise
        try:
            yield
        finally:
            try:
                released = conn.execute(select(func.pg_advisory_unlock(key))).scalar()
                conn.commit()
            except BaseException:
                # Unlock failed (the connection broke: the server freed its locks with it, or we
                # were interrupted): never hand this connection back to the pool as if it held none.
                conn.invalidate()
                raise
            if not released:  # the session was reset under us: the lock was gone before the end
                log.warning("the advisory lock of strategy %s was not held at release", name)


def _lock_path(database: str, track: str, strategy_id: str) -> Path:
    return _lock_folder(database) / f"{lock_key(track, strategy_id) & 0xFFFFFFFFFFFFFFFF:016x}.lock"


@lru_cache(maxsize=16)
def _lock_folder(database: str) -> Path:
    """The database's lock folder, made once per process (its files are never removed)."""
    folder = Path(database).with_name(Path(database).name + ".execution-locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


__all__ = ["StrategyBusy", "lock_key", "strategy_lock"]
