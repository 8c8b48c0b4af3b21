"""scripts/replay_model_run.py: a stored prediction or backtest recomputed from its snapshots
in a fresh process; a difference above the tolerance is a non-zero exit."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

from .conftest import AUTH, client_for, flush

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "replay_model_run.py"
P = "/api/v2"


def _replay(settings, *args: str) -> subprocess.CompletedProcess:
    """In a fresh process: the numbers must come back without this process's caches."""
    env = {**os.environ, "OMNIWATCH_HOME": str(settings.home), "OMP_WAIT_POLICY": "passive"}
    env.pop("OMNIWATCH_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _replay_here(settings, capsys, *args: str) -> tuple[int, str]:
    """In this process (cheaper: the libraries are loaded already)."""
    spec = importlib.util.spec_from_file_location("replay_model_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main([*args, "--database-url", settings.warehouse_url, "--tracking-uri", settings.mlflow_uri])
    return code, capsys.readouterr().out


def test_replay_confirms_a_prediction_and_a_backtest_and_flags_a_changed_one(own_home, capsys):
    with client_for(own_home) as c:
        snap = c.post(f"{P}/predict/liquid", json={"target": "ETH"}, headers=AUTH).json()
        req = c.post(f"{P}/predict/liquid", json={"target": "ETH", "as_of_ts": "2024-08-20T06:00:00Z",
                                                  "features": {"ret_1h": 0.001, "ret_4h": 0.0, "ret_24h": 0.01,
                                                               "ret_168h": 0.02, "vol_24h": 0.01, "vol_168h": 0.012,
                                                               "volume_z_168h": 0.3, "cs_spread_24h": 0.001,
                                                               "drawdown_168h": -0.02} | _clock()}, headers=AUTH).json()
        bt = c.post(f"{P}/backtest/run", headers=AUTH, json={"start": "2024-08-12T00:00:00Z",
                                                             "end": "2024-08-14T00:00:00Z", "band_bps": 0.5,
                                                             "allow_in_sample": True}).json()
        flush(c)
    ok = _replay(own_home, "prediction", snap["prediction_id"])
    assert ok.returncode == 0, ok.stdout + ok.stderr[-2000:]
    assert "OK" in ok.stdout and "v1" in ok.stdout
    assert _replay_here(own_home, capsys, "prediction", req["prediction_id"])[0] == 0
    code, out = _replay_here(own_home, capsys, "backtest", bt["run_id"])
    assert code == 0, out
    code, out = _replay_here(own_home, capsys, "--tolerance", "1e-6")  # no id: the latest backtest
    assert code == 0 and bt["run_id"] in out, out

    t = tables.predictions_v2
    with get_engine(own_home.warehouse_url).begin() as conn:
        record = dict(conn.execute(t.select().where(t.c.prediction_id == snap["prediction_id"])).mappings().one()
                      ["horizon_predictions"])
        record["pred_4h"] += 0.5
        conn.execute(update(t).where(t.c.prediction_id == snap["prediction_id"]).values(horizon_predictions=record))
    bad = _replay(own_home, "prediction", snap["prediction_id"])
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout and "pred_4h" in bad.stdout
    assert _replay_here(own_home, capsys, "prediction", "00000000-0000-4000-8000-000000000000")[0] == 2
    with get_engine(own_home.warehouse_url).begin() as conn:
        b = tables.backtest_runs
        stored = conn.execute(b.select().where(b.c.run_id == bt["run_id"])).mappings().one()["cost_breakdown"]
        conn.execute(update(b).where(b.c.run_id == bt["run_id"]).values(cost_breakdown={**stored, "fees": 1.0}))
    code, out = _replay_here(own_home, capsys, "backtest", bt["run_id"])
    assert code == 1 and "cost_breakdown.fees" in out
    assert _replay_here(own_home, capsys)[0] == 1  # the latest is that same, now changed, run


def _clock() -> dict:
    from omniwatch.features.liquid import FEATURES

    extra = {"hour_of_day": 6, "day_of_week": 1, "news_count_24h": 2.0, "news_tone_24h": 0.5}
    return {k: v for k, v in extra.items() if k in FEATURES}
