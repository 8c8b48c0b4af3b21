"""Does news help? The walk-forward with and without the two news features (prints; asserts nothing).

    python bench/news_bench.py [--windows 4] [--seeds 7] [--null-shifts 20]

Features are computed exactly as ``feature_snapshots`` computes them, from the bundled sample and
the replay news resource ``build_resources`` wires (GDELT + RSS recordings + the bundled CryptoPanic
headlines). "without news" sets ``news_count_24h`` and ``news_tone_24h`` to NaN, which is what every
row held before CryptoPanic was bundled; everything else (rows, labels, folds, LightGBM config and
seed) is identical. The model is the project's LightGBM through ``ml.protocol.run_protocol``
(purged K-fold, then the walk-forward: expanding window, purge = 24 h, one calendar month per test
window, the most recent ``--windows`` months); figures are ``ml.metrics.summarize`` of the
walk-forward predictions, pooled over BTC/ETH/SOL, costs 5 bps fee + 5 bps slippage per unit
turnover. TSMixer is left out (CPU budget); LightGBM sees the same features.

Also printed: each news feature's own Rank IC with the forward returns (per month, pooled), and the
per-window difference in Rank IC (with - without) with its t-statistic. Read MODEL-NOTES: on this
data month-to-month Rank IC swings by +-0.1 and t of 2-3 arises from shuffled labels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniwatch.features.liquid import FEATURES  # noqa: E402
from omniwatch.ml.dataset import LABEL_BPS  # noqa: E402
from omniwatch.ml.lgbm import LightGBMConfig  # noqa: E402
from omniwatch.ml.metrics import POOLED, summarize, window_ics  # noqa: E402
from omniwatch.ml.protocol import TrainingConfig, lightgbm_functions, long_predictions, run_protocol  # noqa: E402
from omniwatch.ml.validation import window_keys  # noqa: E402
from omniwatch.research.sample import sample_frame_and_news  # noqa: E402

NEWS = ("news_count_24h", "news_tone_24h")
DEMO = (pd.Timestamp("2025-05-26", tz="UTC"), pd.Timestamp("2025-09-27", tz="UTC"))
SHOW = ["rank_ic_mean", "rank_ic_t", "rank_ic_null_z", "hit_rate", "net_return", "sharpe", "turnover_annual"]


def news_counts(news: pd.DataFrame) -> None:
    in_demo = news[(news["available_time"] >= DEMO[0]) & (news["available_time"] < DEMO[1])]
    print(f"news events: whole sample {len(news)} ({news['source'].value_counts().to_dict()}); "
          f"demo window {DEMO[0]:%Y-%m-%d}..{DEMO[1] - pd.Timedelta(days=1):%Y-%m-%d}: {len(in_demo)}")


def coverage(frame: pd.DataFrame) -> None:
    demo = frame[(frame["as_of_ts"] >= DEMO[0]) & (frame["as_of_ts"] < DEMO[1])]
    filled = demo.groupby("symbol")[list(NEWS)].agg(lambda s: s.notna().mean()).round(3)
    print("share of demo-window rows with the news features filled:\n" + filled.to_string())


def feature_ics(frame: pd.DataFrame, months: pd.Series) -> None:
    """Each news feature's own monthly Rank IC with the forward returns (pooled over symbols)."""
    test = frame[frame["as_of_ts"] >= months.min()]
    keys = window_keys(test["as_of_ts"], "MS")
    print("\nnews features on their own (Rank IC per month, pooled; mean, t over months):")
    for feature in NEWS:
        parts = []
        for label in LABEL_BPS:
            ics = window_ics(test[feature], test[label], keys, method="spearman").dropna()
            t = ics.mean() / ics.std(ddof=1) * np.sqrt(len(ics)) if len(ics) > 1 else np.nan
            parts.append(f"{label}: {ics.mean():+.4f} (t {t:+.2f}, {len(ics)} mo)")
        print(f"  {feature:15s} " + "   ".join(parts))


def run(frame: pd.DataFrame, config: TrainingConfig, with_news: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = frame.copy()
    if not with_news:
        data[list(NEWS)] = np.nan
    fit, predict = lightgbm_functions(data, config)
    model = run_protocol("lightgbm", data, fit, predict, config)
    long = long_predictions(data, model.walk_forward)
    table = summarize(long, fee_bps=config.fee_bps, slippage_bps=config.slippage_bps,
                      null_shifts=config.null_shifts)
    return table, long


def pooled(table: pd.DataFrame, label: str) -> pd.DataFrame:
    rows = table[(table["symbol"] == POOLED) & table["strategy"].isin(["model", "always_long"])].copy()
    rows["rank_ic_t"] = rows["rank_ic_mean"] / rows["rank_ic_std"] * np.sqrt(rows["n_windows"])
    rows["variant"] = np.where(rows["strategy"] == "model", label, "always long")
    return rows[["horizon", "variant", *SHOW]]


def paired(with_long: pd.DataFrame, without_long: pd.DataFrame) -> None:
    print("\nper-month Rank IC difference (with - without news), pooled:")
    for h in sorted(with_long["horizon"].unique()):
        a, b = with_long[with_long.horizon == h], without_long[without_long.horizon == h]
        ka, kb = window_keys(a["as_of_ts"], "MS"), window_keys(b["as_of_ts"], "MS")
        d = (window_ics(a["prediction"], a["realized"], ka, method="spearman")
             - window_ics(b["prediction"], b["realized"], kb, method="spearman")).dropna()
        t = d.mean() / d.std(ddof=1) * np.sqrt(len(d)) if len(d) > 1 and d.std(ddof=1) > 0 else np.nan
        print(f"  {h:>2} h: mean {d.mean():+.4f}, t {t:+.2f}, months better {int((d > 0).sum())}/{len(d)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=4, help="walk-forward test months (4 = the demo window)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7], help="LightGBM seeds (one run each)")
    ap.add_argument("--null-shifts", type=int, default=20)
    args = ap.parse_args()

    t0 = time.perf_counter()
    frame, news = sample_frame_and_news()
    print(f"features: {len(frame)} rows x {len(FEATURES)} in {time.perf_counter() - t0:.1f} s")
    news_counts(news)
    coverage(frame)
    pd.set_option("display.width", 200)
    runs = []
    for seed in args.seeds:
        config = TrainingConfig(kfold_splits=2, wf_test_windows=args.windows, null_shifts=args.null_shifts,
                                lightgbm=LightGBMConfig(seed=seed))
        t = time.perf_counter()
        with_table, with_long = run(frame, config, with_news=True)
        without_table, without_long = run(frame, config, with_news=False)
        months = with_long["as_of_ts"].dt.strftime("%Y-%m")
        print(f"\nLightGBM seed {seed}, walk-forward months {months.min()}..{months.max()} "
              f"({args.windows}), {time.perf_counter() - t:.0f} s")
        table = pd.concat([pooled(with_table, "with news"), pooled(without_table, "without news")])
        table = table.drop_duplicates(["horizon", "variant"]).sort_values(["horizon", "variant"])
        runs.append(table)
        print(table.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
        paired(with_long, without_long)
        if seed == args.seeds[0]:
            feature_ics(frame, with_long["as_of_ts"])
    if len(runs) > 1:  # the spread across seeds is the yardstick for any with/without difference
        both = pd.concat(runs)
        stats = both.groupby(["horizon", "variant"])[SHOW].agg(["mean", "min", "max"])
        print(f"\nover seeds {args.seeds}: mean [min, max]")
        for (h, variant), row in stats.iterrows():
            cells = [f"{c} {row[(c, 'mean')]:+.4f} [{row[(c, 'min')]:+.4f}, {row[(c, 'max')]:+.4f}]"
                     for c in ("rank_ic_mean", "hit_rate", "sharpe") if pd.notna(row[(c, "mean")])]
            print(f"  {h:>2} h {variant:13s} " + "  ".join(cells))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
