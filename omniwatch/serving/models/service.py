"""The models API's calls into ``omniwatch.operations`` (the same functions the sensors call).

Each call gets an ``OpsContext`` whose actor is the API key's name and whose source is ``api``;
nothing a client sends reaches either. Errors become answers: an unknown model or version is
404; an MLflow registry error is 503 ``registry_unavailable`` with its cause, never a sentinel.
``omniwatch.operations`` (and through it dagster and mlflow) loads with the first call, not at
app start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.serving.errors import ApiError, ApiErrorCode
from omniwatch.serving.models.schemas import DecisionResponse
from omniwatch.settings import Settings

if TYPE_CHECKING:
    from omniwatch.operations import OpsContext, Recorded

log = logging.getLogger(__name__)
API_SOURCE = "api"  # omniwatch.promotions.API_SOURCE (not imported: it loads dagster)


def _ops():
    from omniwatch import operations

    return operations


def context(settings: Settings, actor: str) -> OpsContext:
    return _ops().OpsContext.from_settings(settings, actor=actor, source=API_SOURCE)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``, with its failures turned into the API's typed answers."""
    from mlflow.exceptions import MlflowException

    ops = _ops()
    try:
        return fn(*args, **kwargs)
    except ops.UnknownModel as exc:
        raise ApiError(404, ApiErrorCode.NOT_FOUND, f"model {exc.args[0]!r} not found") from exc
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ApiError(404, ApiErrorCode.NOT_FOUND, str(exc.message)) from exc
        log.exception("model registry error in %s", getattr(fn, "__name__", fn))
        raise ApiError(503, ApiErrorCode.REGISTRY_UNAVAILABLE, f"the model registry failed: {exc.message}",
                       {"error_code": exc.error_code}) from exc


def answer(recorded: Recorded) -> DecisionResponse:
    return DecisionResponse(**recorded.decision.model_dump(), audit_id=recorded.audit_id)


def _nothing_new(ctx: OpsContext, action: Action, model_name: str, why: str) -> DecisionResponse:
    """A check that found nothing new to decide is still a decision someone asked for: audited."""
    from omniwatch.promotions import append_decision

    decision = Decision(action=action, outcome=Outcome.skip, reason=why, model_name=model_name,
                        window=Window(end=ctx.clock()))
    return DecisionResponse(**decision.model_dump(),
                            audit_id=append_decision(ctx.database_url, decision, actor=ctx.actor, source=ctx.source))


def evaluate_drift(settings: Settings, actor: str, model_name: str) -> DecisionResponse:
    """An unknown model is a 404 (nothing audited); a registered one without a champion yet is an
    audited ``inconclusive``, as the ``model_drift`` asset records it."""
    ops, ctx = _ops(), context(settings, actor)

    def evaluate() -> Any:
        ops.require_model(ctx, model_name)
        return ops.evaluate_drift(ctx, model_name)

    return answer(call(evaluate))


def evaluate_gate(settings: Settings, actor: str, model_name: str, version: str | None) -> DecisionResponse:
    return answer(call(_ops().evaluate_gate, context(settings, actor), model_name, version))


def auto_evaluate_gate(settings: Settings, actor: str, model_name: str) -> DecisionResponse:
    return answer(call(_ops().auto_evaluate_gate, context(settings, actor), model_name))


def advance_rollout(settings: Settings, actor: str, model_name: str, reason: str) -> DecisionResponse:
    return answer(call(_ops().advance_rollout, context(settings, actor), model_name, reason))


def check_rollback(settings: Settings, actor: str, model_name: str) -> DecisionResponse:
    ctx = context(settings, actor)
    recorded = call(_ops().check_rollback, ctx, model_name)
    if recorded is None:
        return call(_nothing_new, ctx, Action.rollback, model_name,
                    "no window judged since the last rollback check: nothing to decide")
    return answer(recorded)


def rollout_state(settings: Settings, model_name: str) -> dict[str, Any]:
    return call(_ops().rollout_state, context(settings, "reader"), model_name)


def log_note(settings: Settings, actor: str, model_name: str, reason: str, version: str | None,
             metrics: dict[str, Any]) -> DecisionResponse:
    return answer(call(_ops().log_note, context(settings, actor), model_name, reason, version, metrics))
