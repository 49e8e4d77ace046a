"""Vocabulary and data access shared by every part of the drift engine.

Profiles, statistics, calibration and verdicts all read columns the same way (NaN and +-inf are
missing, booleans are numbers, anything else is text) and fan per-column work out to threads the
same way; one definition keeps a profile and the check that reads it in agreement.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical", "binary"]
Role = Literal["feature", "prediction", "label"]
Mode = Literal["auto", "exact", "sketch"]
Verdict = Literal["ok", "warn", "error"]
DataLike = pd.DataFrame | Mapping[str, Any]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

KINDS: tuple[Kind, ...] = ("numeric", "categorical", "binary")
VERDICTS: tuple[Verdict, ...] = ("ok", "warn", "error")

NUMERIC_MEASURES = ("ks", "wasserstein_normalized", "psi", "js")
CATEGORICAL_MEASURES = ("psi", "js")
BINARY_MEASURES = ("rate_difference", "psi", "js")
MEASURES_BY_KIND: dict[str, tuple[str, ...]] = {
    "numeric": NUMERIC_MEASURES,
    "categorical": CATEGORICAL_MEASURES,
    "binary": BINARY_MEASURES,
}


def columns_of(data: DataLike) -> list[str]:
    return [str(name) for name in data.columns] if isinstance(data, pd.DataFrame) else list(data)


def column_values(data: DataLike, name: str) -> np.ndarray:
    column = data[name]
    if isinstance(column, pd.Series):
        if column.dtype == np.float64:
            return column.to_numpy()  # a view: NaN already marks missing values
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        return column.to_numpy(dtype=object)
    return np.asarray(column)


def is_numeric_column(data: DataLike, name: str) -> bool:
    column = data[name]
    dtype = column.dtype if isinstance(column, pd.Series) else np.asarray(column).dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def finite_sorted(column: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted finite values and the count of the rest (NaN, +-inf count as missing)."""
    values = np.array(column, dtype=np.float64)  # a copy we may sort in place
    values.sort()
    low = int(np.searchsorted(values, -np.inf, "right"))
    high = int(np.searchsorted(values, np.inf, "left"))
    return values[low:high], values.size - (high - low)


def rows_of(data: DataLike) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    return max((len(data[name]) for name in data), default=0)


def split_rows(data: DataLike, column: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The columns ``names`` of each value's rows (values as text, missing ones dropped).

    One stable sort of the value codes, then one take per column and value: the rows of every
    slice together cost about one copy of the profiled columns.
    """
    codes, uniques = pd.factorize(pd.Series(column_values(data, column), dtype=object), sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1), "left")
    arrays = {name: column_values(data, name) for name in names}
    rows: dict[str, np.ndarray] = {}
    for index, unique in enumerate(uniques):
        chosen = order[bounds[index] : bounds[index + 1]]
        value = str(unique)
        rows[value] = np.sort(np.concatenate((rows[value], chosen))) if value in rows else chosen
    return {
        value: {name: array[chosen] for name, array in arrays.items()}
        for value, chosen in rows.items()
    }


def map_in_threads(
    function: Callable[[_Item], _Result], items: Sequence[_Item], workers: int | None
) -> list[_Result]:
    """Run per-column work in threads; NumPy's sorts and merges release the GIL."""
    count = workers if workers is not None else min(4, os.cpu_count() or 1)
    count = max(1, min(count, len(items)))
    if count == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(function, items))
