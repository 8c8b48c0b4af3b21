"""One error shape for every non-2xx answer, with typed codes.

Seed codes (``omniwatch.errors.ErrorCode``: model_artifact_missing, insufficient_features, ...)
keep their spelling; the API adds its own for HTTP-level outcomes. Validation errors keep the
field path and the reason of each problem, so a client knows what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from omniwatch.checks.events import EVENT_SOURCES  # sources only the pipeline writes (403 pipeline_source)
from omniwatch.errors import ErrorCode
from omniwatch.jsonsafe import json_safe
from omniwatch.serving.schemas import ErrorResponse
from omniwatch.tasks.store import TaskErrorCode  # the task and backtest refusals (in_sample_window, ...)
from omniwatch.trading.risk import RiskRule  # a limit that refused an order is named by its rule (423)

log = logging.getLogger(__name__)


class ApiErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    GONE = "gone"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    STALE_FEATURES = "stale_features"          # 503: the newest snapshot is older than allowed
    REGISTRY_UNAVAILABLE = "registry_unavailable"  # 503: the model registry answered an error
    SCORING_FAILED = "scoring_failed"          # 500: a loaded model failed on stored features
    PIPELINE_SOURCE = "pipeline_source"        # 403: a client wrote under a source the pipeline owns


class ApiError(Exception):
    """Raised by routes and services; turned into ``ErrorResponse`` JSON by the handler."""

    def __init__(self, status: int, code: ErrorCode | ApiErrorCode | str, detail: str,
                 context: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None):
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail = status, str(code), detail
        self.context, self.headers, self.errors = context, headers, errors


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, ApiErrorCode.NOT_FOUND, f"{what} {ident!r} not found")


def model_missing(detail: str, **context: Any) -> ApiError:
    return ApiError(503, ErrorCode.MODEL_ARTIFACT_MISSING, detail, context or None)


def insufficient(code: ErrorCode, detail: str, **context: Any) -> ApiError:
    return ApiError(422, code, detail, context or None)


def _body(code: str, detail: str, errors: list | None = None, context: dict | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if context:
        body["context"] = context
    return body


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    # A context may carry figures that overflowed (an order's notional at an absurd price): JSON
    # has no inf or NaN, so they answer null rather than turning the answer into a 500.
    context = json_safe(exc.context) if exc.context else exc.context
    return JSONResponse(_body(exc.code, exc.detail, exc.errors, context), exc.status, headers=exc.headers)


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field(e.get("loc", ())), "reason": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid request"
    return JSONResponse(_body(ApiErrorCode.VALIDATION_ERROR, detail, errors), 422)


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # the framework could not parse the body (bad bytes, bad form)
        error = {"field": "body", "reason": str(exc.detail), "type": "body_parse_error"}
        return JSONResponse(_body(ApiErrorCode.VALIDATION_ERROR, f"body: {exc.detail}", [error]), 422)
    code = {404: ApiErrorCode.NOT_FOUND, 405: ApiErrorCode.METHOD_NOT_ALLOWED,
            401: ApiErrorCode.UNAUTHORIZED}.get(exc.status_code, ApiErrorCode.HTTP_ERROR)
    return JSONResponse(_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None))


# Starlette calls a handler only with instances of the class it is registered for; its signature
# types the exception as ``Exception``, so each handler is held as taking "its" exception (Any).
_Handler = Callable[[Request, Any], Awaitable[Response]]


def install_handlers(app: FastAPI) -> None:
    """The exception handlers of the one error shape, and the error examples of the OpenAPI
    document that describe what those handlers answer (``document_errors``)."""
    handlers: list[tuple[type[Exception], _Handler]] = [
        (ApiError, _api_error), (RequestValidationError, _validation), (StarletteHTTPException, _http)]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
    document_errors(app)


# ----------------------------------------------------------------------------- OpenAPI error examples
# One realistic answer per code (its status, what it means, the body), as the handlers above write
# it. /docs shows them per status, so an example must be one the route can really give at that
# status (tests/api/test_openapi_examples.py provokes each).
NO_ID = "00000000-0000-4000-8000-000000000000"
STALE_AT = "2024-08-31T23:00:00+00:00"
ERROR_EXAMPLES: dict[str, tuple[int, str, dict[str, Any]]] = {
    ApiErrorCode.UNAUTHORIZED: (401, "missing or wrong X-API-Key (keys come from OMNIWATCH_API_KEYS)", {
        "code": "unauthorized", "detail": "a valid X-API-Key header is required"}),
    ApiErrorCode.PIPELINE_SOURCE: (403, "the source is written by the pipeline only", {
        "code": "pipeline_source",
        "detail": "source 'edgar' is written by the pipeline; clients cannot write or overwrite its rows",
        "errors": [{"field": "body.events.0.source", "type": "pipeline_source",
                    "reason": "source 'edgar' is written by the pipeline; clients cannot write or overwrite its rows"}],
        "context": {"pipeline_sources": list(EVENT_SOURCES)}}),
    ApiErrorCode.NOT_FOUND: (404, "unknown id (whatever its format)", {
        "code": "not_found", "detail": f"{NO_ID!r} not found"}),
    ApiErrorCode.GONE: (410, "a removed v1 path; context.use names the v2 route", {
        "code": "gone", "detail": "/api/predictions was removed; use /api/v2/predict/liquid",
        "context": {"use": "/api/v2/predict/liquid"}}),
    ApiErrorCode.VALIDATION_ERROR: (422, "invalid input: errors[] names each field and reason", {
        "code": "validation_error", "detail": "body.target: Field required",
        "errors": [{"field": "body.target", "reason": "Field required", "type": "missing"}]}),
    ErrorCode.INSUFFICIENT_FEATURES: (422, "no feature snapshot for the target or window", {
        "code": "insufficient_features", "detail": "no feature snapshot of liquid target 'DOGE'",
        "context": {"target": "DOGE"}}),
    ErrorCode.INSUFFICIENT_PRICES: (422, "too few replayed hours have a next-hour price", {
        "code": "insufficient_prices",
        "detail": "1 replayed hour(s) have a next-hour price; at least 2 needed",
        "context": {"run_id": NO_ID}}),
    TaskErrorCode.IN_SAMPLE_WINDOW: (422, "the window overlaps the version's training span (allow_in_sample=true)", {
        "code": "in_sample_window",
        "detail": "the window overlaps the training span of omniwatch-liquid version 1 ([2024-05-01T00:00:00+00:00, "
                  "2024-08-30T23:00:00+00:00], labels reach 1 day, 0:00:00 further); pass allow_in_sample=true "
                  "to replay it anyway",
        "context": {"train_start": "2024-05-01T00:00:00+00:00", "train_end": "2024-08-30T23:00:00+00:00",
                    "run_id": NO_ID}}),
    ErrorCode.BLOCKED_BY_DATA_QUALITY: (422, "a pipeline data-quality check failed; nothing was stored", {
        "code": "blocked_by_data_quality", "detail": "failed data-quality checks: have_text",
        "errors": [{"field": "body.events.0.title", "type": "have_text", "reason": "have_text: empty title"}],
        "context": {"checks": ["have_text"]}}),
    ApiErrorCode.STALE_FEATURES: (503, "the newest snapshot is older than OMNIWATCH_MAX_SNAPSHOT_AGE", {
        "code": "stale_features",
        "detail": f"the newest feature snapshot of 'BTC' ({STALE_AT}) is 18000 s old, more than the 7200 s allowed",
        "context": {"snapshot_as_of": STALE_AT, "age_seconds": 18000.0, "max_age_seconds": 7200.0,
                    "target": "BTC"}}),
    ErrorCode.MODEL_ARTIFACT_MISSING: (503, "no loadable model version for the alias or version", {
        "code": "model_artifact_missing", "detail": "no version of 'omniwatch-liquid' carries the alias 'champion'",
        "context": {"model_name": "omniwatch-liquid"}}),
    ApiErrorCode.REGISTRY_UNAVAILABLE: (503, "the MLflow model registry answered an error", {
        "code": "registry_unavailable", "detail": "the model registry failed: registry is restarting",
        "context": {"error_code": "TEMPORARILY_UNAVAILABLE"}}),
    # 423: an order risk refused (omniwatch.serving.risk.service.risk_refused): the first violation's code.
    ErrorCode.kill_switch("liquid", "liquid_v2"): (423, "a kill switch covers the strategy (HALTED: cancels only)", {
        "code": "kill_switch_triggered:liquid:liquid_v2",
        "detail": "kill switch liquid:liquid_v2 triggered by alice: fills far from the book",
        "context": {"state": "HALTED", "codes": ["kill_switch_triggered:liquid:liquid_v2"], "violations": [
            {"rule": "kill_switch", "code": "kill_switch_triggered:liquid:liquid_v2", "track": "liquid",
             "strategy_id": "liquid_v2", "message": "kill switch liquid:liquid_v2 triggered by alice: fills far "
             "from the book", "value": None, "threshold": None, "detail": {"triggered_by": "alice"}}]}}),
    ErrorCode.DAILY_LOSS_EXCEEDED: (423, "today's loss passed the limit (REDUCING until 00:00 UTC)", {
        "code": "daily_loss_exceeded",
        "detail": "today's loss 2450.00 USD passed the 2000.00 USD limit (REDUCING until 00:00 UTC)",
        "context": {"state": "REDUCING", "codes": ["daily_loss_exceeded"], "violations": [
            {"rule": "daily_loss", "code": "daily_loss_exceeded", "track": "liquid", "strategy_id": "liquid_v2",
             "message": "today's loss 2450.00 USD passed the 2000.00 USD limit (REDUCING until 00:00 UTC)",
             "value": 2450.0, "threshold": 2000.0, "detail": {"day_pnl": -2450.0}}]}}),
    ErrorCode.CONSECUTIVE_LOSS_EXCEEDED: (423, "N losing round trips in a row (REDUCING until a win or a reset)", {
        "code": "consecutive_loss_exceeded",
        "detail": "5 losing round trips in a row (limit 5); REDUCING until a win or a keyed reset",
        "context": {"state": "REDUCING", "codes": ["consecutive_loss_exceeded"], "violations": [
            {"rule": "consecutive_loss", "code": "consecutive_loss_exceeded", "track": "liquid",
             "strategy_id": "liquid_v2", "message": "5 losing round trips in a row (limit 5); REDUCING until a win "
             "or a keyed reset", "value": 5.0, "threshold": 5.0, "detail": {}}]}}),
    RiskRule.MAX_ORDER_NOTIONAL: (423, "a limit refuses the order (codes: the limit's name)", {
        "code": "max_order_notional", "detail": "order notional 60000.00 USD is above 50000.00 USD",
        "context": {"state": "ACTIVE", "codes": ["max_order_notional"], "violations": [
            {"rule": "max_order_notional", "code": "max_order_notional", "track": "liquid",
             "strategy_id": "liquid_v2", "message": "order notional 60000.00 USD is above 50000.00 USD",
             "value": 60000.0, "threshold": 50000.0, "detail": {}}]}}),
    # 403: an order for the live adapter without the live gate (omniwatch.trading.coinbase_live).
    "live_trading_disabled": (403, "live orders need OMNIWATCH_LIVE_TRADING=1, Coinbase keys and a live-scoped key", {
        "code": "live_trading_disabled", "detail": "live trading is not allowed for this call: live_trading_off",
        "context": {"gate": "live_trading_off"}}),
    TaskErrorCode.TASK_EXECUTOR_UNAVAILABLE: (503, "the Dagster webserver did not take the run", {
        "code": "task_executor_unavailable",
        "detail": "the webserver executor did not accept the task (ConnectError); see the API log",
        "context": {"task_id": NO_ID}}),
}
# What a status means when a route says nothing more precise (OPERATION_CODES).
STATUS_CODES: dict[int, tuple[str, ...]] = {
    401: (ApiErrorCode.UNAUTHORIZED,), 403: (ApiErrorCode.PIPELINE_SOURCE,), 404: (ApiErrorCode.NOT_FOUND,),
    410: (ApiErrorCode.GONE,), 422: (ApiErrorCode.VALIDATION_ERROR,), 503: (ErrorCode.MODEL_ARTIFACT_MISSING,)}
_PREDICTING: dict[int, tuple[str, ...]] = {
    422: (ApiErrorCode.VALIDATION_ERROR, ErrorCode.INSUFFICIENT_FEATURES),
    503: (ApiErrorCode.STALE_FEATURES, ErrorCode.MODEL_ARTIFACT_MISSING)}
_REGISTRY: dict[int, tuple[str, ...]] = {503: (ApiErrorCode.REGISTRY_UNAVAILABLE,)}
# The typed codes of a route, per status, where they differ from STATUS_CODES ("METHOD path").
OPERATION_CODES: dict[str, dict[int, tuple[str, ...]]] = {
    "POST /api/v2/predict/liquid": _PREDICTING,
    "POST /api/v2/signals/generate": _PREDICTING,
    "POST /api/v2/portfolio/score": _PREDICTING,
    "POST /api/v2/portfolio/rebalance": _PREDICTING,
    # A prediction whose snapshot was deleted cannot be explained (422 insufficient_features).
    "GET /api/v2/predictions/{prediction_id}/explanation": {422: (ErrorCode.INSUFFICIENT_FEATURES,)},
    "POST /api/v2/backtest/run": {422: (ApiErrorCode.VALIDATION_ERROR, ErrorCode.INSUFFICIENT_FEATURES,
                                        ErrorCode.INSUFFICIENT_PRICES, TaskErrorCode.IN_SAMPLE_WINDOW)},
    "POST /api/v2/ingest/events": {422: (ApiErrorCode.VALIDATION_ERROR, ErrorCode.BLOCKED_BY_DATA_QUALITY)},
    "GET /api/v2/models/rollout/state": _REGISTRY,
    **{f"POST /api/v2/models/{name}": _REGISTRY for name in (
        "gate/evaluate", "gate/auto-evaluate", "rollout/advance", "rollback/check", "audit/log")},
    "POST /api/v2/execution/run": {403: ("live_trading_disabled",)},
    "POST /api/v2/execution/orders": {403: ("live_trading_disabled",),
                                      422: (ApiErrorCode.VALIDATION_ERROR, ErrorCode.INSUFFICIENT_PRICES)},
    # An unknown model is 404 (a registered one without a champion yet is an audited inconclusive).
    "POST /api/v2/models/drift/evaluate": _REGISTRY,
}


def _content(codes: tuple[str, ...] | list[str], bodies: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    bodies = bodies or {}
    return {"application/json": {"examples": {
        str(c): {"summary": f"{c}: {ERROR_EXAMPLES[c][1]}", "value": bodies.get(c, ERROR_EXAMPLES[c][2])}
        for c in codes}}}


def _describe(codes: tuple[str, ...] | list[str]) -> str:
    return "; ".join(f"`{c}`: {ERROR_EXAMPLES[c][1]}" for c in codes)


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all in ``ErrorResponse`` form), each
    with an example per typed code of that status (refined per route by ``document_errors``).
    422 is always listed: any route with input can refuse it, and listing it here replaces
    FastAPI's default ``HTTPValidationError``, which is not the shape this API answers with."""
    return {c: {"model": ErrorResponse, "description": _describe(STATUS_CODES[c]), "content": _content(STATUS_CODES[c])}
            if c in STATUS_CODES else {"model": ErrorResponse, "description": "See `code`."}
            for c in sorted({*codes, 422})}


TASK_REFUSED: dict[int | str, dict[str, Any]] = {503: {
    "model": ErrorResponse, "description": _describe([TaskErrorCode.TASK_EXECUTOR_UNAVAILABLE]),
    "content": _content([TaskErrorCode.TASK_EXECUTOR_UNAVAILABLE])}}


# For routes that execute orders: risk refused the order (HTTP 423, the violation codes).
RISK_REFUSED_CODES = (ErrorCode.kill_switch("liquid", "liquid_v2"), ErrorCode.DAILY_LOSS_EXCEEDED,
                      ErrorCode.CONSECUTIVE_LOSS_EXCEEDED, RiskRule.MAX_ORDER_NOTIONAL)
RISK_REFUSED: dict[int | str, dict[str, Any]] = {423: {
    "model": ErrorResponse, "description": _describe(RISK_REFUSED_CODES), "content": _content(RISK_REFUSED_CODES)}}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional parameter's schema."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    return branches[0] if branches else schema


def _query_problem(name: str, schema: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, type) that FastAPI gives for a typical bad value of the parameter, if it can have one."""
    s = _plain(schema)
    s = _plain(s.get("items", s)) if s.get("type") == "array" else s
    if "minimum" in s:
        return f"Input should be greater than or equal to {s['minimum']}", "greater_than_equal"
    if "pattern" in s:
        return f"String should match pattern '{s['pattern']}'", "string_pattern_mismatch"
    if "enum" in s:
        return "Input should be " + " or ".join(repr(v) for v in s["enum"]), "literal_error"
    if s.get("format") == "date-time":
        return "Input should be a valid datetime or date, invalid character in year", "datetime_from_date_parsing"
    if s.get("type") == "boolean":
        return "Input should be a valid boolean, unable to interpret input", "bool_parsing"
    if s.get("type") == "integer":
        return "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
    return None


def _validation_body(op: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """A validation_error as this route answers it (a field it really has), or None when nothing
    it takes can fail validation (only unconstrained path strings)."""
    problem: tuple[str, str, str] | None = None
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is not None:
        model = components.get(body.get("$ref", "").rsplit("/", 1)[-1], body)
        required = model.get("required", [])
        if required:
            problem = (f"body.{required[0]}", "Field required", "missing")
        else:
            problem = ("body.typo", "Extra inputs are not permitted", "extra_forbidden")
    for param in op.get("parameters", []):
        if problem is None and param.get("in") in ("query", "path"):
            found = _query_problem(param["name"], param.get("schema", {}))
            if found is not None:
                problem = (f"{param['in']}.{param['name']}", *found)
    if problem is None:
        return None
    field, reason, kind = problem
    return {"code": "validation_error", "detail": f"{field}: {reason}",
            "errors": [{"field": field, "reason": reason, "type": kind}]}


def _gone_body(path: str) -> dict[str, Any]:
    from omniwatch.serving.legacy import SUCCESSORS, WS_SUCCESSOR, gone_body  # legacy imports this module

    parts = path.split("/")
    old = "/".join(parts[:3]) if path.startswith("/api/") else path
    use = SUCCESSORS.get(parts[2], {}).get("GET") if path.startswith("/api/") else (
        WS_SUCCESSOR if path == "/ws" else None)
    return {k: str(v) if k == "code" else v for k, v in gone_body(old, use).items()}


def _document(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            per_route = OPERATION_CODES.get(f"{method.upper()} {path}", {})
            for status in [s for s in op.get("responses", {}) if s.isdigit() and int(s) >= 400]:
                response = op["responses"][status]
                examples = response.get("content", {}).get("application/json", {}).get("examples")
                if examples is None:  # not one of documented()'s answers
                    continue
                codes = list(per_route.get(int(status), examples))
                bodies: dict[str, dict[str, Any]] = {}
                if ApiErrorCode.VALIDATION_ERROR in codes:
                    invalid = _validation_body(op, components)
                    if invalid is None:
                        codes.remove(ApiErrorCode.VALIDATION_ERROR)
                    else:
                        bodies[ApiErrorCode.VALIDATION_ERROR] = invalid
                if ApiErrorCode.GONE in codes:
                    bodies[ApiErrorCode.GONE] = _gone_body(path)
                if not codes:  # e.g. 422 on a route that takes nothing that can be invalid
                    del op["responses"][status]
                    continue
                response["description"] = _describe(codes)
                response["content"]["application/json"]["examples"] = _content(codes, bodies)["application/json"][
                    "examples"]


def document_errors(app: FastAPI) -> None:
    """Give each route's documented error statuses the examples of the codes that route can
    answer (``OPERATION_CODES``), with validation errors naming one of its own fields."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document(plain())
        return plain()

    app.openapi = openapi  # type: ignore[method-assign]
