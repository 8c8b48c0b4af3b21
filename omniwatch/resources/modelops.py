"""Model operations as a resource: the registry, the warehouse, the rules' thresholds, the clock.

Sensors and the live assets take this resource and ask it for an ``OpsContext`` (the same one
the API builds per request), so the rules run with the same thresholds whichever path asks.
Thresholds come from the settings (``OMNIWATCH_<RULE>__<FIELD>``) as JSON so that the resource
stays a plain, frozen ``ConfigurableResource`` the UI can show.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from pydantic import PrivateAttr


class ModelOpsResource(dg.ConfigurableResource):
    tracking_uri: str
    artifact_root: str
    database_url: str
    live: bool = False                 # the clock: wall clock (live) or the data clock (replay)
    thresholds_json: str = "{}"        # {"drift": {...}, "gate": {...}, "rollout": ..., "rollback": ..., "skill": ...}
    scoring_lookback_hours: int = 48   # live_predictions scores snapshot hours at most this old
    clock: str | None = None           # a fixed "now" (ISO 8601)
    _run_clock: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # In a run the replay launched, "now" is the replayed hour of its tag (omniwatch.launch);
        # sensors have no run and use the data clock (replay) or the wall clock (live).
        from omniwatch.launch import REPLAY_CLOCK_TAG

        run = context.dagster_run
        self._run_clock = run.tags.get(REPLAY_CLOCK_TAG) if run is not None else None

    def thresholds(self):
        import json

        from omniwatch.modelops.thresholds import (
            DriftThresholds,
            GateThresholds,
            RollbackThresholds,
            RolloutThresholds,
            SkillThresholds,
        )
        from omniwatch.operations import Thresholds

        raw = json.loads(self.thresholds_json or "{}")
        return Thresholds(DriftThresholds(**raw.get("drift", {})), GateThresholds(**raw.get("gate", {})),
                          RolloutThresholds(**raw.get("rollout", {})), RollbackThresholds(**raw.get("rollback", {})),
                          SkillThresholds(**raw.get("skill", {})))

    def context(self, *, actor: str = "system", source: str = "scheduler"):
        from omniwatch.operations import OpsContext
        from omniwatch.resources.mlflow import MLflowResource

        clock = self.clock or self._run_clock
        now = datetime.fromisoformat(clock) if clock else None
        return OpsContext(mlflow=MLflowResource(tracking_uri=self.tracking_uri, artifact_root=self.artifact_root),
                          database_url=self.database_url, thresholds=self.thresholds(), actor=actor, source=source,
                          now=now, live=self.live)

    @classmethod
    def from_settings(cls, settings, **overrides) -> ModelOpsResource:
        import json

        thresholds = {k: getattr(settings, k).model_dump(mode="json")
                      for k in ("drift", "gate", "rollout", "rollback", "skill")}
        values = dict(tracking_uri=settings.mlflow_uri, artifact_root=str(settings.mlflow_artifacts_dir),
                      database_url=settings.warehouse_url, live=settings.source == "live",
                      thresholds_json=json.dumps(thresholds, sort_keys=True))
        return cls(**{**values, **overrides})
