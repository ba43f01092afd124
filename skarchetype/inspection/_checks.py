"""Checks of the inspection functions' inputs: every function refuses what it cannot read."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from .._torch import to_numpy


def as_finite_matrix(values, name: str) -> np.ndarray:
    """``values`` as a non-empty finite float64 matrix, refused otherwise naming ``name``."""
    if sp.issparse(values):  # ArchetypalAnalysis.archetype_weights_ is sparse
        values = values.toarray()
    try:
        matrix = np.asarray(to_numpy(values), dtype=np.float64)
    except (TypeError, ValueError) as error:
        message = f"{name} must be an array of numbers; converting it failed: {error}"
        raise TypeError(message) from None
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {matrix.shape}.")
    if matrix.size == 0:
        raise ValueError(f"{name} is empty (shape {matrix.shape}); pass one row or more.")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinity; pass the finite values of a model.")
    return matrix


def check_labels(y, n_samples: int) -> np.ndarray:
    """``y`` as a 1-D array with one label per sample."""
    y = np.asarray(to_numpy(y))
    if y.shape != (n_samples,):
        raise ValueError(
            f"y must have shape ({n_samples},), one label per row of the coefficients, "
            f"got {y.shape}."
        )
    return y


def check_fitted_archetypes(model, name: str = "estimator") -> None:
    """Raise NotFittedError for an unfitted model, TypeError for one without archetypes."""
    check_is_fitted(model)
    if not hasattr(model, "archetypes_"):
        raise TypeError(
            f"{name} must be a fitted ArchetypalAnalysis (or a pipeline ending in one), got a "
            f"{type(model).__name__}."
        )


def is_integer(value) -> bool:
    """Whether ``value`` is an integer (not a bool, nor a float such as 3.0)."""
    return isinstance(value, Integral) and not isinstance(value, bool)
