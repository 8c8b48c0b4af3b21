"""Training discipline on a real GPU (run on a machine with CUDA; prints findings).

    python bench/gpu_check.py --device cuda:0

Checks: two seeded fits give bit-identical predictions; a fit killed after epoch 2 (simulated by
a fresh regressor resuming from the checkpoint folder) ends where the uninterrupted fit ends; a
real CUDA out-of-memory (an oversized feature-mixing layer) is recovered by halving the batch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.ml.trainer import TSMixerConfig, TSMixerRegressor  # noqa: E402


def data(n: int = 4000, lookback: int = 48, channels: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, lookback, channels)).astype(np.float32)
    y = (X[:, -1, :3] * np.array([5.0, 10.0, 20.0]) + rng.normal(size=(n, 3))).astype(np.float32)
    return X[:3400], y[:3400], X[3400:], y[3400:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    device = ap.parse_args().device
    Xt, yt, Xv, yv = data()
    cfg = TSMixerConfig(lookback=48, path_steps=24, horizons=(1, 4, 24), d_ff=32, revin=False,
                        batch_size=128, max_epochs=5, patience=5, seed=3)
    a, b = TSMixerRegressor(cfg, device), TSMixerRegressor(cfg, device)
    ra, rb = a.fit(Xt, yt, Xv, yv), b.fit(Xt, yt, Xv, yv)
    same = np.array_equal(a.predict(Xv), b.predict(Xv))
    print(f"determinism on {ra.device}: bit-identical predictions = {same}; "
          f"val loss {ra.best_val_loss:.5f} / {rb.best_val_loss:.5f}")

    with tempfile.TemporaryDirectory() as tmp:
        stop = {"n": 0}

        def interrupt(record):
            stop["n"] += 1
            if stop["n"] == 2:
                raise KeyboardInterrupt  # a kill after the epoch-2 checkpoint was written

        try:
            TSMixerRegressor(cfg, device).fit(Xt, yt, Xv, yv, checkpoint_dir=tmp, on_epoch_end=interrupt)
        except KeyboardInterrupt:
            pass
        resumed = TSMixerRegressor(cfg, device)
        rr = resumed.fit(Xt, yt, Xv, yv, checkpoint_dir=tmp)
        print(f"resume from epoch {rr.resumed_from_epoch}: predictions equal the uninterrupted fit = "
              f"{np.array_equal(resumed.predict(Xv), a.predict(Xv))}")

    big = cfg.model_copy(update={"d_ff": 65536, "batch_size": 4096, "max_epochs": 1, "max_oom_retries": 6})
    t = time.perf_counter()
    try:
        report = TSMixerRegressor(big, device).fit(Xt, yt, Xv, yv)
        print(f"real OOM: recovered after {report.oom_halvings} halvings at batch "
              f"{report.history[-1].batch_size} in {time.perf_counter() - t:.1f} s")
    except Exception as exc:  # report, do not hide: this is a check script
        print(f"real OOM: not recovered: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
