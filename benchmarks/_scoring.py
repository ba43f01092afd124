"""The one scorer applied to every tool's fit (the protocol of ``BENCHMARKS.md``).

Every tool hands over the same three factors of ``X ~ S Z`` with ``Z = C X``:
``coefficients`` S (n_samples x n_archetypes), ``archetype_weights`` C
(n_archetypes x n_samples, dense or scipy sparse) and ``archetypes`` Z
(n_archetypes x n_features). Scores are computed in float64, row block by row block,
so no n_samples x n_samples object and no float64 copy of X is ever formed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

SIMPLEX_MIN_ENTRY = -1e-6
SIMPLEX_SUM_TOL = 1e-4
# Relative tolerance on ||C X - Z|| / ||Z||: loose enough for float32 fits.
ARCHETYPES_MATCH_TOL = 1e-4
ROW_BLOCK = 8192


def _row_blocks(n_rows: int, block: int = ROW_BLOCK):
    for start in range(0, n_rows, block):
        yield slice(start, min(start + block, n_rows))


def _column_mean(X) -> np.ndarray:
    total = np.zeros(X.shape[1])
    for rows in _row_blocks(X.shape[0]):
        total += np.asarray(X[rows], dtype=np.float64).sum(axis=0)
    return total / X.shape[0]


def total_sum_of_squares(X) -> float:
    """``||X - mean(X)||_F^2`` in float64, by row blocks."""
    mean = _column_mean(X)
    return sum(
        float(np.sum((np.asarray(X[rows], dtype=np.float64) - mean) ** 2))
        for rows in _row_blocks(X.shape[0])
    )


def residual_sum_of_squares(X, coefficients, archetypes) -> float:
    """``||X - S Z||_F^2`` in float64, by row blocks."""
    archetypes = np.asarray(archetypes, dtype=np.float64)
    return sum(
        float(np.sum((np.asarray(X[rows], dtype=np.float64)
                      - np.asarray(coefficients[rows], dtype=np.float64) @ archetypes) ** 2))
        for rows in _row_blocks(X.shape[0])
    )


def explained_variance(X, coefficients, archetypes) -> float:
    """Centred explained variance ``1 - ||X - S Z||^2 / ||X - mean(X)||^2``."""
    return 1.0 - residual_sum_of_squares(X, coefficients, archetypes) / total_sum_of_squares(X)


def simplex_violation(rows_on_simplex) -> dict:
    """How far the rows of a matrix (dense or sparse) are from the probability simplex.

    Returns
    -------
    dict with ``min_entry`` (most negative entry) and ``max_sum_error``
    (largest ``|row sum - 1|``).
    """
    if sp.issparse(rows_on_simplex):
        rows_on_simplex = rows_on_simplex.tocsr()
        min_entry = float(rows_on_simplex.min())
        row_sums = np.asarray(rows_on_simplex.sum(axis=1), dtype=np.float64).ravel()
    else:
        rows_on_simplex = np.asarray(rows_on_simplex)
        min_entry = float(rows_on_simplex.min())
        row_sums = rows_on_simplex.sum(axis=1, dtype=np.float64)
    return {"min_entry": min_entry, "max_sum_error": float(np.max(np.abs(row_sums - 1.0)))}


def _is_on_simplex(violation: dict) -> bool:
    return (violation["min_entry"] >= SIMPLEX_MIN_ENTRY
            and violation["max_sum_error"] <= SIMPLEX_SUM_TOL)


def archetypes_mismatch(X, archetype_weights, archetypes) -> float:
    """``||C X - Z||_F / ||Z||_F`` in float64: whether the archetypes are the mixtures C claims."""
    archetypes = np.asarray(archetypes, dtype=np.float64)
    mixed = np.zeros_like(archetypes)
    weights = (archetype_weights.tocsc() if sp.issparse(archetype_weights)
               else np.asarray(archetype_weights))
    for rows in _row_blocks(X.shape[0]):
        block_weights = weights[:, rows]
        if sp.issparse(block_weights):
            block_weights = block_weights.toarray()
        mixed += np.asarray(block_weights, dtype=np.float64) @ np.asarray(X[rows], dtype=np.float64)
    return float(np.linalg.norm(mixed - archetypes) / max(np.linalg.norm(archetypes), 1e-300))


def recovery_error(X, true_archetypes, archetypes) -> float:
    """Mean distance between Hungarian-matched true and estimated archetypes.

    Divided by the RMS distance of the samples to their mean, so it is scale-free.
    """
    distances = cdist(np.asarray(true_archetypes, dtype=np.float64),
                      np.asarray(archetypes, dtype=np.float64))
    true_index, estimated_index = linear_sum_assignment(distances)
    rms_spread = np.sqrt(total_sum_of_squares(X) / X.shape[0])
    return float(distances[true_index, estimated_index].mean() / rms_spread)


def score_fit(X, coefficients, archetype_weights, archetypes, true_archetypes=None) -> dict:
    """Every figure of the protocol for one fit.

    Returns
    -------
    dict with ``ev``, ``simplex_ok`` (S and C rows on the simplex and ``Z = C X``),
    the violations behind it, and ``recovery`` (None without true archetypes).
    """
    coefficients_violation = simplex_violation(coefficients)
    weights_violation = simplex_violation(archetype_weights)
    mismatch = archetypes_mismatch(X, archetype_weights, archetypes)
    return {
        "ev": explained_variance(X, coefficients, archetypes),
        "simplex_ok": bool(_is_on_simplex(coefficients_violation)
                           and _is_on_simplex(weights_violation)
                           and mismatch <= ARCHETYPES_MATCH_TOL),
        "coefficients_violation": coefficients_violation,
        "archetype_weights_violation": weights_violation,
        "archetypes_mismatch": mismatch,
        "recovery": (None if true_archetypes is None
                     else recovery_error(X, true_archetypes, archetypes)),
    }
