"""Freshness policies: "is the pipeline still running?", shown per asset in the UI.

The live liquid plane refreshes every hour (``liquid_live_schedule`` at hh:05), so a raw asset
or a snapshot not materialized for two hours means ticks are failing or stopped; one hour
without one is a warning. In replay mode nothing refreshes and the policies report stale,
which is true. Dagster 1.12+ evaluates ``FreshnessPolicy`` itself (it replaced freshness checks).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

RAW_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(hours=1))
FEATURE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(hours=1))
