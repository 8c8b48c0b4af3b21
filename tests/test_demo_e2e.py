"""End to end: `omniwatch demo` in a fresh OMNIWATCH_HOME on the embedded default (SQLite, local
MLflow, the bundled sample): market plane, checks, features, training, registration, the VC track
and the live segment; the API over what it stored; then a data-only rerun changes no row counts.

A short window that ends where the sample ends (so the live day and the newest snapshot are the
real ones) and the tiny training profile: the same stages and code paths in minutes. The whole
span's row counts and the demo's stage times are bench/demo_bench.py's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from servers import free_port, running

from omniwatch.demo import LIVE_FROM_HOUR

REPO = Path(__file__).resolve().parents[1]
# Four months: the tiny profile's 45 training days plus two walk-forward months before the
# challenger's window, which ends the week before the held-back (live) day 2025-09-26.
START, END = date(2025, 5, 26), date(2025, 9, 26)
DAYS = (END - START).days + 1


def _demo(home: Path, *args: str) -> str:
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "OMNIWATCH_TRAINING_PROFILE": "tiny"}
    for name in ("OMNIWATCH_DATABASE_URL", "DAGSTER_HOME", "OMNIWATCH_DAGSTER_DIR"):
        env.pop(name, None)  # the embedded default: the instance lives in $OMNIWATCH_HOME/dagster
    proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "omniwatch.cli", "demo", "--start", START.isoformat(),
                           "--end", END.isoformat(), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _rows(out: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^(\w+)\s+([\d,]+)$", out, re.M)}


@pytest.mark.e2e
def test_demo_runs_the_whole_liquid_pipeline_and_a_rerun_changes_no_row_counts(tmp_path):
    home = tmp_path / "home"
    first = _demo(home)
    (tmp_path / "demo.out").write_text(first)  # kept for a reader of a failed run
    rows = _rows(first)
    assert "training=tiny" in first.splitlines()[0]
    # Each stage says when it starts and how long it took, in order, before the summary.
    stages = ["liquid_data_job", "liquid_training_job", "liquid_training_job (challenger)", "sec_filings_job",
              "vc_job", "live segment", "paper execution"]
    said = [m.group(1) for m in re.finditer(r"^\[\d\d:\d\d:\d\d\] (.+)$", first, re.M)]
    assert [x for x in said if x.endswith(" started")] == [f"{s} started" for s in stages], said
    assert all(any(x.startswith(f"{s} finished in ") for x in said) for s in stages), said
    # Every hour of the window for three symbols (the live day included), three funding
    # settlements a day each (the SOL gap of 2024-12 is outside it: test_market_plane covers it).
    assert rows["market_bars"] == 3 * 24 * DAYS
    assert rows["funding_rates"] == 3 * 3 * DAYS
    # One liquid snapshot per symbol-hour, plus each VC entity's newest month (the serving view),
    # plus the live day's earlier versions: each hourly refresh of 2025-09-26 (from 09:00) stored the
    # day's hours so far under the day's new data version (what was known at that hour), 9 + 10 +
    # ... + 23 superseded rows per symbol; and the day before once more: the labels automation re-ran it
    # when the live day's bars landed, and its lineage now holds the 00:00 funding settlement.
    superseded = sum(range(LIVE_FROM_HOUR, 24))  # the tick at hh:00 stored the day's hours 0..hh-1
    assert rows["feature_snapshots"] == 3 * 24 * DAYS + rows["entities"] + 3 * superseded + 3 * 24
    assert rows["onchain_signals"] > 0 and rows["trades_ticks"] == 0 and rows["orderbook_l2"] == 0
    assert re.search(r"market_bars\.have_sane_ohlcv\s+PASS", first)
    assert re.search(r"funding_rates\.cover_settlements\s+PASS\s+WARN", first)
    assert "walk-forward" in first and "always_long" in first
    assert re.search(r"registered omniwatch-liquid version 1 aliases \['challenger', 'champion'\]", first)
    assert re.search(r"registered omniwatch-liquid version 2 aliases \['challenger'\]", first)
    # Each version's skill verdict, and the demo saying that it waives the gate's requirement.
    assert len(re.findall(r"^  skill: (demonstrated|no_demonstrated_skill) \(24h: net Sharpe", first, re.M)) == 2
    assert "the gate's skill requirement is waived" in first
    _assert_live_segment(first)
    assert re.search(r"registered omniwatch-vc version 1 aliases \['challenger', 'champion'\]", first)
    # The VC track reads the whole bundled filings archive whatever the window.
    assert rows["entities"] == 7_876 and rows["event_links"] >= 12_317
    assert "ROC AUC" in first and "base rate" in first
    assert first.rstrip().endswith("SUCCESS")
    assert (home / "warehouse.db").exists() and (home / "mlflow.db").exists()
    assert (home / "dagster" / "dagster.yaml").is_file()  # DAGSTER_HOME under OMNIWATCH_HOME
    # A progress bar over the long loops (single-run backfill days, epochs, folds, live hours).
    ticks = 24 - LIVE_FROM_HOUR + 1  # 09:00 .. 24:00
    assert re.search(rf"^  live hours\s+\[#+\] {ticks}/{ticks}$", first, re.M), first[-3000:]
    _assert_runs_launched_through_the_code_location(home)
    _assert_paper_execution(first, home)

    _serve_from_the_demo(home)

    second = _demo(home, "--no-train")
    again = _rows(second)
    # Nothing changed: the data job is skipped (every day materialized at the current code versions).
    assert re.search(r"^  liquid_data_job: skipped, \d+ assets materialized over 2025-05-26\.\.2025-09-26", second,
                     re.M), second[-2000:]
    # The rerun adds nothing; the API added one event (sent twice, stored once) and linked it to
    # the company it names.
    expected = {**rows, "events": rows["events"] + 1, "event_links": rows["event_links"] + 1}
    assert again == {k: expected[k] for k in again}


def _assert_paper_execution(out: str, home: Path) -> None:
    """The demo's last stage: execution/run in paper mode after the live day, one audit chain."""
    from sqlalchemy import select

    from omniwatch.settings import Settings
    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    trading = out[out.index("paper execution: execution/run"):]
    assert re.search(r"^  (BTC|ETH|SOL)\s+trade\s+v2 ", trading, re.M), trading[:2000]
    assert "audit chain of decision" in trading and "initialized -> submitted -> filled" in trading
    assert re.search(r"^executed PnL now \(USD\): net [-+]", trading, re.M)
    url = Settings(home=home).warehouse_url
    with get_engine(url).connect() as conn:
        orders = conn.execute(select(tables.orders_sim.c.status, tables.orders_sim.c.model_version)).all()
        fills = conn.execute(select(tables.fills.c.order_id)).all()
    assert orders and all(version == "2" for _, version in orders) and fills
    get_engine(url).dispose()


def _assert_runs_launched_through_the_code_location(home: Path) -> None:
    """Every run of the demo is on its job's page in the UI: launched from the code location
    (remote origin and repository tag, as `dagster job launch` makes them), so it re-executes."""
    import dagster as dg

    with pytest.MonkeyPatch.context() as mp:  # the instance's dagster.yaml names its folder by this variable
        mp.setenv("OMNIWATCH_DAGSTER_DIR", str(home / "dagster"))
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))
        try:
            _assert_runs_on_job_pages(instance)
        finally:
            instance.dispose()


def _assert_runs_on_job_pages(instance) -> None:
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    # The location the UI (`make ui`) loads from workspace.yaml, by the name it shows.
    (location,) = [o.location_name for o in WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")]).create_origins()]
    runs = instance.get_runs()
    jobs = {r.job_name for r in runs}
    assert {"liquid_data_job", "liquid_training_job", "sec_filings_job", "vc_job", "model_standing_job",
            "model_drift_job"} <= jobs, jobs
    for run in runs:
        assert run.remote_job_origin is not None, run.job_name
        assert run.remote_job_origin.location_name == location
    # The UI's job page lists a job's runs by the repository label storage keeps for them.
    on_page = instance.get_runs(dg.RunsFilter(job_name="liquid_training_job",
                                              tags={".dagster/repository": f"__repository__@{location}"}))
    # The demo's two trainings, and the retraining drift_sensor requested in the live segment,
    # canceled there with a message (the replay does not train inline).
    assert len([r for r in on_page if r.is_success]) == 2
    assert all(r.tags.get("omniwatch/trigger") == "drift" for r in on_page if not r.is_success)
    # The model-ops sensors ticked on the instance, as the daemon ticks them.
    states = {s.instigator_name: s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)}
    for name in ("gate_sensor", "rollout_sensor", "rollback_sensor", "drift_sensor"):
        assert instance.get_ticks(states[name].instigator_origin_id, states[name].selector_id), name


def _assert_live_segment(out: str) -> None:
    """The last day replayed as live: version 2 gated, rolled out 10 -> 30 -> 100 and promoted; the
    degraded version 3 gated, held on failed windows and rolled back; all by the sensors."""
    live = out[out.index("live segment:"):]
    audit = re.findall(r"^\s*\d+\s+(\w+)\s+(\w+)\s+(\d+)\s+(\d*)\s+(\w+)\s+(\w+)", live, re.M)
    decisions = [(a, o, v, s) for a, o, v, s, who, source in audit]
    assert ("gate", "start_rollout", "2", "10") in decisions
    assert ("rollout", "advance", "2", "30") in decisions and ("rollout", "promote", "2", "100") in decisions
    assert ("gate", "start_rollout", "3", "10") in decisions
    assert [d[1] for d in decisions if d[0] == "rollout" and d[2] == "3"].count("hold") >= 2
    assert ("rollback", "rollback", "3", "0") in decisions or any(
        d[:3] == ("rollback", "rollback", "3") for d in decisions)
    assert all(who == "system" and source == "scheduler" for *_, who, source in audit)
    assert re.search(r"bar close -> stored snapshot: median [\d.]+ s", live)


def _serve_from_the_demo(home: Path) -> None:
    """The API as `make serve` runs it (uvicorn on loopback) over the demo's warehouse, registry and
    Dagster instance: every /api/v2 area answers over real HTTP."""
    port = free_port()
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "OMNIWATCH_API_PORT": str(port),
           "OMNIWATCH_API_KEYS": "demo-key"}
    for name in ("OMNIWATCH_DATABASE_URL", "DAGSTER_HOME", "OMNIWATCH_DAGSTER_DIR"):
        env.pop(name, None)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=120,
                      headers={"X-API-Key": "demo-key"}) as http:
        with running([sys.executable, "-W", "ignore", "-m", "omniwatch.serving.app"], env=env, cwd=REPO,
                     log_path=home / "api.log", ready=lambda: http.get("/health").status_code == 200,
                     what="the API", timeout_s=60):
            _every_area(http, port)


def _ok(r: httpx.Response, status: int = 200) -> dict:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    return r.json()


def _every_area(http: httpx.Client, port: int) -> None:
    liquid = _ok(http.post("/predict/liquid", json={"target": "BTC"}))
    # The live segment promoted version 2 (and rolled the degraded version 3 back).
    assert liquid["model_name"] == "omniwatch-liquid" and liquid["model_version"] == "2"
    assert liquid["snapshot"]["as_of_ts"] == "2025-09-27T00:00:00Z"  # the newest snapshot of the sample
    explained = _ok(http.get(f"/predictions/{liquid['prediction_id']}/explanation"))
    assert explained["prediction_id"] == liquid["prediction_id"]
    vc = _ok(http.post("/predict/vc", json={"entity_id": "cik:0001339005"}))
    assert vc["model_name"] == "omniwatch-vc" and 0.0 <= next(iter(vc["predictions"].values())) <= 1.0
    _ok(http.post("/signals/generate", json={"targets": ["BTC", "ETH", "SOL"]}))
    _ok(http.post("/portfolio/score", json={"weights": {"BTC": 0.3, "ETH": -0.2}}))
    _ok(http.post("/portfolio/rebalance", json={"current_weights": {"BTC": 0.1}}))
    # Version 2 trained on every day before the live one, so any replayed window is in-sample.
    window = {"start": "2025-09-01T00:00:00Z", "end": "2025-09-08T00:00:00Z", "allow_in_sample": True}
    backtest = _ok(http.post("/backtest/run", json=window))
    assert backtest["status"] == "succeeded" and backtest["lineage_coverage"] == 1.0
    assert _ok(http.get(f"/backtest/{backtest['run_id']}"))["cost_breakdown"] == backtest["cost_breakdown"]
    tasks = [_ok(http.post(f"/tasks/{kind}", json=window), 202) for kind in ("backtest", "pnl-attribution")]
    for task in tasks:
        deadline = time.time() + 240
        while task["status"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
            task = _ok(http.get(f"/tasks/{task['task_id']}"))
        # No webserver URL (as `make serve` starts): serving_task_job runs in the API process, on
        # the demo's Dagster instance.
        assert task["status"] == "succeeded" and task["executor"] == "in_process" and task["dagster_run_id"], task
    assert _ok(http.get("/data-quality/sample", params={"table": "market_bars", "limit": 2}))["count"] == 2
    _ok(http.get("/data-quality/audit", params={"limit": 5}))
    _ok(http.get("/data-quality/stats"))
    _ok(http.get("/data-quality/consistency", params={"targets": ["BTC"]}))
    _ok(http.post("/data-quality/lineage/check", json={}))
    event = {"source": "partner", "source_id": "e2e-femasys-1", "track": "vc", "event_type": "news",
             "title": "Femasys raises a new round", "url": "https://example.com/femasys",
             "event_time": "2026-11-25T10:00:00Z", "available_time": "2026-11-25T10:05:00Z",
             "entity_ids": ["cik:0001339005"]}
    for _ in range(2):  # idempotent by source id
        _ok(http.post("/ingest/events", json={"events": [event]}))
    entity = _ok(http.get("/entities/cik:0001339005"))
    assert [e["title"] for e in entity["events"]].count("Femasys raises a new round") == 1
    legacy = httpx.post(f"http://127.0.0.1:{port}/api/predictions", json={}, timeout=30)
    assert legacy.status_code == 410 and legacy.json()["context"]["use"] == "/api/v2/predict/liquid"
