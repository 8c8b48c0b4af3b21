"""The liquid ensemble is logged as MLflow models-from-code and loads back as a LiquidEnsemble.

Against a temporary SQLite MLflow store, with tiny but real fitted components: the logged model
holds the code file and the three artifacts, no pickled Python object, and
``load_model(...).unwrap_python_model()`` (what live scoring and the serving router call) scores
exactly like the in-process model.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import channels
from omniwatch.ml.ensemble import MODEL_CODE_PATH, LiquidEnsemble, save_components
from omniwatch.ml.lgbm import LightGBMModel
from omniwatch.ml.protocol import PRED_COLUMNS
from omniwatch.ml.trainer import TSMixerRegressor
from omniwatch.ml.tsmixer import TSMixerConfig

LOOKBACK = 8


@pytest.fixture(scope="module")
def components(tmp_path_factory) -> dict[str, str]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, len(FEATURES)))
    boosters = {}
    for h in ("y_1h", "y_4h", "y_24h"):
        y = X[:, 0] * 3 + rng.standard_normal(300)
        params = {"objective": "regression", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 20, "seed": 0}
        boosters[h] = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)
    lgbm = LightGBMModel(list(FEATURES), boosters, dict.fromkeys(boosters, 5))
    n_channels = len(channels())
    W = rng.standard_normal((96, LOOKBACK, n_channels)).astype(np.float32)
    Y = rng.standard_normal((96, 3)).astype(np.float32)
    # A dict: mypy without the pydantic plugin takes Field(...) defaults for required arguments.
    sizes: dict = dict(lookback=LOOKBACK, path_steps=24, horizons=(1, 4, 24), n_blocks=1, d_ff=8, batch_size=32,
                       max_epochs=1, seed=0)
    tsmixer = TSMixerRegressor(TSMixerConfig(**sizes))
    tsmixer.fit(W[:64], Y[:64], W[64:], Y[64:])
    weights = dict.fromkeys(PRED_COLUMNS, 0.25)
    return save_components(tmp_path_factory.mktemp("components"), lgbm, tsmixer, weights, {"data_version": "t"})


def feature_rows() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    times = pd.date_range("2025-01-01", periods=24, freq="h", tz="UTC")
    frame = pd.DataFrame(rng.standard_normal((len(times), len(FEATURES))), columns=list(FEATURES))
    frame.loc[::5, "news_count_24h"] = np.nan  # a missing source: its mask channel says so
    return frame.assign(symbol="BTC", as_of_ts=times)[["symbol", "as_of_ts", *FEATURES]]


@pytest.fixture
def tracking(tmp_path):
    """A temporary SQLite tracking store, unset again afterwards."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(None)


def test_logged_from_code_and_unwrapped_it_scores_like_the_in_process_model(components, tracking, tmp_path):
    mlflow = tracking
    rows = feature_rows()
    direct = LiquidEnsemble()
    direct.load_context(type("Ctx", (), {"artifacts": components})())
    expected = direct.score(rows)

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(MODEL_CODE_PATH), artifacts=components)

    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model")))
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert Path(flavor["model_code_path"]).name == MODEL_CODE_PATH.name  # the code file, ...
    assert not list(local.rglob("*.pkl"))  # ... and no cloudpickled object
    assert sorted(p.name for p in (local / "artifacts").iterdir()) == ["ensemble.json", "lightgbm.json",
                                                                       "tsmixer.pt"]

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    model = loaded.unwrap_python_model()
    assert isinstance(model, LiquidEnsemble)
    pd.testing.assert_frame_equal(model.score(rows), expected)
    pd.testing.assert_frame_equal(loaded.predict(rows).reset_index(drop=True), expected)


def test_a_home_copied_elsewhere_loads_its_registered_model_after_the_old_one_is_deleted(components, tmp_path):
    """MLflow stores absolute artifact URIs; the resource re-anchors them on the copy's home."""
    import shutil

    import mlflow
    from omniwatch.resources.mlflow import MLflowResource

    def resource(home: Path) -> MLflowResource:
        return MLflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", artifact_root=str(home / "mlartifacts"))

    # given a home with a registered ensemble version
    old, new = tmp_path / "old-home", tmp_path / "moved" / "home"
    first = resource(old)
    try:
        with first.run_context("liquid_ensemble") as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=str(MODEL_CODE_PATH), artifacts=components)
        version = first.register(info.model_uri, "omniwatch-liquid")
        # when the home is copied to another path and the old one deleted
        shutil.copytree(old, new)
        shutil.rmtree(old)
        moved = resource(new)
        client = moved.client()
        # then the copy's runs and versions point into the copy, and the model loads from it
        assert client.get_run(run.info.run_id).info.artifact_uri.startswith((new / "mlartifacts").as_uri() + "/")
        download = client.get_model_version_download_uri("omniwatch-liquid", version)
        assert download.startswith((new / "mlartifacts").as_uri() + "/")
        model = mlflow.pyfunc.load_model(f"models:/omniwatch-liquid/{version}").unwrap_python_model()
        rows = feature_rows()
        direct = LiquidEnsemble()
        direct.load_context(type("Ctx", (), {"artifacts": components})())
        pd.testing.assert_frame_equal(model.score(rows), direct.score(rows))
        # and new runs of the moved home write into the copy too
        with moved.run_context("after-the-move") as later:
            mlflow.log_text("x", "probe.txt")
        assert (new / "mlartifacts" / "omniwatch-liquid" / later.info.run_id / "artifacts" / "probe.txt").exists()
    finally:
        mlflow.set_tracking_uri(None)
