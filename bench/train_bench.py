"""Training and inference figures for the liquid models, beside neuralforecast's TSMixerx.

    python bench/train_bench.py [--device cpu|cuda:0] [--epochs 3] [--windows 16000] [--rounds 3]

Windows are built from the bundled sample exactly as training builds them (the feature and mask
channels, 168 h lookback); the TSMixer settings are the demo's (``default_tsmixer()``), with
early stopping off so that every run trains ``--epochs`` epochs. Prints our TSMixer's training
samples/s, validation error, single-window and batch inference latency and peak memory, and
LightGBM's fit time when lightgbm is installed. Prints numbers; asserts nothing.

With neuralforecast installed (``pip install -e ".[bench]"`` after ``pip install torch==2.13.0``)
it also trains neuralforecast's TSMixerx on the same windows: channel 0 (the hourly return, our
target channel) as its ``insample_y``, the other channels as historical exogenous inputs, the
same 24-step path summed at 1/4/24 h, the same n_block/ff_dim/dropout/RevIN settings, and
*through our trainer* (same standardisation, AdamW, batch size, shuffling, loss, scheduler,
gradient clipping, best-epoch restore). So the ratios compare the two networks and their layers'
implementations only: it does not time neuralforecast's Lightning pipeline, which samples its
own windows from whole series. Ours and theirs alternate ``--rounds`` times in this process, so
both see the same machine load; ratios are reported as median [min-max] over rounds.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

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


def neuralforecast_missing() -> str | None:
    """Why the TSMixerx comparison cannot run here, or None when it can."""
    try:
        import neuralforecast  # noqa: F401
    except ImportError as err:
        return (f"neuralforecast is not installed here ({err}); install the bench extra beside torch "
                "2.13.0 in another venv: pip install torch==2.13.0 && pip install -e '.[bench]'")
    return None


def tsmixerx_regressor(config: Any, device: str) -> Any:
    """Our trainer, training neuralforecast's TSMixerx instead of our TSMixer."""
    import torch
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import TSMixerx

    from omniwatch.ml.trainer import TSMixerRegressor

    class TSMixerxNet(torch.nn.Module):
        """(batch, lookback, channels) in, horizon sums out, as our TSMixer."""

        def __init__(self, n_channels: int) -> None:
            super().__init__()
            self.n_channels, self.target = n_channels, config.target_channel
            self.exog = [c for c in range(n_channels) if c != self.target]
            self.net = TSMixerx(
                h=config.path_steps, input_size=config.lookback, n_series=1,
                hist_exog_list=[f"x{c}" for c in self.exog], n_block=config.n_blocks, ff_dim=config.d_ff,
                dropout=config.dropout, revin=config.revin, loss=MSE(), learning_rate=config.lr,
                random_seed=config.seed, scaler_type="identity",
            )
            steps = torch.arange(config.path_steps).unsqueeze(1)
            self.register_buffer("horizon_sum", (steps < torch.tensor(config.horizons)).float(), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch = {"insample_y": x[:, :, self.target:self.target + 1],
                     "hist_exog": x[:, :, self.exog].permute(0, 2, 1).unsqueeze(-1),  # [B, X, L, 1]
                     "futr_exog": None, "stat_exog": None}
            return self.net(batch)[:, :, 0] @ self.horizon_sum

    class TSMixerxRegressor(TSMixerRegressor):
        def _build_model(self, n_channels: int) -> Any:
            return TSMixerxNet(n_channels)

    return TSMixerxRegressor(config, device=device)


def fit_once(name: str, regressor: Any, data: dict[str, np.ndarray]) -> dict[str, float]:
    t, cpu = time.perf_counter(), time.process_time()
    report = regressor.fit(data["X_train"], data["y_train"], data["X_val"], data["y_val"])
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    pred = regressor.predict(data["X_val"])
    samples = len(data["X_train"]) * report.epochs_run
    row = dict(samples_s=samples / seconds, samples_cpu_s=samples / cpu, val_loss=report.best_val_loss,
               val_mse=float(((pred - data["y_val"]) ** 2).mean()))
    print(f"  {name}: {report.epochs_run} epochs in {seconds:.1f} s ({cpu:.1f} s CPU), {row['samples_s']:,.0f} "
          f"train samples/s ({row['samples_cpu_s']:,.0f} per CPU-s), best val loss {row['val_loss']:.4f}, "
          f"val MSE {row['val_mse']:,.0f} bps^2", flush=True)
    return row


def latencies(regressors: dict[str, Any], window: np.ndarray, repeats: int = 200) -> dict[str, list[float]]:
    """Single-window predict() wall times, the implementations alternating call by call."""
    out: dict[str, list[float]] = {name: [] for name in regressors}
    for regressor in regressors.values():
        for _ in range(5):
            regressor.predict(window)  # warm-up
    for _ in range(repeats):
        for name, regressor in regressors.items():
            t = time.perf_counter()
            regressor.predict(window)
            out[name].append(time.perf_counter() - t)
    return out


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{np.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=16000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating ours/theirs fits (comparison only)")
    ap.add_argument("--mix-steps", type=int, default=None,
                    help="our TSMixer with TSMixerx's early temporal projection to this many steps "
                         "(default: the demo's setting)")
    args = ap.parse_args()

    import torch

    from omniwatch.ml.protocol import default_tsmixer
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
    data = dict(X_train=w.X[:split], y_train=w.y[:split], X_val=w.X[split:], y_val=w.y[split:])
    cfg = TSMixerConfig(**{**default_tsmixer(), "max_epochs": args.epochs, "patience": args.epochs,
                           **({"mix_steps": args.mix_steps} if args.mix_steps else {})})
    mean_mse = float(((data["y_val"] - data["y_train"].mean(axis=0)) ** 2).mean())
    print(f"config: {cfg.to_json()}")
    print(f"conditions: {args.threads} torch thread(s), device {args.device}, torch {torch.__version__}; "
          f"val MSE of the train-mean forecast {mean_mse:,.0f} bps^2")

    from omniwatch.ml.checkpoints import deterministic_algorithms

    with deterministic_algorithms():  # torch's first switch imports modules (~1 s, once a process):
        pass                          # paid here, not by whichever fit happens to run first
    missing = neuralforecast_missing()
    rounds = 1 if missing else max(1, args.rounds)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "TSMixerx": []}
    fitted: dict[str, Any] = {}
    for logger in ("lightning_fabric", "lightning.fabric", "pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(logger).setLevel(logging.WARNING)  # "Seed set to ..." for every model
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}:")
        order = ["ours", "TSMixerx"] if r % 2 == 0 else ["TSMixerx", "ours"]
        for name in order if not missing else ["ours"]:
            regressor = (TSMixerRegressor(cfg, device=args.device) if name == "ours"
                         else tsmixerx_regressor(cfg, args.device))
            runs[name].append(fit_once(name, regressor, data))
            fitted[name] = regressor

    one = w.X[-1:]
    lat = latencies(fitted, one)
    ours = fitted["ours"]
    t = time.perf_counter()
    ours.predict(w.X[:4096])
    print(f"ours predict 1 window: p50 {np.median(lat['ours']) * 1e3:.3f} ms, "
          f"p95 {np.percentile(lat['ours'], 95) * 1e3:.3f} ms; 4096 windows: {(time.perf_counter() - t) * 1e3:.1f} ms")
    if args.device.startswith("cuda"):
        print(f"cuda peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if missing:
        print(f"TSMixerx comparison skipped: {missing}")
    else:
        theirs = runs["TSMixerx"]
        p50 = {name: float(np.median(v)) for name, v in lat.items()}
        print("\n| | ours (TSMixer) | neuralforecast TSMixerx | ours/theirs |\n| --- | --- | --- | --- |")
        for key, label in (("samples_s", "train samples/s (wall)"), ("samples_cpu_s", "train samples per CPU-s")):
            ours_s, theirs_s = [x[key] for x in runs["ours"]], [x[key] for x in theirs]
            ratio = [a / b for a, b in zip(ours_s, theirs_s, strict=True)]  # each round's pair
            print(f"| {label}, median [min-max] of {rounds} | {spread(ours_s, ',.0f')} "
                  f"| {spread(theirs_s, ',.0f')} | {spread(ratio)} |")
        for key, label in (("val_mse", "val MSE, bps^2 (mean of 1/4/24 h)"),
                           ("val_loss", "best val loss, standardised")):
            a, b = np.median([x[key] for x in runs["ours"]]), np.median([x[key] for x in theirs])
            print(f"| {label} | {a:,.4g} | {b:,.4g} | {a / b:.4f} |")
        p95 = {name: float(np.percentile(v, 95)) for name, v in lat.items()}
        print(f"| predict 1 window p50 / p95, ms | {p50['ours'] * 1e3:.3f} / {p95['ours'] * 1e3:.3f} "
              f"| {p50['TSMixerx'] * 1e3:.3f} / {p95['TSMixerx'] * 1e3:.3f} "
              f"| {p50['ours'] / p50['TSMixerx']:.2f} |")
        print(f"| parameters | {sum(p.numel() for p in ours.model.parameters()):,} "
              f"| {sum(p.numel() for p in fitted['TSMixerx'].model.parameters()):,} | |")

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
