"""Replay as live, end to end on a real Dagster instance: hourly ticks ingest, snapshot and score;
the gate, rollout and rollback sensors (evaluated with build_sensor_context against that instance)
roll a challenger out 10 -> 30 -> 100 and roll a degraded candidate back; the audit log shows it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
from conftest import copy_home, home_instance
from sqlalchemy import select

from omniwatch.drills import register_copy, register_degraded_copy
from omniwatch.live import SENSORS, LiveReplay, replay_hours
from omniwatch.promotions import audit_rows, registry_rows
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.resources.modelops import ModelOpsResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .helpers import settings_for

MODEL = "omniwatch-liquid"
LIVE_FROM = datetime(2024, 9, 1, 1, tzinfo=UTC)
# Small windows so a rollout fits in a few replayed hours; wide tolerances: on this sample the
# models have no skill (MODEL-NOTES), so only the error rate can fail a window here.
THRESHOLDS = dict(
    gate={"horizon": "1h", "require_skill": False, "min_shadow_predictions": 6, "tol_shadow_rank_ic": 2,
          "tol_shadow_hit_rate": 1,
          "max_shadow_error_rate": 0.1, "tol_ic": 1, "tol_rank_ic": 1, "tol_hit_rate": 1, "tol_net_pnl": 10,
          "tol_max_drawdown": 10, "tol_turnover": 100},
    rollout={"horizon": "1h", "window_hours": 3, "min_matured": 6, "tol_rank_ic": 2, "tol_hit_rate": 1,
             "max_error_rate": 0.1},
    rollback={"failed_windows": 2},
)


@pytest.fixture(scope="module")
def live(trained_home, tmp_path_factory):
    """A copy of the session's trained home (2024-05-01..2024-08-31 ingested, version 1 trained)
    with the instance that ran it, so the replay continues that instance's history."""
    home = copy_home(trained_home, tmp_path_factory.mktemp("live") / "home")
    settings = settings_for(home, **THRESHOLDS)
    instance = home_instance(home)
    assert [r.job_name for r in instance.get_runs()] == ["liquid_training_job", "liquid_data_job"]
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    yield settings, instance, mlflow
    instance.dispose()


def _ops(settings, clock=None):
    return ModelOpsResource.from_settings(settings, clock=clock.isoformat() if clock else None)


def test_sensors_skip_with_reasons_when_there_is_nothing_to_decide(live):
    settings, instance, _ = live
    from omniwatch.definitions import build_definitions

    defs = build_definitions(settings)
    for name, reason in (("gate_sensor", "no new challenger"), ("rollout_sensor", "no candidate"),
                         ("rollback_sensor", "no window judged")):
        context = dg.build_sensor_context(instance=instance, resources={"modelops": _ops(settings)})
        result = defs.get_sensor_def(name)(context)
        assert isinstance(result, dg.SkipReason) and reason in result.skip_message, (name, result)


def test_replay_as_live_rolls_out_a_challenger_and_rolls_back_a_degraded_candidate(live, request):
    settings, instance, mlflow = live
    assert mlflow.aliases(MODEL) == {"champion": "1", "challenger": "1"}
    challenger = register_copy(mlflow, settings.warehouse_url, "1", actor="test")
    replay = LiveReplay(settings, instance)
    request.addfinalizer(replay.close)
    hours = replay_hours(LIVE_FROM, LIVE_FROM + pd.Timedelta(hours=30))
    degraded = None
    for clock in hours:
        tick = replay.tick(clock)
        assert tick.success, (clock, tick.run_id, tick.decisions)
        aliases = mlflow.aliases(MODEL)
        if degraded is None and aliases.get("champion") == challenger:
            # Sound through its shadow window (so it passes the gate), broken from 4 hours on.
            fails_from = clock + pd.Timedelta(hours=4)
            degraded = register_degraded_copy(mlflow, settings.warehouse_url, challenger, actor="test",
                                              fails_from=fails_from)
        day_ended = clock >= LIVE_FROM + pd.Timedelta(hours=23)
        if degraded and registry_status(settings, degraded) == "rejected" and day_ended:
            break  # rolled back, and the replayed day ended (its drift evaluation ran at 00:00)
    aliases = mlflow.aliases(MODEL)
    assert aliases["champion"] == challenger and aliases["previous"] == "1" and "candidate" not in aliases
    assert degraded is not None and registry_status(settings, degraded) == "rejected"

    rows = audit_rows(settings.warehouse_url, MODEL)
    decisions = [(r["action"], r["outcome"], r["model_version"], r["rollout_stage"]) for r in rows
                 if r["action"] in ("gate", "rollout", "rollback")]
    ours = [d for d in decisions if d[2] == challenger]
    assert ("gate", "start_rollout", challenger, 10) in ours
    assert ("rollout", "advance", challenger, 30) in ours and ("rollout", "promote", challenger, 100) in ours
    # The gate waited for its shadow window (inconclusive), then decided on it.
    assert ("gate", "inconclusive", challenger, None) in ours
    gate = next(r for r in rows if r["action"] == "gate" and r["outcome"] == "start_rollout"
                and r["model_version"] == challenger)
    assert gate["metrics"]["shadow_error_rate"]["passed"] is True
    assert gate["metrics"]["shadow_rank_ic"]["challenger"] is not None  # judged on a real shadow window
    bad = [d for d in decisions if d[2] == degraded]
    assert ("gate", "start_rollout", degraded, 10) in bad
    assert [d[1] for d in bad if d[0] == "rollout"].count("hold") >= 2
    assert bad[-1][:2] == ("rollback", "rollback")
    rollback = [r for r in rows if r["action"] == "rollback" and r["outcome"] == "rollback"][-1]
    assert rollback["metrics"]["windows_failed"] >= 2 and "consecutive" in rollback["metrics"]["trigger_rule"]
    assert all(r["actor"] == "system" and r["source"] == "scheduler" for r in rows if r["action"] != "alias_set")
    assert all(r["thresholds"] is not None and r["window"] is not None for r in rows if r["action"] != "alias_set")

    # Once a replayed day the champion's drift was evaluated against its training reference.
    drift = [r for r in rows if r["action"] == "drift"]
    assert drift and drift[-1]["outcome"] in ("drift", "no_drift") and drift[-1]["model_version"] == challenger
    assert "features" in drift[-1]["metrics"] and drift[-1]["thresholds"]["psi"] > 0

    # MLflow mirrors the decisions as version tags.
    tags = mlflow.client().get_model_version(MODEL, degraded).tags
    assert tags["omniwatch.rollback.outcome"] == "rollback" and tags["omniwatch.status"] == "rejected"

    # Every live hour was scored: the champion, and the candidate in shadow on the same snapshot.
    preds = predictions(settings)
    assert {"champion", "challenger", "candidate"} <= set(preds["role"])
    matured = preds[preds["realised"].notna()]
    assert len(matured) > 0 and all("1h" in r for r in matured["realised"])
    drill = preds[preds["model_version"] == degraded]
    broken = pd.to_datetime(drill["as_of_ts"], utc=True) >= fails_from
    assert broken.any() and (~broken).any()
    assert drill.loc[broken, "error"].notna().all() and drill.loc[~broken, "error"].isna().all()
    # Scored live from the data clock it was registered at, never in hindsight before it.
    assert pd.to_datetime(drill["as_of_ts"], utc=True).min() >= fails_from - pd.Timedelta(hours=4)
    # Re-running a tick (same hour) duplicates nothing.
    before = len(preds)
    replay.tick(hours[0])
    assert len(predictions(settings)) == before

    # The lag from bar close to stored snapshot was measured on every tick.
    assert all(t.snapshot_lag_s is not None and t.snapshot_lag_s > 0 for t in replay.ticks)
    # Runs the sensors requested ran on the instance, tagged with the sensor and the run key.
    runs = instance.get_runs(dg.RunsFilter(job_name="model_standing_job"))
    assert runs and all(r.tags.get("dagster/sensor_name") in ("gate_sensor", "rollout_sensor", "rollback_sensor")
                        and r.tags.get("dagster/run_key") for r in runs)
    assert all(r.is_success for r in runs)
    # Every run was launched through the code location, as the UI and `dagster job launch` do:
    # it carries its origin and the repository tag, so its job page lists it and it re-executes.
    replayed = instance.get_runs(dg.RunsFilter(tags={"omniwatch/mode": "replay-as-live"}))
    assert {r.job_name for r in replayed} >= {"liquid_data_job", "model_drift_job"}
    for run in [*replayed, *runs]:
        assert run.remote_job_origin is not None and run.remote_job_origin.location_name == "omniwatch.definitions"
    # The UI's job page filters runs on the repository label that storage keeps for such runs.
    on_pages = instance.get_runs(dg.RunsFilter(tags={".dagster/repository": "__repository__@omniwatch.definitions"}))
    assert {r.run_id for r in [*replayed, *runs]} <= {r.run_id for r in on_pages}
    data_runs = [r for r in replayed if r.job_name == "liquid_data_job"]
    assert all(r.tags["omniwatch/replay_clock"] for r in data_runs)
    # The sensors ticked as the daemon ticks them: each tick is on the instance with its outcome.
    ticks = sensor_ticks(instance)
    assert set(ticks) == {"gate_sensor", "rollout_sensor", "rollback_sensor", "drift_sensor"}
    assert all(len(ticks[name]) >= len(replay.ticks) for name in SENSORS)
    gate_ticks = ticks["gate_sensor"]
    assert any(t.status.value == "SUCCESS" and t.run_ids for t in gate_ticks)
    assert any(t.status.value == "SKIPPED" and "inconclusive" in (t.skip_reason or "") for t in gate_ticks)
    requested = {i for name in SENSORS for t in ticks[name] for i in t.run_ids}
    assert requested == {r.run_id for r in runs}


def sensor_ticks(instance) -> dict[str, list]:
    from dagster._core.scheduler.instigation import InstigatorType

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return {s.instigator_name: instance.get_ticks(s.instigator_origin_id, s.selector_id) for s in states
            if s.is_running}


def registry_status(settings, version: str) -> str | None:
    return next((r["status"] for r in registry_rows(settings.warehouse_url, MODEL) if str(r["version"]) == version),
                None)


def predictions(settings) -> pd.DataFrame:
    t = tables.predictions_v2
    with get_engine(settings.warehouse_url).connect() as conn:
        rows = conn.execute(select(t.c.prediction_id, t.c.model_version, t.c.role, t.c.realised, t.c.error,
                                   t.c.as_of_ts).where(t.c.role.is_not(None))).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def test_gate_waits_for_a_shadow_window_and_does_not_repeat_an_inconclusive_decision(live):
    settings, instance, mlflow = live
    from omniwatch.definitions import build_definitions

    champion = mlflow.aliases(MODEL)["champion"]
    newest = register_copy(mlflow, settings.warehouse_url, champion, actor="test")
    strict = settings.model_copy(update={"gate": settings.gate.model_copy(update={"min_shadow_predictions": 72})})
    gate = build_definitions(strict).get_sensor_def("gate_sensor")
    clock = LIVE_FROM + pd.Timedelta(hours=40)
    before = len(audit_rows(settings.warehouse_url, MODEL, action="gate"))

    context = dg.build_sensor_context(instance=instance, resources={"modelops": _ops(strict, clock)})
    first = gate(context)
    assert isinstance(first, dg.SkipReason) and "inconclusive" in first.skip_message
    assert json.loads(context.cursor) == {"inconclusive": [newest, 0]}
    rows = audit_rows(settings.warehouse_url, MODEL, action="gate")
    assert len(rows) == before + 1 and rows[-1]["outcome"] == "inconclusive" and rows[-1]["model_version"] == newest
    assert "shadow" in rows[-1]["reason"]

    # Same clock, same cursor: nothing new to judge, so no second audit row.
    again = dg.build_sensor_context(instance=instance, cursor=context.cursor,
                                    resources={"modelops": _ops(strict, clock)})
    assert "waiting for new data" in gate(again).skip_message
    assert len(audit_rows(settings.warehouse_url, MODEL, action="gate")) == before + 1
    assert mlflow.aliases(MODEL).get("candidate") is None


def test_the_gate_sensor_rejects_a_challenger_without_demonstrated_skill_at_once(live):
    """Live mode keeps the skill requirement (the demo and the tests above waive it): a challenger
    whose walk-forward did not beat the better constant sign is rejected on the first tick, with
    no shadow window to wait for, and the run request names the decision."""
    settings, instance, mlflow = live
    from omniwatch.definitions import build_definitions

    champion = mlflow.aliases(MODEL)["champion"]
    newest = register_copy(mlflow, settings.warehouse_url, champion, actor="test")
    # The copy carries its source's verdict (the same walk-forward) in the warehouse and in MLflow.
    source, copy = (next(r for r in registry_rows(settings.warehouse_url, MODEL) if str(r["version"]) == v)
                    for v in (champion, newest))
    assert copy["metrics"]["skill"] == source["metrics"]["skill"]
    tags = mlflow.client().get_model_version(MODEL, newest).tags
    assert tags["omniwatch.skill"] == source["metrics"]["skill"]["status"]
    # Whatever the tiny model's own verdict, make this one "no skill at 1 h" (the gate's horizon here).
    skill = copy["metrics"]["skill"]
    skill["by_horizon"]["1h"] |= {"status": "no_demonstrated_skill", "reason": "1h: below the constant sign"}
    t = tables.model_registry
    with get_engine(settings.warehouse_url).begin() as conn:
        conn.execute(t.update().where(t.c.model_name == MODEL, t.c.version == newest).values(
            metrics={**copy["metrics"], "skill": skill}))
    strict = settings.model_copy(update={"gate": settings.gate.model_copy(
        update={"require_skill": True, "min_shadow_predictions": 72})})
    gate = build_definitions(strict).get_sensor_def("gate_sensor")
    context = dg.build_sensor_context(instance=instance, resources={
        "modelops": _ops(strict, LIVE_FROM + pd.Timedelta(hours=41))})
    result = gate(context)
    assert isinstance(result, dg.RunRequest) and result.run_key.endswith(f":{newest}:reject"), result
    row = audit_rows(settings.warehouse_url, MODEL, action="gate")[-1]
    assert (row["model_version"], row["outcome"]) == (newest, "reject")
    assert row["reason"] == "no_demonstrated_skill: 1h: below the constant sign"
    assert next(r for r in registry_rows(settings.warehouse_url, MODEL) if str(r["version"]) == newest)[
        "status"] == "rejected"
    assert mlflow.aliases(MODEL).get("candidate") is None
