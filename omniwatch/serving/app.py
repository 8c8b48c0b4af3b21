"""The FastAPI app factory of the serving API (``/api/v2``, OpenAPI at ``/docs``).

``create_app()`` reads every setting from the environment (``omniwatch.settings.Settings`` plus
``ServingSettings``); tests pass their own. Start-up imports no model library: mlflow, torch and
lightgbm load on the first request that needs a model. Run it with
``python -m omniwatch.serving.app`` (uvicorn, one worker, ``OMNIWATCH_API_HOST``/``_PORT``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Security
from fastapi_offline import FastAPIOffline

from omniwatch.serving import health, legacy, metrics, streams
from omniwatch.serving.alerts import router as alerts
from omniwatch.serving.auth import require_api_key
from omniwatch.serving.backtest import router as backtest
from omniwatch.serving.data_quality import router as data_quality
from omniwatch.serving.deps import build_services
from omniwatch.serving.errors import install_handlers
from omniwatch.serving.events import router as events
from omniwatch.serving.execution import router as execution
from omniwatch.serving.models import router as models
from omniwatch.serving.portfolio import router as portfolio
from omniwatch.serving.predict import router as predict
from omniwatch.serving.risk import router as risk
from omniwatch.serving.settings import ServingSettings
from omniwatch.serving.signals import router as signals
from omniwatch.serving.tasks import router as tasks
from omniwatch.settings import Settings, get_settings

DESCRIPTION = """Predictions, explanations, signals, portfolio decisions, backtests, data quality,
events and model operations of Omniwatch.

**API keys.** Every mutating route (the lock icon) needs an `X-API-Key` header. The server reads its keys
from `OMNIWATCH_API_KEYS`, comma-separated, each `name:secret` (the name is the actor the audit log
records) or a bare `secret` (named `key-` plus a fingerprint), e.g.
`OMNIWATCH_API_KEYS=alice:s3cret,ci:0th3r python -m omniwatch.serving.app`. A client that cannot set a header
may send the secret as `Authorization: Bearer <secret>` (Alertmanager's webhook does). With no key configured every
mutation answers 401. Reads are open unless `OMNIWATCH_API_OPEN_READS=false`, which keys them too. In this
page, press **Authorize** and paste the secret; with curl: `curl -H 'X-API-Key: s3cret' ...`.

**Errors** share one shape, `{code, detail, errors?, context?}`: `code` is typed, `errors` names each
invalid field (`body.target`, `query.limit`) and its reason. Each route lists, per status, the codes it
can answer, with an example of each."""


def create_app(settings: Settings | None = None, serving: ServingSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    serving = serving or ServingSettings()
    services = build_services(settings, serving)
    services.named_keys  # noqa: B018 - a malformed or reserved key name fails at start-up, not per request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.tasks.recover()
        async with streams.serving_streams(app):  # the tailers of /stream/*: stopped before the writer
            yield
        services.close()  # write what is queued before the process ends

    # /docs and /redoc from the Swagger UI and ReDoc assets bundled in fastapi-offline: they work
    # without internet (FastAPI's defaults load them from a CDN and show a blank page offline).
    app: FastAPI = FastAPIOffline(title="Omniwatch API", version="2.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    install_handlers(app)
    reads = [] if serving.api_open_reads else [Security(require_api_key)]
    for area in (predict, signals, portfolio, backtest, tasks, data_quality, events, models, risk, execution, alerts):
        app.include_router(area.router, prefix="/api/v2", dependencies=reads)
    app.include_router(health.router, prefix="/api/v2")
    app.include_router(legacy.router)
    app.include_router(streams.router)
    metrics.install(app, services.database_url, services.execution.clock)
    return app


def main() -> None:
    import uvicorn

    serving = ServingSettings()
    # A graceful stop waits at most 10 s for open connections: a WebSocket client that stopped
    # reading would otherwise hold the process (its socket cannot be aborted through ASGI).
    uvicorn.run(create_app(serving=serving), host=serving.api_host, port=serving.api_port, workers=1,
                log_level="info", timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
