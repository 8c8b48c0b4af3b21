"""Every knob of Omniwatch, read once from the environment (pydantic-settings).

Defaults give the embedded setup: SQLite under ``OMNIWATCH_HOME`` (``.omniwatch/``), the bundled
real sample as the replay source, a local MLflow store. Production sets
``OMNIWATCH_DATABASE_URL``, ``OMNIWATCH_SOURCE=live`` and the MLflow tracking URI.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omniwatch.modelops.thresholds import (
    DriftThresholds,
    GateThresholds,
    RollbackThresholds,
    RolloutThresholds,
    SkillThresholds,
)

BUNDLED_SAMPLE_DIR = Path(__file__).parent / "sample"
# The bundled sample's span (the window where bars, funding and on-chain data all overlap).
SAMPLE_START = date(2024, 4, 16)
SAMPLE_END = date(2025, 9, 26)
# Training protocol sizes (``omniwatch.resources.training.TrainingResource`` fields) by profile.
# ``tiny`` runs the same code paths in seconds: the end-to-end test and a quick local demo.
TRAINING_PROFILES: dict[str, dict[str, int]] = {
    "full": {},
    "tiny": {"kfold_splits": 2, "wf_test_windows": 2, "min_train_days": 45, "window_stride_hours": 12,
             "tsmixer_max_epochs": 1, "tsmixer_d_ff": 8, "lightgbm_max_rounds": 30},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIWATCH_", extra="ignore", env_nested_delimiter="__")

    home: Path = Field(default=Path(".omniwatch"), description="Folder holding all embedded state.")
    database_url: str | None = Field(
        default=None, description="Warehouse URL; default sqlite:///$OMNIWATCH_HOME/warehouse.db."
    )
    source: Literal["replay", "live"] = Field(
        default="replay", description="Connector mode: bundled/recorded replay or live HTTP."
    )
    replay_dir: Path = Field(default=BUNDLED_SAMPLE_DIR, description="Folder the replay source reads.")
    events_replay_dir: Path = Field(default=BUNDLED_SAMPLE_DIR / "events",
                                    description="Folder the events replay source reads.")
    sec_user_agent: str | None = Field(default=None, description="Descriptive User-Agent SEC requires (live).")
    sec_ciks: Annotated[list[str], NoDecode] = Field(default=[], description="CIKs the live EDGAR source tracks.")
    liquid_symbols: Annotated[list[str], NoDecode] = Field(
        default=["BTC", "ETH", "SOL"],
        validation_alias=AliasChoices("LIQUID_SYMBOLS", "OMNIWATCH_LIQUID_SYMBOLS"),
        description="Comma-separated track symbols of the liquid track.",
    )
    partitions_start: date = Field(default=SAMPLE_START, description="First daily partition.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///$OMNIWATCH_HOME/mlflow.db."
    )
    git_url: str | None = Field(
        default=None, description="Repository URL the Dagster UI's source-code links point into (else local files).")
    git_branch: str = Field(default="main", description="Branch of git_url the source-code links use.")
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="The MLflow UI the Dagster UI links model assets to (make mlflow-ui's default address).",
    )

    training_profile: Literal["full", "tiny"] = Field(
        default="full", description="Training protocol size: full, or tiny (seconds; the end-to-end test)."
    )
    training_device: str = Field(default="cuda:1", description="Training device; CPU when absent.")
    serving_device: str = Field(default="cuda:0", description="Inference device; CPU when absent.")

    # Live connectors: public endpoints, no keys needed.
    coinbase_base_url: str = "https://api.exchange.coinbase.com"
    binance_futures_base_url: str = "https://fapi.binance.com"
    coinmetrics_base_url: str = "https://community-api.coinmetrics.io/v4"
    # CryptoPanic's posts API needs the user's own token; live news leaves CryptoPanic out without it.
    cryptopanic_token: SecretStr | None = Field(
        default=None, description="CryptoPanic API auth token (live news); never logged or shown.")
    cryptopanic_base_url: str = "https://cryptopanic.com/api/developer/v2"
    http_timeout_s: float = 10.0
    http_max_retries: int = 5
    coinbase_requests_per_second: float = 8.0
    binance_requests_per_second: float = 2.0
    coinmetrics_requests_per_second: float = 1.5

    # Data-quality thresholds (blocking checks).
    max_gap_ratio: float = Field(default=0.02, description="Max share of missing hourly bars.")
    max_abs_hourly_log_return: float = Field(default=0.25, description="Outlier bound per hour.")
    max_bar_lag_hours: float = Field(default=3.0, description="Freshness: newest bar's allowed lag.")

    automation_running: bool = Field(
        default=False,
        description="Schedules and sensors start RUNNING (deploy sets true); the embedded default starts them stopped.",
    )
    sensor_interval_s: int = Field(
        default=60, ge=1,
        description="Minimum seconds between two ticks of a model-ops sensor (the daemon's pace). Replay-as-live "
                    "sets 1: its clock is the replayed hour, which passes in seconds (Dagster reads 0 as 30).",
    )
    training_cron: str = Field(default="0 3 * * 1", description="Weekly retraining (UTC cron).")
    vc_cron: str = Field(default="0 4 1 * *", description="Monthly VC retraining (UTC cron).")

    # Model operations (DESIGN section 7): the rules' thresholds, OMNIWATCH_<RULE>__<FIELD>.
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    gate: GateThresholds = Field(default_factory=GateThresholds)
    rollout: RolloutThresholds = Field(default_factory=RolloutThresholds)
    rollback: RollbackThresholds = Field(default_factory=RollbackThresholds)
    skill: SkillThresholds = Field(default_factory=SkillThresholds)
    max_snapshot_age: timedelta = Field(
        default=timedelta(hours=2),
        description="Serving refuses a newest snapshot older than this (stale_features); seconds or ISO 8601.",
    )

    @field_validator("liquid_symbols", "sec_ciks", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value

    @field_validator("max_snapshot_age", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        """Seconds (``7200``), a number with a unit (``2h``, ``90m``, ``45s``) or ISO 8601 (``PT2H``)."""
        if isinstance(value, str):
            text = value.strip().lower()
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
                return timedelta(seconds=float(text[:-1]) * units[text[-1]])
            if text.replace(".", "", 1).isdigit():
                return timedelta(seconds=float(text))
        return value

    @property
    def warehouse_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home.resolve() / 'warehouse.db'}"

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home.resolve() / "mlartifacts"

    @property
    def dagster_dir(self) -> Path:
        return self.home.resolve() / "dagster"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home.resolve() / "checkpoints"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
