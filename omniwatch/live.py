"""Replay as live: recorded data played hour by hour through the same Dagster instance.

Each tick is one hour of the replay clock ``T`` (a bar that opened at ``T - 1 h`` closes at
``T``). Runs are launched through the code location (``omniwatch.launch``), tagged with
``omniwatch/replay_clock`` = ``T``, so the replay sources return only rows available by ``T``:
``liquid_data_job`` refreshes that day's partition (ingest behind the blocking checks, the day's
feature snapshots, and ``live_predictions``, which scores the champion and any
candidate/challenger in shadow and matures older predictions). Then the gate, rollout and rollback
sensors tick as the sensor daemon ticks them (ticks, cursors and skip reasons recorded on the
instance, requested runs queued and launched). Once a replayed day (at 00:00) ``model_drift_job``
runs and ``drift_sensor`` ticks; a retraining it requests is canceled with a message (minutes of
training per request; the weekly schedule or an operator runs it). Every six replayed hours the
assets' automation conditions are evaluated as ``labels_automation_sensor`` does, and the days whose
labels matured are re-materialized. Everything shows in the Dagster UI of that instance (runs on
their job pages, sensor ticks); decisions in ``model_promotions`` and the MLflow registry.

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

from omniwatch.launch import REPLAY_CLOCK_TAG, CodeLocationLauncher, settings_environment
from omniwatch.settings import Settings

SENSORS = ("gate_sensor", "rollout_sensor", "rollback_sensor")
DRIFT_HOUR = 0
# The labels automation (labels_automation_sensor) is evaluated every this many replayed hours:
# in production it ticks every 30 s, but each request re-materializes a whole day.
AUTOMATION_EVERY_HOURS = 6
REPLAY_TAGS = {"omniwatch/mode": "replay-as-live"}


@dataclass
class TickResult:
    clock: datetime
    run_id: str
    success: bool
    snapshot_lag_s: float | None
    decisions: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per part: data, sensors, ...


@dataclass
class LiveReplay:
    """Replays hours on ``instance`` with ``settings`` (their OMNIWATCH_* environment is in force
    during each tick: the code location reads it). Close it (or use ``with``) when done."""

    settings: Settings
    instance: dg.DagsterInstance
    ticks: list[TickResult] = field(default_factory=list)
    log_level: str = "WARNING"
    automation_cursor: str | None = None
    _launcher: CodeLocationLauncher | None = None

    def __enter__(self) -> LiveReplay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._launcher is not None:
            self._launcher.__exit__(None, None, None)
            self._launcher = None

    def _settings(self) -> Settings:
        # The replay's clock is the replayed hour: a model-ops sensor may tick on every one (an hour
        # takes seconds here; Dagster reads an interval of 0 as its default, 30 s).
        return self.settings.model_copy(update={"sensor_interval_s": 1})

    def _open(self) -> CodeLocationLauncher:
        if self._launcher is None:
            self._launcher = CodeLocationLauncher(self.instance).__enter__()
        return self._launcher

    def tick(self, clock: datetime) -> TickResult:
        """Play hour ``clock`` (a bar close); returns what the tick did."""
        clock = pd.Timestamp(clock).tz_convert("UTC").to_pydatetime()
        with settings_environment(self._settings()):
            return self._tick(clock)

    def _tick(self, clock: datetime) -> TickResult:
        launcher = self._open()
        day = (clock - timedelta(hours=1)).date().isoformat()
        quiet = {"loggers": {"console": {"config": {"log_level": self.log_level}}}}
        tags = {**REPLAY_TAGS, REPLAY_CLOCK_TAG: clock.isoformat()}
        arrived = time.time()
        run = launcher.launch("liquid_data_job", run_config=quiet, tags={**tags, "dagster/partition": day})
        tick = TickResult(clock, run.run_id, run.is_success, self._snapshot_lag(run.run_id, arrived))
        mark = time.time()
        tick.seconds["data"] = mark - arrived

        def lap(part: str) -> None:
            nonlocal mark
            now = time.time()
            tick.seconds[part] = tick.seconds.get(part, 0.0) + now - mark
            mark = now

        if clock.hour % AUTOMATION_EVERY_HOURS == 0:
            tick.success = self._automation(launcher, quiet, tags) and tick.success
            lap("automation")
        for name in SENSORS:
            tick.decisions.append(self._sensor(launcher, name))
            lap("sensors")
        if clock.hour == DRIFT_HOUR:  # once a replayed day, as the hourly cron would within the hour
            drift = launcher.launch("model_drift_job", run_config=quiet, tags=tags)
            tick.success = tick.success and drift.is_success
            tick.decisions.append(self._sensor(launcher, "drift_sensor"))
            lap("drift")
        tick.success = tick.success and not any(d.startswith("FAILED") for d in tick.decisions)
        self.ticks.append(tick)
        return tick

    def _sensor(self, launcher: CodeLocationLauncher, name: str) -> str:
        result = launcher.tick_sensor(name)
        failed = [r for r in (self.instance.get_run_by_id(i) for i in result.run_ids) if r and r.is_failure]
        text = result.describe()
        if result.status == "FAILURE" or failed:
            return f"FAILED {text}" + (f" (runs {', '.join(r.run_id for r in failed)})" if failed else "")
        return text

    def _automation(self, launcher: CodeLocationLauncher, run_config: dict, tags: dict[str, str]) -> bool:
        """What ``labels_automation_sensor`` does: evaluate the assets' automation conditions
        against the instance and materialize the partitions they request (a day whose next day's
        bars landed gets its labels)."""
        from omniwatch.definitions import load_definitions

        evaluation = dg.evaluate_automation_conditions(defs=load_definitions(), instance=self.instance,
                                                       cursor=self.automation_cursor)
        self.automation_cursor = evaluation.cursor
        ok = True
        for result in evaluation.results:
            if result.key != dg.AssetKey("feature_snapshots"):
                continue
            for day in sorted(result.true_subset.expensively_compute_partition_keys()):
                run = launcher.launch("__ASSET_JOB", run_config=run_config, asset_selection={result.key},
                                      tags={**tags, "dagster/partition": day,
                                            "dagster/sensor_name": "labels_automation_sensor"})
                ok = ok and run.is_success
        return ok

    def _snapshot_lag(self, run_id: str, arrived: float) -> float | None:
        records = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
        done = [r.event_log_entry.timestamp for r in records if r.event_log_entry.step_key == "feature_snapshots"]
        return (done[0] - arrived) if done else None


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
    with LiveReplay(settings, instance or dagster_instance(settings), log_level=log_level) as replay:
        for clock in replay_hours(start, until):
            began = time.perf_counter()
            tick = replay.tick(clock)
            if on_tick is not None and on_tick(replay, tick) is False:
                break
            if speed:
                time.sleep(max(0.0, 1.0 / speed - (time.perf_counter() - began)))
    return replay
