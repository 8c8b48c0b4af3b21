"""The project's one JSON sanitiser: any value we store or show as JSON -> plain JSON-able Python.

JSON has no NaN or infinity (PostgreSQL's ``json`` refuses them, ``json.dumps(allow_nan=False)``
too) and no timestamps, numpy scalars or pandas missing markers. :func:`json_safe` maps them, in
nested dicts, lists and arrays, to what JSON has:

* ``None``, NaN, +-inf, ``pd.NaT``, ``pd.NA`` -> ``None``;
* numpy scalars -> the Python number or bool; arrays, Series, tuples and sets -> lists;
* datetimes, dates and times (``pd.Timestamp`` included) -> ISO 8601 text; timedeltas -> seconds;
* mapping keys -> ``str``;
* anything else (pydantic models, dataclasses, enums, UUID, Decimal, paths) -> pydantic's JSON mode
  (``pydantic_core.to_jsonable_python``), and then the rules above.

A value that none of these covers raises ``TypeError``: a silent ``str(value)`` would store text
nobody can read back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = ["json_safe"]

_SEQUENCES = (list, tuple, set, frozenset, np.ndarray, pd.Series, pd.Index)


def json_safe(value: Any) -> Any:
    """``value`` as JSON-able Python (see the module docstring for the rules)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, _SEQUENCES):
        return [json_safe(v) for v in value]
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()  # np.float64 -> float, np.int64 -> int, np.bool_ -> bool, ...
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    try:
        plain = to_jsonable_python(value, inf_nan_mode="null", fallback=_nested)
    except PydanticSerializationError as exc:
        raise TypeError(f"{type(value).__name__} is not JSON-serialisable: {exc}") from None
    return json_safe(plain)


def _nested(value: Any) -> Any:
    """numpy/pandas values inside a pydantic model or dataclass; anything else is an error."""
    if isinstance(value, (np.generic, np.ndarray, pd.Series, pd.Index)) or value is pd.NA:
        return json_safe(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
