"""Replay as live: recorded data played hour by hour through the same Dagster instance.

Each tick is one hour of the replay clock ``T`` (a bar that opened at ``T - 1 h`` closes at
``T``): the replay sources return only rows available by ``T``; ``liquid_data_job`` refreshes
that day's partition (ingest behind the blocking checks, the day's feature snapshots, and
``live_predictions``, which scores the champion and any candidate/challenger in shadow and
matures older predictions); then the gate, rollout and rollback sensors are evaluated against the
instance, and the runs they request (``model_standing_job``) are executed and tagged with the
sensor's name and run key, as the daemon would. Once a replayed day (at 00:00) ``model_drift`` is
materialized and ``drift_sensor`` evaluated; a retraining it requests is reported, not run inline.
Every six replayed hours the assets' automation conditions are evaluated as
``labels_automation_sensor`` does, and the days whose labels matured are re-materialized. Runs show
in the Dagster UI of that instance;
decisions in ``model_promotions`` and the MLflow registry.

The lag from bar close to stored snapshot is measured per tick: the bar "arrives" when the tick
starts, and the snapshot is stored when ``feature_snapshots`` succeeds in that tick's run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from omniwatch.settings import Settings

SENSORS = ("gate_sensor", "rollout_sensor", "rollback_sensor")
DRIFT_HOUR = 0
# The labels automation (labels_automation_sensor) is evaluated every this many replayed hours:
# in production it ticks every 30 s, but each request re-materializes a whole day.
AUTOMATION_EVERY_HOURS = 6
# Runs a sensor may request that the replay does not execute inline (minutes of training per
# request); they are reported, and the daemon launches them on a real deployment.
NOT_INLINE = ("liquid_training_job",)


@dataclass
class TickResult:
    clock: datetime
    run_id: str
    success: bool
    snapshot_lag_s: float | None
    decisions: list[str] = field(default_factory=list)


@dataclass
class LiveReplay:
    settings: Settings
    instance: dg.DagsterInstance
    cursors: dict[str, str | None] = field(default_factory=dict)
    ticks: list[TickResult] = field(default_factory=list)
    log_level: str = "WARNING"
    automation_cursor: str | None = None

    def _defs(self, clock: datetime):
        from omniwatch.definitions import build_definitions
        from omniwatch.demo import training_overrides
        from omniwatch.resources import build_resources
        from omniwatch.resources.modelops import ModelOpsResource

        resources = build_resources(self.settings)
        iso = clock.isoformat()
        overrides = {k: type(resources[k])(replay_dir=resources[k].replay_dir, clock=iso)
                     for k in ("market_data", "funding", "onchain") if hasattr(resources[k], "clock")}
        overrides["modelops"] = ModelOpsResource.from_settings(self.settings, clock=iso)
        defs = build_definitions(self.settings, {**training_overrides(self.settings), **overrides})
        return defs, overrides["modelops"]

    def tick(self, clock: datetime) -> TickResult:
        """Play hour ``clock`` (a bar close); returns what the tick did."""
        clock = pd.Timestamp(clock).tz_convert("UTC").to_pydatetime()
        defs, modelops = self._defs(clock)
        day = (clock - timedelta(hours=1)).date().isoformat()
        arrived = time.time()
        quiet = {"loggers": {"console": {"config": {"log_level": self.log_level}}}}
        result = defs.resolve_job_def("liquid_data_job").execute_in_process(
            instance=self.instance, partition_key=day, raise_on_error=False, run_config=quiet,
            tags={"omniwatch/replay_clock": clock.isoformat(), "omniwatch/mode": "replay-as-live"})
        lag = self._snapshot_lag(result.run_id, arrived)
        tick = TickResult(clock, result.run_id, result.success, lag)
        if clock.hour % AUTOMATION_EVERY_HOURS == 0:
            tick.success = self._automation(defs, quiet, clock) and tick.success
        for name in SENSORS:
            tick.decisions += self._evaluate(defs, modelops, name, quiet)
        if clock.hour == DRIFT_HOUR:  # once a replayed day, as the hourly cron would within the hour
            drift = defs.resolve_job_def("model_drift_job").execute_in_process(
                instance=self.instance, raise_on_error=False, run_config=quiet,
                tags={"omniwatch/replay_clock": clock.isoformat(), "omniwatch/mode": "replay-as-live"})
            tick.success = tick.success and drift.success
            tick.decisions += self._evaluate(defs, modelops, "drift_sensor", quiet)
        self.ticks.append(tick)
        return tick

    def _automation(self, defs, run_config: dict, clock: datetime) -> bool:
        """What ``labels_automation_sensor`` does: evaluate the assets' automation conditions
        against the instance and materialize the partitions they request (a day whose next day's
        bars landed gets its labels)."""
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=self.instance,
                                                       cursor=self.automation_cursor)
        self.automation_cursor = evaluation.cursor
        ok = True
        for result in evaluation.results:
            if result.key != dg.AssetKey("feature_snapshots"):
                continue
            job = defs.get_implicit_global_asset_job_def().get_subset(asset_selection={result.key})
            for day in sorted(result.true_subset.expensively_compute_partition_keys()):
                run = job.execute_in_process(
                    instance=self.instance, partition_key=day, raise_on_error=False, run_config=run_config,
                    tags={"dagster/sensor_name": "labels_automation_sensor",
                          "omniwatch/replay_clock": clock.isoformat(),
                          "omniwatch/mode": "replay-as-live"})
                ok = ok and run.success
        return ok

    def _snapshot_lag(self, run_id: str, arrived: float) -> float | None:
        records = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
        done = [r.event_log_entry.timestamp for r in records if r.event_log_entry.step_key == "feature_snapshots"]
        return (done[0] - arrived) if done else None

    def _evaluate(self, defs, modelops, name: str, run_config: dict) -> list[str]:
        sensor = defs.get_sensor_def(name)
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name),
                                          resources={"modelops": modelops}, definitions=defs)
        outcome = sensor(context)
        self.cursors[name] = context.cursor
        requests = [outcome] if isinstance(outcome, dg.RunRequest) else [
            r for r in (outcome if isinstance(outcome, list) else []) if isinstance(r, dg.RunRequest)]
        out = []
        for request in requests:
            job_name = request.job_name or sensor.job_name
            if job_name in NOT_INLINE:
                out.append(f"{name}: {request.run_key} (requested {job_name}; not run inline by the replay)")
                continue
            tags = {**request.tags, "dagster/sensor_name": name, "dagster/run_key": request.run_key or ""}
            defs.resolve_job_def(job_name).execute_in_process(
                instance=self.instance, tags=tags, raise_on_error=False, run_config=run_config)
            out.append(f"{name}: {request.run_key}")
        return out


def replay_hours(start: datetime, until: datetime) -> list[datetime]:
    """Bar closes from ``start`` to ``until`` inclusive, hourly."""
    return list(pd.date_range(pd.Timestamp(start).tz_convert("UTC").ceil("h"),
                              pd.Timestamp(until).tz_convert("UTC"), freq="h").to_pydatetime())


def run_live(settings: Settings, start: datetime, until: datetime, *, speed: float | None = None,
             instance: dg.DagsterInstance | None = None,
             on_tick: Callable[[LiveReplay, TickResult], bool] | None = None,
             log_level: str = "WARNING") -> LiveReplay:
    """Play ``start..until`` hour by hour. ``speed``: replayed hours per wall-clock second (None =
    as fast as the work allows). ``on_tick`` may return False to stop early."""
    from omniwatch.instance import dagster_instance
    from omniwatch.warehouse.migrate import upgrade

    upgrade(settings.warehouse_url)
    replay = LiveReplay(settings, instance or dagster_instance(settings), log_level=log_level)
    for clock in replay_hours(start, until):
        began = time.perf_counter()
        tick = replay.tick(clock)
        if on_tick is not None and on_tick(replay, tick) is False:
            break
        if speed:
            time.sleep(max(0.0, 1.0 / speed - (time.perf_counter() - began)))
    return replay
