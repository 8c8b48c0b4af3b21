"""Alertmanager's webhook payload (version 4) and the stored alerts.

The payload is written by Alertmanager, not by a person, so unknown fields are ignored rather
than refused (a newer Alertmanager adding a field must not make every notification fail and be
retried forever); every field Omniwatch reads is validated. A firing alert has no end yet:
Alertmanager sends Go's zero time (``0001-01-01T00:00:00Z``), stored as null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from omniwatch.serving.schemas import Strict

AlertStatus = Literal["firing", "resolved"]
Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$"), Field(examples=["3f2a1c9b8d7e6f50"])]
LabelMap = Annotated[dict[Annotated[str, StringConstraints(max_length=256)],
                          Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Name = Annotated[str, StringConstraints(max_length=128)]


def _utc_or_none(value: datetime) -> datetime | None:
    """UTC, or None for Go's zero time (the year 1: an alert with no end yet)."""
    if value.year <= 1:
        return None
    if not 2000 <= value.astimezone(UTC).year <= 2100:
        raise ValueError("timestamp must lie in the years 2000-2100 (or be 0001-01-01 for 'no end')")
    return value.astimezone(UTC)


def _required_utc(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError("startsAt must be a real time")
    return value


GoTime = Annotated[datetime, AfterValidator(_utc_or_none)]
StartTime = Annotated[GoTime, AfterValidator(_required_utc), Field(examples=["2026-12-07T09:00:00Z"])]

FIRING: dict[str, Any] = {
    "status": "firing", "labels": {"alertname": "SignalLatencyP99Degraded", "severity": "P2",
                                   "route": "signals/generate", "service": "omniwatch-api"},
    "annotations": {"summary": "signal p99 above 300 ms for 10 minutes",
                    "runbook": "README.md#slos-and-alerts"},
    "startsAt": "2026-12-07T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph?g0.expr=omniwatch%3Asignal_latency_seconds%3Ap99_5m",
    "fingerprint": "3f2a1c9b8d7e6f50"}
EXAMPLE: dict[str, Any] = {
    "version": "4", "groupKey": "{}/{severity=\"P2\"}:{alertname=\"SignalLatencyP99Degraded\"}",
    "truncatedAlerts": 0, "status": "firing", "receiver": "omniwatch-p2",
    "groupLabels": {"alertname": "SignalLatencyP99Degraded"}, "commonLabels": FIRING["labels"],
    "commonAnnotations": FIRING["annotations"], "externalURL": "http://alertmanager:9093", "alerts": [FIRING]}


class WebhookAlert(Strict):
    model_config = ConfigDict(extra="ignore")

    status: AlertStatus
    labels: LabelMap = Field(description="Must name the alert (`alertname`); `severity` and `route` are stored "
                                         "in their own columns.")
    annotations: LabelMap = Field(default_factory=dict)
    startsAt: StartTime
    endsAt: GoTime | None = None
    generatorURL: Text = ""
    fingerprint: Fingerprint

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.labels.get("alertname"):
            raise ValueError("labels.alertname is required (every Prometheus alert carries it)")
        return self


class WebhookPayload(Strict):
    """What Alertmanager's ``webhook_configs`` posts (version 4)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE]})

    version: Literal["4"]
    groupKey: Text
    truncatedAlerts: int = Field(default=0, ge=0)
    status: AlertStatus
    receiver: Name
    groupLabels: LabelMap = Field(default_factory=dict)
    commonLabels: LabelMap = Field(default_factory=dict)
    commonAnnotations: LabelMap = Field(default_factory=dict)
    externalURL: Text = ""
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=1000)


class StoredAlert(BaseModel):
    id: int
    fingerprint: str
    status: AlertStatus
    alertname: str
    severity: str | None
    route: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str | None
    receiver: str
    group_key: str
    received_by: str = Field(description="The API key's name Alertmanager posted with.")
    received_at: datetime


class NotifyResponse(BaseModel):
    received: int = Field(description="Alerts in the payload.")
    stored: int = Field(description="Alerts stored now (new fingerprint, start and status).")
    duplicates: int = Field(description="Alerts already stored (Alertmanager's repeats).")
    alerts: list[StoredAlert]


class AlertsResponse(BaseModel):
    alerts: list[StoredAlert] = Field(description="Newest first.")
