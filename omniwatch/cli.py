"""The project's one command line: ``omniwatch db upgrade``, ``omniwatch demo``, ``omniwatch slo``."""

from __future__ import annotations

import statistics
import sys
from datetime import UTC

import click

from omniwatch.settings import SAMPLE_END, SAMPLE_START, get_settings


@click.group()
def main() -> None:
    """Omniwatch: market and information monitoring as a Dagster asset graph."""


@main.group()
def db() -> None:
    """Warehouse schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the warehouse (OMNIWATCH_DATABASE_URL, default SQLite under OMNIWATCH_HOME)."""
    from omniwatch.warehouse.engine import get_engine
    from omniwatch.warehouse.migrate import current_revision, upgrade

    url = get_settings().warehouse_url
    upgrade(url, revision)
    click.echo(f"warehouse {get_engine(url).url.render_as_string()} at revision {current_revision(url)}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Step the warehouse schema back to REVISION (``base`` drops every table)."""
    from omniwatch.warehouse.migrate import downgrade

    downgrade(get_settings().warehouse_url, revision)


@db.command("current")
def db_current() -> None:
    """Print the warehouse's schema revision."""
    from omniwatch.warehouse.migrate import current_revision

    click.echo(current_revision(get_settings().warehouse_url) or "empty (run omniwatch db upgrade)")


@main.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=SAMPLE_START.isoformat(), show_default=True)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=SAMPLE_END.isoformat(), show_default=True,
              help="Last daily partition, inclusive.")
@click.option("--train/--no-train", default=True, show_default=True,
              help="Also train, evaluate and register the liquid and VC models.")
@click.option("--live/--no-live", default=True, show_default=True,
              help="Hold back the last day and replay it hour by hour as live: rollout and a rollback drill.")
@click.option("--refresh", is_flag=True, default=False,
              help="Run every job even when its assets are materialized at their current code versions.")
def demo(start, end, train: bool, live: bool, refresh: bool) -> None:
    """Run the liquid pipeline on the embedded default over the sample span and print a summary."""
    import warnings

    from omniwatch.demo import run_demo

    warnings.filterwarnings("ignore")  # Dagster beta/preview notices are noise on a terminal
    settings = get_settings()
    click.echo(f"OMNIWATCH_HOME={settings.home.resolve()}  source={settings.source}  "
               f"replay_dir={settings.replay_dir}  symbols={','.join(settings.liquid_symbols)}  "
               f"training={settings.training_profile}")
    summary = run_demo(settings, start.date(), end.date(), train=train, live=live, echo=click.echo,
                       refresh=refresh)
    click.echo(summary.render())
    sys.exit(0 if summary.success else 1)


@main.command()
@click.option("--replay-from", "replay_from", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), required=True,
              help="First replayed hour (UTC); the warehouse should hold the data before it.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), default=None,
              help="Last replayed hour (UTC); default: 24 hours after --replay-from.")
@click.option("--speed", type=float, default=None,
              help="Replayed hours per wall-clock second (default: as fast as the work allows).")
def live(replay_from, until, speed) -> None:
    """Replay the sample's later hours as if they were arriving: hour by hour ingest, features,
    scoring and the gate/rollout/rollback sensors, on the same Dagster instance the UI shows."""
    import warnings
    from datetime import timedelta

    from omniwatch.live import run_live

    warnings.filterwarnings("ignore")
    settings = get_settings()
    start = replay_from.replace(tzinfo=UTC)
    end = until.replace(tzinfo=UTC) if until else start + timedelta(hours=24)

    def report(_replay, tick) -> bool:
        lag = f"{tick.snapshot_lag_s:.1f} s" if tick.snapshot_lag_s is not None else "none"
        click.echo(f"{tick.clock:%Y-%m-%d %H:%M}  run {tick.run_id[:8]} {'ok' if tick.success else 'FAILED'}  "
                   f"bar close -> snapshot {lag}  " + "; ".join(tick.decisions))
        return True

    replay = run_live(settings, start, end, speed=speed, on_tick=report)
    lags = sorted(t.snapshot_lag_s for t in replay.ticks if t.snapshot_lag_s is not None)
    if lags:
        click.echo(f"{len(replay.ticks)} hours replayed; bar close -> stored snapshot: median "
                   f"{statistics.median(lags):.1f} s, max {lags[-1]:.1f} s")
    sys.exit(0 if all(t.success for t in replay.ticks) else 1)


@main.command()
@click.option("--window", default=None, help="How far back: 90s, 30m, 1h, 7d (default OMNIWATCH_SLO_WINDOW, 1h).")
@click.option("--prometheus-url", default=None, help="Query this Prometheus (default OMNIWATCH_PROMETHEUS_URL).")
@click.option("--metrics-url", default=None, help="Without Prometheus: scrape this /metrics (default: the API's).")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the report as JSON.")
def slo(window: str | None, prometheus_url: str | None, metrics_url: str | None, as_json: bool) -> None:
    """The API's SLOs over a window: latency p50/p95/p99 against the thresholds and availability.
    Exit status 0 when no objective is breached, 1 on a breach, 2 when the counts cannot be read."""
    from omniwatch.observability.settings import SloSettings
    from omniwatch.observability.slo import evaluate, parse_duration, render
    from omniwatch.observability.sources import SloSourceError, build_source

    conf = SloSettings()
    try:
        span = parse_duration(window or conf.slo_window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from exc
    source = build_source(conf.prometheus_url if prometheus_url is None else prometheus_url,
                          metrics_url or conf.metrics_url, get_settings().warehouse_url, conf.slo_timeout_s)
    try:
        report = evaluate(source.counts(span))
    except SloSourceError as exc:
        click.echo(f"slo: {exc}", err=True)
        sys.exit(2)
    click.echo(report.model_dump_json(indent=2) if as_json else render(report))
    sys.exit(1 if report.breached else 0)


@main.group()
def research() -> None:
    """Model research with honest statistics (omniwatch.research)."""


@research.command("walk-forward")
@click.option("--windows", default=12, show_default=True, help="Monthly test windows (12: 2024-10 .. 2025-09).")
@click.option("--horizon", default=24, show_default=True, type=click.Choice(["1", "4", "24"]),
              help="The traded horizon the deflated Sharpe ratio judges.")
@click.option("--seed", default=7, show_default=True)
@click.option("--null-shifts", default=20, show_default=True)
def research_walk_forward_cmd(windows: int, horizon: str, seed: int, null_shifts: int) -> None:
    """Every variant through the walk-forward on the bundled sample, per window and per regime,
    against the constant-sign rules and the circular-shift null, the hourly sign rule beside the
    horizon-sized strategy; each variant an MLflow run in ``omniwatch-research``; the deflated
    Sharpe ratio of the best variant's sized strategy among all of them, and which meet the goal."""
    import time
    import uuid

    import pandas as pd

    from omniwatch.ml.lgbm import LightGBMConfig
    from omniwatch.ml.protocol import TrainingConfig
    from omniwatch.research.record import MlflowTrials
    from omniwatch.research.sample import sample_frame
    from omniwatch.research.walkforward import default_variants, research_walk_forward
    from omniwatch.resources.mlflow import MLflowResource

    started = time.monotonic()
    settings = get_settings()
    mlflow = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    trials = MlflowTrials(mlflow, study=f"wf-{uuid.uuid4().hex[:8]}")
    config = TrainingConfig(kfold_splits=2, wf_test_windows=windows, null_shifts=null_shifts,
                            lightgbm=LightGBMConfig(seed=seed))
    report = research_walk_forward(sample_frame(), default_variants(), config, traded_horizon=int(horizon),
                                   log=click.echo, record=trials.record)
    run_id = trials.report(report)
    pd.set_option("display.width", 200)
    view = report.windows.drop(columns="window").assign(
        window_start=report.windows["window_start"].dt.strftime("%Y-%m-%d"))
    click.echo("\nper window (Rank IC, hit rate and the better constant sign's, net Sharpe of the hourly sign rule, "
               "of the better constant sign and of the sized strategy, its turnover a year):")
    click.echo(view.to_markdown(index=False, floatfmt=".4f"))
    click.echo("\nper variant (t of Rank IC over windows, circular-shift null z, pooled figures, the goal):")
    click.echo(report.summary.to_markdown(index=False, floatfmt=".4f"))
    click.echo("\nper regime (trailing 30-day basket return at the window's start):")
    click.echo(report.by_regime.to_markdown(index=False, floatfmt=".4f"))
    best = report.best
    click.echo(f"\n{best['trials']} trials; best sized strategy at {best['horizon']} h: {best['variant']} (annualised "
               f"Sharpe {best['sharpe_annual']:.2f}); deflated Sharpe ratio {best['deflated_sharpe']:.3f} -> "
               f"{'skilful' if best['skilful'] else 'no demonstrated skill'} (hourly sign rule: "
               f"{best['sign_rule_variant']}, Sharpe {best['sign_rule_sharpe_annual']:.2f}, "
               f"DSR {best['sign_rule_deflated_sharpe']:.3f}); meeting the goal: {best['meeting_goal'] or 'none'}; "
               f"MLflow report run {run_id}; {time.monotonic() - started:.0f} s")


@main.command("mlflow-links")
@click.option("--ui-url", default=None, help="The MLflow UI's address (default OMNIWATCH_MLFLOW_UI_URL).")
def mlflow_links(ui_url: str | None) -> None:
    """Print each experiment's link into MLflow's model-training view (the UI's default view is
    GenAI traces: a plain experiment link opens an empty traces dashboard)."""
    from omniwatch.assets.catalog import mlflow_experiment_url
    from omniwatch.resources.mlflow import MLflowResource

    settings = get_settings()
    resource = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    experiments = [e for e in resource.client().search_experiments() if e.name != "Default"]
    if not experiments:
        click.echo("no experiments yet (run `make demo` first)")
    for e in sorted(experiments, key=lambda e: e.name):
        click.echo(f"{e.name:<20} {mlflow_experiment_url(ui_url or settings.mlflow_ui_url, e.experiment_id)}")


if __name__ == "__main__":  # pragma: no cover
    main()
