"""The one entry point loads, every job resolves, and graph changes show up in review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
HEAVY = ("torch", "lightgbm", "mlflow", "great_expectations", "sklearn")


def _graph_snapshot(defs) -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "blocking_checks": sorted(
            f"{spec.asset_key.to_user_string()}:{spec.name}"
            for a in graph.assets_defs for spec in a.check_specs if spec.blocking
        ),
        "jobs": {
            job.name: sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
            for job in repo.get_all_jobs() if not job.name.startswith("__")
        },
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "code_versions": {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()},
        "groups": {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()},
        # What the UI's catalog filters on: owner, track and layer.
        "owners": {k.to_user_string(): sorted(graph.get(k).owners) for k in graph.get_all_asset_keys()},
        "tags": {k.to_user_string(): {t: v for t, v in graph.get(k).tags.items() if t in ("track", "layer")}
                 for k in graph.get_all_asset_keys()},
    }


def test_definitions_load_and_every_job_resolves():
    from omniwatch.definitions import defs

    jobs = defs.resolve_all_job_defs()
    assert "market_plane_job" in {j.name for j in jobs}
    for job in jobs:
        assert job.graph.node_defs, f"{job.name} resolves to an empty graph"
    snapshot = _graph_snapshot(defs)
    if os.environ.get("OMNIWATCH_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed; review it and rerun with OMNIWATCH_UPDATE_SNAPSHOTS=1"
    )


def test_loading_definitions_keeps_heavy_libraries_out():
    code = (
        "import sys, time; t = time.perf_counter(); import omniwatch.definitions; "
        "print(round(time.perf_counter() - t, 2)); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    print(f"omniwatch.definitions import: {out[0]} s")
    assert out[1] == "", f"heavy modules loaded at definition time: {out[1]}"


def test_dg_check_defs_loads_the_project(tmp_path):
    """`dg check defs` (the [tool.dg] block) with the environment the Makefile exports."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    dg = shutil.which("dg", path=str(Path(sys.executable).parent))
    (tmp_path / "dagster").mkdir()
    shutil.copy(repo / "omniwatch" / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")  # as `make ui` does
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "OMNIWATCH_DAGSTER_DIR": str(tmp_path / "dagster"),
           "OMNIWATCH_HOME": str(tmp_path)}
    out = subprocess.run([dg, "check", "defs"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr
