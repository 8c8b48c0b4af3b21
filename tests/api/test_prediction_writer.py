"""The prediction writer: queued rows are written by its thread; inside ``in_caller`` a thread's
rows are written by that thread when the block ends, in one transaction (its unit of work's), and
a failure reaches the caller."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from omniwatch.serving.runtime.writer import PredictionWriter, RowsNotStored
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine, unit_of_work

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _prediction() -> dict:
    return {"prediction_id": str(uuid.uuid4()), "track": "liquid", "target": "BTC", "model_name": "m",
            "model_version": "1", "as_of_ts": T0, "infer_lineage_id": "l", "horizon_predictions": {"pred_24h": 1.0}}


def _signal(prediction_id: str, strength: float) -> dict:
    return {"signal_id": str(uuid.uuid4()), "prediction_id": prediction_id, "track": "liquid", "target": "BTC",
            "strategy_id": "s", "horizon": "24h", "direction": 1, "strength": strength, "threshold": 1.0,
            "as_of_ts": T0, "status": "candidate"}


def _count(url: str, table) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_rows_written_in_the_caller_are_one_transaction_at_the_end_of_the_block_and_start_no_thread(warehouse_url):
    writer = PredictionWriter(warehouse_url)
    p = _prediction()
    with unit_of_work(warehouse_url) as unit:
        with writer.in_caller():
            writer.submit("signal_candidates", [_signal(p["prediction_id"], 1.0)])  # before its prediction:
            writer.submit("predictions_v2", [p])                                    # written after it
            writer.submit("signal_candidates", [_signal(p["prediction_id"], 2.0)])  # same hour: the later wins
            assert unit.execute(select(func.count()).select_from(tables.predictions_v2)).scalar_one() == 0
        # Written by this thread into the caller's unit (seen inside it before it commits).
        assert unit.execute(select(func.count()).select_from(tables.signal_candidates)).scalar_one() == 1
        assert writer._thread is None
    assert _count(warehouse_url, tables.predictions_v2) == 1
    with get_engine(warehouse_url).connect() as conn:
        assert conn.execute(select(tables.signal_candidates.c.strength)).scalar_one() == 2.0
    assert writer.written == {"predictions_v2": 1, "signal_candidates": 1}


def test_rows_of_a_block_that_raises_are_not_written(warehouse_url):
    writer = PredictionWriter(warehouse_url)
    with pytest.raises(RuntimeError, match="scoring failed"), writer.in_caller():
        writer.submit("predictions_v2", [_prediction()])
        raise RuntimeError("scoring failed")
    assert _count(warehouse_url, tables.predictions_v2) == 0 and writer.written["predictions_v2"] == 0
    # Written into a unit of work that then fails: rolled back with it.
    with pytest.raises(RuntimeError, match="sizing failed"), unit_of_work(warehouse_url):
        with writer.in_caller():
            writer.submit("predictions_v2", [_prediction()])
        raise RuntimeError("sizing failed")
    assert _count(warehouse_url, tables.predictions_v2) == 0


def test_a_failed_write_in_the_caller_raises_naming_the_table_and_leaves_the_queue_alone(warehouse_url):
    writer = PredictionWriter(warehouse_url)
    with pytest.raises(RowsNotStored, match="IntegrityError writing signal_candidates"), writer.in_caller():
        writer.submit("signal_candidates", [_signal(str(uuid.uuid4()), 1.0)])  # its prediction does not exist
    assert writer.failing is None and writer.failures == 0 and writer.written["signal_candidates"] == 0
    # Outside the block the same writer queues again (its thread writes; flush waits for it).
    writer.submit("predictions_v2", [_prediction()])
    assert writer.flush() and _count(warehouse_url, tables.predictions_v2) == 1
    writer.close()
