"""Batched, idempotent upserts on natural keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from omniwatch import frames
from omniwatch.resources.warehouse import WarehouseResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import insert_new, upsert_frame, upsert_rows


def _bars(n: int, close: float = 100.0) -> pd.DataFrame:
    t = pd.date_range("2024-04-16T01:00Z", periods=n, freq="h")
    return pd.DataFrame({
        "symbol": "BTC", "venue": "binance", "venue_symbol": "BTCUSDT", "quote": "USDT",
        "interval": "1h", "event_time": t, "available_time": t + pd.Timedelta(hours=1),
        "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 5.0,
        "source": "replay",
    })[frames.MARKET_BAR_COLUMNS]


def test_rewriting_a_window_never_duplicates_and_updates_values(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    assert wh.upsert("market_bars", _bars(48), frames.MARKET_BAR_KEY) == 48
    assert wh.upsert("market_bars", _bars(48, close=101.0), frames.MARKET_BAR_KEY) == 48
    assert wh.count("market_bars") == 48
    stored = wh.read_window("market_bars", pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2024-04-19", tz="UTC"))
    assert (stored["close"] == 101.0).all()
    # available_time survives the round trip as UTC, one hour after the open.
    assert (stored["available_time"] - stored["event_time"] == pd.Timedelta(hours=1)).all()
    assert str(stored["event_time"].dt.tz) == "UTC"


def test_upsert_is_set_based_not_one_statement_per_row(warehouse_url):
    engine = get_engine(warehouse_url)
    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            upsert_frame(conn, tables.market_bars, _bars(5000), frames.MARKET_BAR_KEY)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 5
    assert all("ON CONFLICT" in s.upper() for s in statements)


def test_duplicate_keys_in_a_batch_are_refused_and_nothing_is_written(warehouse_url):
    wh = WarehouseResource(database_url=warehouse_url)
    bad = pd.concat([_bars(3), _bars(3).iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate natural key"):
        wh.upsert("market_bars", bad, frames.MARKET_BAR_KEY)
    assert wh.count("market_bars") == 0


def test_partial_failure_rolls_back_the_whole_batch(warehouse_url):
    """A batch with a NULL in a NOT NULL column leaves the stored rows untouched."""
    wh = WarehouseResource(database_url=warehouse_url)
    wh.upsert("market_bars", _bars(10), frames.MARKET_BAR_KEY)
    bad = _bars(10, close=200.0)
    bad.loc[7, "close"] = float("nan")
    with pytest.raises(IntegrityError):  # NOT NULL violated
        wh.upsert("market_bars", bad, frames.MARKET_BAR_KEY)
    with get_engine(warehouse_url).connect() as conn:
        closes = conn.execute(select(tables.market_bars.c.close)).scalars().all()
    assert closes == [100.0] * 10


def test_audit_rows_are_idempotent_per_run_and_window(warehouse_url):
    from omniwatch.checks.outcome import make_outcome

    wh = WarehouseResource(database_url=warehouse_url)
    outcome = make_outcome("market_bars_have_no_duplicate_keys", "dups",
                           [{"symbol": "BTC", "reason": "dup"}])
    start, end = pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2024-04-17", tz="UTC")
    for _ in range(2):
        wh.record_checks("market_bars", [outcome], start.to_pydatetime(), end.to_pydatetime(), "run-1")
    assert wh.count("data_quality_audit") == 1


def test_json_columns_store_nan_and_numpy_as_json(warehouse_url):
    """PostgreSQL's JSON refuses NaN: JSON cells go through the one sanitiser on the way in."""
    import numpy as np

    frame = pd.DataFrame({
        "source": ["edgar"], "source_id": ["0001-1"], "track": ["vc"], "event_type": ["D"],
        "event_time": [pd.Timestamp("2024-01-01", tz="UTC")], "available_time": [pd.Timestamp("2024-01-02", tz="UTC")],
        "payload": [{"amount": float("nan"), "n": np.int64(3), "when": pd.Timestamp("2024-01-01", tz="UTC"),
                     "items": np.array(["3C", "06b"])}],
    })
    with get_engine(warehouse_url).begin() as conn:
        assert upsert_frame(conn, tables.events, frame, ["source", "source_id"]) == 1
    with get_engine(warehouse_url).connect() as conn:
        stored = conn.execute(select(tables.events.c.payload)).scalar_one()
    assert stored == {"amount": None, "n": 3, "when": "2024-01-01T00:00:00+00:00", "items": ["3C", "06b"]}


def _position(qty: float, hour: int = 1, **extra) -> dict:
    return {"track": "liquid", "strategy_id": "s1", "symbol": "BTC",
            "as_of_ts": pd.Timestamp(f"2024-04-16T{hour:02d}:00Z").to_pydatetime(), "qty": qty, "avg_price": 100.0,
            "mark_price": 101.0, "reason": "fill", **extra}


def test_small_batches_upsert_through_one_cached_statement_with_the_tables_defaults(warehouse_url):
    """A few rows (the execution path's orders, venue records, positions, signals) go through one
    statement per shape that SQLAlchemy caches: same results as the multi-row upsert (update on
    conflict, nothing with ``update=[]``, the columns' Python defaults filled), and every execution
    after the first is a cache hit (the dialects' on-conflict constructs never are)."""
    engine = get_engine(warehouse_url)
    hits: list[bool] = []

    def seen(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            hits.append(context.cache_hit is context.dialect.CACHE_HIT)

    p, o = tables.positions_snapshots, tables.orders_sim
    key = ["track", "strategy_id", "symbol", "as_of_ts"]
    event.listen(engine, "after_cursor_execute", seen)
    try:
        with engine.begin() as conn:  # no unrealized_pnl / realized_pnl: their defaults (0.0) apply
            assert upsert_rows(conn, p, [_position(1.0), _position(2.0, hour=2)], key) == 2
        with engine.begin() as conn:
            upsert_rows(conn, p, [_position(5.0), _position(6.0, hour=2)], key)   # updates both
            upsert_rows(conn, p, [_position(9.0)], key, update=[])                  # changes nothing
        order = {"order_id": "o-1", "client_order_id": "c-1", "track": "liquid", "strategy_id": "s1",
                 "symbol": "BTC", "side": "buy", "qty": 1.0, "order_type": "market", "adapter": "paper",
                 "venue": "paper", "time_in_force": "IOC", "status": "submitted", "lifecycle": [{"to": "submitted"}]}
        with engine.begin() as conn:
            assert insert_new(conn, o, order, key=["client_order_id"]) is True
            assert insert_new(conn, o, {**order, "order_id": "o-2", "qty": 7.0}, key=["client_order_id"]) is False
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    with engine.connect() as conn:
        rows = conn.execute(select(p.c.as_of_ts, p.c.qty, p.c.unrealized_pnl, p.c.realized_pnl)
                            .order_by(p.c.as_of_ts)).all()
        stored = conn.execute(select(o.c.order_id, o.c.qty, o.c.filled_qty, o.c.fee, o.c.lifecycle)).all()
    assert [(r.qty, r.unrealized_pnl, r.realized_pnl) for r in rows] == [(5.0, 0.0, 0.0), (6.0, 0.0, 0.0)]
    assert str(rows[0].as_of_ts) == "2024-04-16 01:00:00+00:00"  # UTC in, UTC out (the column's type)
    assert [tuple(r) for r in stored] == [("o-1", 1.0, 0.0, 0.0, [{"to": "submitted"}])]
    # Each shape compiles once (upsert, upsert doing nothing, insert_new); its next use is a hit.
    assert hits == [False, True, False, False, True]


def test_a_row_naming_an_unknown_column_is_refused(warehouse_url):
    with get_engine(warehouse_url).begin() as conn, pytest.raises(ValueError, match="no column 'quantity'"):
        upsert_rows(conn, tables.positions_snapshots, [_position(1.0, quantity=3.0)],
                    ["track", "strategy_id", "symbol", "as_of_ts"])
