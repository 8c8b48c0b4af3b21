"""Warehouse write/read throughput and the feature computation on the bundled sample.

    python bench/warehouse_bench.py [--database-url postgresql://postgres@127.0.0.1:5432/test]

Without a URL it uses a temporary SQLite file. Prints rows/s for the upsert of every bundled
hourly bar (first write and an idempotent rewrite), a window read, and the feature build.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch import frames  # noqa: E402
from omniwatch.connectors.replay import ReplaySource  # noqa: E402
from omniwatch.features.liquid import compute_features  # noqa: E402
from omniwatch.resources.warehouse import WarehouseResource  # noqa: E402
from omniwatch.settings import BUNDLED_SAMPLE_DIR  # noqa: E402
from omniwatch.warehouse.migrate import downgrade, upgrade  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{tmp.name}/bench.db"
    upgrade(url)
    wh = WarehouseResource(database_url=url)
    src = ReplaySource(BUNDLED_SAMPLE_DIR)
    s, e = pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2025-09-27", tz="UTC")
    syms = ["BTC", "ETH", "SOL"]
    t = time.perf_counter()
    bars = src.bars(syms, s, e).frame
    print(f"replay read: {len(bars)} bars in {time.perf_counter() - t:.2f} s")
    for label in ("first write", "idempotent rewrite"):
        t = time.perf_counter()
        n = wh.upsert("market_bars", bars, frames.MARKET_BAR_KEY)
        dt = time.perf_counter() - t
        print(f"upsert market_bars ({label}): {n} rows in {dt:.2f} s = {n / dt:,.0f} rows/s; "
              f"stored {wh.count('market_bars')}")
    t = time.perf_counter()
    back = wh.read_window("market_bars", s, e, syms)
    print(f"read window: {len(back)} rows in {time.perf_counter() - t:.2f} s")
    funding, onchain = src.funding(syms, s, e).frame, src.onchain(syms, s, e).frame
    t = time.perf_counter()
    feats = compute_features(back, funding, onchain)
    print(f"features: {len(feats)} snapshot rows in {time.perf_counter() - t:.2f} s")
    print(f"backend: {wh.engine().dialect.name}")
    if args.database_url:
        downgrade(url, "base")


if __name__ == "__main__":
    main()
