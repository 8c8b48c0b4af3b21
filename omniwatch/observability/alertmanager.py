"""Renders ``deploy/monitoring/alertmanager.yml``: severity routing to the API's webhook.

Alertmanager does not expand environment variables in its configuration, so the intervals are
made configurable here: the committed file is ``render(AlertmanagerSettings())`` (a test keeps the
two equal), and an operator renders another one::

    python -m omniwatch.observability.alertmanager --p1-repeat 10m --p2-repeat 1h > alertmanager.yml

Every option also reads ``OMNIWATCH_ALERT_<NAME>`` (``OMNIWATCH_ALERT_P1_REPEAT=10m``). The key
travels as ``Authorization: Bearer`` from ``credentials_file`` (Alertmanager 0.25 has no custom
headers), which ``omniwatch.serving.auth`` accepts like ``X-API-Key``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Annotated, Any

import yaml
from pydantic import Field, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

# Alertmanager's duration syntax (Prometheus model.Duration): 30s, 5m, 1h30m, 100ms.
Duration = Annotated[str, StringConstraints(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]

HEADER = """\
# Alertmanager for the Omniwatch API's alerts (deploy/monitoring/alerts.yml). RENDERED by
# `python -m omniwatch.observability.alertmanager` (omniwatch/observability/alertmanager.py):
# change the options there, not this file, e.g.
#   python -m omniwatch.observability.alertmanager --p1-repeat 10m --p2-repeat 1h \\
#       --webhook-url http://api:8000/api/v2/alerts/notify > deploy/monitoring/alertmanager.yml
# (each option also reads OMNIWATCH_ALERT_<OPTION>, e.g. OMNIWATCH_ALERT_P1_REPEAT=10m), then
# `amtool check-config deploy/monitoring/alertmanager.yml`.
#
# P1 (page) repeats every {p1_repeat} while it fires, P2 (ticket) every {p2_repeat}. Both go to the
# API's POST /api/v2/alerts/notify, which stores each alert (alert_notifications) under the API
# key's name. The key is sent as `Authorization: Bearer <secret>` from credentials_file: mount a
# file holding one secret of OMNIWATCH_API_KEYS there (e.g. of a key `alertmanager:<secret>`).
"""


class AlertmanagerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_ALERT_", extra="ignore")

    p1_repeat: Duration = Field(default="5m", description="Re-send a firing P1 group this often.")
    p2_repeat: Duration = Field(default="15m", description="Re-send a firing P2 group this often.")
    p1_group_wait: Duration = Field(default="10s", description="Wait before the first P1 notification of a group.")
    p2_group_wait: Duration = Field(default="30s", description="Wait before the first P2 notification of a group.")
    p1_group_interval: Duration = Field(default="1m", description="Wait before notifying a P1 group's new alerts.")
    p2_group_interval: Duration = Field(default="5m", description="Wait before notifying a P2 group's new alerts.")
    webhook_url: str = Field(default="http://api:8000/api/v2/alerts/notify", pattern=r"^https?://\S+$")
    credentials_file: str = Field(default="/etc/alertmanager/secrets/omniwatch_api_key", min_length=1)
    resolve_timeout: Duration = "5m"


def config(s: AlertmanagerSettings) -> dict[str, Any]:
    """The Alertmanager configuration as a dict (what ``render`` writes as YAML)."""
    def receiver(name: str) -> dict[str, Any]:
        return {"name": name, "webhook_configs": [{
            "url": s.webhook_url, "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": s.credentials_file}}}]}

    def route(severity: str, receiver_name: str, wait: str, interval: str, repeat: str) -> dict[str, Any]:
        return {"receiver": receiver_name, "matchers": [f'severity="{severity}"'], "group_wait": wait,
                "group_interval": interval, "repeat_interval": repeat}

    return {
        "global": {"resolve_timeout": s.resolve_timeout},
        "route": {
            "receiver": "omniwatch-p2", "group_by": ["alertname", "severity", "route"],
            "group_wait": s.p2_group_wait, "group_interval": s.p2_group_interval, "repeat_interval": s.p2_repeat,
            "routes": [route("P1", "omniwatch-p1", s.p1_group_wait, s.p1_group_interval, s.p1_repeat),
                       route("P2", "omniwatch-p2", s.p2_group_wait, s.p2_group_interval, s.p2_repeat)]},
        # A page covers the ticket of the same objective and route (a fast and a slow burn at once).
        "inhibit_rules": [{"source_matchers": ['severity="P1"'], "target_matchers": ['severity="P2"'],
                           "equal": ["slo", "route"]}],
        "receivers": [receiver("omniwatch-p1"), receiver("omniwatch-p2")],
    }


def render(s: AlertmanagerSettings) -> str:
    return HEADER.format(p1_repeat=s.p1_repeat, p2_repeat=s.p2_repeat) + yaml.safe_dump(
        config(s), sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print deploy/monitoring/alertmanager.yml for these options.")
    for name, field in AlertmanagerSettings.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=field.description)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    sys.stdout.write(render(AlertmanagerSettings(**given)))


if __name__ == "__main__":
    main()
