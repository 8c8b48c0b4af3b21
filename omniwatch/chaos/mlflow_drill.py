"""mlflow_interrupt: the MLflow tracking server dies in the middle of a model registration.

A local ``mlflow server`` (SQLite backend and artifact store in the drill's state folder) takes a
tiny logged model. The project's ``record_registration`` then registers it, and the server is
killed (SIGKILL of its process group; or, with ``mlflow_cut="proxy"``, the TCP proxy the client
talks through is cut) right after it stored the new version, before the aliases moved: the step
must fail loudly, and while the server is down a registry read must raise, never answer "no
champion". The server restarts on the same store and port (or the proxy is restored), and the
registration is retried (as a Dagster step retry would): it must complete the version the first try created,
exactly one version with ``challenger`` and ``champion``; a second retry changes nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from omniwatch.chaos.infra import ChaosConfig, Postgres, Servers, free_port
from omniwatch.chaos.proxy import CuttableProxy
from omniwatch.chaos.report import DrillReport
from omniwatch.resources.mlflow import MLflowResource

SERVER = "mlflow"
MODEL_PREFIX = "omniwatch-chaos-drill"  # each drill registers its own model: a shared server stays clean


@contextmanager
def _client_fails_fast() -> Iterator[None]:
    """No client-side HTTP retries during the drill: MLflow's own backoff (7 retries by default)
    would ride over the restart, and the drill must see the outage itself."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def server_command(store: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("mlflow")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]
    return [*cmd, "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]


class _DiesAfterRegister:
    """The real resource, except that the server is killed right after it stored a version:
    the crash lands between creating the version and moving its aliases."""

    def __init__(self, inner: MLflowResource, kill: Callable[[], None]):
        self._inner, self._kill = inner, kill
        self.registered: list[str] = []

    def register(self, model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
        version = self._inner.register(model_uri, name, tags=tags)
        self.registered.append(version)
        self._kill()
        return version

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


def _log_tiny_model(mlflow: MLflowResource) -> tuple[str, str]:
    """A one-line pyfunc model logged to the server; returns (model_uri, run_id)."""
    from mlflow.pyfunc import PythonModel

    from mlflow import pyfunc

    class Echo(PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    with mlflow.run_context("chaos_tiny_model", tags={"omniwatch.chaos": "mlflow_interrupt"}) as run:
        info = pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
    return info.model_uri, run.info.run_id


def _state(mlflow: MLflowResource, url: str, model: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from omniwatch.warehouse import tables
    from omniwatch.warehouse.engine import get_engine

    versions = mlflow.client().search_model_versions(f"name='{model}'")
    with get_engine(url).connect() as conn:
        rows = {t.name: int(conn.execute(select(func.count()).select_from(t).where(t.c.model_name == model))
                            .scalar_one()) for t in (tables.model_registry, tables.model_promotions)}
    return {"mlflow model versions": len(versions), **rows}


def mlflow_interrupt(config: ChaosConfig, report: DrillReport) -> None:
    from mlflow.exceptions import MlflowException

    from omniwatch.registry import alias_history, record_registration, version_with_fingerprint
    from omniwatch.warehouse.migrate import upgrade

    if config.mlflow_cut not in ("kill", "proxy"):
        raise ValueError(f"mlflow_cut is 'kill' or 'proxy', not {config.mlflow_cut!r}")
    if config.mlflow_server and config.mlflow_cut != "proxy":
        raise ValueError("a server the drill did not start can only be cut through the proxy (mlflow_cut='proxy')")
    pg, servers = Postgres(config), Servers(config)
    store = config.folder(f"mlflow-{uuid.uuid4().hex[:8]}")
    upstream = urlsplit(config.mlflow_server or f"http://127.0.0.1:{free_port()}")
    server_host, server_port = upstream.hostname or "127.0.0.1", upstream.port or 80
    MODEL = f"{MODEL_PREFIX}-{store.name[-8:]}"  # noqa: N806 - the drill's constant model name
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def ready() -> bool:
        return httpx.get(f"http://{server_host}:{server_port}/health", timeout=2).status_code == 200

    proxy: CuttableProxy | None = None
    database = None
    try:
        with _client_fails_fast():
            with report.step("start mlflow server (SQLite store) and a drill warehouse") as step:
                database = pg.create()
                url = pg.url(database)
                upgrade(url)
                took = 0.0 if config.mlflow_server else servers.start(SERVER, server_command(store, server_port),
                                                                        env=env, ready=ready)
                if config.mlflow_cut == "proxy":
                    proxy = CuttableProxy(server_port, upstream_host=server_host)
                uri = f"http://127.0.0.1:{proxy.port if proxy else server_port}"
                step.detail = (f"{'a running server' if config.mlflow_server else f'server ready in {took:.1f} s'}; "
                               f"clients use {uri}"
                               f"{' (a cuttable proxy)' if proxy else ''}; warehouse {database}")
            mlflow = MLflowResource(tracking_uri=uri, artifact_root=str(store / "client-artifacts"),
                                    experiment_name="omniwatch-chaos")
            with report.step("log a tiny pyfunc model") as step:
                model_uri, run_id = _log_tiny_model(mlflow)
                step.detail = model_uri
            key = f"chaos:{run_id}"
            args: dict[str, Any] = dict(run_id=run_id, track="liquid", train_lineage_id="chaos", data_version="chaos",
                                        metrics={}, actor="chaos-drill", registration_key=key)

            killed_at: list[float] = []

            def kill() -> None:
                if proxy is not None:
                    proxy.cut()
                else:
                    servers.kill(SERVER, signal.SIGKILL)
                killed_at.append(time.monotonic())

            dying = _DiesAfterRegister(mlflow, kill)
            how = "cut off (proxy reset and closed)" if proxy else "killed (SIGKILL)"
            with report.step(f"register; the server is {how} after storing the version") as step:
                error: Exception | None = None
                try:
                    record_registration(cast(MLflowResource, dying), url, MODEL, model_uri, **args)
                except MlflowException as exc:
                    error = exc
                report.expect_in_step(step, bool(dying.registered), "the first try created a version before the kill")
                report.expect_in_step(step, error is not None, "the registration step fails loudly (MlflowException)")
                step.detail = (f"version {dying.registered[0] if dying.registered else '?'} stored, then: "
                               f"{type(error).__name__ if error else 'no error'}")
            with report.step("while down: registry reads raise, never 'no champion'") as step:
                raised = []
                for what, read in (("aliases", lambda: mlflow.aliases(MODEL)),
                                   ("version_with_fingerprint", lambda: version_with_fingerprint(mlflow, MODEL, "x"))):
                    try:
                        answer = read()
                        report.expect_in_step(step, False, f"{what} raises while the server is down", answer)
                    except MlflowException as exc:
                        raised.append(f"{what}: {exc.error_code}")
                time.sleep(max(0.0, config.hold_s - (time.monotonic() - killed_at[0])) if killed_at else 0.0)
                step.detail = "; ".join(raised) + f"; held down {config.hold_s:g} s"

            with report.step("restore the proxy" if proxy else "restart mlflow server on the same store") as step:
                if proxy is not None:
                    proxy.restore()
                else:
                    took = servers.start(SERVER, server_command(store, server_port), env=env, ready=ready)
                    step.detail = f"ready in {took:.1f} s"
            report.counts["after the crash"] = _state(mlflow, url, MODEL)
            outcomes = []
            for attempt in ("retry the registration", "retry it again (idempotent)"):
                with report.step(attempt) as step:
                    version, aliases = record_registration(mlflow, url, MODEL, model_uri, **args)
                    outcomes.append((version, sorted(aliases), mlflow.aliases(MODEL)))
                    step.detail = f"version {version}, aliases {mlflow.aliases(MODEL)}"
                report.counts[attempt.split(" (")[0]] = _state(mlflow, url, MODEL)
            first = dying.registered[0] if dying.registered else None
            for version, _aliases, held in outcomes:
                report.expect(version == first, "each retry completes the version the first try created",
                              f"{version} vs {first}")
                report.expect(held == {"challenger": first, "champion": first},
                              "that version is challenger and champion", held)
            final = report.counts["retry it again"]
            report.expect(final["mlflow model versions"] == 1, "exactly one version in MLflow",
                          final["mlflow model versions"])
            report.expect(final["model_registry"] == 1, "exactly one model_registry row", final["model_registry"])
            report.expect(final == report.counts["retry the registration"],
                          "the second retry wrote nothing (no new version, row or promotion)")
            report.facts["alias moves recorded"] = [f"{r['alias']} -> v{r['to_version']}"
                                                    for r in alias_history(url, MODEL)]
    finally:
        if proxy is not None:
            proxy.cut()
        if config.mlflow_server:
            _forget(config.mlflow_server, MODEL, report)
        servers.stop_all()
        if database is not None:
            pg.drop(database)
        shutil.rmtree(store, ignore_errors=True)


def _forget(server: str, model: str, report: DrillReport) -> None:
    """Delete the drill's model and runs from a server the drill did not start; a failure is a
    note of the report (what the drill proved stands), naming what was left behind."""
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    client = MlflowClient(server, server)
    try:
        runs = {v.run_id for v in client.search_model_versions(f"name='{model}'") if v.run_id}
        client.delete_registered_model(model)
        for run_id in runs:
            client.delete_run(run_id)
    except MlflowException as exc:
        report.notes.append(f"could not delete the drill's model {model} from {server}: {exc.error_code}")
