"""Model operations as services: fetch the evidence, call a rule, persist the decision.

The Dagster sensors and the API routes call these same functions (DESIGN section 7), so a
decision is the same whichever path asked for it. The rules themselves (``omniwatch.modelops``)
are pure; the evidence comes from the warehouse (``predictions_v2``, ``model_registry``,
``feature_snapshots``, ``orders_sim``) and the MLflow registry (aliases, the drift reference).

Windows. A rollout or monitoring window is ``[start, start + window_hours)`` of prediction
``as_of_ts``; it is judged once every prediction in it has matured (``now >= end + horizon``).
Consecutive windows of a version start where its previous judged window ended (the first at
the gate decision). The clock ``now`` is the data clock in replay (the newest bar's
``available_time``) and the wall clock in live mode, so replay-as-live behaves as live does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.modelops.thresholds import DriftThresholds, GateThresholds, RollbackThresholds, RolloutThresholds
from omniwatch.promotions import Applied, apply_decision, audit_rows, registry_rows
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

LIQUID_MODEL = "omniwatch-liquid"
HOUR = timedelta(hours=1)


class UnknownModel(LookupError):
    """The registry holds no model of that name (HTTP 404 at the API)."""


@dataclass(frozen=True)
class Thresholds:
    drift: DriftThresholds
    gate: GateThresholds
    rollout: RolloutThresholds
    rollback: RollbackThresholds


@dataclass(frozen=True)
class OpsContext:
    mlflow: MLflowResource
    database_url: str
    thresholds: Thresholds
    actor: str                      # "system" for sensors, the API key's name for the API
    source: str                     # "scheduler" | "api"
    now: datetime | None = None     # None: the data clock (replay) / wall clock (live)
    live: bool = False

    @classmethod
    def from_settings(cls, settings, *, actor: str, source: str, now: datetime | None = None) -> OpsContext:
        return cls(
            mlflow=MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir)),
            database_url=settings.warehouse_url,
            thresholds=Thresholds(settings.drift, settings.gate, settings.rollout, settings.rollback),
            actor=actor, source=source, now=now, live=settings.source == "live",
        )

    def clock(self) -> datetime:
        if self.now is not None:
            return pd.Timestamp(self.now).tz_convert("UTC").to_pydatetime()
        if self.live:
            return datetime.now(UTC)
        return data_clock(self.database_url) or datetime.now(UTC)


@dataclass(frozen=True)
class Recorded:
    decision: Decision
    audit_id: int
    applied: Applied | None = None


def data_clock(database_url: str) -> datetime | None:
    """The newest ``available_time`` of any stored bar: "now" for a replay."""
    t = tables.market_bars
    with get_engine(database_url).connect() as conn:
        value = conn.execute(select(func.max(t.c.available_time))).scalar()
    return None if value is None else pd.Timestamp(value).tz_convert("UTC").to_pydatetime() \
        if pd.Timestamp(value).tzinfo else pd.Timestamp(value).tz_localize("UTC").to_pydatetime()


def _locked(fn):
    """Serialise decisions about one model (sensors, API processes): evidence, decision and its
    effects happen under one lock, so two deciders cannot both act on the same state."""
    import functools

    from omniwatch.promotions import model_lock

    @functools.wraps(fn)
    def wrapper(ctx: OpsContext, model_name: str = LIQUID_MODEL, *args, **kwargs):
        with model_lock(ctx.database_url, model_name):
            return fn(ctx, model_name, *args, **kwargs)

    return wrapper


def _persist(ctx: OpsContext, decision: Decision, role: str | None = None) -> Recorded:
    # The clock the decision was made at (data clock in replay): the next window starts there.
    decision = decision.model_copy(update={"metrics": {**decision.metrics, "decided_at": ctx.clock().isoformat()}})
    applied = apply_decision(ctx.mlflow, ctx.database_url, decision, actor=ctx.actor, source=ctx.source, role=role)
    return Recorded(decision, applied.audit_id, applied)


def _aliases(ctx: OpsContext, model_name: str) -> dict[str, str]:
    aliases = ctx.mlflow.aliases(model_name)
    if not aliases and not registry_rows(ctx.database_url, model_name):
        raise UnknownModel(model_name)
    return aliases


def _registry(ctx: OpsContext, model_name: str) -> dict[str, dict[str, Any]]:
    return {str(r["version"]): r for r in registry_rows(ctx.database_url, model_name)}


# ----------------------------------------------------------------------------- evidence
def live_predictions(database_url: str, model_name: str, version: str, horizon: str,
                     start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Live-scored predictions of one version: target, as_of_ts, forecast, realised, error, matured."""
    t = tables.predictions_v2
    query = select(t.c.target, t.c.as_of_ts, t.c.horizon_predictions, t.c.realised, t.c.error).where(
        t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None))
    if start is not None:
        query = query.where(t.c.as_of_ts >= start)
    if end is not None:
        query = query.where(t.c.as_of_ts < end)
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(query).all()
    records = []
    for target, as_of, preds, realised, error in rows:
        forecast = (preds or {}).get(horizon)
        real = (realised or {}).get(horizon) if realised else None
        records.append({"target": target, "as_of_ts": pd.Timestamp(as_of), "error": error,
                        "forecast": float("nan") if forecast is None or error else float(forecast),
                        "realised": float("nan") if real is None else float(real),
                        "matured": real is not None})
    frame = pd.DataFrame(records, columns=["target", "as_of_ts", "forecast", "realised", "error", "matured"])
    if len(frame):
        frame["as_of_ts"] = pd.to_datetime(frame["as_of_ts"], utc=True)
    return frame.drop_duplicates(["target", "as_of_ts"], keep="last").reset_index(drop=True)


def _judgeable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a window judges: matured forecasts, and failed scorings (they count as errors)."""
    if frame.empty:
        return frame
    return frame[frame["matured"] | frame["error"].notna()].reset_index(drop=True)


def window_evidence(database_url: str, model_name: str, version: str, reference: str | None, horizon: str,
                    start: datetime, end: datetime, label: str):
    """(version's WindowMetrics, reference's WindowMetrics or None) on the same hours."""
    from omniwatch.modelops.evidence import paired, score_window

    mine = _judgeable(live_predictions(database_url, model_name, version, horizon, start, end))
    theirs = None
    if reference is not None:
        ref = _judgeable(live_predictions(database_url, model_name, reference, horizon, start, end))
        if len(ref):
            mine_p, ref_p = paired(mine, ref)
            theirs = score_window(ref_p, horizon, label=label, start=start, end=end)
            mine = mine_p
    return score_window(mine, horizon, label=label, start=start, end=end), theirs


def walk_forward_evidence(row: dict[str, Any] | None, horizon: str) -> list:
    from omniwatch.modelops.evidence import WindowMetrics

    windows = ((row or {}).get("metrics") or {}).get("walk_forward_windows", {}).get(horizon, [])
    return [WindowMetrics(**w) for w in windows]


# ----------------------------------------------------------------------------- gate
@_locked
def evaluate_gate(ctx: OpsContext, model_name: str = LIQUID_MODEL, version: str | None = None) -> Recorded:
    from omniwatch.modelops.evidence import ModelEvidence
    from omniwatch.modelops.gate import evaluate_gate as gate_rule

    aliases = _aliases(ctx, model_name)
    version = str(version or aliases.get("challenger") or "")
    registry = _registry(ctx, model_name)
    if version not in registry:
        raise UnknownModel(f"{model_name} version {version}")
    champion = aliases.get("champion")
    th = ctx.thresholds.gate
    now = ctx.clock()
    blocked = _gate_blocked(ctx, model_name, version, aliases, registry)
    if blocked:
        decision = Decision(action=Action.gate, outcome=Outcome.skip, reason=blocked, model_name=model_name,
                            version=version, champion_version=champion, window=Window(end=now),
                            thresholds=th.model_dump())
        return _persist(ctx, decision)
    # The shadow window: from the version's first live-scored hour (the data clock, not the
    # registration's wall-clock time) to now; only matured predictions and failed scorings count.
    shadow_start = first_live_hour(ctx.database_url, model_name, version) or now
    shadow, champion_shadow = (None, None)
    if champion and champion != version:
        shadow, champion_shadow = window_evidence(
            ctx.database_url, model_name, version, champion, th.horizon, shadow_start,
            now + timedelta(seconds=1), "shadow")
    challenger_ev = ModelEvidence(version=version, walk_forward=walk_forward_evidence(registry[version], th.horizon),
                                  shadow=shadow)
    champion_ev = None if not champion else ModelEvidence(
        version=champion, walk_forward=walk_forward_evidence(registry.get(champion), th.horizon),
        shadow=champion_shadow)
    decision = gate_rule(challenger_ev, champion_ev, th, model_name=model_name,
                         first_stage=ctx.thresholds.rollout.stages[0])
    decision = decision.model_copy(update={"metrics": {**decision.metrics, "shadow_start": shadow_start.isoformat()}})
    return _persist(ctx, decision)


def _gate_blocked(ctx: OpsContext, model_name: str, version: str, aliases: dict[str, str],
                  registry: dict[str, dict[str, Any]]) -> str | None:
    """Why ``version`` may not be gated now (a recorded skip), or None."""
    candidate = aliases.get("candidate")
    if candidate and candidate != version:
        return f"a rollout of v{candidate} is in progress: it must finish or be rolled back first"
    if candidate == version:
        return f"v{version} is already in rollout"
    if version == aliases.get("champion"):
        return f"v{version} is the champion"
    if version in gated_versions(ctx.database_url, model_name):
        return f"v{version} was gated already (status {registry[version]['status']})"
    return None


def first_live_hour(database_url: str, model_name: str, version: str) -> datetime | None:
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        value = conn.execute(select(func.min(t.c.as_of_ts)).where(
            t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None))).scalar()
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def matured_count(database_url: str, model_name: str, version: str) -> int:
    """Matured or failed live predictions of ``version``: new ones are new gate evidence."""
    t = tables.predictions_v2
    with get_engine(database_url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(
            t.c.model_name == model_name, t.c.model_version == str(version), t.c.role.is_not(None),
            (t.c.realised.is_not(None)) | (t.c.error.is_not(None)))).scalar() or 0)


def gated_versions(database_url: str, model_name: str) -> set[str]:
    """Versions with a final gate decision (start_rollout or reject)."""
    return {str(r["model_version"]) for r in audit_rows(database_url, model_name, action=Action.gate.value)
            if r["outcome"] in (Outcome.start_rollout.value, Outcome.reject.value)}


@_locked
def auto_evaluate_gate(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded:
    """Gate the challenger unless it was gated already (then a recorded ``skip``)."""
    aliases = _aliases(ctx, model_name)
    challenger = aliases.get("challenger")
    if challenger and challenger not in gated_versions(ctx.database_url, model_name) \
            and challenger != aliases.get("champion"):
        return evaluate_gate(ctx, model_name, challenger)
    reason = ("no challenger registered" if not challenger else
              f"challenger v{challenger} is the champion" if challenger == aliases.get("champion") else
              f"challenger v{challenger} was gated already")
    decision = Decision(action=Action.gate, outcome=Outcome.skip, reason=reason, model_name=model_name,
                        version=challenger, champion_version=aliases.get("champion"),
                        window=Window(end=ctx.clock()), thresholds=ctx.thresholds.gate.model_dump())
    return _persist(ctx, decision)


# ----------------------------------------------------------------------------- rollout
def _hours(horizon: str) -> timedelta:
    return timedelta(hours=int(horizon.rstrip("h")))


def _window_start(ctx: OpsContext, model_name: str, version: str, actions: tuple[str, ...]) -> datetime | None:
    """Where ``version``'s next window starts: the end of its last judged window, else the end of
    its gate (or promotion) decision's window."""
    rows = [r for r in audit_rows(ctx.database_url, model_name, version=version)
            if r["action"] in actions and _anchors(r)]
    if not rows:
        return None
    last = rows[-1]
    judged = last["action"] in ("rollout", "rollback") and (last["window"] or {}).get("start")
    at = last["window"]["end"] if judged else (last["metrics"] or {}).get("decided_at")
    return pd.Timestamp(at).tz_convert("UTC").floor("h").to_pydatetime() if at else None


def _anchors(row: dict[str, Any]) -> bool:
    """Rows a version's windows are counted from: a stage change (gate start, advance, promote,
    manual or judged) and judged windows; notes, skips and no-ops are not."""
    if row["outcome"] in (Outcome.start_rollout.value, Outcome.advance.value, Outcome.promote.value):
        return True
    return row["action"] in ("rollout", "rollback") and bool((row["window"] or {}).get("start")) \
        and row["outcome"] in (Outcome.hold.value, Outcome.inconclusive.value, Outcome.no_action.value,
                               Outcome.rollback.value)


def next_window(ctx: OpsContext, model_name: str, version: str, actions: tuple[str, ...],
                window_hours: int, horizon: str) -> tuple[datetime, datetime] | None:
    start = _window_start(ctx, model_name, version, actions)
    if start is None:
        return None
    end = start + timedelta(hours=window_hours)
    # The window's last hour (end - 1 h) matures at end - 1 h + horizon.
    return (start, end) if ctx.clock() >= end - HOUR + _hours(horizon) else None


@_locked
def rollout_step(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded | None:
    """Judge the candidate's next closed window and advance, hold or wait; None when no window
    has closed since the last decision (nothing to decide, nothing audited)."""
    from omniwatch.modelops.rollout import evaluate_rollout

    th = ctx.thresholds.rollout
    aliases = _aliases(ctx, model_name)
    candidate, champion = aliases.get("candidate"), aliases.get("champion")
    if not candidate:
        return None
    stage = int(_registry(ctx, model_name).get(candidate, {}).get("rollout_stage") or 0)
    span = next_window(ctx, model_name, candidate, ("gate", "rollout", "manual"), th.window_hours, th.horizon)
    if span is None:
        return None
    label = f"{span[0]:%Y-%m-%dT%H}..{span[1]:%Y-%m-%dT%H}"
    mine, theirs = window_evidence(ctx.database_url, model_name, candidate, champion, th.horizon, *span, label)
    decision = evaluate_rollout(candidate, champion, stage, mine, theirs, th, model_name=model_name)
    decision = decision.model_copy(update={"window": Window(start=span[0], end=span[1], label=label)})
    return _persist(ctx, decision)


@_locked
def advance_rollout(ctx: OpsContext, model_name: str, reason: str) -> Recorded:
    """A person advances the candidate by exactly one stage (audited as ``manual``)."""
    from omniwatch.modelops.rollout import next_stage

    aliases = _aliases(ctx, model_name)
    candidate = aliases.get("candidate")
    stages = ctx.thresholds.rollout.stages
    now = ctx.clock()
    if not candidate:
        decision = Decision(action=Action.manual, outcome=Outcome.skip, reason=f"no candidate in rollout; {reason}",
                            model_name=model_name, champion_version=aliases.get("champion"), window=Window(end=now))
        return _persist(ctx, decision)
    stage = int(_registry(ctx, model_name).get(candidate, {}).get("rollout_stage") or 0)
    to = next_stage(stage, stages)
    if to is None:
        decision = Decision(action=Action.manual, outcome=Outcome.skip, model_name=model_name, version=candidate,
                            reason=f"already at {stage} %: nothing to advance; {reason}", from_stage=stage,
                            to_stage=stage, champion_version=aliases.get("champion"), window=Window(end=now))
    else:
        decision = Decision(action=Action.manual, outcome=Outcome.promote if to == stages[-1] else Outcome.advance,
                            model_name=model_name, version=candidate, champion_version=aliases.get("champion"),
                            from_stage=stage, to_stage=to, reason=reason, window=Window(end=now))
    return _persist(ctx, decision)


# ----------------------------------------------------------------------------- rollback
def _window_results(ctx: OpsContext, model_name: str, version: str, actions: tuple[str, ...]) -> list:
    out = []
    for r in audit_rows(ctx.database_url, model_name, version=version):
        if r["action"] not in actions:
            continue
        decision = r["decision"] or {}
        if "window_passed" not in decision or r["outcome"] == Outcome.skip.value:
            continue
        if r["action"] == Action.rollback.value and decision.get("window_passed") is None \
                and r["outcome"] != Outcome.inconclusive.value:
            continue
        out.append((Window(**(r["window"] or {})), decision.get("window_passed")))
    return out


@_locked
def check_rollback(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded | None:
    """Rollback on N consecutive failed windows: for a candidate in rollout (its rollout windows),
    and for a champion promoted within the monitoring period (its windows against ``previous``,
    judged here). None when there is nothing new to decide."""
    from omniwatch.modelops.rollback import evaluate_rollback
    from omniwatch.modelops.rollout import judge_window

    th = ctx.thresholds
    aliases = _aliases(ctx, model_name)
    candidate, champion, previous = aliases.get("candidate"), aliases.get("champion"), aliases.get("previous")
    if candidate:
        results = _window_results(ctx, model_name, candidate, ("rollout",))
        checked = [r for r in audit_rows(ctx.database_url, model_name, action=Action.rollback.value,
                                         version=candidate) if (r["window"] or {}).get("end")]
        if not results or (checked and pd.Timestamp(checked[-1]["window"]["end"]) == pd.Timestamp(results[-1][0].end)):
            return None  # no window judged since the last rollback check
        decision = evaluate_rollback(candidate, champion, results, th.rollback, model_name=model_name,
                                     role="candidate")
        return _persist(ctx, decision.model_copy(update={"window": results[-1][0]}), role="candidate")
    if not (champion and previous):
        return None
    promoted = [r for r in audit_rows(ctx.database_url, model_name, version=champion)
                if r["outcome"] == Outcome.promote.value]
    if not promoted:
        return None
    promoted_at = pd.Timestamp(promoted[-1]["window"]["end"]).tz_convert("UTC").to_pydatetime()
    rh = th.rollout
    span = next_window(ctx, model_name, champion, ("rollout", "manual", "rollback"), rh.window_hours, rh.horizon)
    if span is None or span[0] >= promoted_at + timedelta(hours=th.rollback.monitor_hours_after_promotion):
        return None
    label = f"{span[0]:%Y-%m-%dT%H}..{span[1]:%Y-%m-%dT%H}"
    mine, theirs = window_evidence(ctx.database_url, model_name, champion, previous, rh.horizon, *span, label)
    passed, why, metrics = judge_window(mine, theirs, rh)
    results = _window_results(ctx, model_name, champion, ("rollback",)) + [(Window(start=span[0], end=span[1],
                                                                                   label=label), passed)]
    decision = evaluate_rollback(champion, previous, results, th.rollback, model_name=model_name, role="champion")
    decision = decision.model_copy(update={
        "window": Window(start=span[0], end=span[1], label=label), "window_passed": passed,
        "metrics": {**decision.metrics, "window": metrics, "window_reason": why}})
    return _persist(ctx, decision, role="champion")


def monitored_previous(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> str | None:
    """``previous`` while the champion that replaced it is still watched against it, else None."""
    aliases = ctx.mlflow.aliases(model_name)
    champion, previous = aliases.get("champion"), aliases.get("previous")
    if not (champion and previous):
        return None
    promoted = [r for r in audit_rows(ctx.database_url, model_name, version=champion)
                if r["outcome"] == Outcome.promote.value and (r["window"] or {}).get("end")]
    if not promoted:
        return None
    until = pd.Timestamp(promoted[-1]["window"]["end"]).tz_convert("UTC") + timedelta(
        hours=ctx.thresholds.rollback.monitor_hours_after_promotion + ctx.thresholds.rollout.window_hours)
    return previous if pd.Timestamp(ctx.clock()) < until else None


def rejected_versions(database_url: str, model_name: str) -> set[str]:
    return {str(r["version"]) for r in registry_rows(database_url, model_name) if r["status"] == "rejected"}


# ----------------------------------------------------------------------------- drift
@_locked
def evaluate_drift(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> Recorded:
    """Champion's training reference against the last ``window_hours`` of snapshots, its live
    forecasts, and the slippage of filled orders."""
    from omniwatch.ml.dataset import load_snapshots
    from omniwatch.modelops.drift import evaluate_drift as drift_rule

    th = ctx.thresholds.drift
    aliases = ctx.mlflow.aliases(model_name)  # not registered yet: no champion, an inconclusive finding
    champion = aliases.get("champion")
    end = ctx.clock()
    start = end - timedelta(hours=th.window_hours)
    window = Window(start=start, end=end, label=f"last {th.window_hours} h")
    reference = load_reference(ctx.mlflow, model_name, champion) if champion else None
    if reference is None:
        decision = Decision(action=Action.drift, outcome=Outcome.inconclusive, model_name=model_name,
                            version=champion, window=window, thresholds=th.model_dump(),
                            reason="no champion" if not champion else
                            f"champion v{champion} carries no drift reference (trained before references were stored)")
        return _persist(ctx, decision)
    from omniwatch.features.liquid import FEATURES

    snaps = load_snapshots(ctx.database_url, pd.Timestamp(start), pd.Timestamp(end))
    features = snaps[list(FEATURES)] if len(snaps) else pd.DataFrame(columns=list(FEATURES))
    preds = live_predictions(ctx.database_url, model_name, champion, "24h", start, end)
    forecasts = preds["forecast"] if len(preds) else pd.Series(dtype=float)
    decision = drift_rule(reference, features, forecasts, filled_orders(ctx.database_url, start, end), th,
                          model_name=model_name, version=champion, window=window)
    return _persist(ctx, decision)


def filled_orders(database_url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Orders in the window with their realised slippage (bps, against the hour's bar close, signed
    so that paying up is positive). The rule counts only filled|partially_filled ones."""
    o, b = tables.orders_sim, tables.market_bars
    with get_engine(database_url).connect() as conn:
        orders = pd.DataFrame(conn.execute(select(o.c.symbol, o.c.side, o.c.status, o.c.avg_fill_price,
                                                  o.c.created_at).where(o.c.created_at >= start,
                                                                        o.c.created_at < end)).mappings().all())
        if orders.empty:
            return pd.DataFrame(columns=["status", "slippage_bps"])
        bars = pd.DataFrame(conn.execute(select(b.c.symbol, b.c.event_time, b.c.close).where(
            b.c.event_time >= start - HOUR, b.c.event_time < end)).mappings().all())
    orders["hour"] = pd.to_datetime(orders["created_at"], utc=True).dt.floor("h") - HOUR
    if bars.empty:
        orders["slippage_bps"] = float("nan")
    else:
        bars["hour"] = pd.to_datetime(bars["event_time"], utc=True)
        orders = orders.merge(bars[["symbol", "hour", "close"]], on=["symbol", "hour"], how="left")
        sign = orders["side"].str.lower().map({"buy": 1.0, "sell": -1.0})
        orders["slippage_bps"] = sign * (orders["avg_fill_price"] / orders["close"] - 1.0) * 1e4
    return orders[["status", "slippage_bps"]]


REFERENCE_ARTIFACT = "drift/reference.json"


def load_reference(mlflow: MLflowResource, model_name: str, version: str):
    """The drift reference logged with ``version``'s training run; None if it has none."""
    import json

    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from omniwatch.modelops.drift import DriftReference

    client = mlflow.client()
    run_id = client.get_model_version(model_name, version).run_id
    try:
        path = download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT, tracking_uri=mlflow.tracking_uri)
    except FileNotFoundError:
        return None  # the version's run logged no reference (trained before references existed)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # an unreachable artifact store is an error, not "no reference"
        return None
    with open(path) as fh:
        return DriftReference.model_validate(json.load(fh))


# ----------------------------------------------------------------------------- state and notes
def rollout_state(ctx: OpsContext, model_name: str = LIQUID_MODEL) -> dict[str, Any]:
    aliases = _aliases(ctx, model_name)
    registry = _registry(ctx, model_name)
    versions = [{"version": v, "status": r["status"], "rollout_stage": r["rollout_stage"],
                 "aliases": sorted(a for a, x in aliases.items() if x == v)} for v, r in registry.items()]
    return {"model_name": model_name, "aliases": aliases, "versions": versions,
            "candidate": aliases.get("candidate"),
            "stage": (registry.get(aliases.get("candidate") or "", {}) or {}).get("rollout_stage") or 0,
            "stages": list(ctx.thresholds.rollout.stages), "clock": ctx.clock(),
            "recent_decisions": [_public(r) for r in audit_rows(ctx.database_url, model_name, limit=10)]}


@_locked
def log_note(ctx: OpsContext, model_name: str, reason: str, version: str | None,
             metrics: dict[str, Any] | None) -> Recorded:
    _aliases(ctx, model_name)
    decision = Decision(action=Action.manual, outcome=Outcome.no_action, reason=reason, model_name=model_name,
                        version=version, window=Window(end=ctx.clock()), metrics=metrics or {})
    return _persist(ctx, decision)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC").isoformat()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "action", "outcome", "model_version", "alias", "from_version", "to_version", "rollout_stage",
            "actor", "source", "reason", "window", "thresholds", "metrics", "created_at")
    return {k: row.get(k) for k in keys}
