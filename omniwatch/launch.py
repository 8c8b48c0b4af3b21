"""Runs launched through the code location, and sensor ticks evaluated as the daemon does.

``omniwatch demo`` and ``omniwatch live`` drive the same Dagster instance the UI shows. Their runs
are created the way ``dagster job launch`` (and the UI's Launchpad) creates them: from the code
location that ``workspace.yaml`` names (``omniwatch.definitions``), with its remote origin, job
and execution-plan snapshots and the ``.dagster/repository`` tag. So the UI lists them on their
job's page and timeline, and "Re-execute" works (the UI launches a re-execution with its own run
launcher). The demo executes them in its own process (Dagster's ``SyncInMemoryRunLauncher``): a
run subprocess would re-import the project each time (seconds per run, and the live segment
launches dozens).

Sensor ticks go through the sensor daemon's own evaluation (``dagster._daemon.sensor``): the
tick is recorded on the instance (the UI's sensor page lists it, with its skip reason or run
requests), the cursor is stored, and the requested runs are submitted to the run coordinator.
Here that is a ``QueuedRunCoordinator``: ``drain_queue`` then launches the queued runs as the
queued-run daemon does, except the jobs in ``NOT_INLINE`` (a retraining takes minutes): those are
canceled with a message saying so, and the weekly schedule or an operator runs them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg

REPLAY_CLOCK_TAG = "omniwatch/replay_clock"
LOCATION_NAME = "omniwatch.definitions"  # workspace.yaml's python_module: the UI's location name
NOT_INLINE = frozenset({"liquid_training_job"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SensorTick:
    sensor: str
    status: str              # SUCCESS (runs requested) | SKIPPED | FAILURE
    skip_reason: str | None
    run_ids: tuple[str, ...]
    run_keys: tuple[str, ...]
    error: str | None

    def describe(self) -> str:
        if self.status == "SUCCESS":
            return f"{self.sensor}: {', '.join(self.run_keys) or 'requested runs'}"
        if self.status == "FAILURE":
            return f"{self.sensor}: FAILED {self.error or ''}".rstrip()
        return f"{self.sensor}: skipped ({self.skip_reason or 'no reason given'})"


def launching_instance(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The same storage as ``instance`` (runs, events, schedules), with runs executed in this
    process and sensor-requested runs queued for ``drain_queue``."""
    import yaml
    from dagster._serdes.config_class import ConfigurableClassData

    ref = instance.get_ref()._replace(
        run_launcher_data=ConfigurableClassData(
            "dagster._core.launcher.sync_in_memory_run_launcher", "SyncInMemoryRunLauncher", yaml.dump({})),
        run_coordinator_data=ConfigurableClassData(
            "dagster._core.run_coordinator.queued_run_coordinator", "QueuedRunCoordinator", yaml.dump({})),
    )
    return dg.DagsterInstance.from_ref(ref)


def settings_environment_values(settings) -> dict[str, str]:
    """``settings``' explicitly set fields as the ``OMNIWATCH_*`` variables that give them back."""
    from pydantic import BaseModel, SecretStr

    values = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, timedelta):
            text = str(int(value.total_seconds()))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value.resolve()) if isinstance(value, Path) else str(value)
        values[f"OMNIWATCH_{name.upper()}"] = text
    return values


@contextmanager
def settings_environment(settings) -> Iterator[None]:
    """The process environment holding exactly ``settings`` (its ``OMNIWATCH_*`` variables) while
    the block runs: the code location (``omniwatch.definitions:load_definitions``) reads its
    settings from the environment, as a code server does, so runs launched here use these."""
    values = settings_environment_values(settings)
    fields = set(type(settings).model_fields)

    def is_setting(key: str) -> bool:  # OMNIWATCH_<FIELD> or OMNIWATCH_<FIELD>__<SUBFIELD>
        return key.startswith("OMNIWATCH_") and key[len("OMNIWATCH_"):].split("__")[0].lower() in fields

    saved = {k: v for k, v in os.environ.items() if is_setting(k)}
    for key in saved:  # exactly these settings: nothing else of the caller's environment leaks in
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if is_setting(k)]:
            del os.environ[key]
        os.environ.update(saved)


class CodeLocationLauncher:
    """Launch jobs and tick sensors of the ``omniwatch.definitions`` code location on an instance.

    The definitions are loaded in this process from the environment's settings (as the code
    server would load them); use as a context manager."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        from dagster._core.definitions.reconstruct import ReconstructableJob
        from dagster._core.remote_origin import InProcessCodeLocationOrigin
        from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

        # Executing a run reconstructs its job from the code origin, and Dagster keeps the last
        # one (a process-wide lru_cache keyed by the origin, which is the same whatever the
        # environment): drop it, so these runs load the definitions of the current settings.
        ReconstructableJob.get_definition.cache_clear()
        ReconstructableJob.get_repository_definition.cache_clear()
        self.instance = launching_instance(instance)
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(executable_path=sys.executable, module_name=LOCATION_NAME,
                                 attribute="load_definitions",
                                 working_directory=os.getcwd()),
            location_name=LOCATION_NAME)
        self._process = WorkspaceProcessContext(self.instance, InProcessWorkspaceLoadTarget(origin))

    def __enter__(self) -> CodeLocationLauncher:
        self._process.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._process.__exit__(*exc)
        self.instance.dispose()

    def _location(self):
        workspace = self._process.create_request_context()
        location = workspace.get_code_location(LOCATION_NAME)
        (repo,) = location.get_repositories().values()
        return workspace, location, repo

    def launch(self, job_name: str, *, run_config: Mapping | None = None, tags: Mapping[str, str] | None = None,
               asset_selection: set[dg.AssetKey] | None = None) -> dg.DagsterRun:
        """Create the run from the code location (as ``dagster job launch`` does), launch it, and
        return it once finished (it executes synchronously in this process)."""
        from dagster._core.definitions.selector import JobSubsetSelector

        workspace, location, repo = self._location()
        # Steps in this process too (the default executor's in_process mode): the multiprocess
        # mode would start a Python process per step, re-importing the project each time.
        run_config = {"execution": {"config": {"in_process": {}}}, **(run_config or {})}
        selector = JobSubsetSelector(location_name=LOCATION_NAME, repository_name=repo.name, job_name=job_name,
                                     op_selection=None,
                                     asset_selection=list(asset_selection) if asset_selection else None)
        remote_job = location.get_job(selector)
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance)
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config,
            resolved_op_selection=remote_job.resolved_op_selection,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute, op_selection=None,
            status=None, root_run_id=None, parent_run_id=None, tags={**remote_job.tags, **(tags or {})},
            job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(asset_selection) if asset_selection else None,
            asset_check_selection=None, asset_graph=repo.asset_graph)
        self.instance.launch_run(run.run_id, workspace)
        return self._finished(run.run_id)

    def _finished(self, run_id: str) -> dg.DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run

    def tick_sensor(self, name: str) -> SensorTick:
        """One tick of sensor ``name`` as the sensor daemon evaluates it (started first if it is
        not running: the replay runs the model-ops loop on the instance), then the queued runs."""
        from dagster._core.scheduler.instigation import InstigatorType
        from dagster._daemon.sensor import _process_tick_generator, is_under_min_interval

        _, _, repo = self._location()
        remote = repo.get_sensor(name)
        state = self.instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id)
        if state is None or not state.is_running:
            state = self.instance.start_sensor(remote)
        # The daemon skips a sensor ticked less than its minimum interval ago (wall clock): wait it
        # out, so that every call is one tick (the replay sets the interval to 1 s).
        while state is not None and is_under_min_interval(state, remote):
            time.sleep(0.1)
            state = self.instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id)
        assert state is not None
        for _ in _process_tick_generator(self._process, log, remote, state, None,
                                         self.instance.get_tick_retention_settings(InstigatorType.SENSOR), None):
            pass
        tick = self.instance.get_ticks(remote.get_remote_origin_id(), remote.selector_id, limit=1)[0]
        run_ids = tuple(tick.run_ids)
        self.drain_queue()
        error = tick.error.message.strip().splitlines()[-1] if tick.error else None
        return SensorTick(name, tick.status.value, tick.skip_reason, run_ids, tuple(tick.run_keys), error)

    def drain_queue(self) -> list[dg.DagsterRun]:
        """Launch the queued runs, oldest first, as the queued-run daemon does; the ``NOT_INLINE``
        jobs are canceled with a message instead (they would hold the replay for minutes)."""
        from dagster._core.events import DagsterEvent, DagsterEventType
        from dagster._core.launcher import LaunchRunContext

        workspace, _, _ = self._location()
        queued = self.instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), ascending=True)
        done = []
        for run in (record.dagster_run for record in queued):
            if run.job_name in NOT_INLINE:
                self.instance.report_run_canceled(
                    run, message=f"{run.job_name} is not run inside the replay (minutes of training per request): "
                                 "re-execute it from the UI, or the weekly schedule takes the new data")
                done.append(self._finished(run.run_id))
                continue
            self.instance.report_dagster_event(
                DagsterEvent(event_type_value=DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name),
                run_id=run.run_id)
            run = self._finished(run.run_id)
            self.instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))
            done.append(self._finished(run.run_id))
        return done


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, bool, str]]:
    """(asset, check, passed, severity) of each asset check evaluated in run ``run_id``."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event is not None else None
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            out.append((evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.passed,
                        evaluation.severity.value))
    return out


def materializations(instance: dg.DagsterInstance, run_id: str, asset: str) -> list[dg.AssetMaterialization]:
    """The materializations of ``asset`` in run ``run_id``, in order."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found = [r.event_log_entry.asset_materialization for r in records]
    return [m for m in found if m is not None and m.asset_key == dg.AssetKey(asset)]
