"""End to end: `omniwatch demo` over the whole bundled span in a fresh OMNIWATCH_HOME: market plane,
checks, features, training, registration; then a data-only rerun changes no row counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _demo(home: Path, *args: str) -> str:
    env = {**os.environ, "OMNIWATCH_HOME": str(home), "DAGSTER_HOME": str(REPO),
           "OMNIWATCH_DAGSTER_DIR": str(home / "dagster")}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "omniwatch.cli", "demo", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _rows(out: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^(\w+)\s+([\d,]+)$", out, re.M)}


@pytest.mark.e2e
def test_demo_runs_the_whole_liquid_pipeline_and_a_rerun_changes_no_row_counts(tmp_path):
    home = tmp_path / "home"
    first = _demo(home)
    rows = _rows(first)
    # 2024-04-16 01:00 .. 2025-09-26 23:00 for three symbols; SOL funding gap left missing.
    assert rows["market_bars"] == 3 * 12_695
    assert rows["funding_rates"] == 4_585
    # One liquid snapshot per symbol-hour, plus each VC entity's newest month (the serving view).
    assert rows["feature_snapshots"] == 3 * 12_695 + 7_876
    assert rows["onchain_signals"] > 0 and rows["trades_ticks"] == 0 and rows["orderbook_l2"] == 0
    assert re.search(r"market_bars\.market_bars_have_sane_ohlcv\s+PASS", first)
    assert re.search(r"funding_rates\.funding_rates_cover_settlements\s+FAIL\s+WARN", first)
    assert "walk-forward" in first and "always_long" in first
    assert re.search(r"registered omniwatch-liquid version 1 aliases \['challenger', 'champion'\]", first)
    assert re.search(r"registered omniwatch-vc version 1 aliases \['challenger', 'champion'\]", first)
    assert rows["entities"] == 7_876 and rows["event_links"] >= 13_231
    assert "ROC AUC" in first and "base rate" in first
    assert first.rstrip().endswith("SUCCESS")
    assert (home / "warehouse.db").exists() and (home / "mlflow.db").exists() and (home / "dagster").is_dir()

    _serve_from_the_demo(home)

    second = _demo(home, "--no-train")
    again = _rows(second)
    assert {k: again[k] for k in again} == {k: rows[k] for k in again}


def _serve_from_the_demo(home: Path) -> None:
    """The API over the demo's warehouse and registry: both tracks answer from stored snapshots."""
    from fastapi.testclient import TestClient

    from omniwatch.serving.app import create_app
    from omniwatch.serving.settings import ServingSettings
    from omniwatch.settings import Settings

    app = create_app(Settings(home=home), ServingSettings(api_keys=["demo-key"]))
    with TestClient(app) as client:
        liquid = client.post("/api/v2/predict/liquid", json={"target": "BTC"})
        assert liquid.status_code == 200, liquid.text
        body = liquid.json()
        assert body["model_name"] == "omniwatch-liquid" and body["model_version"] == "1"
        vc = client.post("/api/v2/predict/vc", json={"entity_id": "cik:0001339005"})
        assert vc.status_code == 200, vc.text
        answer = vc.json()
        assert answer["model_name"] == "omniwatch-vc"
        assert 0.0 <= next(iter(answer["predictions"].values())) <= 1.0
