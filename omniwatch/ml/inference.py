"""Scoring and explaining windows with a loaded liquid ensemble.

``score_positions`` is ``LiquidEnsemble.score`` restricted to the rows asked for (the serving path
scores one row, not the whole lookback); the replay script checks it against the pyfunc's own
``predict``. Explanations: LightGBM ``pred_contrib`` per feature, and gradient x input for TSMixer
over the lookback (relative to the training mean, where the standardised input is 0), with each
mask channel folded into its feature.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

from omniwatch.features.liquid import FEATURES

PRED_COLUMNS = ("pred_1h", "pred_4h", "pred_24h")
HORIZON_OF = {"pred_1h": "1h", "pred_4h": "4h", "pred_24h": "24h"}


def infer_lineage(pairs: list[tuple[str, str]], request_features: dict | None = None) -> str:
    """``infer_lineage_id``: one hash over the (lineage_id, data_version) of every row read, plus
    the request's own features when they were given (same shape as ``train_lineage_id``)."""
    text = "|".join(f"{lin}:{ver}" for lin, ver in sorted(set(pairs)))
    if request_features is not None:
        text += "|request:" + json.dumps(request_features, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def score_positions(model: Any, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``omniwatch.ml.ensemble.score_positions`` (imported late: it loads mlflow's pyfunc module)."""
    from omniwatch.ml.ensemble import score_positions as ensemble_score_positions

    return ensemble_score_positions(model, frame, positions)


def score_last(model: Any, frame: pd.DataFrame) -> dict[str, float]:
    """The window's last row: the stored ``horizon_predictions`` record (bps)."""
    row = score_positions(model, frame, np.array([len(frame) - 1])).iloc[0]
    return {k: float(v) for k, v in row.items()}


def split_record(record: dict[str, float]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(predictions by horizon, components by model and horizon) of a stored record."""
    preds = {HORIZON_OF[p]: record[p] for p in PRED_COLUMNS}
    comps = {m: {HORIZON_OF[p]: record[f"{m}_{p}"] for p in PRED_COLUMNS} for m in ("lightgbm", "tsmixer")}
    return preds, comps


def explain_last(model: Any, frame: pd.DataFrame) -> dict[str, dict]:
    """Per horizon: both components' per-feature attributions of the window's last row."""
    from omniwatch.ml.dataset import MASK_COLUMNS, MASKED, add_masks

    frame = add_masks(frame)
    last = frame.iloc[[len(frame) - 1]]
    boosters = list(model.lgbm.boosters)
    ts_attr, ts_pred, ts_bias = _tsmixer_gradient_x_input(model, frame)
    channels = [*FEATURES, *MASK_COLUMNS]
    fold = dict(zip(MASK_COLUMNS, MASKED, strict=True))
    out = {}
    for i, p in enumerate(PRED_COLUMNS):
        contrib = model.lgbm.contributions(last, boosters[i]).iloc[0]
        per_feature = dict.fromkeys(FEATURES, 0.0)
        for c, value in zip(channels, ts_attr[i], strict=True):
            per_feature[fold.get(c, c)] += float(value)
        lg_pred = float(contrib.sum())
        w = float(model.meta["weights_lightgbm"][p])
        out[HORIZON_OF[p]] = {
            "prediction_bps": w * lg_pred + (1 - w) * float(ts_pred[i]), "weight_lightgbm": w,
            "lightgbm": {"prediction_bps": lg_pred, "bias": float(contrib["bias"]), "method": "pred_contrib",
                         "contributions": {f: float(contrib[f]) for f in FEATURES}},
            "tsmixer": {"prediction_bps": float(ts_pred[i]), "bias": float(ts_bias[i]),
                        "method": "gradient_x_input", "contributions": per_feature},
        }
    return out


def _tsmixer_gradient_x_input(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(attributions (horizons, channels), prediction (horizons,), prediction at the training mean)."""
    import torch

    from omniwatch.ml.dataset import make_windows

    reg = model.tsmixer
    X = make_windows(frame, model.meta["lookback"], np.array([len(frame) - 1])).X
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(reg.device)
    with torch.enable_grad():
        scaled = reg.norm.scale_inputs(x).detach().requires_grad_(True)
        out = reg.norm.unscale_labels(reg.model.eval()(scaled))[0]
        attrs = []
        for i in range(out.shape[0]):
            (grad,) = torch.autograd.grad(out[i], scaled, retain_graph=i + 1 < out.shape[0])
            attrs.append((grad * scaled)[0].sum(dim=0))
    with torch.no_grad():
        bias = reg.norm.unscale_labels(reg.model(torch.zeros_like(scaled)))[0]
    return (torch.stack(attrs).detach().cpu().numpy(), out.detach().cpu().numpy(), bias.cpu().numpy())
