"""The liquid track's universe and its data-quality thresholds, as one resource."""

from __future__ import annotations

import dagster as dg


class LiquidTrackResource(dg.ConfigurableResource):
    """Which symbols the liquid track watches and how strict its blocking checks are."""

    symbols: list[str]
    max_gap_ratio: float = 0.02
    max_abs_hourly_log_return: float = 0.25
    max_bar_lag_hours: float = 3.0
