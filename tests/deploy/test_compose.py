"""deploy/docker-compose.yml and deploy/dagster.yaml: valid, and shaped so the deployment runs.

docker-compose (v1.29) validates and resolves the file; the assertions read what it resolved.
The run containers' kwargs go through docker-py's own argument conversion, and the settings the
daemon passes to them through Omniwatch's ``Settings``: no Docker engine is needed for either.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, SECRETS, clean_env, compose

OMNIWATCH_IMAGES = ("omniwatch_user_code", "omniwatch_user_code_cuda")
PROFILES = {"cpu": {"user_code", "api"}, "gpu": {"user_code_gpu", "api_gpu"}}


def host_port(port: str | dict) -> tuple[str, int]:
    """(host address, host port) of a published port: compose v1 prints "ip:host:container/proto", v2 a mapping."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["published"])
    ip, published, _ = port.rsplit("/", 1)[0].rsplit(":", 2)
    return ip, int(published)


def services_of(config: dict, profile: str) -> dict[str, dict]:
    """The services `--profile <profile>` starts: those without profiles and those of the profile."""
    return {name: svc for name, svc in config["services"].items() if profile in svc.get("profiles", [profile])}


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_compose_file_validates(profile):
    done = compose("--profile", profile, "config", "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_a_missing_secret(secret):
    env = clean_env(**{k: v for k, v in SECRETS.items() if k != secret})
    done = compose("config", "-q", env=env)
    assert done.returncode != 0
    assert secret in done.stderr


def test_every_service_restarts_checks_health_and_is_limited(compose_config):
    for name, svc in compose_config["services"].items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no CPU/memory limit"
        if name == "migrate":  # one shot: restarted only on failure, waited on by completion
            assert svc["restart"] == "on-failure"
            continue
        assert svc["restart"] == "unless-stopped", name
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_omniwatch_services_wait_for_the_migration(compose_config):
    services = compose_config["services"]
    assert services["migrate"]["entrypoint"][-1] == "omniwatch db upgrade && dagster instance migrate"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    waiting = [n for n, s in services.items() if s["image"] in OMNIWATCH_IMAGES and n != "migrate"]
    assert {"user_code", "user_code_gpu", "webserver", "daemon", "mlflow", "api", "api_gpu"} <= set(waiting)
    for name in waiting:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_profiles_are_exclusive_and_host_ports_do_not_clash(compose_config, profile):
    services = services_of(compose_config, profile)
    other = "gpu" if profile == "cpu" else "cpu"
    assert PROFILES[profile] <= set(services) and not PROFILES[other] & set(services)
    published = [(*host_port(p), name) for name, s in services.items() for p in s.get("ports", [])]
    assert all(ip == "127.0.0.1" for ip, _, _ in published), published
    ports = [port for _, port, _ in published]
    assert len(ports) == len(set(ports)), published
    by_service = {name: port for _, port, name in published}
    assert by_service["webserver"] == 3000 and by_service["grafana"] != 3000
    # workspace.yaml's host and Prometheus' target resolve in both profiles (service name or alias).
    names = set(services) | {a for s in services.values()
                             for a in (s["networks"]["omniwatch"] or {}).get("aliases", [])}
    assert {"user_code", "api", "postgres", "mlflow", "redis", "alertmanager", "prometheus"} <= names
    host = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]["host"]
    assert host in names


def test_gpu_profile_places_training_runs_on_gpu_1_and_the_api_on_gpu_0(compose_config, instance_config):
    from dagster_docker.container_context import DockerContainerContext
    from docker.models.containers import _create_container_args

    services = compose_config["services"]
    devices = services["api_gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert services["api_gpu"]["environment"]["OMNIWATCH_SERVING_DEVICE"] == "cuda:0"
    assert services["api"]["environment"]["OMNIWATCH_SERVING_DEVICE"] == "cpu"

    command = services["user_code_gpu"]["command"]
    assert command[command.index("--container-image") + 1] == services["user_code_gpu"]["image"]
    location_context = json.loads(command[command.index("--container-context") + 1])
    # dagster-docker parses the code location's context as it does for every run it launches ...
    launcher = instance_config["run_launcher"]["config"]
    merged = DockerContainerContext(
        env_vars=launcher["env_vars"], networks=[launcher["network"]], container_kwargs=launcher["container_kwargs"],
    ).merge(DockerContainerContext.create_from_config(location_context))
    env = dict(var.split("=", 1) for var in merged.env_vars if "=" in var)
    assert env["OMNIWATCH_TRAINING_DEVICE"] == "cuda:0"  # host GPU 1 is the run container's only GPU
    # ... and docker-py turns the kwargs into the container's host config (DockerRunLauncher's call).
    created = _create_container_args({**merged.container_kwargs, "image": "omniwatch_user_code_cuda",
                                      "command": ["dagster"], "network": "omniwatch", "version": "1.44"})
    host_config = created["host_config"]
    assert [dict(r) for r in host_config["DeviceRequests"]] == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]], "Options": {}}]
    assert host_config["Binds"] == ["omniwatch_home:/var/lib/omniwatch:rw"]
    assert host_config["AutoRemove"] is True


def test_run_containers_share_the_omniwatch_home_volume(compose_config, instance_config):
    kwargs = instance_config["run_launcher"]["config"]["container_kwargs"]
    (volume, mount), = kwargs["volumes"].items()
    assert compose_config["volumes"]["omniwatch_home"]["name"] == volume  # no project prefix
    home = mount["bind"]
    for name, svc in compose_config["services"].items():
        if svc["image"] in OMNIWATCH_IMAGES and name != "mlflow":
            assert svc["environment"]["OMNIWATCH_HOME"] == home, name
            assert f"{volume}:{home}:rw" in svc["volumes"], name
    # Compute logs and local artifacts (the IO manager's files) live on the shared volume too.
    assert instance_config["compute_logs"]["config"]["base_dir"].startswith(home + "/")
    assert instance_config["local_artifact_storage"]["config"]["base_dir"].startswith(home + "/")
    assert instance_config["run_launcher"]["config"]["network"] == compose_config["networks"]["omniwatch"]["name"]


def test_daemon_passes_every_run_setting_and_sets_each_one(compose_config, instance_config):
    """DockerRunLauncher reads each env_vars name from the daemon's environment (an unset one fails
    every launch); each deployment setting the code location has must reach the run containers."""
    env_vars = instance_config["run_launcher"]["config"]["env_vars"]
    daemon_env = compose_config["services"]["daemon"]["environment"]
    location_env = compose_config["services"]["user_code"]["environment"]
    assert set(env_vars) <= set(daemon_env)
    settings = {k for k in location_env if k.startswith(("OMNIWATCH_", "DAGSTER_PG_", "LIQUID_SYMBOLS"))}
    assert settings == set(env_vars)
    assert {"OMNIWATCH_SEC_USER_AGENT", "OMNIWATCH_SEC_CIKS", "OMNIWATCH_HOME", "OMNIWATCH_MLFLOW_TRACKING_URI",
            "OMNIWATCH_REDIS_URL"} <= set(env_vars)


@pytest.mark.parametrize("service", ["daemon", "api", "api_gpu"])
def test_the_containers_settings_parse(compose_config, instance_config, monkeypatch, service):
    """The values compose gives (empty optional ones included) are valid Omniwatch settings: a run
    container (the daemon's env_vars) and the API start with them."""
    from omniwatch.serving.settings import ServingSettings
    from omniwatch.settings import Settings

    env = compose_config["services"][service]["environment"]
    if service == "daemon":
        env = {name: env[name] for name in instance_config["run_launcher"]["config"]["env_vars"]}
    for name in [k for k in os.environ if k.startswith("OMNIWATCH_") or k == "LIQUID_SYMBOLS"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    url = settings.warehouse_url
    assert url.startswith("postgresql+psycopg://") and url.endswith("@postgres:5432/omniwatch")
    assert settings.mlflow_uri == "http://mlflow:5000"
    assert str(settings.home) == "/var/lib/omniwatch" and settings.source == "live"
    assert settings.sec_ciks == [] and settings.liquid_symbols == ["BTC", "ETH", "SOL"]
    if service != "daemon":
        serving = ServingSettings()
        assert serving.api_host == "0.0.0.0" and serving.api_port == 8000
        assert ",".join(k.get_secret_value() for k in serving.api_keys) == SECRETS["OMNIWATCH_API_KEYS"]
        assert serving.dagster_webserver_url == "http://webserver:3000"


def test_mlflow_serves_artifacts_from_postgres_and_accepts_the_other_containers(compose_config):
    args = compose_config["services"]["mlflow"]["entrypoint"]
    assert "--serve-artifacts" in args and "--artifacts-destination=/mlartifacts" in args
    backend = next(a for a in args if a.startswith("--backend-store-uri="))
    assert backend.endswith("@postgres:5432/mlflow")
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert "mlflow:5000" in hosts  # the Host header of every other container's requests
    assert "mlartifacts:/mlartifacts:rw" in compose_config["services"]["mlflow"]["volumes"]


def test_omniwatch_images_are_built_not_pulled(compose_config):
    dockerfiles = {"omniwatch_user_code": "deploy/Dockerfile", "omniwatch_user_code_cuda": "deploy/Dockerfile.cuda"}
    for name, svc in compose_config["services"].items():
        if svc["image"] in dockerfiles:
            assert svc["build"]["dockerfile"] == dockerfiles[svc["image"]], name
            assert (DEPLOY.parent / svc["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_images_hold_the_instance_config_the_services_name(compose_config, dockerfile):
    """DAGSTER_HOME holds dagster.yaml and workspace.yaml where the entrypoints look; the context's
    ignore file lets through every path the Dockerfile copies; torch is the CPU or CUDA build."""
    text = (DEPLOY / dockerfile).read_text()
    home = next(line.split("=", 1)[1].split()[0] for line in text.splitlines() if "DAGSTER_HOME=" in line)
    assert f"COPY deploy/dagster.yaml deploy/workspace.yaml {home}/" in text
    assert compose_config["services"]["webserver"]["entrypoint"][-1] == f"{home}/workspace.yaml"
    assert compose_config["services"]["daemon"]["entrypoint"][-1] == f"{home}/workspace.yaml"
    allowed = {line[1:] for line in (DEPLOY / f"{dockerfile}.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    copied = {src for line in text.splitlines() if line.startswith("COPY") for src in line.split()[1:-1]}
    assert copied <= allowed
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu" in text
    assert cpu_index == (dockerfile == "Dockerfile")
    assert "torch==2.13.0" in text


def test_slo_settings_point_at_the_deployments_prometheus(compose_config, monkeypatch):
    from omniwatch.observability.settings import SloSettings

    env = compose_config["services"]["daemon"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = SloSettings()
    assert settings.prometheus_url == "http://prometheus:9090" and settings.slo_window == "1h"
