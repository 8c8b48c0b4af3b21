"""What every feature's schemas share: UTC times, symbols, strict bodies, and the one error shape.
Each feature keeps its own models in ``serving/<feature>/schemas.py``; every body and answer is
modelled, so ``/docs`` is the contract, and bad input is a 422 that names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

Horizon = Literal["1h", "4h", "24h"]
HORIZONS: tuple[Horizon, ...] = ("1h", "4h", "24h")
Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,16}$"), Field(examples=["BTC"])]
EntityId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
RequestKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Targets = Annotated[list[Symbol], Field(min_length=1, max_length=64)]


def _to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:  # year 1 with a negative offset and the like
        raise ValueError("timestamp out of range") from exc
    if not 2000 <= utc.year <= 2100:
        raise ValueError("timestamp must lie in the years 2000-2100")
    return utc


UtcTime = Annotated[AwareDatetime, AfterValidator(_to_utc), Field(examples=["2024-08-30T12:00:00Z"])]


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped: a typo must not change a decision."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- errors
class ErrorItem(BaseModel):
    field: str
    reason: str
    type: str


class ErrorResponse(BaseModel):
    """Every non-2xx answer. ``code`` is typed (``omniwatch.errors.ErrorCode`` or the API's own)."""

    code: str = Field(description="What went wrong, typed: each status of a route lists the codes it can answer "
                                  "(validation_error, not_found, stale_features, model_artifact_missing, ...).")
    detail: str
    errors: list[ErrorItem] | None = None
    context: dict[str, Any] | None = None
