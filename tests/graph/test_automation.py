"""Tick-by-tick behaviour (STYLE rule 13): labels mature by automation, the hourly live schedule,
and the run-failure sensor, each against a real Dagster instance and a real warehouse."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from omniwatch.definitions import build_definitions
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .helpers import make_settings, run_job

D, NEXT = "2025-03-10", "2025-03-11"
FEATURES = dg.AssetKey("feature_snapshots")


def _requested(result) -> set[str]:
    return {k for r in result.results if r.key == FEATURES for k in r.true_subset.expensively_compute_partition_keys()}


def _day_rows(url: str, day: str) -> pd.DataFrame:
    snaps = pd.read_sql(tables.feature_snapshots.select(), get_engine(url))
    snaps = snaps[pd.to_datetime(snaps["event_time"], utc=True).dt.strftime("%Y-%m-%d") == day]
    return snaps.assign(y24=snaps["labels"].map(lambda lab: lab["fwd_ret_24h"]))


def _materialize_features(defs, instance, day: str):
    job = defs.get_implicit_global_asset_job_def().get_subset(asset_selection={FEATURES})
    result = job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
    assert result.success
    return result


def test_a_day_is_rematerialized_when_the_next_days_bars_land_and_its_labels_fill(tmp_path):
    settings = make_settings(tmp_path)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    # Given D's inputs and snapshots (with nine earlier days) before D+1 exists (a live day).
    assert run_job(settings, "liquid_data_job", "2025-03-01", D, instance).success
    before = _day_rows(settings.warehouse_url, D)
    assert len(before) == 3 * 24 and before["y24"].isna().sum() >= 3 * 23  # last hours unlabelled
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert _requested(first) == set()  # not before D+1's bars land

    # When D+1's bars land in a later run (the next day's hourly refresh).
    assert run_job(settings, "market_plane_job", NEXT, NEXT, instance).success
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    # Then D is requested, and only D (not D+1, never materialized; not far-past days).
    assert _requested(second) == {D}

    _materialize_features(defs, instance, D)
    after = _day_rows(settings.warehouse_url, D)
    latest = after.sort_values("id").drop_duplicates(["target", "as_of_ts"], keep="last")
    assert len(latest) == 3 * 24 and latest["y24"].notna().all()
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert _requested(third) == set()  # satisfied until a later run lands again

    # ... and the day enters training as labelled rows.
    from omniwatch.ml.dataset import load_snapshots

    frame = load_snapshots(settings.warehouse_url, pd.Timestamp(D, tz="UTC"), pd.Timestamp(NEXT, tz="UTC"))
    assert len(frame) == 3 * 24 and frame[["y_1h", "y_4h", "y_24h"]].notna().all(axis=1).all()


def test_a_day_materialized_in_the_same_run_as_its_bars_is_not_requested_again(tmp_path):
    settings = make_settings(tmp_path)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(settings, "market_plane_job", "2025-03-01", "2025-03-09", instance).success
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert run_job(settings, "liquid_data_job", D, D, instance).success  # the hourly refresh of D
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert _requested(second) == set()


def _schedule_requests(tick: dt.datetime):
    from omniwatch.definitions import defs
    from omniwatch.jobs import liquid_live_schedule

    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def()) as context:
        return liquid_live_schedule.evaluate_tick(context)


def test_the_hourly_live_schedule_requests_the_current_day_and_at_midnight_the_day_that_ended():
    from omniwatch.jobs import live_partition_keys

    utc = dt.UTC
    assert live_partition_keys(dt.datetime(2025, 9, 20, 14, 5, tzinfo=utc)) == ["2025-09-20"]
    assert live_partition_keys(dt.datetime(2025, 9, 21, 0, 5, tzinfo=utc)) == ["2025-09-20", "2025-09-21"]
    # Replay partitions (the default settings) hold only ended days up to 2025-09-26: inside
    # them, the ended day is requested (the day in progress is a partition only in live mode) ...
    data = _schedule_requests(dt.datetime(2025, 9, 21, 0, 5, tzinfo=utc))
    assert [(r.partition_key, r.run_key) for r in data.run_requests] == [
        ("2025-09-20", "liquid_live:2025-09-21T00:2025-09-20")]
    # ... past them the tick skips and says why.
    later = _schedule_requests(dt.datetime(2026, 1, 5, 13, 5, tzinfo=utc))
    assert not later.run_requests and "OMNIWATCH_SOURCE=live" in later.skip_message


def test_schedules_and_sensors_follow_automation_running():
    from omniwatch.definitions import defs

    repo = defs.get_repository_def()
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) >= {"liquid_live_schedule", "liquid_training_schedule", "vc_schedule"}
    assert schedules["liquid_live_schedule"].cron_schedule == "5 * * * *"
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sensors["run_failure_sensor"].default_status == dg.DefaultSensorStatus.STOPPED


def test_run_failure_sensor_records_a_really_failed_run(tmp_path):
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.sensors.run_failure import run_failure_sensor

    settings = make_settings(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    # Training with no snapshots stored fails (insufficient_features).
    job = build_definitions(settings).resolve_job_def("liquid_training_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    warehouse = WarehouseResource(database_url=settings.warehouse_url)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_sensor", dagster_event=failure, dagster_instance=instance, dagster_run=run,
        resources={"warehouse": warehouse},
    ).for_run_failure()
    run_failure_sensor(context)
    run_failure_sensor(context)  # idempotent: one row per run
    alerts = warehouse.read_table("pipeline_alerts")
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert alert["run_id"] == result.run_id and alert["job_name"] == "liquid_training_job"
    assert alert["failed_steps"][0]["step"] == "training_dataset"
    assert "insufficient_features" in alert["failed_steps"][0]["error"]
