"""``omniwatch demo``: run the liquid pipeline on the embedded default and print what it did.

Two runs, as in production: ingestion + features over a partition range (one run, blocking
checks stop bad data inside it), then training, which asks the audit trail before it starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from omniwatch.settings import Settings

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

    def render(self) -> str:
        lines = [f"{job}: run {rid} in {self.seconds[job]:.1f} s" for job, rid in self.run_ids.items()]
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
        lines += ["", "SUCCESS" if self.success else "FAILED"]
        return "\n".join(lines)


def run_demo(settings: Settings, start: date, end: date, train: bool = True,
             log_level: str = "WARNING") -> DemoSummary:
    """Materialize market plane + checks + features over ``start..end`` (inclusive) in one run,
    then (``train``) the training group in a second run."""
    from omniwatch.definitions import build_definitions
    from omniwatch.instance import dagster_instance
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.warehouse.migrate import upgrade
    from omniwatch.warehouse.tables import RAW_MARKET_TABLES

    upgrade(settings.warehouse_url)
    instance = dagster_instance(settings)
    defs = build_definitions(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    seconds, run_ids = {}, {}

    began = time.perf_counter()
    data = defs.resolve_job_def("liquid_data_job").execute_in_process(
        instance=instance, run_config=quiet, raise_on_error=False,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
    )
    seconds["liquid_data_job"], run_ids["liquid_data_job"] = time.perf_counter() - began, data.run_id
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

    began = time.perf_counter()
    training = defs.resolve_job_def("liquid_training_job").execute_in_process(
        instance=instance, run_config=quiet, raise_on_error=False)
    seconds["liquid_training_job"], run_ids["liquid_training_job"] = time.perf_counter() - began, training.run_id
    summary.success = training.success
    if not training.success:
        return summary
    meta = training.asset_materializations_for_node("liquid_ensemble")[0].metadata
    summary.walk_forward = meta["walk_forward"].value
    summary.registered = (f"registered {meta['registered_model'].value} version "
                          f"{meta['registered_version'].value} aliases {meta['aliases'].value} "
                          f"(mlflow run {meta['mlflow_run_id'].value}, {meta['model_uri'].value})")

    # The VC track: daily filings over the same range, then the archive, entities, links, model.
    began = time.perf_counter()
    filings = defs.resolve_job_def("sec_filings_job").execute_in_process(
        instance=instance, run_config=quiet, raise_on_error=False,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
    )
    seconds["sec_filings_job"], run_ids["sec_filings_job"] = time.perf_counter() - began, filings.run_id
    began = time.perf_counter()
    vc = defs.resolve_job_def("vc_job").execute_in_process(instance=instance, run_config=quiet, raise_on_error=False)
    seconds["vc_job"], run_ids["vc_job"] = time.perf_counter() - began, vc.run_id
    summary.success = filings.success and vc.success
    for name in ("events", "entities", "event_links", "feature_snapshots"):  # + the VC snapshots
        summary.rows[name] = warehouse.count(name)
    if vc.success:
        dataset = vc.asset_materializations_for_node("vc_dataset")[0].metadata
        model = vc.asset_materializations_for_node("vc_model")[0].metadata
        summary.vc = "\n".join([
            f"VC track: {dataset['rows'].value:,} entity-months of {dataset['entities'].value:,} companies, "
            f"{dataset['filings'].value:,} Form D filings; base rate of a new Form D within 180 days "
            f"{dataset['base_rate'].value:.1%}",
            "validation (time-ordered, purged 180 days):", model["validation"].value,
            f"registered {model['registered_model'].value} version {model['registered_version'].value} "
            f"aliases {model['aliases'].value}",
        ])
    return summary
