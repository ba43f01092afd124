"""Why one input lands where it does: its mixture of archetypes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

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
        ``residual / ||f||``.
    """

    coefficients: np.ndarray
    top_archetypes: np.ndarray
    top_coefficients: np.ndarray
    exemplars: np.ndarray
    residual: float
    relative_residual: float


def explain_sample(estimator, sample, *, n_top: int = 3, n_exemplars: int = 5) -> LocalExplanation:
    """Explain one input by its archetype coefficients, top archetypes and residual.

    Parameters
    ----------
    estimator : fitted ArchetypalAnalysis or Pipeline ending in one
        With a pipeline (e.g. ``TorchLayerFeatures`` then ``ArchetypalAnalysis``), the
        sample goes through the earlier steps first.
    sample : array-like or Tensor of shape (1, ...)
        One input, with its sample axis.
    n_top : int, default=3
        Archetypes to report.
    n_exemplars : int, default=5
        Nearest training samples per reported archetype.

    Returns
    -------
    LocalExplanation
    """
    if len(sample) != 1:
        raise ValueError(
            f"sample must hold exactly one input with its sample axis, shape (1, ...); got "
            f"{len(sample)} rows. Pass X[i : i + 1]."
        )
    model = estimator
    if isinstance(estimator, Pipeline):
        sample = estimator[:-1].transform(sample)
        model = estimator[-1]
    n_archetypes = len(model.archetypes_)
    if not 1 <= n_top <= n_archetypes:
        raise ValueError(f"n_top must be between 1 and {n_archetypes}, got {n_top}.")
    features = np.asarray(sample, dtype=np.float64).reshape(-1)
    coefficients = np.asarray(model.transform(sample), dtype=np.float64)[0]
    residual = float(np.linalg.norm(features - coefficients @ model.archetypes_))
    top = np.argsort(-coefficients, kind="stable")[:n_top]
    exemplars, _ = nearest_samples(model.coefficients_, n_exemplars)
    norm = float(np.linalg.norm(features))
    return LocalExplanation(
        coefficients=coefficients,
        top_archetypes=top,
        top_coefficients=coefficients[top],
        exemplars=exemplars[top],
        residual=residual,
        relative_residual=residual / norm if norm > 0 else float("nan"),
    )
