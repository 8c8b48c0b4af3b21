"""Rebuild the bundled sample (omniwatch/sample/) from the research copies in ../shared/data.

Keeps each source's own file format and name (so any folder laid out the same way can replace it
through OMNIWATCH_REPLAY_DIR), cut to the window where every source overlaps, gzip with mtime 0 so
a rebuild is byte-identical.

    python scripts/build_sample.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pandas as pd

START = pd.Timestamp("2024-04-16T00:00:00Z")
END = pd.Timestamp("2025-09-26T23:59:59Z")
OUT = Path(__file__).resolve().parents[1] / "omniwatch" / "sample"


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(frame.to_csv(index=False).encode())
    print(f"{path.relative_to(OUT)}: {len(frame)} rows")


def _cut(frame: pd.DataFrame, column: str, parsed: pd.Series) -> pd.DataFrame:
    return frame[(parsed >= START) & (parsed <= END)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    shared = Path(parser.parse_args().shared)

    for sym in ("BTC", "ETH", "SOL"):
        raw = pd.read_csv(shared / f"ohlcv/binance_spot_1h/{sym}USDT_1h.csv", dtype=str)
        cut = _cut(raw, "timestamp", pd.to_datetime(raw["timestamp"], utc=True))
        _write(cut, OUT / f"binance_spot_1h/{sym}USDT_1h.csv.gz")

    raw = pd.read_csv(shared / "funding/binance_usdm_funding_8h_BTC_ETH_SOL.csv", dtype=str)
    cut = _cut(raw, "funding_time_utc", pd.to_datetime(raw["funding_time_utc"], utc=True))
    _write(cut, OUT / "funding/binance_usdm_funding_8h_BTC_ETH_SOL.csv.gz")

    for asset, name in (("btc", "coinmetrics_community_btc_daily_2009-2025-09.csv"),
                        ("eth", "coinmetrics_community_eth_daily_2015-2025-09.csv")):
        raw = pd.read_csv(shared / "onchain" / name, dtype=str)
        cut = _cut(raw, "date", pd.to_datetime(raw["date"], utc=True))
        _write(cut, OUT / f"onchain/coinmetrics_community_{asset}_daily.csv.gz")


if __name__ == "__main__":
    main()
