"""The VC track in the graph: filings land as events, entities resolve, links by CIK, and the
VC dataset is refused when a blocking events check failed (nothing registered)."""

from __future__ import annotations

import pandas as pd
from dagster import AssetSelection, DagsterInstance

from omniwatch.checks.outcome import make_outcome
from omniwatch.definitions import build_definitions
from omniwatch.resources.warehouse import WarehouseResource

from .helpers import make_settings, run_job


def _run_vc(settings):
    defs = build_definitions(settings)
    keys = AssetSelection.assets("sec_filings_archive", "entities", "event_links", "vc_dataset").resolve(
        defs.resolve_asset_graph())
    job = defs.get_implicit_global_asset_job_def().get_subset(asset_selection=set(keys))
    return job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)


def test_filings_entities_and_links_then_the_gate_blocks_the_vc_dataset(tmp_path):
    settings = make_settings(tmp_path)
    assert run_job(settings, "sec_filings_job", "2025-06-01", "2025-06-30").success
    wh = WarehouseResource(database_url=settings.warehouse_url)
    june = wh.read_window("events", pd.Timestamp("2025-06-01", tz="UTC"), pd.Timestamp("2025-07-01", tz="UTC"),
                          time_column="available_time")
    assert len(june) > 0 and set(june["source"]) == {"edgar"} and set(june["track"]) == {"vc"}
    # Femasys' post-IPO private placement of 2025-06-10 is there, stamped with its acceptance time.
    femasys = june[june["payload"].map(lambda p: p.get("cik") == "0001339005") & (june["event_type"] == "D")]
    assert len(femasys) >= 1 and (femasys["available_time"].dt.strftime("%Y-%m-%d") == "2025-06-10").all()

    bad = make_outcome("have_no_future_timestamps", "a filing stamped in the future",
                       [{"event_time": "2031-01-01T00:00:00+00:00", "reason": "after now", "source_id": "x"}])
    wh.record_checks("sec_filings", [bad], pd.Timestamp("2025-06-15", tz="UTC").to_pydatetime(),
                     pd.Timestamp("2025-06-16", tz="UTC").to_pydatetime(), "a-later-run")
    result = _run_vc(settings)
    assert not result.success
    assert wh.count("entities") == 7_876
    links = wh.read_table("event_links")
    assert len(links) == wh.count("events") and set(links["method"]) == {"cik"}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "vc_dataset"
    assert "blocked_by_data_quality" in failure.event_specific_data.error.message
    assert failure.event_specific_data.user_failure_data.metadata["failed_checks"].value[0]["days"] == ["2025-06-15"]
    assert wh.count("model_registry") == 0
