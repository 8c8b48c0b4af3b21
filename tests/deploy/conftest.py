"""Fixtures of the deployment tests: the compose file as docker-compose resolves it, the env it needs.

The tools are required, never skipped: docker-compose (Debian's 1.29), promtool, amtool (see .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
# The secrets docker-compose.yml requires (${VAR:?...}); test values only.
SECRETS = {"POSTGRES_PASSWORD": "pg-test-secret", "GRAFANA_ADMIN_PASSWORD": "grafana-test-secret",
           "OMNIWATCH_API_KEYS": "alertmanager:am-test-key,ops:ops-test-key"}


def tool(name: str) -> str:
    """The path of a command-line tool the deployment checks need; a missing one fails the test."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed (Debian: docker-compose, prometheus, prometheus-alertmanager)"
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without deployment settings, plus ``extra``: what a user's shell holds."""
    drop = ("OMNIWATCH_", "POSTGRES_", "GRAFANA_", "DAGSTER_", "COMPOSE_", "LIQUID_SYMBOLS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("docker-compose"), "-f", str(COMPOSE_FILE), *args], capture_output=True, text=True,
                          env=env if env is not None else clean_env(**SECRETS), timeout=60)


@pytest.fixture(scope="session")
def compose_config() -> dict:
    """docker-compose.yml as docker-compose resolves it (anchors merged, variables substituted)."""
    done = compose("config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="session")
def instance_config() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
