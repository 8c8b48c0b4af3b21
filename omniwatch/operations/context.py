"""The shared part of the model-operations services: the context a decision is made in (registry,
warehouse, thresholds, actor, clock), the per-model lock, and persisting a decision."""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import pandas as pd
from sqlalchemy import func, select

from omniwatch.modelops.records import Decision
from omniwatch.modelops.thresholds import (
    DriftThresholds,
    GateThresholds,
    RollbackThresholds,
    RolloutThresholds,
    SkillThresholds,
)
from omniwatch.promotions import Applied, apply_decision, registry_rows
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

if TYPE_CHECKING:
    from omniwatch.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

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
    skill: SkillThresholds


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
    def from_settings(cls, settings: Settings, *, actor: str, source: str, now: datetime | None = None) -> OpsContext:
        return cls(
            mlflow=MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir)),
            database_url=settings.warehouse_url,
            thresholds=Thresholds(settings.drift, settings.gate, settings.rollout, settings.rollback, settings.skill),
            actor=actor, source=source, now=now, live=settings.source == "live",
        )

    def clock(self) -> datetime:
        if self.now is not None:
            return cast(datetime, pd.Timestamp(self.now).tz_convert("UTC").to_pydatetime())
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
    return cast("datetime | None", value)  # aware UTC (tables.UTC)


def _locked(fn: Callable[P, R]) -> Callable[P, R]:
    """Serialise decisions about one model (sensors, API processes): evidence, decision and its
    effects happen under one lock, so two deciders cannot both act on the same state."""
    import functools

    from omniwatch.promotions import model_lock

    @functools.wraps(fn)
    def wrapper(ctx: OpsContext, model_name: str = LIQUID_MODEL, *args: Any, **kwargs: Any) -> R:
        call: Callable[..., R] = fn
        with model_lock(ctx.database_url, model_name):
            return call(ctx, model_name, *args, **kwargs)

    return cast(Callable[P, R], wrapper)


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


def require_model(ctx: OpsContext, model_name: str) -> None:
    """Raise ``UnknownModel`` unless ``model_name`` is registered (an API caller named it)."""
    _aliases(ctx, model_name)


def _registry(ctx: OpsContext, model_name: str) -> dict[str, dict[str, Any]]:
    return {str(r["version"]): r for r in registry_rows(ctx.database_url, model_name)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC").isoformat()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "action", "outcome", "model_version", "alias", "from_version", "to_version", "rollout_stage",
            "actor", "source", "reason", "window", "thresholds", "metrics", "created_at")
    return {k: row.get(k) for k in keys}
