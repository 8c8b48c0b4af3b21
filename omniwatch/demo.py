"""``omniwatch demo``: run the liquid pipeline on the embedded default and print what it did.

Two runs, as in production: ingestion + features over a partition range (one run, blocking
checks stop bad data inside it), then training, which asks the audit trail before it starts.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import click

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
    trading: str = ""
    live_day: date | None = None  # the held-back day the live segment replays

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
        if self.trading:
            lines += ["", self.trading]
        lines += ["", "SUCCESS" if self.success else "FAILED"]
        return "\n".join(lines)


# The demo's live segment: a few replayed hours must show a whole rollout and a rollback, so its
# windows are short and its tolerances wide (on this sample no model has skill, MODEL-NOTES: Rank IC
# over six predictions is noise). Only the error rate can fail a window here; the gate waits for
# a shadow hour of three matured 1 h predictions, a rollout window is two hours (six predictions).
# The gate's skill requirement is waived here, and only here: no version has demonstrated skill on
# this sample (README "Model research"), so with it every challenger is rejected at once and the
# rollout machinery could not be shown. The demo says so, and every version still carries its
# no_demonstrated_skill flag (risk refuses its live orders). Printed by the demo.
DEMO_LIVE_THRESHOLDS = dict(
    gate={"horizon": "1h", "require_skill": False, "min_shadow_predictions": 3, "tol_shadow_rank_ic": 2.0,
          "tol_shadow_hit_rate": 1.0,
          "max_shadow_error_rate": 0.1, "tol_ic": 1.0, "tol_rank_ic": 1.0, "tol_hit_rate": 1.0,
          "tol_net_pnl": 10.0, "tol_max_drawdown": 10.0, "tol_turnover": 100.0},
    rollout={"horizon": "1h", "window_hours": 2, "min_matured": 6, "tol_rank_ic": 2.0, "tol_hit_rate": 1.0,
             "max_error_rate": 0.1},
    rollback={"failed_windows": 2},
)
# The live segment replays the held-back day from 09:00 (its first tick brings 00:00..08:00 at once,
# as when the loop is started mid-day) to 24:00: sixteen hourly ticks, which hold the whole story
# (gate, 10 -> 30 -> 100, the degraded version gated and rolled back) within the 90 s it may take.
LIVE_FROM_HOUR = 9
# The degraded copy is sound for its first hours (so it passes its shadow gate), broken after.
DEGRADED_SOUND_HOURS = 2


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


class ProgressEcho(logging.Handler):
    """Draws the ``omniwatch.progress`` reports of the runs the demo executes (partitions,
    epochs, walk-forward folds) as a bar: redrawn in place on a terminal, one line per quarter
    otherwise (a log file or a test's captured output)."""

    WIDTH = 24

    def __init__(self, echo: Callable[[str], None], tty: bool) -> None:
        super().__init__(logging.INFO)
        self.echo, self.tty = echo, tty
        self._last: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        from omniwatch.progress import parse

        found = parse(record.getMessage())
        if found is None or found.total <= 0:
            return
        filled = round(self.WIDTH * found.done / found.total)
        line = f"  {found.what:<28}[{'#' * filled}{'.' * (self.WIDTH - filled)}] {found.done}/{found.total}"
        if self.tty:
            click.echo("\r" + line, nl=found.done >= found.total)
            return
        quarter = 4 * found.done // found.total
        if quarter > self._last.get(found.what, -1) or found.done == found.total:
            self._last[found.what] = quarter if found.done < found.total else -1
            self.echo(line)


@contextmanager
def _progress(echo: Callable[[str], None]) -> Iterator[None]:
    from omniwatch.progress import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    handler = ProgressEcho(echo, tty=sys.stdout.isatty())
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_demo(settings: Settings, start: date, end: date, train: bool = True, live: bool = True,
             log_level: str = "WARNING", echo: Callable[[str], None] = lambda _line: None,
             refresh: bool = False) -> DemoSummary:
    """Materialize market plane + checks + features over ``start..end`` (inclusive) in one run,
    then (``train``) the training group in a second run. With ``live`` (and ``train``), the last
    day is held back: version 1 is trained a week before it, version 2 (the challenger) on all
    data before it, and the last day is then replayed hour by hour as live (``run_live_segment``).

    Every run is launched through the code location on the instance the UI shows
    (``omniwatch.launch``): each is listed on its job's page and can be re-executed from the UI."""
    from omniwatch.instance import dagster_instance
    from omniwatch.launch import CodeLocationLauncher, settings_environment
    from omniwatch.warehouse.migrate import upgrade

    upgrade(settings.warehouse_url)
    instance = dagster_instance(settings)
    with settings_environment(settings), CodeLocationLauncher(instance) as launcher, _progress(echo):
        summary = _main_runs(settings, launcher, start, end, train, live, refresh, log_level, echo)
    if summary.live_day is not None:
        with _stage("live segment", summary.seconds, echo), _progress(echo):
            summary.live, live_ok = run_live_segment(settings, instance, summary.live_day, log_level)
        summary.success = summary.success and live_ok
        if live_ok:
            from omniwatch.demo_trading import run_paper_execution

            with _stage("paper execution", summary.seconds, echo):
                summary.trading, trading_ok = run_paper_execution(settings)
            summary.success = summary.success and trading_ok
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.warehouse.tables import RAW_MARKET_TABLES

    warehouse = WarehouseResource(database_url=settings.warehouse_url)
    for name in (*RAW_MARKET_TABLES, "events", "entities", "event_links", "feature_snapshots"):
        summary.rows[name] = warehouse.count(name)  # after the live day and the VC snapshots
    return summary


def unchanged_reason(instance, job_name: str, days: list[str] | None) -> str | None:
    """Why ``job_name`` need not run again over ``days`` (None: it must run).

    A rerun of the demo replays the bundled sample, which does not change: a job whose assets
    are all materialized (every day of ``days`` for the partitioned ones) at their current
    ``code_version`` (the ``dagster/code_version`` tag Dagster stamps on each materialization),
    with no upstream asset materialized since, would rewrite the same rows. Dagster's own
    staleness inputs, read through the instance's public API."""
    import dagster as dg

    from omniwatch.definitions import load_definitions

    defs = load_definitions()
    job = defs.resolve_job_def(job_name)
    keys = set(job.asset_layer.selected_asset_keys)
    graph = defs.resolve_asset_graph()
    last_written: dict[dg.AssetKey, float] = {}
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        node = graph.get(key)
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            return None
        if event.asset_materialization.tags.get("dagster/code_version") != node.code_version:
            return None
        if node.partitions_def is not None and days:
            done = instance.get_materialized_partitions(key)
            if any(day not in done for day in days):
                return None
        last_written[key] = event.timestamp
    upstream = {parent for key in keys for parent in graph.get(key).parent_keys} - keys
    for parent in upstream:
        event = instance.get_latest_materialization_event(parent)
        if event is not None and any(event.timestamp > t for t in last_written.values()):
            return None
    span = f" over {days[0]}..{days[-1]}" if days else ""
    return (f"{len(keys)} assets materialized{span} at their current code versions, nothing upstream changed "
            "since (the bundled sample does not change); `--refresh` runs it anyway")


def _launch_or_skip(launcher, settings: Settings, job_name: str, refresh: bool, days: list[str] | None,
                    echo: Callable[[str], None], **kwargs):
    """Launch ``job_name`` unless replaying and ``unchanged_reason`` says nothing would change."""
    if not refresh and settings.source == "replay":
        reason = unchanged_reason(launcher.instance, job_name, days)
        if reason is not None:
            echo(f"  {job_name}: skipped, {reason}")
            return None
    return launcher.launch(job_name, **kwargs)


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _main_runs(settings: Settings, launcher, start: date, end: date, train: bool, live: bool, refresh: bool,
               log_level: str, echo: Callable[[str], None]) -> DemoSummary:
    from omniwatch.launch import check_evaluations, materializations
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.warehouse.tables import RAW_MARKET_TABLES

    live = live and train and end > start
    data_end = end - timedelta(days=1) if live else end
    instance = launcher.instance
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    seconds: dict[str, float] = {}
    run_ids: dict[str, str] = {}

    with _stage("liquid_data_job", seconds, echo):
        data = _launch_or_skip(launcher, settings, "liquid_data_job", refresh, _days(start, data_end), echo,
                               run_config=quiet,
                               tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: data_end.isoformat()})
    warehouse = WarehouseResource(database_url=settings.warehouse_url)
    rows = {name: warehouse.count(name) for name in (*RAW_MARKET_TABLES, "feature_snapshots")}
    rows["events"] = warehouse.count("events")
    summary = DemoSummary(data is None or data.is_success, seconds, rows, [], run_ids)
    if data is not None:
        run_ids["liquid_data_job"] = data.run_id
        summary.checks = sorted(check_evaluations(instance, data.run_id))
    if not (train and summary.success):
        return summary

    # Live: version 1 (the champion) on data up to a week before the held-back day, then the
    # challenger (what the weekly retraining does) on every day whose 24 h labels had matured
    # before it: as_of < data_end, so the live day's bars, which complete data_end's labels, do
    # not change its inputs and a rerun finds it trained already. Else one training on everything.
    windows = [(data_end - timedelta(days=7)).isoformat(), data_end.isoformat()] if live else [None]
    registered = []
    for i, window_end in enumerate(windows):
        name = "liquid_training_job" if i == 0 else "liquid_training_job (challenger)"
        config = {**quiet, "ops": {"training_dataset": {"config": {"end": window_end}}}} if window_end else quiet
        with _stage(name, seconds, echo):
            training = launcher.launch("liquid_training_job", run_config=config)
        run_ids[name] = training.run_id
        summary.success = training.is_success
        if not training.is_success:
            return summary
        materialized = materializations(instance, training.run_id, "liquid_ensemble")
        if not materialized:  # skipped: nothing changed since the registered version
            registered.append(f"{name}: skipped, inputs and code unchanged since the registered version")
            continue
        meta = materialized[0].metadata
        summary.walk_forward = meta["walk_forward"].value
        registered.append(f"registered {meta['registered_model'].value} version "
                          f"{meta['registered_version'].value} aliases {meta['aliases'].value} "
                          f"(mlflow run {meta['mlflow_run_id'].value}, {meta['model_uri'].value})")
        if "skill" in meta:  # the verdict the gate and the risk check act on (omniwatch.modelops.skill)
            registered.append(f"  skill: {meta['skill'].value} ({meta['skill_reason'].value})")
    summary.registered = "\n".join(registered)

    # The VC track: daily filings over the same range, then the archive, entities, links, model.
    with _stage("sec_filings_job", seconds, echo):
        filings = _launch_or_skip(launcher, settings, "sec_filings_job", refresh, _days(start, end), echo,
                                  run_config=quiet,
                                  tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()})
    with _stage("vc_job", seconds, echo):
        vc = _launch_or_skip(launcher, settings, "vc_job", refresh, None, echo, run_config=quiet)
    for name, run in (("sec_filings_job", filings), ("vc_job", vc)):
        if run is not None:
            run_ids[name] = run.run_id
    summary.success = all(run is None or run.is_success for run in (filings, vc))
    if live and summary.success:
        summary.live_day = end
    if vc is None:
        summary.vc = "VC track: unchanged since its last run (vc_job skipped)"
    elif vc.is_success:
        dataset = materializations(instance, vc.run_id, "vc_dataset")[0].metadata
        model = materializations(instance, vc.run_id, "vc_model")[0].metadata
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
    from omniwatch.progress import report
    from omniwatch.promotions import audit_rows, registry_rows
    from omniwatch.resources.mlflow import MLflowResource

    first = datetime.combine(day, dtime(LIVE_FROM_HOUR), tzinfo=UTC)
    last = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=UTC)
    stored = data_clock(settings.warehouse_url)
    if stored is not None and stored >= last:
        return (f"live segment: {day} was replayed already (bars stored through {stored.isoformat()}); "
                "nothing new arrives, so it is not replayed again"), True
    live_settings = settings.model_copy(update={
        k: getattr(settings, k).model_copy(update=v) for k, v in DEMO_LIVE_THRESHOLDS.items()})
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    degraded = None
    hours = replay_hours(first, last)
    with LiveReplay(live_settings, instance, log_level=log_level) as replay:
        for i, clock in enumerate(hours, 1):
            tick = replay.tick(clock)
            report("live hours", i, len(hours))
            if not tick.success:
                failed = "; ".join(d for d in tick.decisions if d.startswith("FAILED"))
                return f"live segment: the tick at {clock:%Y-%m-%d %H:%M} failed (run {tick.run_id}) {failed}", False
            aliases = mlflow.aliases("omniwatch-liquid")
            if degraded is None and aliases.get("champion") not in (None, "1") and "candidate" not in aliases:
                # Sound through its shadow window, so it passes the gate; broken after.
                degraded = register_degraded_copy(
                    mlflow, settings.warehouse_url, aliases["champion"], actor="demo:drill",
                    fails_from=clock + timedelta(hours=DEGRADED_SOUND_HOURS))
    rows = [r for r in audit_rows(settings.warehouse_url, "omniwatch-liquid")
            if r["action"] in ("drift", "gate", "rollout", "rollback", "manual")]
    lags = sorted(t.snapshot_lag_s for t in replay.ticks if t.snapshot_lag_s is not None)
    parts: dict[str, float] = {}
    for t in replay.ticks:
        for part, secs in t.seconds.items():
            parts[part] = parts.get(part, 0.0) + secs
    lines = [f"live segment: {day} replayed hour by hour ({len(replay.ticks)} ticks); demo thresholds "
             f"{DEMO_LIVE_THRESHOLDS}",
             "the gate's skill requirement is waived for this demonstration of the rollout machinery (no version "
             "has demonstrated skill on this sample); live mode keeps it (OMNIWATCH_GATE__REQUIRE_SKILL=true)",
             f"bar close -> stored snapshot: median {statistics.median(lags):.1f} s, max {lags[-1]:.1f} s"
             if lags else "",
             "where the segment's time went: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()),
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
