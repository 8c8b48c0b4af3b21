"""Predictions: route to the model versions, read a window, score it (cached), store the record.

The champion answers; during a rollout the candidate is scored on the same window and stored as
its own prediction, its forecast returned beside the champion's. A snapshot older than the age
limit is refused (``stale_features``, see ``runtime/freshness.py``) and every answer says the age.

The hot path (newest snapshot of a target) costs two dictionary look-ups once warm: the route is
cached by the model router, the window by the snapshot store, and the score by
``(model, version, window key)``, since the same version on the same rows gives the same numbers.
Every answer still gets its own ``prediction_id`` and stored row (queued, written in batches).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from cachetools import LRUCache
from sqlalchemy import delete

from omniwatch.errors import ErrorCode
from omniwatch.ml.inference import explain_last, score_last, split_record
from omniwatch.ml.versions import LoadedModel
from omniwatch.serving.errors import ApiError, ApiErrorCode, not_found
from omniwatch.serving.predict.schemas import (
    CandidateForecast,
    ModelSkill,
    PredictionResponse,
    SkippedTarget,
    SnapshotRef,
)
from omniwatch.serving.runtime.freshness import Freshness
from omniwatch.serving.runtime.model_router import Arms, ModelRouter
from omniwatch.serving.runtime.snapshots import SnapshotStore, Window
from omniwatch.serving.runtime.writer import PredictionWriter, load_prediction
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine
from omniwatch.warehouse.upsert import upsert_rows

LIQUID_MODEL = "omniwatch-liquid"
VC_MODEL = "omniwatch-vc"
log = logging.getLogger(__name__)
Track = Literal["liquid", "vc"]                           # PredictionResponse.track: the snapshot tracks
ModelRole = Literal["champion", "candidate", "pinned"]    # PredictionResponse.model_role: LoadedModel.role


def new_id() -> str:
    """A prediction id nobody can guess from another one (uuid4: 122 bits from the OS)."""
    return str(uuid.uuid4())


def scoring_failed(loaded: LoadedModel, window: Window, exc: Exception | None = None) -> ApiError:
    """A forecast that could not be made: the request's features are bad input (422 naming
    them); on stored rows it is the server's fault (500 ``scoring_failed``). Never
    ``model_artifact_missing``: the artifact loaded, the input did not score."""
    reason = f"{loaded.name} version {loaded.version} cannot score them: {exc}" if exc else \
        f"{loaded.name} version {loaded.version} gives no finite forecast for them (values out of range?)"
    if window.request_features is not None:
        return ApiError(422, ApiErrorCode.VALIDATION_ERROR, f"body.features: {reason}",
                        errors=[{"field": "body.features", "reason": reason, "type": "unscorable_features"}])
    return ApiError(500, ApiErrorCode.SCORING_FAILED, f"stored features of {window.target!r}: {reason}",
                    {"model_name": loaded.name, "model_version": loaded.version, "target": window.target})


@dataclass(frozen=True)
class Hit:
    """A newest-snapshot prediction answerable from memory: models, window, reference time."""

    arms: Arms
    window: Window
    now: datetime


class Predictor:
    def __init__(self, router: ModelRouter, snapshots: SnapshotStore, writer: PredictionWriter,
                 database_url: str, freshness: Freshness, cache_size: int = 4096):
        self.router, self.snapshots, self.writer = router, snapshots, writer
        self.database_url, self.freshness, self.cache_size = database_url, freshness, cache_size
        # (model, version, window) -> score, and -> (answer, row) but the id; one lock for both.
        self._scores: LRUCache[tuple, dict[str, float]] = LRUCache(maxsize=cache_size)
        self._answers: LRUCache[tuple, tuple[PredictionResponse, dict]] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ predict
    def predict_liquid(self, target: str, as_of: datetime | None = None, features: dict | None = None,
                       request_key: str | None = None) -> PredictionResponse:
        return self.predict_liquid_window(target, as_of, features, request_key)[0]

    def predict_liquid_window(self, target: str, as_of: datetime | None = None, features: dict | None = None,
                              request_key: str | None = None) -> tuple[PredictionResponse, Window]:
        """The prediction and the window it read (decisions also need the window's features).
        The champion answers; during a rollout the candidate is scored on the same rows and
        stored too, and its forecast rides along in ``candidate``."""
        if as_of is None and features is None:
            cached = self.cached_liquid(target, request_key, wait=True)
            if cached is not None:
                return cached
        arms = self.router.arms(LIQUID_MODEL)
        lookback = int(arms.champion.model.meta["lookback"])
        now: datetime | None = None
        if features is not None:
            # PredictLiquidRequest requires as_of_ts when features are given.
            window = self.snapshots.window("liquid", target, cast(datetime, as_of), lookback,
                                           request_features=features)
        elif as_of is not None:
            # Point in time: the newest snapshot we had at as_of, refused when too old by then.
            now = as_of
            at = self.snapshots.newest_at_or_before("liquid", target, as_of)
            self.freshness.check(target, at, now)
            window = self.snapshots.window("liquid", target, at, lookback)
        else:
            window = self.snapshots.latest("liquid", target, lookback)
            now = self.freshness.now()
        return self._respond(arms, window, now, request_key, True), window

    def predict_many(self, targets: list[str], request_key: str | None = None
                     ) -> tuple[dict[str, tuple[PredictionResponse, Window]], list[SkippedTarget]]:
        """Each target from its newest snapshot; targets without one, or with a stale one, are
        skipped (and named); a missing model fails the whole request, and so does no target
        at all (``stale_features`` when some target was stale)."""
        done, skipped, stale = {}, [], None
        for target in dict.fromkeys(targets):
            try:
                done[target] = self.predict_liquid_window(target, request_key=request_key)
            except ApiError as exc:
                if exc.code not in (ErrorCode.INSUFFICIENT_FEATURES, ApiErrorCode.STALE_FEATURES):
                    raise
                if exc.code == ApiErrorCode.STALE_FEATURES:
                    stale = stale or exc
                skipped.append(SkippedTarget(target=target, code=exc.code, detail=exc.detail, context=exc.context))
        if not done:
            if stale is not None:
                raise stale
            raise ApiError(422, ErrorCode.INSUFFICIENT_FEATURES, "no target has a feature snapshot",
                           {"targets": [s.target for s in skipped]})
        return done, skipped

    def peek_liquid(self, target: str) -> Hit | None:
        """What a newest-snapshot prediction needs, if every cache is fresh (routes, models,
        window, scores of every arm, the reference clock); None otherwise. No I/O, no model
        work, no side effect."""
        arms = self.router.cached_arms(LIQUID_MODEL)
        if arms is None or self.writer.saturated:
            return None
        now = self.freshness.cached_now()
        lookback = int(arms.champion.model.meta["lookback"])
        if now is None or (arms.candidate is not None and int(arms.candidate.model.meta["lookback"]) != lookback):
            return None
        window = self.snapshots.cached_latest("liquid", target, lookback, self._prescore)
        if window is None:
            return None
        with self._lock:
            for loaded in (arms.champion, arms.candidate):
                if loaded is not None and (loaded.name, loaded.version, window.key) not in self._scores:
                    return None
        return Hit(arms, window, now)

    def _prescore(self, window: Window) -> None:
        """Score a new window with every routed version before it replaces the cached one, so
        the first requests after a new snapshot hit the cache too (runs in the refresher)."""
        routes = self.router.routes(LIQUID_MODEL)
        for version in (routes.champion, routes.candidate):
            if version is not None:
                self._score(self.router.pinned(LIQUID_MODEL, version), window)

    def cached_liquid(self, target: str, request_key: str | None = None,
                      wait: bool = False) -> tuple[PredictionResponse, Window] | None:
        """:meth:`peek_liquid`, answered and stored; None means 'take the slow path'. ``wait``:
        a thread-pool caller may block while the writer's queue is full, the event loop may not.
        A stale snapshot is refused here as on the slow path."""
        hit = self.peek_liquid(target)
        if hit is None:
            return None
        return self._respond(hit.arms, hit.window, hit.now, request_key, wait), hit.window

    def _respond(self, arms: Arms, window: Window, now: datetime | None, request_key: str | None,
                 wait: bool) -> PredictionResponse:
        """Check the snapshot's age, score every arm on ``window``, store each prediction."""
        age = None
        if window.snapshot is not None and now is not None:
            age = self.freshness.check(window.target, window.snapshot["as_of_ts"], now)
        response = self._predict(arms.champion, window, request_key, wait)
        update: dict[str, Any] = {"snapshot_age_seconds": age}
        if arms.candidate is not None:
            lookback = int(arms.candidate.model.meta["lookback"])
            rows = window if lookback == int(arms.champion.model.meta["lookback"]) else self.snapshots.window(
                "liquid", window.target, window.as_of_ts, lookback, request_features=window.request_features)
            shadow = self._predict(arms.candidate, rows, request_key, wait)
            update["candidate"] = CandidateForecast(prediction_id=shadow.prediction_id,
                                                    model_version=shadow.model_version, rollout_stage=arms.stage,
                                                    horizon_predictions=shadow.predictions)
        return response.model_copy(update=update)

    def _predict(self, loaded: LoadedModel, window: Window, request_key: str | None, wait: bool) -> PredictionResponse:
        record = self._score(loaded, window)
        preds, comps = split_record(record)
        return self._answer(loaded, window, record, preds, comps, request_key, wait)

    def predict_vc(self, entity_id: str, as_of: datetime | None = None, features: dict | None = None,
                   request_key: str | None = None) -> PredictionResponse:
        loaded = self.router.route(VC_MODEL)
        if features is not None:
            window = self.snapshots.window("vc", entity_id, as_of or datetime.now().astimezone(), 1,
                                           request_features=features)
        elif as_of is not None:
            window = self.snapshots.window("vc", entity_id, as_of, 1)
        else:
            window = self.snapshots.latest("vc", entity_id, 1)
        if features is not None:
            _known_features(loaded, features)
        try:
            record = _vc_record(loaded.model.predict(window.frame.drop(columns=["symbol", "as_of_ts"])))
        except Exception as exc:
            log.exception("%s version %s failed on %s", loaded.name, loaded.version, entity_id)
            raise scoring_failed(loaded, window, exc) from exc
        if not all(math.isfinite(v) for v in record.values()):
            raise scoring_failed(loaded, window)
        response = self._answer(loaded, window, record, record, {}, request_key, True)
        if window.snapshot is None:
            return response
        # Company features change monthly, not hourly: the age is told, never refused.
        age = self.freshness.check(entity_id, window.snapshot["as_of_ts"], as_of or self.freshness.now(),
                                   enforce=False)
        return response.model_copy(update={"snapshot_age_seconds": age})

    def _score(self, loaded: LoadedModel, window: Window) -> dict[str, float]:
        key = (loaded.name, loaded.version, window.key) if window.request_features is None else None
        if key is not None:
            with self._lock:
                hit = self._scores.get(key)
            if hit is not None:
                return hit
        try:
            record = score_last(loaded.model, window.frame)
        except Exception as exc:  # the artifact cannot read these rows (channels, shapes, device)
            log.exception("%s version %s failed on %s", loaded.name, loaded.version, window.target)
            raise scoring_failed(loaded, window, exc) from exc
        if not all(math.isfinite(v) for v in record.values()):
            raise scoring_failed(loaded, window)
        if key is not None:
            with self._lock:
                self._scores[key] = record
        return record

    def _answer(self, loaded: LoadedModel, window: Window, record: dict, preds: dict, comps: dict,
                request_key: str | None, wait: bool) -> PredictionResponse:
        """A new prediction id on the (cached) answer and stored row of this model and window."""
        key = (loaded.name, loaded.version, loaded.role, window.key) if window.request_features is None else None
        templates = None
        if key is not None:
            with self._lock:
                templates = self._answers.get(key)
        if templates is None:
            templates = self._templates(loaded, window, record, preds, comps)
            if key is not None:
                with self._lock:
                    self._answers[key] = templates
        response, row = templates
        prediction_id = new_id()
        self.writer.submit("predictions_v2", [dict(row, prediction_id=prediction_id, request_key=request_key)],
                           wait=wait)
        return response.model_copy(update={"prediction_id": prediction_id})

    @staticmethod
    def _templates(loaded: LoadedModel, window: Window, record: dict, preds: dict,
                   comps: dict) -> tuple[PredictionResponse, dict]:
        stored = dict(record, history_rows=len(window.frame))
        if window.request_features is not None:
            stored["request_features"] = window.request_features
        snap = window.snapshot
        row = {"track": window.track, "target": window.target, "model_name": loaded.name,
               "model_version": loaded.version, "as_of_ts": window.as_of_ts,
               "snapshot_id": snap["snapshot_id"] if snap else None, "train_lineage_id": loaded.train_lineage_id,
               "infer_lineage_id": window.infer_lineage_id, "horizon_predictions": stored}
        response = PredictionResponse(
            prediction_id="", track=cast(Track, window.track), target=window.target, model_name=loaded.name,
            model_version=loaded.version, model_role=cast(ModelRole, loaded.role),
            train_lineage_id=loaded.train_lineage_id,
            infer_lineage_id=window.infer_lineage_id, input_source="request" if snap is None else "snapshot",
            snapshot=SnapshotRef(**snap) if snap else None, history_rows=len(window.frame),
            as_of_ts=window.as_of_ts, predictions=preds, components=comps,
            skill=ModelSkill(status=cast(Any, loaded.skill), reason=loaded.skill_reason or "",
                             by_horizon=cast(Any, loaded.skill_by_horizon or {}))
            if loaded.skill is not None else None)
        return response, row

    # ------------------------------------------------------------------ explain
    def stored(self, prediction_id: str) -> dict:
        self.writer.flush()  # a prediction answered a moment ago may still be queued
        row = load_prediction(self.database_url, prediction_id)
        if row is None:
            raise not_found("prediction", prediction_id)
        return row

    def explain(self, prediction_id: str) -> dict[str, Any]:
        row = self.stored(prediction_id)
        if row["track"] != "liquid":
            raise ApiError(404, ApiErrorCode.NOT_FOUND, f"prediction {prediction_id!r} is not a liquid prediction: "
                                             "explanations exist for the liquid ensemble only")
        if row["snapshot_id"] is None and "request_features" not in (row["horizon_predictions"] or {}):
            # It read a stored snapshot, since deleted (the foreign key nulls snapshot_id): the
            # rows it saw cannot be rebuilt, and the newest ones would explain another prediction.
            raise ApiError(422, ErrorCode.INSUFFICIENT_FEATURES, "the prediction's feature snapshot is gone: it "
                           "cannot be explained on the rows it read", {"prediction_id": prediction_id})
        loaded = self.router.pinned(row["model_name"], row["model_version"])
        window = stored_window(self.snapshots, row, int(loaded.model.meta["lookback"]))
        if window.frame.empty:
            raise ApiError(422, ErrorCode.INSUFFICIENT_FEATURES, "the prediction's snapshots are gone")
        horizons = explain_last(loaded.model, window.frame)
        rows = [{"prediction_id": prediction_id, "method": f"{part}:{h}", "feature": feature, "contribution": value}
                for h, exp in horizons.items() for part in ("lightgbm", "tsmixer")
                for feature, value in {**exp[part]["contributions"], "__bias__": exp[part]["bias"]}.items()]
        t = tables.prediction_explanations
        with get_engine(self.database_url).begin() as conn:
            conn.execute(delete(t).where(t.c.prediction_id == prediction_id))
            upsert_rows(conn, t, rows, ["prediction_id", "method", "feature"])
        return {"prediction_id": prediction_id, "target": row["target"], "model_name": row["model_name"],
                "model_version": row["model_version"], "as_of_ts": row["as_of_ts"], "horizons": horizons}


def stored_window(snapshots: SnapshotStore, row: dict, lookback: int) -> Window:
    """The rows a stored prediction read, rebuilt from its snapshot (or its request features)."""
    record = row["horizon_predictions"]
    as_of = row["as_of_ts"]
    if row["snapshot_id"] is None:
        return snapshots.window(row["track"], row["target"], as_of, lookback,
                                request_features=record.get("request_features") or {})
    return snapshots.window(row["track"], row["target"], as_of, lookback, last_id=int(row["snapshot_id"]))


def window_vol(window: Window) -> float | None:
    """The predicted row's hourly volatility (168 h, else 24 h), for annualising."""
    last = window.frame.iloc[-1]
    for name in ("vol_168h", "vol_24h"):
        if name in last and last[name] == last[name]:  # NaN != NaN
            return float(last[name])
    return None


def _known_features(loaded: LoadedModel, features: dict) -> None:
    """Request features must be inputs of the model's signature (422 naming each unknown one)."""
    schema = loaded.model.metadata.get_input_schema() if hasattr(loaded.model, "metadata") else None
    if schema is None or not schema.has_input_names():
        return
    known = set(schema.input_names())
    unknown = [{"field": f"body.features.{name}", "type": "unknown_feature",
                "reason": f"{loaded.name} version {loaded.version} has no input {name!r}"}
               for name in features if name not in known]
    if unknown:
        raise ApiError(422, ApiErrorCode.VALIDATION_ERROR, "; ".join(f"{u['field']}: {u['reason']}" for u in unknown),
                       errors=unknown, context={"model_inputs": sorted(known)})


def _vc_record(out) -> dict[str, float]:
    """The last row's forecast: a LightGBM pyfunc answers an array of probabilities, a custom
    pyfunc may answer a frame of named outputs."""
    import numpy as np
    import pandas as pd

    if isinstance(out, pd.DataFrame):
        return {str(k): float(v) for k, v in out.iloc[-1].items() if isinstance(v, int | float)}
    values = np.asarray(out, dtype=float).reshape(len(out), -1)
    return {"p_new_form_d_180d": float(values[-1, 0])}
