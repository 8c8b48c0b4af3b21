"""Stored API tasks (backtests, PnL attributions): their state in ``serving_tasks`` and the
Dagster job that runs one. The serving API submits them; ``omniwatch.jobs`` registers the job."""
