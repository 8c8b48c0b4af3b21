"""Signals from predictions: each horizon's forecast against its threshold, stored in
``signal_candidates`` (used by signals/generate and execution/run)."""

from __future__ import annotations

import uuid

from omniwatch.serving.deps import Services
from omniwatch.serving.portfolio.rollout import blended
from omniwatch.serving.schemas import HORIZONS
from omniwatch.serving.signals.schemas import Signal, SignalsRequest, SignalsResponse
from omniwatch.trading.signals import decide_signal

SIGNAL_NAMESPACE = uuid.UUID("5b0c4f8e-6d0a-4d55-9d43-2f1f3c0a9e11")


def generate_signals(services: Services, body: SignalsRequest, targets: list[str], wait: bool) -> SignalsResponse:
    strategy = body.strategy_id or services.serving.signal_strategy_id
    thresholds = services.serving.thresholds_bps()
    done, skipped = services.predictor.predict_many(targets, body.request_key)
    signals, rows = [], []
    for target, (pred, _) in done.items():
        for h in body.horizons or HORIZONS:
            forecast, rollout = blended(pred, h)
            d = decide_signal(forecast, thresholds[h])
            sid = str(uuid.uuid5(SIGNAL_NAMESPACE, f"{strategy}|{target}|{h}|{pred.as_of_ts.isoformat()}"))
            status = "candidate" if d.direction else "flat"
            rows.append({"signal_id": sid, "prediction_id": pred.prediction_id, "track": "liquid", "target": target,
                         "strategy_id": strategy, "horizon": h, "direction": d.direction, "strength": d.strength,
                         "threshold": d.threshold_bps, "as_of_ts": pred.as_of_ts, "status": status})
            signals.append({**rows[-1], "threshold_bps": d.threshold_bps, "prediction_bps": forecast,
                            "model_version": pred.model_version, "snapshot_age_seconds": pred.snapshot_age_seconds,
                            # The verdict at this signal's horizon: the one risk applies to its live orders.
                            "model_skill": (pred.skill.by_horizon.get(h, "no_demonstrated_skill")
                                            if pred.skill else None),
                            "rollout": rollout})
    services.writer.submit("signal_candidates", rows, wait=wait)
    return SignalsResponse(strategy_id=strategy, model_name="omniwatch-liquid",
                           signals=[Signal.model_validate(s) for s in signals], skipped=skipped)
