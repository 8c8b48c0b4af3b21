"""Every trial an MLflow run: the research experiment keeps each variant (its config hash, feature
set, per-window and summary tables) and one report run per invocation (trial count, the deflated
Sharpe ratio of the best variant, the regime table), so the number of variants ever tried is
readable from the registry, not from memory."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from omniwatch.research.walkforward import ResearchReport, Variant

EXPERIMENT = "omniwatch-research"
# Per horizon: the hourly sign rule's figures, the sized strategy's, the better constant sign's
# hit rate and the goal (1.0 met, 0.0 not).
TRIAL_METRICS = ("rank_ic_mean", "rank_ic_t", "rank_ic_null_z", "hit_rate", "constant_hit_rate", "sharpe",
                 "turnover_annual", "sized_sharpe", "sized_turnover_annual", "sized_net_return", "meets_goal")


class MlflowTrials:
    """``record`` for :func:`research_walk_forward`, and ``report`` for its result."""

    def __init__(self, mlflow: Any, study: str):
        self.mlflow, self.study = mlflow, study
        self.run_ids: list[str] = []

    def record(self, variant: Variant, config_hash: str, windows: pd.DataFrame, summary: pd.DataFrame) -> None:
        import mlflow as mlflow_lib

        tags = {"omniwatch.study": self.study, "omniwatch.trial": "variant", "config_hash": config_hash}
        with self.mlflow.run_context(f"trial {variant.name}", tags=tags, experiment=EXPERIMENT) as run:
            mlflow_lib.log_params({"variant": variant.name, "config_hash": config_hash, "n_features":
                                   len(variant.features), "note": variant.note[:250]})
            mlflow_lib.log_text("\n".join(variant.features), "features.txt")
            for _, row in summary.iterrows():
                h = int(row["horizon"])
                mlflow_lib.log_metrics({f"{name}_{h}h": float(row[name]) for name in TRIAL_METRICS})
            mlflow_lib.log_text(windows.to_markdown(index=False, floatfmt=".4f"), "windows.md")
            mlflow_lib.log_text(summary.to_markdown(index=False, floatfmt=".4f"), "summary.md")
            self.run_ids.append(run.info.run_id)

    def report(self, result: ResearchReport) -> str:
        """The study's report run; returns its id. Counts every trial run of the experiment."""
        import mlflow as mlflow_lib

        experiment = self.mlflow.experiment_id(EXPERIMENT)
        all_trials = self.mlflow.client().search_runs([experiment], "tags.`omniwatch.trial` = 'variant'",
                                                      max_results=50_000)
        tags = {"omniwatch.study": self.study, "omniwatch.trial": "report"}
        with self.mlflow.run_context(f"report {self.study}", tags=tags, experiment=EXPERIMENT,
                                     start_time_ms=int(time.time() * 1000)) as run:
            best = {k: v for k, v in result.best.items() if isinstance(v, int | float | bool)}
            mlflow_lib.log_metrics({**{k: float(v) for k, v in best.items()},
                                    "trials_in_study": result.trials, "trials_in_experiment": len(all_trials)})
            mlflow_lib.log_params({"best_variant": result.best["variant"], "trial_runs": ",".join(self.run_ids)[:500],
                                   "best_strategy": result.best.get("strategy", ""),
                                   "sign_rule_best_variant": result.best.get("sign_rule_variant", ""),
                                   "meeting_goal": result.best.get("meeting_goal", "")[:500] or "none"})
            mlflow_lib.log_text(result.windows.to_markdown(index=False, floatfmt=".4f"), "windows.md")
            mlflow_lib.log_text(result.summary.to_markdown(index=False, floatfmt=".4f"), "summary.md")
            mlflow_lib.log_text(result.by_regime.to_markdown(index=False, floatfmt=".4f"), "by_regime.md")
            return run.info.run_id
