"""The archetype weights ``C``, restricted to a working set of candidate rows.

``C`` (K x |W|) is a small dense problem however many samples there are: its blocks
read the data only through ``S^T S``, ``pull = S^T (X - S Z)`` (K x n_features) and the
working set's rows. Its blocks run on the host in float64, as numpy arrays: the
line-searched block takes dozens of operations on a few thousand entries per step, and
each costs a numpy call a fraction of a torch dispatch (synth20k, 12 x 112 weights:
2.8 ms a block of 5 steps in torch, 1.4 ms here), with no device synchronisation for the
accept/reject decisions. Products with the working set's rows, whose cost grows with
its size times ``n_features`` (relu50k: 20 x 1900 weights, 512 features), are taken
where the rows are, on the data's device in its dtype (:class:`WorkingSet`): in float64
on the host they took relu50k's blocks from 0.42 to 0.69 s a fit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._hull import nearest_in_hull

# halvings of the weights' step before a block gives up (2**-60: below any dtype's resolution)
_MAX_HALVINGS = 60
# the most a block of weight steps shrinks the next block's first step
_BLOCK_SHRINK = 2.0**-4


def on_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a float64 numpy array on the host (sharing its memory where it can)."""
    return tensor.to("cpu", torch.float64).numpy()


class WorkingSet:
    """Candidate rows for the archetypes, on the data's device in its dtype, with their
    Gram matrix while products through it are cheaper than through the rows (``gram``
    is None beyond: the set only grows). Products with the rows are taken there (on a
    GPU, where a working set of thousands of wide rows belongs) and handed to the
    weights' blocks on the host."""

    def __init__(self, data, indices):
        self.data = data
        self.indices = np.zeros(0, dtype=np.int64)
        self.rows = torch.zeros(0, data.shape[1], device=data.device, dtype=data.dtype)
        self.gram = torch.zeros(0, 0, device=data.device, dtype=data.dtype)
        self._host_rows = None
        self.extend(indices)

    def extend(self, indices) -> int:
        """Add the rows not already present; return how many were added."""
        new = np.setdiff1d(np.unique(indices), self.indices)
        if new.size:
            rows = self.data.rows(new)
            self.indices = np.concatenate([self.indices, new])
            if 2 * rows.shape[1] < len(self.indices):
                self.gram = None
            else:
                cross = self.rows @ rows.T
                self.gram = torch.cat([
                    torch.cat([self.gram, cross], dim=1),
                    torch.cat([cross.T, rows @ rows.T], dim=1),
                ])
            self.rows = torch.cat([self.rows, rows])
            self._host_rows = None
        return new.size

    @property
    def host_rows(self) -> np.ndarray:
        """The rows in float64 on the host, for the exact weights block: copied when first
        asked for after the set grew (the line-searched block never asks)."""
        if self._host_rows is None:
            self._host_rows = on_host(self.rows)
        return self._host_rows

    def on_device(self, array: np.ndarray) -> torch.Tensor:
        """A host array on the data's device, in its dtype."""
        return torch.as_tensor(array).to(self.rows)

    def archetypes(self, C: np.ndarray) -> torch.Tensor:
        """``C X_W`` on the data's device, in its dtype."""
        return self.on_device(C) @ self.rows

    def gradient(self, pull: torch.Tensor) -> np.ndarray:
        """``-pull X_W^T``, half the loss's gradient in ``C`` (``pull`` of shape
        (K, n_features) on the device), on the host."""
        return -on_host(pull @ self.rows.T)

    def curvature(self, H: torch.Tensor, D: np.ndarray) -> np.ndarray:
        """``H D X_W X_W^T``, the change of that half gradient along ``D`` (K x |W|) for
        ``H = S^T S``, on the host: through the Gram matrix, or through the rows once
        they have fewer columns than half the working set's size (fewer operations:
        ``2 K |W| n_features`` against ``K |W|^2``)."""
        moved = H @ self.on_device(D)
        if self.gram is None:
            return on_host((moved @ self.rows) @ self.rows.T)
        return on_host(moved @ self.gram)

    def position(self, indices) -> np.ndarray:
        """Positions of row indices inside the working set."""
        lookup = {int(index): position for position, index in enumerate(self.indices)}
        return np.array([lookup[int(index)] for index in indices])


def project_rows(V: np.ndarray, lower: float = 1.0, upper: float = 1.0) -> np.ndarray:
    """Euclidean projection of each row of ``V`` onto ``{v >= 0, lower <= sum(v) <= upper}``.

    A row whose positive part sums to within the bounds projects to that part; any other
    to the threshold ``max(v - t, 0)`` summing to the nearer bound, found by sorting
    (Held et al. 1974). ``lower < upper`` is PCHA's relaxation of the weights' sums.
    """
    clipped = np.maximum(V, 0)
    total = clipped.sum(axis=1, keepdims=True)
    descending = -np.sort(-V, axis=1)
    excess = np.cumsum(descending, axis=1) - np.clip(total, lower, upper)
    # the entries above the threshold are the leading ones with v_j > (excess_j) / j
    above = (descending * np.arange(1, V.shape[1] + 1) > excess).sum(axis=1, keepdims=True)
    threshold = np.take_along_axis(excess, above - 1, axis=1) / above
    inside = (total >= lower) & (total <= upper)
    return np.where(inside, clipped, np.maximum(V - threshold, 0))


def clip_and_normalise(V: np.ndarray) -> np.ndarray:
    """PCHA's map back to the simplex: clip at zero, rescale rows to sum one (rows with
    nothing positive are projected)."""
    clipped = np.maximum(V, 0)
    total = clipped.sum(axis=1, keepdims=True)
    if (total == 0).any():
        return np.where(total > 0, clipped / np.maximum(total, 1e-300), project_rows(V))
    return clipped / total


def project_weights(V: np.ndarray, delta: float) -> np.ndarray:
    """The archetype weights' map back to their constraints (sums in ``1 ± delta``)."""
    return project_rows(V, 1.0 - delta, 1.0 + delta) if delta else clip_and_normalise(V)


def _quadratic_change(change, gradient, curvature, eps: float):
    """The change ``<D, 2 gradient + curvature(D)>`` of a quadratic loss along ``D``
    (see :func:`line_search_steps`) and ``curvature(D)``; NaN where it lies within the
    rounding (``eps``, the relative rounding of the products) of its own terms, so that
    its sign means nothing."""
    bend = curvature(change)
    terms = change * (2 * gradient + bend)
    gain = float(terms.sum())
    if gain > 0 and gain <= 8 * eps * float(np.abs(terms).sum()):
        gain = math.nan
    return gain, bend


def line_search_steps(
    V, gradient, curvature, project, fallback, step: float, n_steps: int, eps: float
):
    """PCHA's projected-gradient block (Mørup & Hansen 2012) on a quadratic loss.

    ``gradient`` is half the loss's gradient at ``V`` and ``curvature(D)`` half the
    change of that gradient along ``D``, so that moving by ``D`` changes the loss by
    ``<D, 2 gradient + curvature(D)>``: a change computed from the step itself, whose
    rounding error shrinks with the step (a difference of two losses carries the
    error of the losses, which in float32 can exceed the change). Each step removes
    from the gradient its component along the rows' sum constraint, maps the step
    back with ``project`` (or, where that raises the loss, with the Euclidean
    projection ``fallback``), and halves the step size (at most ``_MAX_HALVINGS``
    times) until the loss falls; it grows by 1.2 after every accepted step. The block
    ends early where a step changes nothing its rounding can resolve: ``eps`` is the
    relative rounding of ``gradient`` and ``curvature``, products in the data's dtype.
    Returns the new ``V`` and the step size to start from next time, at least
    ``_BLOCK_SHRINK`` times this block's: rows that just entered the working set can
    force a step far below what the next block needs, which it would then regain only
    by factors of 1.2.
    """
    floor = step * _BLOCK_SHRINK
    for _ in range(n_steps):
        direction = gradient - (gradient * V).sum(axis=1, keepdims=True)
        for halvings in range(_MAX_HALVINGS + 1):
            trial = V - step * 0.5**halvings * direction
            change = project(trial) - V
            gain, bend = _quadratic_change(change, gradient, curvature, eps)
            if gain > 0:
                # PCHA's clip-and-rescale need not descend, even for small steps; a
                # Euclidean projected-gradient step does, if small enough
                change = fallback(trial) - V
                gain, bend = _quadratic_change(change, gradient, curvature, eps)
            if gain < 0:
                V, gradient = V + change, gradient + bend
                step *= 1.2 * 0.5**halvings
                break
            if not gain > 0:
                # no change (0), or one below the rounding of its own gain (NaN): every
                # further step would see the same, and a step grown on changes that lower
                # nothing would grow without bound
                return V, max(step, floor)
        else:
            # stationary to the dtype's resolution: no step lowers the loss that the
            # rounding of its gradient can see. Keep the step for the next block, which
            # starts from other coefficients (a collapsed step would never grow back).
            break
    return V, max(step, floor)


def nearest_weights(C, Z, H, pull, ws: WorkingSet) -> np.ndarray:
    """``C`` minimised exactly, one archetype at a time, with ``S`` and the other
    archetypes fixed: the loss is then ``H_kk ||z_k - target||^2`` plus a constant, with
    ``target = z_k + pull_k / H_kk``, so ``z_k`` moves to the point of the working set's
    hull nearest to ``target``. Gradient steps on ``C`` crawl where the data's features
    lie on scales orders of magnitude apart (the weights' curvature spans their squared
    ratio); this update does not see that scale.

    ``Z`` are the current archetypes (host float64), which may lie off the hull (an
    extrapolated iterate); ``C`` are feasible weights the solves start from, and where
    one fails to come nearer the target than its start, the archetype moves to that start.
    ``C``, ``Z`` and ``pull`` are left as they were (the iterate keeps them).
    """
    weights, archetypes, pull = C.copy(), Z.copy(), pull.copy()
    rows = ws.host_rows
    starts = weights @ rows
    scale = math.sqrt((rows**2).sum(axis=1).max())
    for k in range(len(weights)):
        moved = starts[k]
        if H[k, k] > 0:  # else an archetype no sample uses: it stays at its start
            target = archetypes[k] + pull[k] / H[k, k]
            nearest = nearest_in_hull(rows, target, weights[k], scale)
            point = nearest @ rows
            if ((point - target) ** 2).sum() < ((moved - target) ** 2).sum():
                weights[k], moved = nearest, point
        pull -= np.outer(H[:, k], moved - archetypes[k])
        archetypes[k] = moved
    return weights
