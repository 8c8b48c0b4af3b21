"""The executor's edges: an order a timeout left without a venue id, and what sizing may read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from omniwatch.trading import store
from omniwatch.trading.execution import Executor, _forecast_query, forecast_history
from omniwatch.trading.orders import OrderStatus, VenueUnavailable
from omniwatch.trading.paper import PaperAdapter
from omniwatch.trading.risk import RiskLimits, RiskSettings
from omniwatch.trading.risk_store import RiskGuard
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import T0


class DroppedAnswer(PaperAdapter):
    """The paper venue behind a link that loses the answer to the first submit: the venue took the
    order, the caller saw a timeout (what a Coinbase create that times out after its retries is).
    A remote venue, so not ``in_warehouse``: the order is committed before it is sent."""

    in_warehouse = False

    def __init__(self, url: str):
        super().__init__(url)
        self.dropped = False

    def submit(self, order, now):
        report = super().submit(order, now)
        if not self.dropped:
            self.dropped = True
            raise VenueUnavailable("timed out waiting for the venue's answer")
        return report


def _executor(url: str) -> Executor:
    guard = RiskGuard(url, RiskSettings(RiskLimits(0.4, 0.5, 1.0, 1.0, 0.01)))
    return Executor(url, guard, {"paper": DroppedAnswer(url)})


def _count(url: str, table, *where) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.mark.parametrize("action", ["refresh", "cancel"])
def test_an_order_a_timeout_left_without_a_venue_id_is_reconciled_never_duplicated(warehouse_url, make_request,
                                                                                   put_bars, action):
    put_bars(warehouse_url, "BTC", [(T0 - timedelta(hours=1), 99, 101, 98, 100.0, 400.0)])
    executor = _executor(warehouse_url)
    request = make_request(qty=0.1)
    with pytest.raises(VenueUnavailable):
        executor.submit(request, "paper", 100.0, T0)
    stuck = store.get_order_by_client_id(warehouse_url, request.client_order_id)
    assert stuck is not None and (stuck.status, stuck.venue_order_id) == (OrderStatus.SUBMITTED, None)
    # The venue filled it: a refresh learns that, and so does a cancel (canceling only locally
    # would lose the position the venue holds).
    done = getattr(executor, action)(stuck, T0)
    assert done.status == OrderStatus.FILLED and done.filled_qty == pytest.approx(0.1)
    assert done.venue_order_id is not None
    venue_orders = tables.paper_orders
    assert _count(warehouse_url, venue_orders, venue_orders.c.client_order_id == request.client_order_id) == 1
    assert _count(warehouse_url, tables.fills, tables.fills.c.order_id == done.order_id) == 1


def test_sizing_reads_only_the_stored_snapshots_forecasts(warehouse_url):
    """A client's what-if prediction (its own features: no snapshot) never sizes a position."""
    p, f = tables.predictions_v2, tables.feature_snapshots
    common = {"track": "liquid", "target": "BTC", "model_name": "omniwatch-liquid", "model_version": "1",
              "as_of_ts": T0, "infer_lineage_id": "x"}
    with get_engine(warehouse_url).begin() as conn:
        snap = conn.execute(f.insert().values(track="liquid", target="BTC", as_of_ts=T0, event_time=T0,
                                              data_version="v", lineage_id="l", features={"vol_24h": 0.004})
                            .returning(f.c.id)).scalar_one()
        conn.execute(p.insert(), [
            {**common, "prediction_id": "stored", "snapshot_id": snap, "horizon_predictions": {"pred_24h": 12.0}},
            {**common, "prediction_id": "what-if", "snapshot_id": None,
             "horizon_predictions": {"pred_24h": -900.0, "request_features": {"ret_1h": 1.0}}},
        ])
    history = forecast_history(warehouse_url, "BTC", "1", "24h", T0)
    assert [(h.prediction_id, h.forecast_bps, h.hourly_vol) for h in history] == [("stored", 12.0, 0.004)]


def test_sizing_reads_one_forecast_per_hour_and_the_signals_own(warehouse_url):
    """An hour scored many times (every signals/generate stores a prediction) is read as one row:
    the newest, or the signal's own prediction when it is named, whatever their stored order."""
    p, f = tables.predictions_v2, tables.feature_snapshots
    common = {"track": "liquid", "target": "ETH", "model_name": "omniwatch-liquid", "model_version": "7",
              "infer_lineage_id": "x"}
    with get_engine(warehouse_url).begin() as conn:
        snaps = [conn.execute(f.insert().values(track="liquid", target="ETH", as_of_ts=T0 - timedelta(hours=k),
                                                event_time=T0, data_version="v", lineage_id="l",
                                                features={"vol_24h": 0.01 * (k + 1)}).returning(f.c.id)).scalar_one()
                 for k in range(2)]
        conn.execute(p.insert(), [
            {**common, "prediction_id": "old-hour", "as_of_ts": T0 - timedelta(hours=1), "snapshot_id": snaps[1],
             "horizon_predictions": {"pred_24h": 3.0}, "created_at": T0},
            *({**common, "prediction_id": f"dup-{i}", "as_of_ts": T0, "snapshot_id": snaps[0],
               "horizon_predictions": {"pred_24h": float(i)}, "created_at": T0 + timedelta(seconds=i % 3)}
              for i in range(30)),
        ])
    newest = forecast_history(warehouse_url, "ETH", "7", "24h", T0)
    assert [h.prediction_id for h in newest][0] == "old-hour" and len(newest) == 2
    assert newest[1].prediction_id in {f"dup-{i}" for i in range(30) if i % 3 == 2}  # the newest created
    assert newest[1].forecast_bps == float(newest[1].prediction_id.split("-")[1])
    own = forecast_history(warehouse_url, "ETH", "7", "24h", T0, prefer="dup-4")
    assert [(h.prediction_id, h.forecast_bps, h.hourly_vol) for h in own] == [
        ("old-hour", 3.0, pytest.approx(0.02)), ("dup-4", 4.0, pytest.approx(0.01))]


def test_the_sizing_read_is_answered_from_the_index_however_often_an_hour_was_scored(tmp_path):
    """Every target of every execution/run reads its version's newest forecast per hour of the last
    H hours, and every prediction request stores a row: a busy hour holds thousands. Migration
    0015's index answers the newest-per-hour search alone (covering: no table row read, no sort
    for the grouping); the table is read by primary key for the winners only. Before, the read
    ranked every row of the hours (13 -> 24 ms per run over 1,500 bench runs); before 0014 it
    searched every prediction the version ever made."""
    from graph.helpers import fresh_sqlite_warehouse

    engine = get_engine(fresh_sqlite_warehouse(tmp_path / "warehouse.db"))
    compiled = _forecast_query().compile(dialect=engine.dialect)
    with engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                                         tuple(None for _ in compiled.positiontup or ()))]
    searches = [line for line in plan if line.startswith("SEARCH") and " USING " in line
                and line.split()[1] in ("predictions_v2", "w")]
    by_hours = [line for line in searches if "prediction_id=?" not in line]
    assert len(by_hours) == 2, plan  # the newest created_at per hour, then the largest id among them
    for line in by_hours:
        assert "USING COVERING INDEX ix_predictions_v2_forecast_hours (target=? AND model_name=? AND " \
               "model_version=? AND as_of_ts>? AND as_of_ts<?)" in line, plan
    assert all("sqlite_autoindex_predictions_v2_1 (prediction_id=?)" in line
               for line in searches if line not in by_hours), plan  # winners and the preferred one, by key
    assert not any("TEMP B-TREE FOR GROUP BY" in line for line in plan), plan


def test_a_busy_hour_is_still_read_as_its_newest_forecast_and_the_signals_own(warehouse_url):
    """Many predictions of one hour sharing a created_at (one batch, or one second on SQLite): the
    largest id among the newest wins, as the ranking did; the preferred one replaces it."""
    p, f = tables.predictions_v2, tables.feature_snapshots
    common = {"track": "liquid", "target": "SOL", "model_name": "omniwatch-liquid", "model_version": "3",
              "infer_lineage_id": "x", "as_of_ts": T0, "error": None}  # every row the same keys (executemany)
    with get_engine(warehouse_url).begin() as conn:
        snap = conn.execute(f.insert().values(track="liquid", target="SOL", as_of_ts=T0, event_time=T0,
                                              data_version="v", lineage_id="l", features={"vol_24h": 0.03})
                            .returning(f.c.id)).scalar_one()
        conn.execute(p.insert(), [
            {**common, "prediction_id": f"p{i:03d}", "snapshot_id": snap, "horizon_predictions": {"pred_24h": i},
             "created_at": T0 + timedelta(seconds=1 if i < 200 else 0)} for i in range(300)] + [
            {**common, "prediction_id": "z-failed", "snapshot_id": snap, "horizon_predictions": {},
             "error": "boom", "created_at": T0 + timedelta(seconds=5)},
            {**common, "prediction_id": "z-what-if", "snapshot_id": None, "horizon_predictions": {"pred_24h": 1e6},
             "created_at": T0 + timedelta(seconds=5)}])
    assert [(h.prediction_id, h.forecast_bps) for h in forecast_history(warehouse_url, "SOL", "3", "24h", T0)] \
        == [("p199", 199.0)]
    assert [(h.prediction_id, h.forecast_bps) for h in forecast_history(
        warehouse_url, "SOL", "3", "24h", T0, prefer="p250")] == [("p250", 250.0)]
    assert [h.prediction_id for h in forecast_history(warehouse_url, "SOL", "3", "24h", T0, prefer="z-failed")] \
        == ["p199"]  # a failed scoring is never read, named or not
