"""Connection URLs and the SEC User-Agent reach resources as dg.EnvVar when they come from the
environment: the UI (and the run config) show the variable's name, never its value."""

from __future__ import annotations

import dagster as dg

from omniwatch.resources import build_resources
from omniwatch.settings import Settings


def test_urls_from_the_environment_are_env_vars_and_defaults_stay_plain(monkeypatch, tmp_path):
    url = "postgresql+psycopg://omniwatch:hunter2@db.internal:5432/omniwatch"
    monkeypatch.setenv("OMNIWATCH_DATABASE_URL", url)
    monkeypatch.setenv("OMNIWATCH_MLFLOW_TRACKING_URI", "http://mlflow:secret@mlflow.internal:5000")
    resources = build_resources(Settings(home=tmp_path))
    for key in ("warehouse", "modelops", "serving_tasks"):
        assert resources[key].database_url == dg.EnvVar("OMNIWATCH_DATABASE_URL"), key
    for key in ("mlflow", "modelops", "serving_tasks"):
        assert resources[key].tracking_uri == dg.EnvVar("OMNIWATCH_MLFLOW_TRACKING_URI"), key
    assert "hunter2" not in repr(resources["warehouse"])
    # Dagster resolves the variable when the resource is used.
    assert resources["warehouse"].process_config_and_initialize().database_url == url

    monkeypatch.delenv("OMNIWATCH_DATABASE_URL")
    monkeypatch.delenv("OMNIWATCH_MLFLOW_TRACKING_URI")
    plain = build_resources(Settings(home=tmp_path))
    assert plain["warehouse"].database_url.startswith("sqlite:///")
