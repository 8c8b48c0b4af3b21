"""Error codes the seed system defined and its users rely on (DESIGN.md section 6)."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BLOCKED_BY_DATA_QUALITY = "blocked_by_data_quality"
    DAILY_LOSS_EXCEEDED = "daily_loss_exceeded"
    CONSECUTIVE_LOSS_EXCEEDED = "consecutive_loss_exceeded"
    MODEL_NOT_VALIDATED = "model_not_validated"
    MODEL_ARTIFACT_MISSING = "model_artifact_missing"
    INSUFFICIENT_FEATURES = "insufficient_features"
    INSUFFICIENT_PRICES = "insufficient_prices"

    @staticmethod
    def kill_switch(track: str, strategy_id: str) -> str:
        return f"kill_switch_triggered:{track}:{strategy_id}"


class BlockedByDataQuality(RuntimeError):
    """Raised when a blocking data-quality check failed on an input partition of a window."""

    code = ErrorCode.BLOCKED_BY_DATA_QUALITY

    def __init__(self, failures: list[dict]):
        self.failures = failures
        names = sorted({f"{f['asset_key']}.{f['check_name']}" for f in failures})
        super().__init__(f"{self.code}: {len(failures)} failed blocking check result(s) on input partitions: "
                         + ", ".join(names))
