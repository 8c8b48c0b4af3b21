"""One router per area of the API; ``ERRORS`` documents the shared error answers."""

from __future__ import annotations

from typing import Any

from omniwatch.serving.schemas import ErrorResponse


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all in ``ErrorResponse`` form).
    422 is always listed: any route with input can refuse it, and listing it here replaces
    FastAPI's default ``HTTPValidationError``, which is not the shape this API answers with."""
    text = {401: "Missing or wrong X-API-Key", 404: "Unknown id", 410: "Gone: use the v2 path",
            422: "Invalid input (field and reason), or insufficient_features / insufficient_prices",
            503: "model_artifact_missing: no loadable model version; stale_features: the snapshot is older "
                 "than OMNIWATCH_MAX_SNAPSHOT_AGE; registry_unavailable: the model registry failed"}
    return {c: {"model": ErrorResponse, "description": text[c]} for c in sorted({*codes, 422})}


TASK_REFUSED = {503: {"model": ErrorResponse,
                      "description": "task_executor_unavailable: the Dagster webserver did not take the run"}}
