"""The serving API's SLO report: latency quantiles and availability over a window, hourly.

The counts come from the ``slo_source`` resource (a Prometheus server when
``OMNIWATCH_PROMETHEUS_URL`` is set, else scrapes of the API's ``/metrics`` with their baselines in
``metric_snapshots``); the objectives and their thresholds are ``omniwatch.observability.slo``'s.
The report is the materialization's metadata; the check ``api_slos_are_met`` fails, naming the
breached objectives, when any objective is breached.
"""


from typing import Any

import dagster as dg

from omniwatch.assets.catalog import labels
from omniwatch.jobs import automation_status
from omniwatch.observability.resource import SloSourceResource
from omniwatch.observability.settings import SloSettings
from omniwatch.observability.slo import SloReport, Status, evaluate, parse_duration, render
from omniwatch.resources.warehouse import WarehouseResource

OBSERVABILITY_GROUP = "observability"


class SloReportConfig(dg.Config):
    window: str = "1h"  # a Prometheus-style duration: 90s, 30m, 1h, 7d


def report_metadata(report: SloReport) -> dict[str, Any]:
    w = report.window
    meta: dict[str, Any] = {
        "status": report.status.value,
        "window_source": w.source,
        "window_start": w.start.isoformat() if w.start else "counter start",
        "window_end": w.end.isoformat(),
        "window_requested_s": w.requested_s,
        "availability": report.availability.ratio,
        "requests": report.availability.requests,
        "errors_5xx": report.availability.errors_5xx,
        "report": dg.MetadataValue.md(f"```\n{render(report)}\n```"),
        "report_json": dg.MetadataValue.json(report.model_dump(mode="json")),
    }
    for r in report.latency:
        meta[f"{r.objective}_s"] = r.p95_s
        meta[f"{r.objective}_samples"] = r.samples
    return meta


@dg.asset(
    kinds={"prometheus"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec("api_slos_are_met", asset="api_slo_report",
                                   description="Fails when an objective (signal p95, execution p95, "
                                               "availability) is breached over the window.")],
    **labels("shared", "ops"),
)
def api_slo_report(context: dg.AssetExecutionContext, config: SloReportConfig, slo_source: SloSourceResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The serving API's SLOs over the window: p50/p95/p99 of signal and execution latency
    against 150 ms and 300 ms p95, and the non-5xx share of answers against 99.9 %, with the
    window each figure covers; an objective without observations is insufficient_observation."""
    window = parse_duration(config.window)
    report = evaluate(slo_source.source(warehouse.database_url).counts(window))
    context.log.info("\n" + render(report))
    insufficient = report.objectives(Status.INSUFFICIENT)
    check = dg.AssetCheckResult(
        check_name="api_slos_are_met", passed=not report.breached, severity=dg.AssetCheckSeverity.ERROR,
        description=(f"breached: {', '.join(report.breached)}" if report.breached else "no objective breached"),
        metadata={"breached": ", ".join(report.breached) or "none",
                  "insufficient_observation": ", ".join(insufficient) or "none",
                  "window_source": report.window.source})
    return dg.MaterializeResult(metadata=report_metadata(report), check_results=[check])


api_slo_job = dg.define_asset_job(
    name="api_slo_job", selection=dg.AssetSelection.assets("api_slo_report"),
    description="Compute the serving API's SLO report over the last window (default 1h).")

api_slo_schedule = dg.ScheduleDefinition(
    name="api_slo_schedule", job=api_slo_job, cron_schedule="15 * * * *", execution_timezone="UTC",
    default_status=automation_status(),
    description="Hourly SLO report of the serving API at hh:15 (the window ends at the tick).")


def slo_resources() -> dict[str, SloSourceResource]:
    """The ``slo_source`` resource of this environment (``SloSettings``: ``OMNIWATCH_PROMETHEUS_URL``, ...)."""
    return {"slo_source": SloSourceResource.from_settings(SloSettings())}
