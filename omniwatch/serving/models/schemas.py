"""Bodies and answers of the models API. Bodies forbid unknown fields, and none of them can say
who acted: the actor is the API key's name and the source is ``api``, always."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from omniwatch.modelops.records import Decision
from omniwatch.serving.schemas import Finite, Strict

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$"), Field(examples=["omniwatch-liquid"])]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$"), Field(examples=["2"])]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
DEFAULT_MODEL = "omniwatch-liquid"


class ModelRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_name": DEFAULT_MODEL}, {}]})

    model_name: ModelName = DEFAULT_MODEL


class GateRequest(ModelRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_name": DEFAULT_MODEL},
                                                              {"model_name": DEFAULT_MODEL, "version": "2"}]})

    version: Version | None = Field(default=None, description="Default: the version holding alias `challenger`.")


class AdvanceRequest(ModelRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model_name": DEFAULT_MODEL, "reason": "Shadow windows reviewed with the desk; moving the rollout on."}]})

    reason: Reason = Field(description="Why a person moves the rollout on (stored in the audit log).")


class AuditNoteRequest(ModelRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model_name": DEFAULT_MODEL, "reason": "Checked the drift report by hand: funding features only.",
         "version": "1", "metrics": {"psi_max": 0.08, "feature": "funding_rate_z", "reviewed": True}}]})

    reason: Reason
    version: Version | None = None
    metrics: Annotated[dict[MetricName, Finite | str | bool | None], Field(max_length=64)] = Field(
        default_factory=dict)


class DecisionResponse(Decision):
    """The decision record as stored (``omniwatch.modelops.records.Decision``) and its audit row."""

    audit_id: int = Field(description="model_promotions.id of the audit row.")


class VersionState(BaseModel):
    version: str
    status: str | None
    rollout_stage: int | None
    aliases: list[str]
    skill: Literal["demonstrated", "no_demonstrated_skill"] = Field(
        description="Judged at registration on the walk-forward at the traded horizon (beats the better "
                    "constant sign and the circular-shift null). Without it: served for monitoring, rejected "
                    "by the gate, no live orders (model_not_validated).")
    skill_reason: str


class AuditEntry(BaseModel):
    id: int
    action: str
    outcome: str | None
    model_version: str | None
    alias: str | None
    from_version: str | None
    to_version: str | None
    rollout_stage: int | None
    actor: str
    source: str | None
    reason: str
    window: dict[str, Any] | None
    thresholds: dict[str, Any] | None
    metrics: dict[str, Any] | None
    created_at: datetime | None


class RolloutStateResponse(BaseModel):
    model_name: str
    aliases: dict[str, str]
    versions: list[VersionState]
    candidate: str | None
    stage: int = Field(description="The candidate's share of forecasts and positions, percent (0: no rollout).")
    stages: list[int]
    clock: datetime = Field(description="The evaluation clock: newest bar (replay) or wall clock (live).")
    recent_decisions: list[AuditEntry]
