"""``omniwatch demo``: run the liquid pipeline on the embedded default and print what it did.

Two runs, as in production: ingestion + features over a partition range (one run, blocking
checks stop bad data inside it), then training, which asks the audit trail before it starts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from omniwatch.settings import TRAINING_PROFILES, Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class DemoSummary:
    success: bool
    seconds: dict[str, float]
    rows: dict[str, int]
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # asset, check, passed, severity
    run_ids: dict[str, str] = field(default_factory=dict)
    walk_forward: str = ""
    registered: str = ""
    vc: str = ""
    live: str = ""

    def render(self) -> str:
        lines = [f"{job}: run {self.run_ids[job]} in {secs:.1f} s" if job in self.run_ids else f"{job}: {secs:.1f} s"
                 for job, secs in self.seconds.items()]
        lines += ["", f"{'table':<20}{'rows':>10}"]
        lines += [f"{name:<20}{count:>10,}" for name, count in self.rows.items()]
        lines += ["", f"{'check':<62}{'result':>7}  severity"]
        lines += [f"{asset + '.' + check:<62}{'PASS' if ok else 'FAIL':>7}  {sev}"
                  for asset, check, ok, sev in self.checks]
        if self.walk_forward:
            lines += ["", "walk-forward (pooled BTC/ETH/SOL, after 5 bps fee + 5 bps slippage + funding):",
                      self.walk_forward]
        if self.registered:
            lines += ["", self.registered]
        if self.vc:
            lines += ["", self.vc]
        if self.live:
            lines += ["", self.live]
        lines += ["", "SUCCESS" if self.success else "FAILED"]
        return "\n".join(lines)


# The demo's live segment: a few replayed hours must show a whole rollout and a rollback, so its
# windows are short and its tolerances wide (on this sample no model has skill, MODEL-NOTES: Rank IC
# over nine predictions is noise). Only the error rate can fail a window here; the gate waits for
# a shadow window of six matured 1 h predictions. Printed by the demo.
DEMO_LIVE_THRESHOLDS = dict(
    gate={"horizon": "1h", "min_shadow_predictions": 6, "tol_shadow_rank_ic": 2.0, "tol_shadow_hit_rate": 1.0,
          "max_shadow_error_rate": 0.1, "tol_ic": 1.0, "tol_rank_ic": 1.0, "tol_hit_rate": 1.0,
          "tol_net_pnl": 10.0, "tol_max_drawdown": 10.0, "tol_turnover": 100.0},
    rollout={"horizon": "1h", "window_hours": 3, "min_matured": 6, "tol_rank_ic": 2.0, "tol_hit_rate": 1.0,
             "max_error_rate": 0.1},
    rollback={"failed_windows": 2},
)


def training_overrides(settings: Settings) -> dict:
    """The training resource of ``settings.training_profile`` (none for ``full``: the default)."""
    fields = TRAINING_PROFILES[settings.training_profile]
    if not fields:
        return {}
    from omniwatch.resources.training import TrainingResource

    return {"training": TrainingResource(**fields)}


@contextmanager
def _stage(name: str, seconds: dict[str, float], echo: Callable[[str], None]) -> Iterator[None]:
    """Say that stage ``name`` starts and how long it took (into ``seconds`` too): a newcomer sees
    where the minutes go instead of a silent terminal."""
    echo(f"[{datetime.now().astimezone():%H:%M:%S}] {name} started")
    began = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = time.perf_counter() - began
        echo(f"[{datetime.now().astimezone():%H:%M:%S}] {name} finished in {seconds[name]:.0f} s")


def run_demo(settings: Settings, start: date, end: date, train: bool = True, live: bool = True,
             log_level: str = "WARNING", echo: Callable[[str], None] = lambda _line: None) -> DemoSummary:
    """Materialize market plane + checks + features over ``start..end`` (inclusive) in one run,
    then (``train``) the training group in a second run. With ``live`` (and ``train``), the last
    day is held back: version 1 is trained a week before it, version 2 (the challenger) on all
    data before it, and the last day is then replayed hour by hour as live (``run_live_segment``)."""
    live = live and train and end > start
    data_end = end - timedelta(days=1) if live else end
    from omniwatch.definitions import build_definitions
    from omniwatch.instance import dagster_instance
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.warehouse.migrate import upgrade
    from omniwatch.warehouse.tables import RAW_MARKET_TABLES

    upgrade(settings.warehouse_url)
    instance = dagster_instance(settings)
    defs = build_definitions(settings, training_overrides(settings))
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    seconds, run_ids = {}, {}

    with _stage("liquid_data_job", seconds, echo):
        data = defs.resolve_job_def("liquid_data_job").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False,
            tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: data_end.isoformat()},
        )
    run_ids["liquid_data_job"] = data.run_id
    warehouse = WarehouseResource(database_url=settings.warehouse_url)
    rows = {name: warehouse.count(name) for name in (*RAW_MARKET_TABLES, "feature_snapshots")}
    rows["events"] = warehouse.count("events")
    checks = sorted(
        (e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value)
        for e in data.get_asset_check_evaluations()
    )
    summary = DemoSummary(data.success, seconds, rows, checks, run_ids)
    if not (train and data.success):
        return summary

    # Live: version 1 (the champion) on data up to a week before the held-back day, then the
    # challenger on everything before it (what the weekly retraining does); else one training.
    windows = [(data_end - timedelta(days=7)).isoformat(), None] if live else [None]
    registered = []
    for i, window_end in enumerate(windows):
        name = "liquid_training_job" if i == 0 else "liquid_training_job (challenger)"
        config = {**quiet, "ops": {"training_dataset": {"config": {"end": window_end}}}} if window_end else quiet
        with _stage(name, seconds, echo):
            training = defs.resolve_job_def("liquid_training_job").execute_in_process(
                instance=instance, run_config=config, raise_on_error=False)
        run_ids[name] = training.run_id
        summary.success = training.success
        if not training.success:
            return summary
        materialized = training.asset_materializations_for_node("liquid_ensemble")
        if not materialized:  # skipped: nothing changed since the registered version
            registered.append(f"{name}: skipped, inputs and code unchanged since the registered version")
            continue
        meta = materialized[0].metadata
        summary.walk_forward = meta["walk_forward"].value
        registered.append(f"registered {meta['registered_model'].value} version "
                          f"{meta['registered_version'].value} aliases {meta['aliases'].value} "
                          f"(mlflow run {meta['mlflow_run_id'].value}, {meta['model_uri'].value})")
    summary.registered = "\n".join(registered)

    # The VC track: daily filings over the same range, then the archive, entities, links, model.
    with _stage("sec_filings_job", seconds, echo):
        filings = defs.resolve_job_def("sec_filings_job").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False,
            tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        )
    run_ids["sec_filings_job"] = filings.run_id
    with _stage("vc_job", seconds, echo):
        vc = defs.resolve_job_def("vc_job").execute_in_process(instance=instance, run_config=quiet,
                                                               raise_on_error=False)
    run_ids["vc_job"] = vc.run_id
    summary.success = filings.success and vc.success
    if live and summary.success:
        with _stage("live segment", seconds, echo):
            summary.live, live_ok = run_live_segment(settings, instance, end, log_level)
        summary.success = summary.success and live_ok
    for name in (*RAW_MARKET_TABLES, "events", "entities", "event_links", "feature_snapshots"):
        summary.rows[name] = warehouse.count(name)  # after the live day and the VC snapshots
    if vc.success:
        dataset = vc.asset_materializations_for_node("vc_dataset")[0].metadata
        model = vc.asset_materializations_for_node("vc_model")[0].metadata
        if "skipped" in model:
            summary.vc = f"VC track: {model['skipped'].value}"
        else:
            summary.vc = "\n".join([
                f"VC track: {dataset['rows'].value:,} entity-months of {dataset['entities'].value:,} companies, "
                f"{dataset['filings'].value:,} Form D filings; base rate of a new Form D within 180 days "
                f"{dataset['base_rate'].value:.1%}",
                "validation (time-ordered, purged 180 days):", model["validation"].value,
                f"registered {model['registered_model'].value} version {model['registered_version'].value} "
                f"aliases {model['aliases'].value}",
            ])
    return summary


def run_live_segment(settings: Settings, instance, day: date, log_level: str = "WARNING") -> tuple[str, bool]:
    """Replay ``day`` hour by hour as live (``omniwatch.live``): the gate, rollout and rollback
    sensors roll the challenger out 10 -> 30 -> 100; once it is champion, a deliberately degraded
    copy (``omniwatch.drills``) is registered, gated, and rolled back after failed windows."""
    from omniwatch.drills import register_degraded_copy
    from omniwatch.live import LiveReplay, replay_hours
    from omniwatch.operations import data_clock
    from omniwatch.promotions import audit_rows, registry_rows
    from omniwatch.resources.mlflow import MLflowResource

    first = datetime.combine(day, dtime(1), tzinfo=UTC)
    stored = data_clock(settings.warehouse_url)
    if stored is not None and stored >= first + timedelta(hours=23):
        return (f"live segment: {day} was replayed already (bars stored through {stored.isoformat()}); "
                "nothing new arrives, so it is not replayed again"), True
    live_settings = settings.model_copy(update={
        k: getattr(settings, k).model_copy(update=v) for k, v in DEMO_LIVE_THRESHOLDS.items()})
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    replay = LiveReplay(live_settings, instance, log_level=log_level)
    degraded = None
    for clock in replay_hours(first, first + timedelta(hours=23)):
        tick = replay.tick(clock)
        if not tick.success:
            return f"live segment: the tick at {clock:%Y-%m-%d %H:%M} failed (run {tick.run_id})", False
        aliases = mlflow.aliases("omniwatch-liquid")
        if degraded is None and aliases.get("champion") not in (None, "1") and "candidate" not in aliases:
            # Sound through its shadow window, so it passes the gate; broken from 4 hours on.
            degraded = register_degraded_copy(mlflow, settings.warehouse_url, aliases["champion"],
                                              actor="demo:drill", fails_from=clock + timedelta(hours=4))
    rows = [r for r in audit_rows(settings.warehouse_url, "omniwatch-liquid")
            if r["action"] in ("drift", "gate", "rollout", "rollback", "manual")]
    lags = sorted(t.snapshot_lag_s for t in replay.ticks if t.snapshot_lag_s is not None)
    lines = [f"live segment: {day} replayed hour by hour ({len(replay.ticks)} ticks); demo thresholds "
             f"{DEMO_LIVE_THRESHOLDS}",
             f"bar close -> stored snapshot: median {statistics.median(lags):.1f} s, max {lags[-1]:.1f} s"
             if lags else "",
             f"{'id':>4}  {'action':<9}{'outcome':<14}{'version':>7}{'stage':>6}  {'who':<7}{'source':<10}"
             "window / reason"]
    for r in rows:
        window = (r["window"] or {}).get("label") or (r["window"] or {}).get("end") or ""
        lines.append(f"{r['id']:>4}  {r['action']:<9}{r['outcome']:<14}{r['model_version'] or '':>7}"
                     f"{r['rollout_stage'] if r['rollout_stage'] is not None else '':>6}  {r['actor']:<7}"
                     f"{r['source']:<10}{window}  {r['reason'][:90]}")
    status = {str(r["version"]): (r["status"], r["aliases"]) for r in registry_rows(settings.warehouse_url,
                                                                                      "omniwatch-liquid")}
    lines.append(f"registry after the live segment: {status}")
    ok = degraded is not None and status.get(degraded, ("",))[0] == "rejected"
    if not ok:
        lines.append("the live segment did not complete a rollout and a rollback")
    return "\n".join(line for line in lines if line), ok
