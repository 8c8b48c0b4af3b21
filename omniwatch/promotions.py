"""Persisting model-operations decisions: the audit log, the aliases, the registry mirror.

The rules in ``omniwatch.modelops`` decide; this module carries a decision out, the same way for
a sensor and for an API call:

- every decision (no-ops, ``inconclusive`` and skips included) is appended to ``model_promotions``
  (append is the only operation) and mirrored as MLflow model-version tags;
- the effect on the registry: aliases ``challenger``, ``candidate``, ``champion``, ``previous``;
  ``model_registry.rollout_stage`` and ``status``.

``actor`` is who decided: ``system`` for sensors (with ``source="scheduler"``, the seed's
literals), the API key's name for API calls (``source="api"``). The API never lets a client name
the actor, so no client can write ``who=system``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update

from omniwatch.jsonsafe import json_safe
from omniwatch.modelops.records import Action, Decision, Outcome
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

SYSTEM_ACTOR = "system"
SCHEDULER_SOURCE = "scheduler"
API_SOURCE = "api"

# Status values of model_registry.status (mirrored as the MLflow tag ``omniwatch.status``).
REGISTERED, ROLLOUT, CHAMPION, PREVIOUS, REJECTED, RETIRED = (
    "registered", "rollout", "champion", "previous", "rejected", "retired")


_held = threading.local()


@contextmanager
def model_lock(database_url: str, model_name: str) -> Iterator[None]:
    """One decider at a time per model, across threads and processes: a PostgreSQL advisory lock,
    or an exclusive file lock beside a SQLite warehouse. Re-entrant within a thread."""
    key = (database_url, model_name)
    held: set = getattr(_held, "keys", None) or set()
    _held.keys = held
    if key in held:
        yield
        return
    held.add(key)
    try:
        engine = get_engine(database_url)
        if engine.dialect.name == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(f"omniwatch:{model_name}".encode()).digest()[:8], "big",
                                     signed=True)
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
        else:
            import fcntl
            import tempfile

            database = engine.url.database
            folder = Path(database).resolve().parent if database and database != ":memory:" else Path(
                tempfile.gettempdir())
            with open(folder / f".{Path(database or 'memory').name}.{model_name}.lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        held.discard(key)


@dataclass
class Applied:
    """What carrying out a decision changed, and the id of its audit row."""

    audit_id: int
    alias_moves: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)   # version -> new status


def append_decision(database_url: str, decision: Decision, *, actor: str, source: str,
                    alias_moves: list[dict[str, Any]] | None = None) -> int:
    """Append one audit row for ``decision``; returns its id. Never updates or deletes."""
    first_move = (alias_moves or [{}])[0]
    row = dict(
        model_name=decision.model_name, action=decision.action.value, outcome=decision.outcome.value,
        model_version=decision.version, alias=first_move.get("alias"),
        from_version=first_move.get("from_version"), to_version=first_move.get("to_version"),
        rollout_stage=decision.to_stage, actor=actor, source=source, reason=decision.reason,
        window=decision.window.model_dump(mode="json"), thresholds=json_safe(decision.thresholds),
        metrics=json_safe(decision.metrics),
        decision=json_safe({**decision.model_dump(mode="json"), "alias_moves": alias_moves or []}),
    )
    with get_engine(database_url).begin() as conn:
        result = conn.execute(tables.model_promotions.insert().values(**row))
        return int(result.inserted_primary_key[0])


def apply_decision(mlflow: MLflowResource, database_url: str, decision: Decision, *, actor: str,
                   source: str, role: str | None = None) -> Applied:
    """Carry ``decision`` out on the registry (aliases, stage, status), then audit and tag it.

    ``role`` matters for rollbacks only: ``candidate`` withdraws a candidate in rollout (the
    champion stays), ``champion`` sends ``champion`` back to the ``previous`` version.
    """
    name, version = decision.model_name, decision.version
    moves: list[dict[str, Any]] = []
    status: dict[str, str] = {}
    stage: dict[str, int] = {}
    aliases = mlflow.aliases(name)

    def move(alias: str, to: str | None) -> None:
        before = aliases.get(alias)
        if before == to:
            return
        if to is None:
            mlflow.delete_alias(name, alias)
            aliases.pop(alias, None)
        else:
            mlflow.client().set_registered_model_alias(name, alias, to)
            aliases[alias] = to
        moves.append({"alias": alias, "from_version": before, "to_version": to})

    try:
        _apply(mlflow, decision, role, aliases, move, status, stage)
        if status or stage:
            _mirror_registry(database_url, name, status, stage, aliases)
    except Exception as exc:  # the audit says what was decided, what moved, and that it failed
        failed = decision.model_copy(update={"reason": f"{decision.reason} [FAILED to apply: {exc}]"[:4000]})
        append_decision(database_url, failed, actor=actor, source=source, alias_moves=moves)
        raise
    audit_id = append_decision(database_url, decision, actor=actor, source=source, alias_moves=moves)
    if version:
        tags = _decision_tags(decision, actor, source, audit_id)
        if version in status:
            tags["omniwatch.status"] = status[version]
        if version in stage:
            tags["omniwatch.rollout_stage"] = str(stage[version])
        mlflow.set_version_tags(name, version, tags)
    for other, value in status.items():
        if other != version:
            mlflow.set_version_tags(name, other, {"omniwatch.status": value,
                                                  "omniwatch.rollout_stage": str(stage.get(other, 0))})
    return Applied(audit_id, moves, status)


def _apply(mlflow: MLflowResource, decision: Decision, role: str | None, aliases: dict[str, str], move,
           status: dict[str, str], stage: dict[str, int]) -> None:
    version = decision.version
    o = decision.outcome
    if decision.action == Action.gate and o == Outcome.start_rollout and version:
        move("candidate", version)
        stage[version], status[version] = int(decision.to_stage), ROLLOUT
    elif decision.action == Action.gate and o == Outcome.reject and version:
        status[version], stage[version] = REJECTED, 0
    elif decision.action in (Action.rollout, Action.manual) and o == Outcome.advance and version:
        stage[version] = int(decision.to_stage or 0)
    elif decision.action in (Action.rollout, Action.manual) and o == Outcome.promote and version:
        old = aliases.get("champion")
        if old and old != version:
            move("previous", old)
            status[old], stage[old] = PREVIOUS, 0
        move("champion", version)
        move("candidate", None)
        stage[version], status[version] = 100, CHAMPION
    elif decision.action == Action.rollback and o == Outcome.rollback and version:
        if role == "champion":
            back = aliases.get("previous")
            if back:
                move("champion", back)
                move("previous", None)
                status[back], stage[back] = CHAMPION, 100
        if aliases.get("candidate") == version:
            move("candidate", None)
        status[version], stage[version] = REJECTED, 0


def _decision_tags(decision: Decision, actor: str, source: str, audit_id: int) -> dict[str, str]:
    prefix = f"omniwatch.{decision.action.value}"
    return {
        f"{prefix}.outcome": decision.outcome.value,
        f"{prefix}.reason": decision.reason[:4000],
        f"{prefix}.window_end": decision.window.end.isoformat() if decision.window.end else "",
        f"{prefix}.audit_id": str(audit_id),
        f"{prefix}.who": actor,
        f"{prefix}.source": source,
    }


def _mirror_registry(database_url: str, name: str, status: dict[str, str], stage: dict[str, int],
                     aliases: dict[str, str]) -> None:
    t = tables.model_registry
    by_version: dict[str, list[str]] = {}
    for alias, v in aliases.items():
        by_version.setdefault(v, []).append(alias)
    with get_engine(database_url).begin() as conn:
        for row_version, in conn.execute(select(t.c.version).where(t.c.model_name == name)).all():
            values: dict[str, Any] = {"aliases": sorted(by_version.get(row_version, [])), "updated_at": func.now()}
            if row_version in status:
                values["status"] = status[row_version]
            if row_version in stage:
                values["rollout_stage"] = stage[row_version]
            conn.execute(update(t).where(t.c.model_name == name, t.c.version == row_version).values(**values))


def registry_rows(database_url: str, name: str) -> list[dict[str, Any]]:
    t = tables.model_registry
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(select(t).where(t.c.model_name == name).order_by(t.c.id)).mappings().all()
    return [dict(r) for r in rows]


def audit_rows(database_url: str, name: str, *, action: str | None = None, version: str | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """Audit rows of ``name`` oldest first (the newest ``limit`` when given)."""
    t = tables.model_promotions
    query = select(t).where(t.c.model_name == name)
    if action:
        query = query.where(t.c.action == action)
    if version:
        query = query.where(t.c.model_version == version)
    query = query.order_by(t.c.id.desc())
    if limit:
        query = query.limit(limit)
    with get_engine(database_url).connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
    return rows[::-1]
