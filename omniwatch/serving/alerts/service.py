"""Alertmanager notifications stored in ``alert_notifications``, one row per alert state.

Alertmanager re-sends a firing group every ``repeat_interval`` (and after its own restarts), so
an alert already stored with the same fingerprint, start and status is counted as a duplicate
and left as first received: ``INSERT ... ON CONFLICT DO NOTHING`` on that natural key, so two
deliveries racing cannot both insert. A resolution is a new row (status ``resolved``, its end).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from omniwatch.serving.alerts.schemas import NotifyResponse, StoredAlert, WebhookAlert, WebhookPayload
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

KEY = ("fingerprint", "starts_at", "status")


def _row(alert: WebhookAlert, payload: WebhookPayload, actor: str) -> dict[str, Any]:
    return {"fingerprint": alert.fingerprint, "status": alert.status, "alertname": alert.labels["alertname"],
            "severity": alert.labels.get("severity"), "route": alert.labels.get("route"),
            "labels": dict(alert.labels), "annotations": dict(alert.annotations), "starts_at": alert.startsAt,
            "ends_at": alert.endsAt, "generator_url": alert.generatorURL or None, "receiver": payload.receiver,
            "group_key": payload.groupKey, "received_by": actor}


class AlertStore:
    def __init__(self, url: str):
        self.url = url

    def notify(self, payload: WebhookPayload, actor: str) -> NotifyResponse:
        t = tables.alert_notifications
        # One row per natural key (an alert listed twice in one payload is one alert).
        rows = {tuple(r[k] for k in KEY): r for r in (_row(a, payload, actor) for a in payload.alerts)}
        same_fingerprint = select(t).where(t.c.fingerprint.in_({k[0] for k in rows})).order_by(t.c.id)
        with get_engine(self.url).begin() as conn:
            known = {tuple(r[k] for k in KEY) for r in conn.execute(same_fingerprint).mappings()}
            upsert_rows(conn, t, list(rows.values()), KEY, update=[])
            stored = [dict(r) for r in conn.execute(same_fingerprint).mappings()]
        alerts = [StoredAlert.model_validate(r) for r in stored if tuple(r[k] for k in KEY) in rows]
        new = len(rows.keys() - known)
        return NotifyResponse(received=len(payload.alerts), stored=new, duplicates=len(payload.alerts) - new,
                              alerts=alerts)

    def list(self, status: str | None, alertname: str | None, severity: str | None, limit: int) -> list[StoredAlert]:
        t = tables.alert_notifications
        query = select(t).order_by(t.c.received_at.desc(), t.c.id.desc()).limit(limit)
        for column, value in (("status", status), ("alertname", alertname), ("severity", severity)):
            if value is not None:
                query = query.where(t.c[column] == value)
        with get_engine(self.url).connect() as conn:
            return [StoredAlert.model_validate(dict(r)) for r in conn.execute(query).mappings()]
