"""What a new user sees in the MLflow UI, against a real temporary SQLite store (and one real
tracking server): experiments that open on their training runs, runs whose duration covers the
fits, per-epoch loss curves, baselines beside the model, per-horizon charts, VC plots and full
parameters."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from omniwatch import progress
from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import LABEL_BPS, add_masks
from omniwatch.ml.protocol import TrainingConfig, default_tsmixer, long_predictions, run_protocol, tsmixer_functions
from omniwatch.ml.reporting import PARAM_VALUE_LIMIT, headline_metrics, log_params_in_full, log_training
from omniwatch.ml.reporting import walk_forward_table as wf_table
from omniwatch.resources.mlflow import EXPERIMENT_KIND_TAG, TRAINING_KIND, MLflowResource
from omniwatch.trading.sizing import walk_forward_sizing
from tests.servers import free_port, running


def forget_tracking_uri() -> None:
    import mlflow

    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None unsets it (MLflow's stubs say str)


@pytest.fixture
def resource(tmp_path: Path):
    yield MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))
    forget_tracking_uri()


def test_experiments_open_on_training_runs_not_on_the_genai_view(resource) -> None:
    # given an experiment made before the kind was set (MLflow would guess its kind)
    client = resource.client()
    old_id = client.create_experiment("made-earlier")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old_id).tags
    # when the resource makes a new one and meets the old one
    new_id = resource.experiment_id("omniwatch-liquid")
    assert resource.experiment_id("made-earlier") == old_id
    # then both say they hold model training runs
    for experiment_id in (new_id, old_id):
        assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def test_the_links_we_print_open_the_model_training_view(tmp_path, monkeypatch) -> None:
    """MLflow 3.17's UI opens a plain experiment link in its GenAI view (the sidebar switch defaults
    to GenAI in a fresh browser whatever the experiment's kind); ``omniwatch mlflow-links`` (what
    ``make mlflow-ui`` prints) and the Dagster links carry ``workflowType=machine_learning``."""
    from click.testing import CliRunner

    from omniwatch.cli import main

    monkeypatch.setenv("OMNIWATCH_HOME", str(tmp_path))
    monkeypatch.delenv("OMNIWATCH_MLFLOW_TRACKING_URI", raising=False)
    from omniwatch.settings import get_settings

    get_settings.cache_clear()  # the CLI reads the settings of this home
    settings = get_settings()
    made = MLflowResource(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir))
    ids = {name: made.experiment_id(name) for name in ("omniwatch-vc", "omniwatch-liquid")}
    out = CliRunner().invoke(main, ["mlflow-links", "--ui-url", "http://127.0.0.1:5999/"])
    forget_tracking_uri()
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        f"{name:<20} http://127.0.0.1:5999/#/experiments/{ids[name]}/runs?workflowType=machine_learning"
        for name in ("omniwatch-liquid", "omniwatch-vc")]


def training_frame(days: int = 130, seed: int = 0) -> pd.DataFrame:
    """One symbol, hourly, random features; labels (bps) that follow the first feature a little."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=days * 24, freq="h", tz="UTC")
    frame = pd.DataFrame(rng.standard_normal((len(times), len(FEATURES))), columns=list(FEATURES))
    frame = add_masks(frame.assign(symbol="BTC", as_of_ts=times, data_version="v1", lineage_id="l1"))
    for i, col in enumerate(LABEL_BPS):
        frame[col] = 5 * frame[FEATURES[0]] * (i + 1) + 20 * rng.standard_normal(len(frame))
    frame["next_hour_return"] = frame[LABEL_BPS[0]] / 1e4
    frame["next_hour_funding"] = 0.0
    return frame


TINY = TrainingConfig(kfold_splits=2, wf_test_windows=2, min_train_days=45, window_stride_hours=12, null_shifts=0,
                      tsmixer={**default_tsmixer(), "lookback": 24, "d_ff": 8, "n_blocks": 1, "max_epochs": 2,
                               "patience": 5, "batch_size": 64})


@pytest.fixture(scope="module")
def trained() -> tuple:
    """The TSMixer protocol run on the tiny frame, its table, and the progress reports it made."""
    frame = training_frame()
    reports: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: reports.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger(progress.LOGGER_NAME)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        fit, predict = tsmixer_functions(frame, TINY, "cpu")
        run = run_protocol("tsmixer", frame, fit, predict, TINY)
        assert run.started_ms is not None
        protocol_ms = int(time.time() * 1000) - run.started_ms
    finally:
        log.removeHandler(handler)
    table = wf_table(long_predictions(frame, run.walk_forward), TINY,
                     walk_forward_sizing(TINY.sizing_band, TINY.sizing_target_annual_vol))
    return run, table, reports, protocol_ms


def test_the_protocol_reports_progress_and_records_every_epoch_of_every_fit(trained) -> None:
    run, _, reports, _ = trained
    parsed = [p for p in map(progress.parse, reports) if p is not None]
    assert [(p.done, p.total) for p in parsed if p.what == "walk-forward folds"] == [(1, 2), (2, 2)]
    epochs = [(p.done, p.total) for p in parsed if p.what == "TSMixer epochs"]
    assert epochs == [(1, 2), (2, 2)] * 5  # 2 purged folds + 2 walk-forward months + the final fit
    fits = list(dict.fromkeys(p.fit for p in run.epochs))
    assert fits[:2] == ["kfold-0", "kfold-1"] and fits[-1] == "final" and len(fits) == 5
    assert all(np.isfinite(p.train_loss) and np.isfinite(p.val_loss) for p in run.epochs)


def test_a_training_run_lasts_as_long_as_its_fits_and_shows_curves_baselines_and_full_params(
        trained, resource) -> None:
    import mlflow

    run, table, _, protocol_ms = trained
    long_value = ",".join(f"feature_{i}" for i in range(80))  # ~800 characters
    # when the asset logs the run after the fits (as tsmixer_model does)
    run_id = log_training(resource, run_name="tsmixer", config=TINY, params={"features": long_value},
                          metrics=headline_metrics(table), tags={"omniwatch.model": "tsmixer"}, dq_summary={},
                          table=table, model_run=run)
    client = resource.client()
    logged = client.get_run(run_id)
    # then its duration covers the protocol, not only the logging
    assert logged.info.start_time == run.started_ms
    assert logged.info.end_time - logged.info.start_time >= protocol_ms
    # per-epoch loss curves (step = epoch) of the final fit and of each validation fit
    final = [p for p in run.epochs if p.fit == "final"]
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == [p.epoch for p in final] == [0, 1]
    assert [m.value for m in history] == pytest.approx([p.val_loss for p in final])
    assert [m.timestamp for m in history] == [p.timestamp_ms for p in final]
    assert len(client.get_metric_history(run_id, "fit_loss/kfold-0 train")) == 2
    # the constant-sign baselines as child runs with the model's metric names
    children = client.search_runs([logged.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    by_strategy = {c.data.tags["omniwatch.baseline"]: c for c in children}
    assert set(by_strategy) == {"model_sized", "zero", "always_long", "always_short"}
    assert by_strategy["model_sized"].info.run_name == "tsmixer · sized at its horizon"
    long_run = by_strategy["always_long"]
    assert long_run.info.run_name == "tsmixer · always long" and long_run.info.status == "FINISHED"
    assert long_run.data.metrics["wf_net_return_24h"] == pytest.approx(
        headline_metrics(table, strategy="always_long")["wf_net_return_24h"])
    assert set(long_run.data.metrics) <= set(logged.data.metrics)
    # one readable chart per horizon, the loss curves, and every parameter in full
    artifacts = {a.path for folder in ("walk_forward", "training") for a in client.list_artifacts(run_id, folder)}
    assert {"walk_forward/1h_vs_baselines.png", "walk_forward/4h_vs_baselines.png",
            "walk_forward/24h_vs_baselines.png", "training/loss_curves.png"} <= artifacts
    shown = logged.data.params
    assert len(shown["features"]) == PARAM_VALUE_LIMIT and shown["features"].endswith("full value in params.json)")
    assert shown["tsmixer.lookback"] == "24" and shown["kfold_splits"] == "2"
    mlflow.set_tracking_uri(resource.tracking_uri)
    full = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/params.json"))
    assert full["features"] == long_value and full["tsmixer.max_epochs"] == 2
    assert client.get_experiment(logged.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def test_vc_runs_start_with_the_fit_and_carry_roc_pr_and_calibration_plots(resource) -> None:
    import mlflow
    from omniwatch.vc.model import VCConfig, fit_vc_model, vc_figures
    from tests.vc.test_vc_model import synthetic

    config = VCConfig(cut="2018-01-01", walk_forward_years=0, min_data_in_leaf=50, max_rounds=50)
    before = int(time.time() * 1000)
    result = fit_vc_model(synthetic(), config)
    assert result.started_ms is not None and before <= result.started_ms <= int(time.time() * 1000)
    assert np.isfinite(result.predictions["recency"]).all()
    with resource.run_context("vc_model", experiment="omniwatch-vc", start_time_ms=result.started_ms) as run:
        log_params_in_full(config.model_dump())
        for name, fig in vc_figures(result).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
    client = resource.client()
    assert client.get_run(run.info.run_id).info.start_time == result.started_ms
    paths = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert paths == {"plots/vc_roc.png", "plots/vc_precision_recall.png", "plots/vc_calibration.png"}
    full = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/params.json"))
    assert full["features"] == list(config.features)


def test_against_a_tracking_server_artifacts_go_through_its_proxy(tmp_path: Path) -> None:
    import mlflow

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "served")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running(cmd, env=env, cwd=tmp_path, log_path=tmp_path / "server.log",
                 ready=lambda: requests.get(f"{url}/health", timeout=2).ok, what="mlflow server"):
        try:
            resource = MLflowResource(tracking_uri=url, artifact_root=str(tmp_path / "client-side"))
            experiment = resource.client().get_experiment(resource.experiment_id("omniwatch-liquid"))
            assert experiment.artifact_location.startswith("mlflow-artifacts:")
            assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
            with resource.run_context("probe") as run:
                mlflow.log_text("hello", "probe.txt")
            assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/probe.txt") == "hello"
        finally:
            forget_tracking_uri()
    assert not (tmp_path / "client-side").exists()  # the client never wrote artifacts itself
    assert list((tmp_path / "served").rglob("probe.txt"))
