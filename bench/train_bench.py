"""Training and inference figures for the liquid models (prints numbers; asserts nothing).

    python bench/train_bench.py [--device cpu|cuda:0|cuda:1] [--epochs 3] [--windows 16000]

Windows are built from the bundled sample exactly as training builds them (15 features + 4 mask
channels, 168 h lookback). Reports TSMixer epoch time and samples/s, single-window and batch
inference latency, peak memory; LightGBM fit time when lightgbm is installed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.connectors.replay import ReplaySource  # noqa: E402
from omniwatch.features.liquid import FEATURES, compute_features  # noqa: E402
from omniwatch.ml.dataset import BPS, LABEL_BPS, add_masks, make_windows  # noqa: E402
from omniwatch.settings import BUNDLED_SAMPLE_DIR  # noqa: E402


def sample_frame() -> pd.DataFrame:
    src = ReplaySource(BUNDLED_SAMPLE_DIR)
    s, e = pd.Timestamp("2024-04-16", tz="UTC"), pd.Timestamp("2025-09-27", tz="UTC")
    syms = ["BTC", "ETH", "SOL"]
    f = compute_features(src.bars(syms, s, e).frame, src.funding(syms, s, e).frame, src.onchain(syms, s, e).frame)
    for h, col in zip((1, 4, 24), LABEL_BPS, strict=True):
        f[col] = f[f"fwd_ret_{h}h"] * BPS
    return add_masks(f.sort_values(["as_of_ts", "symbol"]).reset_index(drop=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=16000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from omniwatch.ml.trainer import TSMixerConfig, TSMixerRegressor

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    frame = sample_frame()
    print(f"features: {len(frame)} rows x {len(FEATURES)} features in {time.perf_counter() - t:.2f} s")
    ok = np.flatnonzero(frame[list(LABEL_BPS)].notna().all(axis=1).to_numpy())
    pos = ok[np.linspace(0, len(ok) - 1, min(args.windows, len(ok))).astype(int)]
    t = time.perf_counter()
    w = make_windows(frame, 168, pos)
    print(f"windows: {w.X.shape} built in {time.perf_counter() - t:.2f} s ({w.X.nbytes / 2**20:.0f} MiB)")
    split = int(len(pos) * 0.85)
    cfg = TSMixerConfig(lookback=168, path_steps=24, horizons=(1, 4, 24), n_blocks=2, d_ff=32,
                        revin=False, batch_size=256, max_epochs=args.epochs, patience=args.epochs, seed=11)
    model = TSMixerRegressor(cfg, device=args.device)
    t = time.perf_counter()
    report = model.fit(w.X[:split], w.y[:split], w.X[split:], w.y[split:])
    fit_s = time.perf_counter() - t
    n = split * report.epochs_run
    print(f"tsmixer[{report.device}]: {report.epochs_run} epochs in {fit_s:.2f} s, "
          f"{fit_s / report.epochs_run:.2f} s/epoch, {n / fit_s:,.0f} train samples/s, "
          f"best val loss {report.best_val_loss:.4f}")
    one = w.X[-1:]
    model.predict(one)
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        model.predict(one)
        lat.append(time.perf_counter() - t)
    print(f"tsmixer predict 1 window: p50 {np.median(lat) * 1e3:.2f} ms, p95 {np.percentile(lat, 95) * 1e3:.2f} ms")
    t = time.perf_counter()
    model.predict(w.X[:4096])
    print(f"tsmixer predict 4096 windows: {(time.perf_counter() - t) * 1e3:.1f} ms")
    if args.device.startswith("cuda"):
        print(f"cuda peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    try:
        import lightgbm  # noqa: F401
    except ImportError:
        print("lightgbm: not installed here, skipped")
        return
    from omniwatch.ml.lgbm import LightGBMConfig, fit_lightgbm

    rows = frame.iloc[ok]
    t = time.perf_counter()
    m = fit_lightgbm(rows[list(FEATURES)], rows[list(LABEL_BPS)], rows["as_of_ts"], list(FEATURES),
                     LightGBMConfig(), pd.Timedelta(hours=24))
    print(f"lightgbm: 3 horizons on {len(rows)} rows in {time.perf_counter() - t:.2f} s, rounds {m.best_rounds}")


if __name__ == "__main__":
    main()
