"""``/api/v2/alerts``: Alertmanager's webhook receiver and the alerts it delivered.

``POST alerts/notify`` takes Alertmanager's webhook payload (version 4) and stores each alert
(``alert_notifications``) under the API key's name; it is keyed like every mutation. Alertmanager
0.25 cannot send an ``X-API-Key`` header, so its ``http_config.authorization`` sends the same
secret as ``Authorization: Bearer <secret>``, which every keyed route accepts
(``omniwatch.serving.auth``). ``GET alerts`` lists what was received, newest first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security

from omniwatch.serving.alerts.schemas import AlertsResponse, AlertStatus, NotifyResponse, WebhookPayload
from omniwatch.serving.alerts.service import AlertStore
from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented

router = APIRouter(prefix="/alerts", tags=["alerts"])
Actor = Annotated[str, Security(require_api_key)]
READ = documented(401)


def store(services: Services = Depends(get_services)) -> AlertStore:
    return AlertStore(services.database_url)


@router.post("/notify", response_model=NotifyResponse, responses=READ)
def notify(body: WebhookPayload, actor: Actor, alerts: AlertStore = Depends(store)) -> NotifyResponse:
    """Alertmanager's webhook (``webhook_configs[].url``): each alert is stored once per
    fingerprint, start and status; Alertmanager's repeats count as ``duplicates``."""
    return alerts.notify(body, actor)


@router.get("", response_model=AlertsResponse, responses=READ)
def list_alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                status: Annotated[AlertStatus | None, Query()] = None,
                alertname: Annotated[str | None, Query(max_length=128)] = None,
                severity: Annotated[str | None, Query(max_length=16)] = None,
                alerts: AlertStore = Depends(store)) -> AlertsResponse:
    """The alerts Alertmanager delivered (one row per alert state), newest first."""
    return AlertsResponse(alerts=alerts.list(status, alertname, severity, limit))
