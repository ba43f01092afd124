"""Why one input lands where it does: its mixture of archetypes."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, validate_params

from .._torch import is_tensor, to_numpy
from ._checks import check_fitted_archetypes
from ._interpretation import nearest_samples


@dataclass
class LocalExplanation:
    """One input as a mixture of archetypes.

    Attributes
    ----------
    coefficients : ndarray of shape (n_archetypes,)
        Its point on the simplex, ``argmin_s ||f - Zᵀs||`` with ``s >= 0, sum(s) = 1``.
    top_archetypes : ndarray of shape (n_top,)
        Archetypes by decreasing coefficient.
    top_coefficients : ndarray of shape (n_top,)
    exemplars : ndarray of shape (n_top, n_exemplars)
        For each top archetype, the training samples closest to it (indices into the data
        the model was fitted on).
    residual : float
        ``||f - Zᵀs||``, what the archetypes leave unexplained.
    relative_residual : float
        ``residual / ||f||`` (NaN for an input of zeros).
    """

    coefficients: np.ndarray
    top_archetypes: np.ndarray
    top_coefficients: np.ndarray
    exemplars: np.ndarray
    residual: float
    relative_residual: float


def _norm(vector: np.ndarray) -> float:
    """Euclidean norm that neither overflows nor underflows at any representable scale
    (the squares of 1e200 or 1e-200 do)."""
    largest = float(np.abs(vector).max(initial=0.0))
    return largest * float(np.linalg.norm(vector / largest)) if largest > 0 else 0.0


@validate_params(
    {
        "n_top": [Interval(Integral, 1, None, closed="left")],
        "n_exemplars": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def explain_sample(estimator, sample, *, n_top: int = 3, n_exemplars: int = 5) -> LocalExplanation:
    """Explain one input by its archetype coefficients, top archetypes and residual.

    Parameters
    ----------
    estimator : fitted ArchetypalAnalysis or Pipeline ending in one
        With a pipeline (e.g. ``TorchLayerFeatures`` then ``ArchetypalAnalysis``), the
        sample goes through the earlier steps first.
    sample : array-like or Tensor of shape (1, ...)
        One input, with its sample axis. A tensor that requires grad is explained by its
        value (nothing is differentiated).
    n_top : int, default=3
        Archetypes to report.
    n_exemplars : int, default=5
        Nearest training samples per reported archetype.

    Returns
    -------
    LocalExplanation

    Raises
    ------
    NotFittedError
        When ``estimator`` is not fitted.
    """
    sample = sample.detach() if is_tensor(sample) else sample
    shape = np.shape(sample)
    if len(shape) < 2 or shape[0] != 1:
        raise ValueError(
            "sample must hold exactly one input with its sample axis, shape (1, ...); got "
            f"shape {shape}. Pass X[i : i + 1]."
        )
    model = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    check_fitted_archetypes(model)
    n_archetypes, n_fitted = model.coefficients_.shape[1], model.coefficients_.shape[0]
    if n_top > n_archetypes:
        raise ValueError(f"n_top must be between 1 and {n_archetypes}, got {n_top}.")
    if n_exemplars > n_fitted:
        raise ValueError(
            f"n_exemplars must be between 1 and {n_fitted} (the samples the model was "
            f"fitted on), got {n_exemplars}."
        )
    if isinstance(estimator, Pipeline):
        sample = estimator[:-1].transform(sample)
    features = np.asarray(to_numpy(sample), dtype=np.float64).reshape(-1)
    coefficients = np.asarray(model.transform(sample), dtype=np.float64)[0]
    residual = _norm(features - coefficients @ model.archetypes_)
    top = np.argsort(-coefficients, kind="stable")[:n_top]
    exemplars, _ = nearest_samples(model.coefficients_, n_exemplars)
    norm = _norm(features)
    return LocalExplanation(
        coefficients=coefficients,
        top_archetypes=top,
        top_coefficients=coefficients[top],
        exemplars=exemplars[top],
        residual=residual,
        relative_residual=residual / norm if norm > 0 else float("nan"),
    )
