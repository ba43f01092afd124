"""The point of a convex hull nearest to a target, by an active set warm-started from a
support: the archetype weights' exact update, which gradient steps reach only slowly
where the data's features lie on scales orders of magnitude apart."""

from __future__ import annotations

import numpy as np

# a candidate enters the support where moving towards it lowers the distance by more than
# this fraction of what first-order terms of its size can resolve
_ENTRY_TOLERANCE = 1e-9


def nearest_in_hull(
    points: np.ndarray, target: np.ndarray, weights: np.ndarray, scale: float
) -> np.ndarray:
    """Weights ``c`` on the simplex minimising ``||points^T c - target||``.

    An active set (Lawson and Hanson's, with the sum constraint): on the current support
    the equality-constrained least squares are solved in differences to one support
    point, ``sum_i c_i (p_i - target)`` with ``sum c = 1`` (no Gram matrix, whose
    condition number would be the square of the points'); where that solution leaves the
    simplex the iterate moves towards it until a weight reaches zero, which leaves the
    support; where it stays, the point that most lowers the distance enters. Starting
    from ``weights`` (feasible), a few rounds usually suffice.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_features)
    target : ndarray of shape (n_features,)
    weights : ndarray of shape (n_points,)
        A feasible start: nonnegative, summing to one.
    scale : float
        The largest norm of the points, which sets the resolution of a point's entry.

    Returns
    -------
    ndarray of shape (n_points,)
    """
    c = weights.copy()
    support = c > 0
    for _ in range(4 * len(c) + 8):  # a cap against cycling in degenerate sets
        trial = _affine_least_squares(points, target, np.flatnonzero(support))
        leaving = support & (trial <= 0)
        if leaving.any():
            ratio = c[leaving] / (c[leaving] - trial[leaving])
            if not ratio.min() > 0:  # the point that just entered leaves at once
                break
            c += ratio.min() * (trial - c)
            c[np.flatnonzero(leaving)[np.argmin(ratio)]] = 0.0
            c = np.where(c > 0, c, 0.0)
            support = c > 0
            continue
        c = trial
        nearest = c[support] @ points[support]
        residual = nearest - target
        # moving weight towards point j changes the squared distance at rate
        # 2 (p_j - nearest) . residual
        rates = points @ residual - nearest @ residual
        rates[support] = np.inf
        entering = int(np.argmin(rates))
        reach = scale + np.sqrt(nearest @ nearest)  # bounds ||p_j - nearest||
        if not rates[entering] < -_ENTRY_TOLERANCE * reach * np.sqrt(residual @ residual):
            break
        support[entering] = True
    return c


def _affine_least_squares(points, target, support) -> np.ndarray:
    """Weights summing to one on ``support`` (zero elsewhere) whose combination of
    ``points`` is nearest to ``target``, without sign constraints (least norm where the
    support's points are affinely dependent)."""
    weights = np.zeros(len(points))
    anchor, others = support[0], support[1:]
    if others.size:
        directions = (points[others] - points[anchor]).T
        steps = np.linalg.lstsq(directions, target - points[anchor], rcond=None)[0]
        weights[others] = steps
        weights[anchor] = 1.0 - steps.sum()
    else:
        weights[anchor] = 1.0
    return weights
