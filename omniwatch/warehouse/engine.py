"""Engines per database URL, shared within a process.

SQLite gets WAL and a busy timeout so the Dagster run and a reader (the API, a test) can share the
embedded file; PostgreSQL URLs are normalised to psycopg 3.

SQLite's ``synchronous`` setting (:class:`SqliteDurability`): ``NORMAL`` by default, SQLite's own
advice for WAL. A commit survives the process being killed; an OS crash or power loss can roll
back the newest commits (never corrupt the file). ``FULL`` syncs the log at every commit (on this
project's 2-core machine 0.2 ms a commit on an idle disk, 2.2 ms while the test suite ran, against
0.014 for ``NORMAL``), so a commit also survives a power loss; it is the default where
``OMNIWATCH_LIVE_TRADING=1``, because a live order is stored ``submitted`` before the venue hears
of it and that row must outlive any crash (a lost one would leave an order at the venue that
refresh cannot reconcile). ``OMNIWATCH_SQLITE_SYNCHRONOUS`` sets it either way. PostgreSQL keeps
its own (``synchronous_commit``, on by default).

:func:`unit_of_work` makes the writes of a block one transaction: inside it, :func:`transaction`
and :func:`reading` (which the trading store uses where it would begin or connect) hand out the
block's connection instead of a new one, so they see each other's rows and commit together, or
not at all. Outside one they begin and connect as usual. The unit is per thread and task
(a ``ContextVar``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


class SqliteDurability(BaseSettings):
    """How a SQLite warehouse syncs its commits (read when an engine is created)."""

    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_", extra="ignore")

    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] | None = Field(
        default=None, description="SQLite PRAGMA synchronous; default NORMAL, FULL with live trading on.")
    live_trading: bool = Field(default=False, description="OMNIWATCH_LIVE_TRADING (as the live adapter reads it).")

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def synchronous(self) -> str:
        return self.sqlite_synchronous or ("FULL" if self.live_trading else "NORMAL")


@lru_cache(maxsize=64)
def normalize_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """The process's engine for ``url``: one per database, however its URL is spelled
    (``postgresql://`` and ``postgresql+psycopg://`` share one pool)."""
    if normalize_url(url) != url:
        return get_engine(normalize_url(url))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        synchronous = SqliteDurability().synchronous  # a bad value fails here, naming the variable
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")  # one of three literals, validated above
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


_UNITS: ContextVar[tuple[tuple[str, Connection], ...]] = ContextVar("omniwatch_units_of_work", default=())


def _unit(url: str) -> Connection | None:
    key = normalize_url(url)
    return next((conn for k, conn in _UNITS.get() if k == key), None)


def in_unit(url: str) -> bool:
    """Whether this thread or task is inside a unit of work on ``url``."""
    return _unit(url) is not None


@contextmanager
def unit_of_work(url: str) -> Iterator[Connection]:
    """One transaction on ``url`` for the block: committed when it ends, rolled back (everything
    the block wrote through :func:`transaction`) when it raises. Nested: the outer unit's."""
    active = _unit(url)
    if active is not None:
        yield active
        return
    with get_engine(url).begin() as conn:
        token = _UNITS.set((*_UNITS.get(), (normalize_url(url), conn)))
        try:
            yield conn
        finally:
            _UNITS.reset(token)


@contextmanager
def _joining(url: str, open_: Callable[[Engine], AbstractContextManager[Connection]]) -> Iterator[Connection]:
    """The enclosing unit of work's connection, else ``open_`` on the engine (begin or connect)."""
    active = _unit(url)
    if active is not None:
        yield active
        return
    with open_(get_engine(url)) as conn:
        yield conn


def transaction(url: str) -> AbstractContextManager[Connection]:
    """``get_engine(url).begin()``, or the enclosing unit of work's connection (which commits)."""
    return _joining(url, Engine.begin)


def reading(url: str) -> AbstractContextManager[Connection]:
    """``get_engine(url).connect()``, or the enclosing unit of work's connection (so a read sees
    what the unit has written and not committed yet)."""
    return _joining(url, Engine.connect)
