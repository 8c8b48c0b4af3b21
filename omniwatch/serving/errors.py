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

from omniwatch.errors import ErrorCode
from omniwatch.serving.schemas import ErrorResponse

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
    return JSONResponse(_body(exc.code, exc.detail, exc.errors, exc.context), exc.status, headers=exc.headers)


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
    handlers: list[tuple[type[Exception], _Handler]] = [
        (ApiError, _api_error), (RequestValidationError, _validation), (StarletteHTTPException, _http)]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all in ``ErrorResponse`` form).
    422 is always listed: any route with input can refuse it, and listing it here replaces
    FastAPI's default ``HTTPValidationError``, which is not the shape this API answers with."""
    text = {401: "Missing or wrong X-API-Key", 403: "pipeline_source: the source is written by the pipeline only",
            404: "Unknown id", 410: "Gone: use the v2 path",
            422: "Invalid input (field and reason), or insufficient_features / insufficient_prices",
            503: "model_artifact_missing: no loadable model version; stale_features: the snapshot is older "
                 "than OMNIWATCH_MAX_SNAPSHOT_AGE; registry_unavailable: the model registry failed"}
    return {c: {"model": ErrorResponse, "description": text[c]} for c in sorted({*codes, 422})}


TASK_REFUSED: dict[int | str, dict[str, Any]] = {503: {"model": ErrorResponse,
                      "description": "task_executor_unavailable: the Dagster webserver did not take the run"}}
