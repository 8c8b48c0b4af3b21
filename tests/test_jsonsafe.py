"""The one JSON sanitiser: every value the project stores or shows as JSON survives strict JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pydantic
import pytest

from omniwatch.jsonsafe import json_safe


class Side(enum.Enum):
    LONG = "long"


class Metrics(pydantic.BaseModel):
    sharpe: float
    as_of: datetime


@dataclasses.dataclass
class Window:
    start: date
    weights: np.ndarray


def test_missing_and_non_finite_become_null():
    values = [float("nan"), math.inf, -math.inf, np.float64("nan"), np.float32("inf"), pd.NaT, pd.NA, None]
    assert json_safe(values) == [None] * len(values)


def test_numpy_and_pandas_become_python_and_iso_text():
    safe = json_safe({"i": np.int64(3), "f": np.float64(1.5), "b": np.bool_(True),
                      "ts": pd.Timestamp("2024-01-01", tz="UTC"), "d": date(2024, 1, 2),
                      "td": pd.Timedelta(hours=1), "arr": np.array([1.0, np.nan]),
                      "series": pd.Series([1, 2]), 7: ("a", {"x"})})
    assert safe == {"i": 3, "f": 1.5, "b": True, "ts": "2024-01-01T00:00:00+00:00", "d": "2024-01-02",
                    "td": 3600.0, "arr": [1.0, None], "series": [1, 2], "7": ["a", ["x"]]}
    assert type(safe["i"]) is int and type(safe["b"]) is bool
    json.dumps(safe, allow_nan=False)


def test_models_dataclasses_and_enums_go_through_pydantic_json_mode():
    safe = json_safe({"m": Metrics(sharpe=float("nan"), as_of=datetime(2024, 1, 1, tzinfo=UTC)),
                      "w": Window(date(2024, 1, 1), np.array([0.5, np.inf])), "side": Side.LONG,
                      "gap": timedelta(minutes=1)})
    assert safe == {"m": {"sharpe": None, "as_of": "2024-01-01T00:00:00Z"},
                    "w": {"start": "2024-01-01", "weights": [0.5, None]}, "side": "long", "gap": 60.0}
    json.dumps(safe, allow_nan=False)


def test_a_value_json_cannot_hold_is_an_error_not_text():
    with pytest.raises(TypeError, match="object is not JSON-serialisable"):
        json_safe({"x": object()})
