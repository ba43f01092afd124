"""Checks of tabular input shared by the estimators, before scikit-learn's ``validate_data``."""

from __future__ import annotations

import sys

# What pandas infers for an object column whose values are all numbers (or missing).
_NUMERIC_INFERRED = {"floating", "integer", "mixed-integer-float", "decimal", "boolean", "empty"}


def check_numeric_columns(X, name: str = "X") -> None:
    """Refuse a pandas DataFrame with categorical, text or other non-numeric columns, naming them.

    Numeric, boolean and nullable numeric columns pass, and object columns holding only
    numbers; so does anything that is not a DataFrame. Categories are refused even when
    they are numbers, since their codes or values rarely mean a distance.

    Raises
    ------
    ValueError
        Naming every such column, its dtype, and how to encode it.
    """
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(X, pandas.DataFrame):
        return
    offending = [
        f"{column!r} ({dtype})"
        for column, dtype in X.dtypes.items()
        if not _is_numeric(X[column], pandas.api.types)
    ]
    if offending:
        raise ValueError(
            f"{name} has non-numeric column(s) {', '.join(offending)}; archetypes need numbers. "
            "Encode categories and text first (sklearn.preprocessing.OneHotEncoder or "
            "pandas.get_dummies), convert numbers stored as text or categories with "
            ".astype(float), or drop the columns."
        )


def _is_numeric(column, types) -> bool:
    if types.is_object_dtype(column.dtype):  # numbers held as Python objects are numbers
        return types.infer_dtype(column, skipna=True) in _NUMERIC_INFERRED
    return types.is_numeric_dtype(column.dtype)
