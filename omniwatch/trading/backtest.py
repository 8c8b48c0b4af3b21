"""Backtests: stored feature snapshots replayed through one model version, without HTTP.

Hourly positions come from the chosen horizon's forecast, sized as ``execution/run`` sizes it
(``sizing="horizon"``, the default: held tranches of the horizon, volatility-scaled, with a
no-trade band in weight; ``omniwatch.trading.sizing``) or by the older hourly sign rule with a
forecast band (``sizing="sign"``, kept to replay stored runs and as the comparison), PnL after
fees, slippage and funding, and the forecast/strategy metrics, all from ``omniwatch.ml.metrics`` (the
same arithmetic as the walk-forward tables of training). Everything is in log-return units.
``lineage_coverage`` is the share of replayed rows whose snapshot lineage is recorded in
``feature_lineage``; ``input_digest`` names the rows replayed. A window the data cannot answer,
or one inside the model's training span, is refused with :class:`BacktestRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sqlalchemy import select

from omniwatch.jsonsafe import json_safe
from omniwatch.ml.inference import HORIZON_OF, PRED_COLUMNS, infer_lineage, score_positions
from omniwatch.ml.metrics import POOLED, hourly_pnl, positions_from_predictions, strategy_pnl, summarize
from omniwatch.trading.sizing import SizingRule, horizon_hours, position_rule, sized_positions
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

PRED_OF = {h: p for p, h in HORIZON_OF.items()}
MIN_PRICED_HOURS = 2
LABEL_REACH = timedelta(hours=24)  # the last training row's 24 h label saw returns this far past it


class BacktestErrorCode(StrEnum):
    INSUFFICIENT_FEATURES = "insufficient_features"
    INSUFFICIENT_PRICES = "insufficient_prices"
    IN_SAMPLE_WINDOW = "in_sample_window"


class BacktestRefused(Exception):
    """The window cannot be replayed as asked; ``context`` names what is missing or overlapping."""

    def __init__(self, code: BacktestErrorCode, detail: str, **context: Any):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.context = code, detail, context


@dataclass(frozen=True)
class BacktestParams:
    """What decides a run, with every default resolved (as stored in ``backtest_runs.params``)."""

    model_name: str
    model_version: str
    start: datetime
    end: datetime
    targets: list[str]
    horizon: str
    band_bps: float
    fee_bps: float
    slippage_bps: float
    include_funding: bool
    allow_in_sample: bool
    sizing: str = "horizon"          # "horizon" | "sign"
    weight_band: float = 0.05        # horizon sizing: no-trade band (fraction of capital)
    target_annual_vol: float = 0.40  # horizon sizing: volatility target of one symbol's book
    max_weight: float = 1.0

    # Runs stored before a field existed replay as they ran: no in-sample refusal, the sign rule.
    STORED_DEFAULTS: ClassVar[dict[str, Any]] = {"allow_in_sample": False, "sizing": "sign"}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> BacktestParams:
        values = {f.name: stored[f.name] if f.name in stored else cls.STORED_DEFAULTS.get(f.name, f.default)
                  for f in fields(cls)}
        for key in ("start", "end"):
            if isinstance(values[key], str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


def in_sample(start: datetime, end: datetime, span: tuple[datetime, datetime] | None) -> bool:
    """Whether ``[start, end)`` overlaps what training saw: its as_of_ts span plus the reach of
    its labels. An unrecorded span counts as overlapping: it cannot be shown out of sample."""
    if span is None:
        return True
    first, last = span
    return start <= last + LABEL_REACH and end > first


def check_in_sample(params: BacktestParams, span: tuple[datetime, datetime] | None, model: str) -> bool:
    """The window's in-sample flag; an in-sample window without ``allow_in_sample`` is refused."""
    inside = in_sample(params.start, params.end, span)
    if inside and not params.allow_in_sample:
        seen = f"[{span[0].isoformat()}, {span[1].isoformat()}]" if span else "unrecorded"
        raise BacktestRefused(BacktestErrorCode.IN_SAMPLE_WINDOW,
                              f"the window overlaps the training span of {model} ({seen}, labels reach "
                              f"{LABEL_REACH} further); pass allow_in_sample=true to replay it anyway",
                              train_start=span[0].isoformat() if span else None,
                              train_end=span[1].isoformat() if span else None)
    return inside


@dataclass(frozen=True)
class Replay:
    """Scored rows of a backtest window (one per symbol-hour), with labels and costs."""

    rows: pd.DataFrame      # symbol, as_of_ts, pred_* (bps), y_* (bps), next_hour_return, next_hour_funding
    lineage_coverage: float
    input_digest: str


def replay(database_url: str, model: Any, params: BacktestParams) -> Replay:
    """Load ``[start, end)`` plus the lookback before it and score every row of the window."""
    from omniwatch.ml.dataset import load_snapshots

    targets = params.targets
    lookback = int(model.meta["lookback"])
    frame = load_snapshots(database_url, pd.Timestamp(params.start - timedelta(hours=lookback)),
                           pd.Timestamp(params.end))
    if frame.empty:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_FEATURES, "no feature snapshots in the window")
    frame = frame[frame["symbol"].isin(targets)].reset_index(drop=True)
    inside = (frame["as_of_ts"] >= pd.Timestamp(params.start)).to_numpy()
    missing = sorted(set(targets) - set(frame.loc[inside, "symbol"]))
    if missing:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_FEATURES,
                              f"no feature snapshots of {missing} in [{params.start}, {params.end})", targets=missing)
    positions = np.flatnonzero(inside)
    scored = score_positions(model, frame, positions)
    rows = frame.iloc[positions].reset_index(drop=True)
    for p in PRED_COLUMNS:
        rows[p] = scored[p].to_numpy()
    priced = int(rows["next_hour_return"].notna().sum())
    if priced < MIN_PRICED_HOURS:
        raise BacktestRefused(BacktestErrorCode.INSUFFICIENT_PRICES,
                              f"{priced} replayed hour(s) have a next-hour price; at least {MIN_PRICED_HOURS} needed")
    pairs = list(zip(rows["lineage_id"], rows["data_version"], strict=True))
    return Replay(rows, _coverage(database_url, rows["lineage_id"]), infer_lineage(pairs))


def _coverage(database_url: str, lineage_ids: pd.Series) -> float:
    wanted = set(lineage_ids)
    t = tables.feature_lineage
    with get_engine(database_url).connect() as conn:
        known = {r[0] for r in conn.execute(select(t.c.lineage_id).where(t.c.lineage_id.in_(list(wanted))))}
    return float(lineage_ids.isin(known).mean()) if len(lineage_ids) else 0.0


def long_frame(rows: pd.DataFrame, include_funding: bool) -> pd.DataFrame:
    """The long format ``metrics.summarize`` expects (log-return units)."""
    parts = []
    for p, h in HORIZON_OF.items():
        parts.append(pd.DataFrame({
            "as_of_ts": rows["as_of_ts"], "symbol": rows["symbol"], "horizon": int(h[:-1]),
            "prediction": rows[p] / 1e4, "realized": rows[f"y_{h}"] / 1e4,
            "next_hour_return": rows["next_hour_return"],
            "funding": rows["next_hour_funding"] if include_funding else 0.0,
            "vol": rows["vol_24h"] if "vol_24h" in rows else np.nan}))
    return pd.concat(parts, ignore_index=True)


def _parts(pnl: pd.DataFrame) -> dict[str, float]:
    return {"gross": float(pnl.gross.sum()), "fees": float(pnl.fees.sum()), "slippage": float(pnl.slippage.sum()),
            "funding": float(pnl.funding.sum()), "net": float(pnl.net.sum()), "turnover": float(pnl.turnover.sum()),
            "hours": int(len(pnl))}


def sizing_rule(params: BacktestParams, horizon: str | int | None = None) -> SizingRule | None:
    """The horizon sizing of ``params`` (None for the sign rule); ``band_bps`` is its forecast threshold."""
    if params.sizing != "horizon":
        return None
    return SizingRule(horizon_hours(horizon or params.horizon), threshold_bps=params.band_bps,
                      band=params.weight_band, target_annual_vol=params.target_annual_vol,
                      max_weight=params.max_weight)


def evaluate(rep: Replay, params: BacktestParams) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(cost breakdown of the traded horizon, metric rows of every horizon; with horizon sizing
    the "model_sized" rows are what the breakdown traded)."""
    long = long_frame(rep.rows, params.include_funding)
    band, fee, slip = params.band_bps / 1e4, params.fee_bps, params.slippage_bps
    rule = sizing_rule(params)
    table = summarize(long, band=band, fee_bps=fee, slippage_bps=slip, null_shifts=0,
                      sizing=(lambda h: position_rule(replace(rule, horizon_hours=h))) if rule else None)
    traded = long[long["horizon"] == horizon_hours(params.horizon)]
    pnl = strategy_pnl(traded, band=band, fee_bps=fee, slippage_bps=slip,
                       sizing=position_rule(rule) if rule else None)
    breakdown = {**_parts(pnl[POOLED]), "by_target": {s: _parts(f) for s, f in pnl.items() if s != POOLED}}
    metrics = [json_safe(row) for row in table.to_dict(orient="records")]
    return breakdown, metrics


def attribution(rep: Replay, params: BacktestParams) -> dict[str, Any]:
    """PnL of the equal-weight pool split by target, by side and by month. Each symbol-hour counts
    1/N of its hour (N = symbols traded that hour), so every split sums to the pooled total."""
    parts = []
    rows = rep.rows.dropna(subset=["next_hour_return"]).sort_values("as_of_ts")
    rule = sizing_rule(params)
    for sym, g in rows.groupby("symbol", sort=True):
        forecast = g[PRED_OF[params.horizon]]
        pos = (sized_positions(forecast.to_numpy(float), g["vol_24h"] if "vol_24h" in g else None, rule)
               if rule else positions_from_predictions(forecast / 1e4, params.band_bps / 1e4))
        fund = g["next_hour_funding"] if params.include_funding else None
        pnl = hourly_pnl(pos, g["next_hour_return"], fund, fee_bps=params.fee_bps,
                         slippage_bps=params.slippage_bps)
        pnl.index = g.index
        parts.append(pnl.assign(symbol=sym, as_of_ts=g["as_of_ts"].to_numpy(), position=pos))
    hourly = pd.concat(parts)
    weight = 1.0 / hourly.groupby("as_of_ts")["symbol"].transform("count")
    cols = ["gross", "fees", "slippage", "funding", "net", "turnover"]
    hourly[cols] = hourly[cols].mul(weight, axis=0)
    side = np.where(hourly["position"] > 0, "long", np.where(hourly["position"] < 0, "short", "flat"))
    month = hourly["as_of_ts"].dt.strftime("%Y-%m")

    def split(key: str | np.ndarray[Any, np.dtype[np.str_]] | pd.Series) -> dict[str, dict[str, float]]:
        return {str(k): _parts(g) for k, g in hourly.groupby(key, sort=True)}

    total = _parts(hourly)
    total["hours"] = int(hourly["as_of_ts"].nunique())
    return {"total": total, "by_target": split("symbol"), "by_side": split(side), "by_month": split(month)}
