"""How reproducible archetypes are: soft NMI between coefficient matrices, archetype matching."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._checks import as_finite_matrix, check_fitted_archetypes

# Information (in nats) below this is rounding noise: a single sample, or identical rows,
# carry none, but their computed mutual information can be +-1e-16.
_ROUNDING_NATS = 1e-12


def _mutual_information(joint: np.ndarray) -> float:
    """Mutual information of a joint distribution ``(K1, K2)``, summing only its positive cells."""
    rows = joint.sum(axis=1, keepdims=True)
    columns = joint.sum(axis=0, keepdims=True)
    positive = joint > 0
    # a positive cell has positive marginals, so the ratio is finite where it is summed
    ratio = joint[positive] / (rows @ columns)[positive]
    return float(np.sum(joint[positive] * np.log(ratio)))


def _joint(coefficients_a: np.ndarray, coefficients_b: np.ndarray) -> np.ndarray:
    product = coefficients_a.T @ coefficients_b
    total = product.sum()
    if total <= 0:
        raise ValueError("soft_nmi needs non-negative coefficients with a positive total.")
    return product / total


def soft_nmi(coefficients_a, coefficients_b) -> float:
    """Soft normalised mutual information between two archetype coefficient matrices.

    With ``P = S_aᵀ S_b / sum(S_aᵀ S_b)`` the joint use of archetype ``i`` of the first
    model and ``j`` of the second over the same samples,
    ``NMI = 2 MI(S_a, S_b) / (MI(S_a, S_a) + MI(S_b, S_b))`` (Wedenborg's stability measure).
    Zero cells of ``P`` add nothing (a masked sum), so sparse coefficients and different
    numbers of archetypes are fine.

    Parameters
    ----------
    coefficients_a : array-like of shape (n_samples, n_archetypes_a)
        Rows on the simplex, e.g. ``coefficients_`` of a fitted model.
    coefficients_b : array-like of shape (n_samples, n_archetypes_b)
        Coefficients of the same samples under another model.

    Returns
    -------
    float
        1 for the same partition up to a permutation of archetypes, about 0 for unrelated
        ones; NaN when neither model carries information (one archetype each, a single
        sample, or identical rows). It is not bounded by 1: with very soft coefficients
        (rows near the centre of the simplex) the self-information terms are small.

    Raises
    ------
    ValueError
        When either matrix is empty or holds NaN, infinity or negative values, or when
        they differ in their number of rows.
    """
    coefficients_a = as_finite_matrix(coefficients_a, "coefficients_a")
    coefficients_b = as_finite_matrix(coefficients_b, "coefficients_b")
    if len(coefficients_a) != len(coefficients_b):
        raise ValueError(
            "soft_nmi compares coefficients of the same samples, got "
            f"{len(coefficients_a)} and {len(coefficients_b)} rows."
        )
    if (coefficients_a < 0).any() or (coefficients_b < 0).any():
        raise ValueError("soft_nmi expects non-negative coefficients (rows on the simplex).")
    self_information = _mutual_information(
        _joint(coefficients_a, coefficients_a)
    ) + _mutual_information(_joint(coefficients_b, coefficients_b))
    if self_information <= _ROUNDING_NATS:
        return float("nan")
    # the mutual information is non-negative; below zero is rounding
    mutual = max(_mutual_information(_joint(coefficients_a, coefficients_b)), 0.0)
    return 2.0 * mutual / self_information


@dataclass
class ArchetypeMatching:
    """A one-to-one matching of two sets of archetypes.

    Attributes
    ----------
    indices_a, indices_b : ndarray of shape (n_pairs,)
        Archetype ``indices_a[p]`` of the first set is paired with ``indices_b[p]`` of the
        second; ``n_pairs = min(n_archetypes_a, n_archetypes_b)``.
    cosine : ndarray of shape (n_pairs,)
        Cosine similarity of each pair.
    mean_cosine : float
        Mean of ``cosine``.
    """

    indices_a: np.ndarray
    indices_b: np.ndarray
    cosine: np.ndarray
    mean_cosine: float


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    # rows are first divided by their largest entry: the squares of rows at 1e200 overflow
    largest = np.abs(matrix).max(axis=1, keepdims=True)
    matrix = matrix / np.where(largest > 0, largest, 1.0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def match_archetypes(archetypes_a, archetypes_b) -> ArchetypeMatching:
    """Pair two sets of archetypes one-to-one by the Hungarian algorithm on cosine similarity.

    Parameters
    ----------
    archetypes_a : array-like of shape (n_archetypes_a, n_features)
    archetypes_b : array-like of shape (n_archetypes_b, n_features)

    Returns
    -------
    ArchetypeMatching
        The pairing that maximises the total cosine similarity.
    """
    archetypes_a = as_finite_matrix(archetypes_a, "archetypes_a")
    archetypes_b = as_finite_matrix(archetypes_b, "archetypes_b")
    if archetypes_a.shape[1] != archetypes_b.shape[1]:
        raise ValueError(
            "match_archetypes expects two matrices (n_archetypes, n_features) with the same "
            f"n_features, got shapes {archetypes_a.shape} and {archetypes_b.shape}."
        )
    similarity = _unit_rows(archetypes_a) @ _unit_rows(archetypes_b).T
    indices_a, indices_b = linear_sum_assignment(similarity, maximize=True)
    cosine = similarity[indices_a, indices_b]
    return ArchetypeMatching(indices_a, indices_b, cosine, float(cosine.mean()))


@dataclass
class SeedStability:
    """Agreement between models fitted from different random seeds.

    Attributes
    ----------
    nmi : ndarray of shape (n_pairs,)
        :func:`soft_nmi` of the coefficients of each pair of models.
    cosine : ndarray of shape (n_pairs,)
        Mean matched cosine (:func:`match_archetypes`) of each pair.
    mean_nmi, mean_cosine : float
        Means over the ``n_models * (n_models - 1) / 2`` pairs.
    """

    nmi: np.ndarray
    cosine: np.ndarray
    mean_nmi: float
    mean_cosine: float


def seed_stability(models) -> SeedStability:
    """Mean pairwise agreement of models fitted on the same data from different seeds.

    Parameters
    ----------
    models : sequence of fitted ArchetypalAnalysis
        At least two; each needs ``coefficients_`` (same samples) and ``archetypes_``.

    Returns
    -------
    SeedStability
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"seed_stability needs at least 2 fitted models, got {len(models)}.")
    for model in models:
        check_fitted_archetypes(model, "models")
    pairs = list(itertools.combinations(models, 2))
    nmi = np.array([soft_nmi(a.coefficients_, b.coefficients_) for a, b in pairs])
    cosine = np.array(
        [match_archetypes(a.archetypes_, b.archetypes_).mean_cosine for a, b in pairs]
    )
    return SeedStability(nmi, cosine, float(nmi.mean()), float(cosine.mean()))
