"""Recompute a stored prediction or backtest from its snapshots and report any difference.

    python scripts/replay_model_run.py prediction <prediction_id> [--tolerance 1e-3]
    python scripts/replay_model_run.py backtest <run_id> [--tolerance 1e-6]
    python scripts/replay_model_run.py [backtest] [--tolerance T]    # the latest finished backtest

The warehouse and the MLflow registry come from the environment (OMNIWATCH_HOME,
OMNIWATCH_DATABASE_URL, OMNIWATCH_MLFLOW_TRACKING_URI) or --database-url / --tracking-uri.

- A prediction is rebuilt from the rows it read (its snapshot and the lookback before it, or the
  request's stored features) and scored by the **pyfunc's own** ``predict`` of the version that
  made it (the registry path, not the API's cached scorer); each stored number (pred_*,
  lightgbm_pred_*, tsmixer_pred_*, bps) is compared, and so is ``infer_lineage_id``.
- A backtest is replayed with its stored parameters through the same model version; its cost
  breakdown, metric rows and input digest are compared.

Exit codes: 0 all within tolerance, 1 a difference above it, 2 not found or not replayable.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.settings import Settings  # noqa: E402


def _differences(stored: Any, fresh: Any, tolerance: float, path: str = "") -> list[str]:
    """Paths where two JSON-like values differ: numbers by more than ``tolerance`` (absolute, or
    relative for large values), anything else by equality; NaN/None match each other."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        out = []
        for key in sorted(set(stored) | set(fresh)):
            out += _differences(stored.get(key), fresh.get(key), tolerance, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{path}: {len(stored)} stored rows, {len(fresh)} replayed"]
        return [d for i, (a, b) in enumerate(zip(stored, fresh, strict=True))
                for d in _differences(a, b, tolerance, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(fresh, numbers) and not isinstance(stored, bool):
        a, b = float(stored), float(fresh)
        if math.isnan(a) and math.isnan(b):
            return []
        if abs(a - b) <= tolerance * max(1.0, abs(a), abs(b)):
            return []
        return [f"{path}: stored {a!r}, replayed {b!r} (|diff| {abs(a - b):.3g} > {tolerance:g})"]
    none_like = (stored is None or (isinstance(stored, float) and math.isnan(stored)),
                 fresh is None or (isinstance(fresh, float) and math.isnan(fresh)))
    if all(none_like):
        return []
    return [] if stored == fresh else [f"{path}: stored {stored!r}, replayed {fresh!r}"]


def replay_prediction(settings: Settings, prediction_id: str, tolerance: float) -> tuple[list[str], str]:
    import mlflow
    from omniwatch.serving.predict.service import stored_window
    from omniwatch.serving.runtime.snapshots import SnapshotStore
    from omniwatch.serving.runtime.writer import load_prediction

    row = load_prediction(settings.warehouse_url, prediction_id)
    if row is None:
        raise LookupError(f"prediction {prediction_id} not found")
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{row['model_name']}/{row['model_version']}")
    lookback = int(pyfunc.unwrap_python_model().meta["lookback"]) if row["track"] == "liquid" else 1
    snapshots = SnapshotStore(settings.warehouse_url, check_interval_s=0)
    window = stored_window(snapshots, row, lookback)
    frame = window.frame.assign(as_of_ts=window.frame["as_of_ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    fresh = {k: float(v) for k, v in pyfunc.predict(frame).iloc[-1].items() if isinstance(v, int | float)}
    record = {k: v for k, v in row["horizon_predictions"].items() if k in fresh}
    diffs = _differences(record, fresh, tolerance)
    if window.infer_lineage_id != row["infer_lineage_id"]:
        diffs.append(f"infer_lineage_id: stored {row['infer_lineage_id']}, the rows read now give "
                     f"{window.infer_lineage_id} (the snapshots changed since)")
    summary = (f"prediction {prediction_id}: {row['model_name']} v{row['model_version']} on {row['target']} at "
               f"{window.as_of_ts.isoformat()}, {len(window.frame)} rows, {len(record)} numbers compared")
    return diffs, summary


def latest_backtest(settings: Settings) -> str:
    """The run id of the newest succeeded backtest (by finish time)."""
    from sqlalchemy import select

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    b = tables.backtest_runs
    with get_engine(settings.warehouse_url).connect() as conn:
        run_id = conn.execute(select(b.c.run_id).where(b.c.status == "succeeded")
                              .order_by(b.c.finished_at.desc(), b.c.started_at.desc()).limit(1)).scalar()
    if run_id is None:
        raise LookupError("no succeeded backtest is stored")
    return str(run_id)


def replay_backtest(settings: Settings, run_id: str, tolerance: float) -> tuple[list[str], str]:
    from omniwatch.ml.versions import load_version, resolve
    from omniwatch.resources.compute import resolve_device
    from omniwatch.trading.backtest import BacktestParams, evaluate, replay
    from omniwatch.trading.backtest_runs import BacktestRuns

    def load(name: str, version: str):
        device, _ = resolve_device(settings.serving_device)
        return load_version(settings.mlflow_uri, name, resolve(settings.mlflow_uri, name, version), device)

    stored = BacktestRuns(settings.warehouse_url, load).get(run_id)
    if stored is None:
        raise LookupError(f"backtest run {run_id} not found")
    if stored["status"] != "succeeded":
        raise LookupError(f"backtest run {run_id} is {stored['status']} ({stored['error_code']}): nothing to compare")
    params = BacktestParams.from_stored({**stored["params"], "model_version": stored["model_version"]})
    rep = replay(settings.warehouse_url, load(params.model_name, params.model_version).model, params)
    breakdown, metrics = evaluate(rep, params)
    diffs = _differences({"cost_breakdown": stored["cost_breakdown"], "metrics": stored["metrics"],
                          "input_digest": stored["input_digest"], "lineage_coverage": stored["lineage_coverage"]},
                         {"cost_breakdown": breakdown, "metrics": metrics, "input_digest": rep.input_digest,
                          "lineage_coverage": rep.lineage_coverage}, tolerance)
    summary = (f"backtest {run_id}: {params.model_name} v{params.model_version}, {params.start.isoformat()} .. "
               f"{params.end.isoformat()}, {len(rep.rows)} rows replayed")
    return diffs, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", nargs="?", default="backtest", choices=["prediction", "backtest"])
    ap.add_argument("ident", nargs="?", default=None, help="omitted for a backtest: the latest succeeded one")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="default 1e-3 (bps) for predictions, 1e-6 for backtests (absolute, relative above 1)")
    ap.add_argument("--database-url")
    ap.add_argument("--tracking-uri")
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in {"database_url": args.database_url,
                                   "mlflow_tracking_uri": args.tracking_uri}.items() if v}
    settings = Settings(**overrides)
    try:
        if args.kind == "prediction" and args.ident is None:
            ap.error("a prediction replay needs its prediction_id")
        if args.kind == "prediction":
            # float32 TSMixer: another process may sum in another order; 1e-3 bps is far below a decision.
            diffs, summary = replay_prediction(settings, args.ident, args.tolerance or 1e-3)
        else:
            run_id = args.ident or latest_backtest(settings)
            diffs, summary = replay_backtest(settings, run_id, args.tolerance or 1e-6)
    except LookupError as exc:
        print(f"not replayable: {exc}")
        return 2
    print(summary)
    if diffs:
        print(f"MISMATCH: {len(diffs)} difference(s) above tolerance")
        for d in diffs:
            print(f"  {d}")
        return 1
    print("OK: the replay matches the stored run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
