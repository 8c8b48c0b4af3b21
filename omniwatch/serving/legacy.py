"""The seed system's v1 paths answer 410 Gone and name the v2 route that serves the same method,
when there is one; the v1 WebSocket ``/ws`` names ``/stream/signals``."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse

from omniwatch.serving.errors import ApiErrorCode, documented

router = APIRouter(tags=["legacy"])
# Per old path, the v2 route that serves the same verb; a verb without one is gone with no successor.
SUCCESSORS: dict[str, dict[str, str]] = {
    "predictions": {"POST": "/api/v2/predict/liquid"},
    "prices": {"GET": "/api/v2/data-quality/sample?table=market_bars"},
    "news": {"POST": "/api/v2/ingest/events"},
    "indicators": {"GET": "/api/v2/data-quality/sample?table=feature_snapshots"},
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
WS_SUCCESSOR = "/stream/signals"  # the v1 stream carried signals; events and risk have their own streams now


def gone_body(old: str, use: str | None) -> dict:
    if use is None:
        return {"code": ApiErrorCode.GONE, "detail": f"{old} was removed; it has no successor for this method"}
    return {"code": ApiErrorCode.GONE, "detail": f"{old} was removed; use {use}", "context": {"use": use}}


def _response(old: str, use: str | None) -> JSONResponse:
    headers = {"Link": f'<{use}>; rel="successor-version"'} if use else None
    return JSONResponse(gone_body(old, use), status_code=410, headers=headers)


def _sub_path_handler(old: str, successors: dict[str, str]) -> Callable[[Request, str], JSONResponse]:
    def handler(request: Request, rest: str) -> JSONResponse:  # the documented path parameter of /{rest:path}
        return _response(old, successors.get(request.method))
    return handler


def _path_handler(old: str, successors: dict[str, str]) -> Callable[[Request], JSONResponse]:
    def handler(request: Request) -> JSONResponse:
        return _response(old, successors.get(request.method))
    return handler


def _gone(old: str, successors: dict[str, str], sub_path: bool = False) -> Callable[..., JSONResponse]:
    handler: Callable[..., JSONResponse] = (_sub_path_handler(old, successors) if sub_path
                                            else _path_handler(old, successors))
    handler.__doc__ = "Gone: " + ("; ".join(f"{m} {u}" for m, u in successors.items()) or "no successor") + "."
    return handler


# GET is documented (deprecated); the other methods answer the same but stay out of the schema.
for _name, _successors in SUCCESSORS.items():
    for _path in (f"/api/{_name}", f"/api/{_name}/{{rest:path}}"):
        _id = f"legacy_{_name}{'_sub' if 'rest' in _path else ''}"
        _handler = _gone(f"/api/{_name}", _successors, "rest" in _path)
        router.add_api_route(_path, _handler, methods=["GET"], deprecated=True, responses=documented(410),
                             status_code=410, response_model=None, name=_id)
        router.add_api_route(_path, _handler, methods=METHODS[1:], include_in_schema=False, status_code=410,
                             response_model=None, name=f"{_id}_other")
router.add_api_route("/ws", _gone("/ws", {"GET": WS_SUCCESSOR}), methods=["GET"], deprecated=True,
                     responses=documented(410), status_code=410, response_model=None, name="legacy_ws")


@router.websocket("/ws")
async def legacy_ws(websocket: WebSocket) -> None:
    """A WebSocket handshake on /ws is refused with 410 naming its successor, ``/stream/signals``."""
    await websocket.send_denial_response(_response("/ws", WS_SUCCESSOR))
