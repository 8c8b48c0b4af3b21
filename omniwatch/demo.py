"""``omniwatch demo``: run the main job on the embedded default and print what it did."""

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
    seconds: float
    rows: dict[str, int]
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # asset, check, passed, severity
    run_id: str = ""

    def render(self) -> str:
        lines = [f"run {self.run_id}: {'SUCCESS' if self.success else 'FAILED'} in {self.seconds:.1f} s", "",
                 f"{'asset':<18}{'rows':>10}"]
        lines += [f"{name:<18}{count:>10,}" for name, count in self.rows.items()]
        lines += ["", f"{'check':<62}{'result':>7}  severity"]
        lines += [f"{asset + '.' + check:<62}{'PASS' if ok else 'FAIL':>7}  {sev}"
                  for asset, check, ok, sev in self.checks]
        return "\n".join(lines)


def run_market_plane(settings: Settings, start: date, end: date, log_level: str = "WARNING") -> DemoSummary:
    """Materialize the market plane and its checks over ``start..end`` (inclusive) in one run."""
    from omniwatch.definitions import defs
    from omniwatch.instance import dagster_instance
    from omniwatch.resources.warehouse import WarehouseResource
    from omniwatch.warehouse.migrate import upgrade
    from omniwatch.warehouse.tables import RAW_MARKET_TABLES

    upgrade(settings.warehouse_url)
    instance = dagster_instance(settings)
    job = defs.resolve_job_def("market_plane_job")
    began = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        # Thousands of per-partition events belong in the UI, not on the terminal.
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )
    elapsed = time.perf_counter() - began
    warehouse = WarehouseResource(database_url=settings.warehouse_url)
    rows = {name: warehouse.count(name) for name in RAW_MARKET_TABLES}
    checks = sorted(
        (e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value)
        for e in result.get_asset_check_evaluations()
    )
    return DemoSummary(result.success, elapsed, rows, checks, result.run_id)
