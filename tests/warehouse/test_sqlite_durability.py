"""How a SQLite warehouse syncs its commits: NORMAL by default (WAL), FULL where live trading is on
(a live order is stored ``submitted`` before the venue hears of it), either by the setting, and a
bad setting refused by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from omniwatch.warehouse.engine import get_engine

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _synchronous(url: str) -> tuple[str, str]:
    with get_engine(url).connect() as conn:
        mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
        return str(mode).lower(), SYNCHRONOUS[int(conn.execute(text("PRAGMA synchronous")).scalar_one())]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "NORMAL"),
    ({"OMNIWATCH_LIVE_TRADING": "1"}, "FULL"),
    ({"OMNIWATCH_LIVE_TRADING": "0"}, "NORMAL"),
    ({"OMNIWATCH_SQLITE_SYNCHRONOUS": "full"}, "FULL"),
    ({"OMNIWATCH_SQLITE_SYNCHRONOUS": "EXTRA"}, "EXTRA"),
    ({"OMNIWATCH_LIVE_TRADING": "1", "OMNIWATCH_SQLITE_SYNCHRONOUS": "NORMAL"}, "NORMAL"),
])
def test_each_connection_of_a_new_engine_gets_the_setting(tmp_path, monkeypatch, env, expected):
    for name in ("OMNIWATCH_LIVE_TRADING", "OMNIWATCH_SQLITE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"  # a new file: a new engine, reading the environment now
    assert _synchronous(url) == ("wal", expected)
    engine = get_engine(url)
    with engine.connect() as a, engine.connect() as b:  # a second pooled connection is set up alike
        assert {SYNCHRONOUS[int(c.execute(text("PRAGMA synchronous")).scalar_one())] for c in (a, b)} == {expected}


def test_a_bad_setting_is_refused_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIWATCH_SQLITE_SYNCHRONOUS", "OFF")  # could corrupt the file on an OS crash: not offered
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        get_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
