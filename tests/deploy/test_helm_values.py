"""deploy/helm/values.yaml against the Dagster chart's own values.schema.json (vendored; Helm is not
installed here), and against the compose deployment it must match.

Helm validates the chart's defaults merged with these values, and the defaults supply every required
key: the whole file is validated with ``required`` relaxed, the blocks it sets in full strictly. The
schema's references into kubernetesjsonschema.dev resolve to permissive schemas offline (draft 7, as
Helm: a ``$ref`` replaces its siblings), so Kubernetes sub-objects are not checked.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.deploy.conftest import DEPLOY

HELM = DEPLOY / "helm"
SCHEMA = json.loads((HELM / "dagster-values.schema.json").read_text())
VALUES = yaml.safe_load((HELM / "values.yaml").read_text())
K8S_REF = re.compile(r"^(https://kubernetesjsonschema\.dev/[^#]+)#/(.+)$")


def remote_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("https://"):
            yield ref
        for value in node.values():
            yield from remote_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from remote_refs(value)


def offline_registry() -> Registry:
    """Each kubernetesjsonschema.dev document the schema points into, holding ``{}`` at each pointer."""
    documents: dict[str, dict] = {}
    for ref in remote_refs(SCHEMA):
        match = K8S_REF.match(ref)
        assert match, ref
        node = documents.setdefault(match[1], {})
        *parents, leaf = match[2].split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, {})
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT7)) for uri, doc in documents.items())


def validator(schema: dict, strict: bool) -> jsonschema.Draft7Validator:
    cls = jsonschema.Draft7Validator
    if not strict:
        cls = jsonschema.validators.extend(cls, {"required": lambda *args: iter(())})
    return cls(schema, registry=offline_registry())


def errors(values: dict, schema: dict = SCHEMA, strict: bool = False) -> list[str]:
    found = validator(schema, strict).iter_errors(values)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def definition(name: str) -> dict:
    return {"$ref": f"#/definitions/{name}", "definitions": SCHEMA["definitions"]}


def test_schema_is_the_charts():
    assert SCHEMA["title"] == "DagsterHelmValues" and SCHEMA["description"] == "@generated"
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_values_validate_against_the_chart_schema():
    assert errors(VALUES) == []


@pytest.mark.parametrize(("path", "name"), [
    (("runLauncher",), "RunLauncher"),
    (("dagsterDaemon", "runCoordinator"), "RunCoordinator"),
    (("computeLogManager",), "ComputeLogManager"),
    (("dagster-user-deployments", "deployments", 0), "UserDeployment"),
])
def test_blocks_set_in_full_validate_strictly(path, name):
    block = VALUES
    for key in path:
        block = block[key]
    assert errors(block, definition(name), strict=True) == []


@pytest.mark.parametrize("mutate", [
    lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(envVarz=[]),  # a misspelt key
    lambda v: v["runLauncher"].update(type="DockerRunLauncher"),  # not a chart launcher
    lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].update(maxConcurrentRuns="4x"),
    lambda v: v["dagster-user-deployments"]["deployments"][0].update(port="3030"),
])
def test_the_schema_catches_a_broken_value(mutate):
    broken = copy.deepcopy(VALUES)
    mutate(broken)
    assert errors(broken)


def test_values_match_the_compose_deployment(instance_config, compose_config):
    queue = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance_config["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert VALUES["additionalInstanceConfig"]["concurrency"]["pools"] == instance_config["concurrency"]["pools"]

    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    command = compose_config["services"]["user_code"]["command"]
    assert deployment["codeServerArgs"] == ["-m", command[command.index("-m") + 1]]
    home = compose_config["services"]["user_code"]["environment"]["OMNIWATCH_HOME"]
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    for mounts in (deployment["volumeMounts"], launcher["volumeMounts"]):
        assert [m["mountPath"] for m in mounts] == [home]

    # Every Omniwatch setting the Docker runs get reaches the run pods: the ConfigMap or the Secret.
    settings = {}
    for line in (HELM / "omniwatch-settings.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            settings[name] = value
    secrets = {"OMNIWATCH_DATABASE_URL", "OMNIWATCH_SEC_USER_AGENT", "OMNIWATCH_CRYPTOPANIC_TOKEN"}
    needed = {n for n in instance_config["run_launcher"]["config"]["env_vars"] if not n.startswith("DAGSTER_PG_")}
    assert set(settings) | secrets == needed and not set(settings) & secrets
    assert settings["OMNIWATCH_HOME"] == home
    assert launcher["envConfigMaps"] == deployment["envConfigMaps"] == [{"name": "omniwatch-settings"}]
    assert launcher["envSecrets"] == deployment["envSecrets"] == [{"name": "omniwatch-secrets"}]
