"""Initial archetypes: data points chosen far apart (FurthestSum, AA++) or at random."""

from __future__ import annotations

import numpy as np
import torch

from ._rows import CentredRows
from ._simplex import simplex_least_squares


def _distances_to(data: CentredRows, index: int) -> torch.Tensor:
    """Euclidean distances of every row of the data to row ``index``."""
    point = data.rows([index])[0]
    squared = data.squared_norms - 2 * data.inner(point[None])[0] + point @ point
    return squared.clamp_min(0).sqrt()


def furthest_sum(data: CentredRows, n_archetypes: int, rng, n_refinements: int = 10):
    """FurthestSum (Mørup & Hansen 2012): points with the largest summed distances.

    Starting from a random row, repeatedly add the row whose summed distance to the
    rows chosen so far is largest. Then ``n_refinements`` times drop the oldest choice
    and add the furthest row from the others, which removes the random start. The
    refinements mostly pick rows chosen before, whose distances are kept rather than
    recomputed: each new row costs a pass over the data.

    Returns
    -------
    ndarray of shape (n_archetypes,)
        Row indices of the chosen points.
    """
    distances = {}

    def distances_of(row: int) -> torch.Tensor:
        if row not in distances:
            distances[row] = _distances_to(data, row)
        return distances[row].double()

    chosen = [int(rng.randint(data.n_samples))]
    summed = distances_of(chosen[0]).clone()
    for step in range(n_archetypes - 1 + n_refinements):
        if step >= n_archetypes - 1:
            summed -= distances_of(chosen.pop(0))
        candidates = summed.clone()
        candidates[data.owned(chosen)[1]] = -np.inf
        new = int(data.argmax(candidates))
        chosen.append(new)
        summed += distances_of(new)
    return np.array(chosen)


def aa_plus_plus(data: CentredRows, n_archetypes: int, rng):
    """AA++ (Mair & Sjölund 2023): sample points by their squared distance to the hull.

    The first point is drawn uniformly; each next one with probability proportional to
    its squared distance to the convex hull of the points chosen so far.

    Returns
    -------
    ndarray of shape (n_archetypes,)
    """
    chosen = [int(rng.randint(data.n_samples))]
    for _ in range(n_archetypes - 1):
        hull = data.rows(chosen)
        cross, gram = data.inner(hull), hull @ hull.T
        coefficients, _ = simplex_least_squares(cross, gram, max_iter=200)
        residual = (
            data.squared_norms
            - 2 * (cross * coefficients).sum(dim=0)
            + ((gram @ coefficients) * coefficients).sum(dim=0)
        )
        weights = residual.double().clamp_min(0)
        weights[data.owned(chosen)[1]] = 0
        if float(data.all_sum(weights.sum())) <= 0:
            remaining = np.setdiff1d(np.arange(data.n_samples), chosen)
            chosen.append(int(rng.choice(remaining)))
            continue
        chosen.append(data.weighted_choice(weights, rng.random_sample()))
    return np.array(chosen)


def random_rows(data: CentredRows, n_archetypes: int, rng):
    """Distinct rows drawn uniformly at random."""
    return rng.choice(data.n_samples, size=n_archetypes, replace=False)


INITIALISATIONS = {"furthest_sum": furthest_sum, "aa++": aa_plus_plus, "random": random_rows}
