"""The liquid ensemble pyfunc as MLflow "models from code": MLflow runs this file, not a pickle.

``mlflow.pyfunc.log_model(python_model=MODEL_CODE_PATH, artifacts=...)`` copies this file into the
logged model and executes it on every load; ``set_model`` hands MLflow a fresh ``LiquidEnsemble``,
whose ``load_context`` then reads the LightGBM, TSMixer and ensemble artifacts. So a logged model
holds no cloudpickled object tied to the Python and library versions of the process that trained
it: the code that scores is this package's ``LiquidEnsemble`` at load time. Never import this
module from application code (it exists to be executed by MLflow); use ``MODEL_CODE_PATH``.
"""

import mlflow
from omniwatch.ml.ensemble import LiquidEnsemble

mlflow.models.set_model(LiquidEnsemble())
