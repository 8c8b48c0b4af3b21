"""The seed system's v1 paths answer 410 Gone and name the v2 path to use instead."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from omniwatch.serving.errors import ApiErrorCode
from omniwatch.serving.routers import errors

router = APIRouter(tags=["legacy"])
REPLACEMENTS = {
    "predictions": "/api/v2/predict/liquid",
    "prices": "/api/v2/data-quality/sample?table=market_bars",
    "news": "/api/v2/ingest/events",
    "indicators": "/api/v2/data-quality/sample?table=feature_snapshots",
}
WS_REPLACEMENT = "/stream/events"
OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def gone_body(old: str, use: str) -> dict:
    return {"code": ApiErrorCode.GONE, "detail": f"{old} was removed; use {use}", "context": {"use": use}}


def _response(old: str, use: str) -> JSONResponse:
    return JSONResponse(gone_body(old, use), status_code=410, headers={"Link": f'<{use}>; rel="successor-version"'})


def _gone(old: str, use: str, sub_path: bool = False):
    if sub_path:
        def handler(rest: str) -> JSONResponse:  # the documented path parameter of /{rest:path}
            return _response(old, use)
    else:
        def handler() -> JSONResponse:
            return _response(old, use)

    handler.__doc__ = f"Gone: use {use}."
    return handler


# GET is documented (deprecated); the other methods answer the same but stay out of the schema.
for _name, _use in REPLACEMENTS.items():
    for _path in (f"/api/{_name}", f"/api/{_name}/{{rest:path}}"):
        _id = f"legacy_{_name}{'_sub' if 'rest' in _path else ''}"
        _handler = _gone(f"/api/{_name}", _use, "rest" in _path)
        router.add_api_route(_path, _handler, methods=["GET"], deprecated=True, responses=errors(410),
                             status_code=410, response_model=None, name=_id)
        router.add_api_route(_path, _handler, methods=OTHER_METHODS, include_in_schema=False, status_code=410,
                             response_model=None, name=f"{_id}_other")
router.add_api_route("/ws", _gone("/ws", WS_REPLACEMENT), methods=["GET"], deprecated=True, responses=errors(410),
                     status_code=410, response_model=None, name="legacy_ws")


@router.websocket("/ws")
async def legacy_ws(websocket: WebSocket) -> None:
    """A WebSocket handshake on /ws is refused with 410 and the new stream path."""
    await websocket.send_denial_response(JSONResponse(gone_body("/ws", WS_REPLACEMENT), status_code=410))
