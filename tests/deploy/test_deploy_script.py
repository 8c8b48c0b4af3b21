"""scripts/deploy.sh: its syntax, and `--check` (settings and configuration only, no Docker engine)."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.conftest import ROOT, SECRETS, clean_env, tool

SCRIPT = ROOT / "scripts" / "deploy.sh"
LIVE = {**SECRETS, "OMNIWATCH_SEC_USER_AGENT": "Omniwatch tests ops@example.com"}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    for name in ("docker-compose", "promtool", "amtool"):
        tool(name)
    # A missing env file: settings come from the environment alone.
    return subprocess.run([tool("bash"), str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env=clean_env(OMNIWATCH_ENV_FILE=str(ROOT / "deploy" / "no-such.env"), **env))


def test_script_syntax():
    done = subprocess.run([tool("bash"), "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("profile", [[], ["--gpu"]])
def test_check_validates_compose_and_monitoring_configs(profile):
    done = run("--check", *profile, **LIVE)
    assert done.returncode == 0, done.stdout + done.stderr
    name = "gpu" if profile else "cpu"
    assert f"compose file: valid (profile {name})" in done.stdout
    assert "prometheus.yml is valid" in done.stdout + done.stderr


def test_check_names_every_missing_setting():
    done = run("--check")
    assert done.returncode == 1
    for name in [*SECRETS, "OMNIWATCH_SEC_USER_AGENT"]:
        assert name in done.stderr
    # Replay needs no SEC User-Agent.
    done = run("--check", OMNIWATCH_SOURCE="replay", **SECRETS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_refuses_a_password_that_breaks_database_urls():
    done = run("--check", **{**LIVE, "POSTGRES_PASSWORD": "p@ss/word"})
    assert done.returncode == 1 and "POSTGRES_PASSWORD may hold only" in done.stderr


def test_unknown_option_is_refused():
    done = run("--bogus", **LIVE)
    assert done.returncode == 1 and "unknown option: --bogus" in done.stderr


def test_check_needs_the_alertmanager_key():
    done = run("--check", **{**LIVE, "OMNIWATCH_API_KEYS": "ops:ops-test-key"})
    assert done.returncode == 1 and "alertmanager:<secret>" in done.stderr
