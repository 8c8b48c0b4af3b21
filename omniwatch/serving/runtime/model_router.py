"""Which model versions answer a request, loaded lazily from the MLflow registry.

- ``champion`` (an MLflow alias) answers every request. During a rollout the version carrying
  the rollout alias (``OMNIWATCH_ROLLOUT_ALIAS``, default ``candidate``) with a
  ``model_registry.rollout_stage`` strictly between 0 and 100 is scored beside it on the same
  window, and the stage is the candidate's share of the forecast and the positions (signals and
  rebalances blend the two, ``omniwatch.modelops.blend``). There is no request-hash split: with
  three symbols a split gives the candidate 0, 33 or 67 % of the book, never 10 %.
- Aliases are read with ``get_registered_model(name).aliases``. Only MLflow's
  ``RESOURCE_DOES_NOT_EXIST`` means "no such model / no alias"; any other registry error
  propagates (``model_artifact_missing`` with its cause), so a registry hiccup never reads as
  "no champion".
- The alias -> version mapping is re-read at most every ``check_interval_s`` (in the background
  for the async fast path, which keeps answering from the current routes meanwhile); a moved
  alias has its version loaded first, then takes the traffic, without a restart.
- mlflow, torch and lightgbm are imported here, on first use, never at app start-up.
- A missing or unloadable model is ``model_artifact_missing`` (HTTP 503), never a 500.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, cached
from sqlalchemy import select

from omniwatch.ml.versions import LoadedModel, ModelUnavailable, aliases, load_version
from omniwatch.serving.errors import ApiError, model_missing
from omniwatch.serving.runtime.refresh import Refresher
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routes:
    champion: str | None
    candidate: str | None   # in rollout: carries the rollout alias and a stage in (0, 100)
    stage: int              # the candidate's share of forecasts and positions, percent
    checked_at: float


@dataclass(frozen=True)
class Arms:
    """The models that answer a request: the champion and, during a rollout, the candidate."""

    champion: LoadedModel
    candidate: LoadedModel | None
    stage: int


class ModelRouter:
    """Routes requests to loaded model versions; thread-safe; one instance per app."""

    def __init__(self, tracking_uri: str, database_url: str, device: str = "cpu",
                 check_interval_s: float = 5.0, rollout_alias: str = "candidate", cache_size: int = 4,
                 refresher: Refresher | None = None):
        self.tracking_uri, self.database_url = tracking_uri, database_url
        self.preferred_device, self.check_interval_s = device, check_interval_s
        self.rollout_alias, self.cache_size = rollout_alias, cache_size
        self.refresher = refresher or Refresher()
        self._routes: dict[str, Routes] = {}
        # The one lock around the routes and the model cache. A load (seconds) runs outside it;
        # concurrent requests for the same version wait on the condition for that one load.
        self._lock = threading.Condition()
        self._models: LRUCache[tuple[str, str], LoadedModel] = LRUCache(maxsize=cache_size)
        self._cached_load = cached(self._models, key=lambda name, version: (name, version),
                                   lock=self._lock, condition=self._lock)(self._load)
        self._device: str | None = None
        self.loads = 0  # how many versions were loaded (tests watch reloads)

    # ------------------------------------------------------------------ routing
    def route(self, name: str) -> LoadedModel:
        """The champion alone (predict/vc, and anything that takes no part in a rollout)."""
        return self.arms(name).champion

    def arms(self, name: str) -> Arms:
        """Champion and, during a rollout, candidate (both loaded)."""
        routes = self.routes(name)
        if routes.champion is None:
            raise model_missing(f"no version of {name!r} carries the alias 'champion'", model_name=name)
        candidate = self._get(name, routes.candidate, "candidate") if routes.candidate else None
        return Arms(self._get(name, routes.champion, "champion"), candidate, routes.stage if candidate else 0)

    def cached_arms(self, name: str) -> Arms | None:
        """The arms from memory only, or None ('take the slow path'). Routes older than the
        check interval are re-read in the background (new versions loaded before they take
        traffic) while this answers from the current ones."""
        routes = self._routes.get(name)
        if routes is None or routes.champion is None or self.check_interval_s <= 0:
            return None
        if time.monotonic() - routes.checked_at >= self.check_interval_s:
            self.refresher.submit(("routes", name), self.refresh, name)
        with self._lock:
            champion = self._models.get((name, routes.champion))
            candidate = self._models.get((name, routes.candidate)) if routes.candidate else None
        if champion is None or (routes.candidate and candidate is None):
            return None
        return Arms(self._as_role(champion, "champion"),
                    None if candidate is None else self._as_role(candidate, "candidate"), routes.stage)

    def refresh(self, name: str) -> Routes:
        """Re-read the routes now; load the versions they name, then publish them."""
        fresh = self._read_routes(name)
        for version in (fresh.champion, fresh.candidate):
            if version is not None:
                try:
                    self._get(name, version, "pinned")
                except ApiError:  # published anyway: requests then answer model_artifact_missing
                    pass
        return self._publish(name, fresh)

    def _publish(self, name: str, fresh: Routes) -> Routes:
        with self._lock:
            current = self._routes.get(name)
            if current is None or (current.champion, current.candidate, current.stage) != (
                    fresh.champion, fresh.candidate, fresh.stage):
                log.info("routes of %s: champion=%s candidate=%s stage=%s", name, fresh.champion,
                         fresh.candidate, fresh.stage)
                self._evict(name, {fresh.champion, fresh.candidate})
            self._routes[name] = fresh
        return fresh

    def routes(self, name: str) -> Routes:
        """The current routes, re-read first when older than the check interval."""
        current = self._routes.get(name)
        if current is not None and time.monotonic() - current.checked_at < self.check_interval_s:
            return current
        try:
            fresh = self._read_routes(name)
        except Exception as exc:  # registry or warehouse unreachable: no model can be named
            log.exception("reading the routes of %s failed", name)
            raise model_missing(f"cannot read the registry for {name!r}: {exc}", model_name=name) from exc
        return self._publish(name, fresh)

    def pinned(self, name: str, version_or_alias: str) -> LoadedModel:
        """A named version (or alias), for explanations, backtests and replays."""
        version = version_or_alias
        if not version_or_alias.isdigit():
            aliased = self._alias(name, version_or_alias)
            if aliased is None:
                raise model_missing(f"{name!r} has no alias {version_or_alias!r}", model_name=name)
            version = aliased
        return self._get(name, version, "pinned")

    def state(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            loaded = list(self._models)
        return {name: {"champion": r.champion, "candidate": r.candidate, "rollout_stage": r.stage,
                       "loaded": [v for (n, v) in loaded if n == name]}
                for name, r in list(self._routes.items())}

    # ------------------------------------------------------------------ registry reads
    def _aliases(self, name: str) -> dict[str, str]:
        """Alias -> version; ``{}`` only when the model is not registered."""
        return aliases(self.tracking_uri, name)

    def _alias(self, name: str, alias: str) -> str | None:
        try:
            return self._aliases(name).get(alias)
        except Exception as exc:  # registry unreachable: the cause goes to the client
            log.exception("reading the aliases of %s failed", name)
            raise model_missing(f"cannot read the registry for {name!r}: {exc}", model_name=name) from exc

    def _read_routes(self, name: str) -> Routes:
        aliases = self._aliases(name)
        champion = aliases.get("champion")
        candidate = aliases.get(self.rollout_alias) if self.rollout_alias else None
        if candidate is None or candidate == champion:
            return Routes(champion, None, 0, time.monotonic())
        t = tables.model_registry
        with get_engine(self.database_url).connect() as conn:
            stage = conn.execute(select(t.c.rollout_stage).where(
                t.c.model_name == name, t.c.version == candidate)).scalar()
        if stage is None or not 0 < int(stage) < 100:
            return Routes(champion, None, 0, time.monotonic())
        return Routes(champion, candidate, int(stage), time.monotonic())

    # ------------------------------------------------------------------ loading
    def _get(self, name: str, version: str, role: str) -> LoadedModel:
        return self._as_role(self._cached_load(name, version), role)

    @staticmethod
    def _as_role(loaded: LoadedModel, role: str) -> LoadedModel:
        return loaded if loaded.role == role else dataclasses.replace(loaded, role=role)

    def _evict(self, name: str, keep: set[str | None]) -> None:
        """Drop versions the routes no longer name (called holding the lock)."""
        for key in [k for k in self._models if k[0] == name and k[1] not in keep]:
            self._models.pop(key, None)

    def _load(self, name: str, version: str) -> LoadedModel:
        try:
            loaded = load_version(self.tracking_uri, name, version, self._serving_device())
        except ModelUnavailable as exc:
            raise model_missing(exc.detail, **exc.context) from exc
        with self._lock:
            self.loads += 1
        return loaded

    def _serving_device(self) -> str:
        """cuda:0 when present, else CPU; resolved once per router."""
        if self._device is None:
            import torch

            from omniwatch.resources.compute import resolve_device

            self._device, reason = resolve_device(self.preferred_device)
            log.info("serving device: %s (%s)", self._device, reason)
            if self._device == "cpu":
                torch.set_num_threads(1)  # tiny batches: more threads only contend with the server
        return self._device
