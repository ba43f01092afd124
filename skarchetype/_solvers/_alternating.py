"""Archetypal analysis by PCHA's alternating projected gradients, on a working set.

The model is ``X ≈ S C X`` with ``S`` (n_samples x K) and ``C`` (K x n_samples) row
stochastic; ``Z = C X`` are the archetypes. The loss is ``||X - S C X||_F^2`` on centred
data (the fit is translation invariant, and centring keeps float32 sums accurate).

As PCHA (Mørup & Hansen 2012) the solver alternates projected-gradient blocks with
adaptive step sizes on ``C`` and ``S``, but the ``C`` block lives on a *working set*
``W`` of candidate rows: optimal archetypes are mixtures of a few extreme points, so
``C`` is very sparse. With ``P = X X_W^T`` (n_samples x |W|) cached, an iteration costs
``O(n_samples |W| K)`` and never reads ``X``. When the restricted problem has converged,
the full gradient of ``C`` is priced in two passes over ``X``; rows that would enter
(violating the KKT conditions) join ``W`` and the fit goes on; when none would, the
restricted optimum is an optimum of the full problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._rows import CentredRows
from ._simplex import project_simplex


@dataclass
class ArchetypeFit:
    """The result of one run of :func:`fit_archetypes` (tensors on the data's device)."""

    archetypes: torch.Tensor  # (K, n_features), centred
    coefficients: torch.Tensor  # (n_samples, K), S
    weights: torch.Tensor  # (K, |W|), C restricted to the working set
    working_set: np.ndarray  # (|W|,) row indices
    sse: float
    n_iter: int
    converged: bool
    loss_curve: list = field(default_factory=list)


class WorkingSet:
    """Candidate rows for the archetypes, with their products with the data."""

    def __init__(self, data: CentredRows, indices):
        self.data = data
        self.indices = np.zeros(0, dtype=np.int64)
        self.products = torch.zeros(data.shape[0], 0, device=data.device, dtype=data.dtype)
        self.rows = torch.zeros(0, data.shape[1], device=data.device, dtype=data.dtype)
        self.extend(indices)

    def extend(self, indices) -> int:
        """Add the rows not already present; return how many were added."""
        new = np.setdiff1d(np.unique(indices), self.indices)
        if new.size:
            rows = self.data.rows(new)
            self.indices = np.concatenate([self.indices, new])
            self.rows = torch.cat([self.rows, rows])
            self.products = torch.cat([self.products, self.data.matmul(rows.T)], dim=1)
            self.gram = self.products[torch.as_tensor(self.indices, device=self.data.device)]
        return new.size

    def position(self, indices) -> np.ndarray:
        """Positions of row indices inside the working set."""
        lookup = {int(index): position for position, index in enumerate(self.indices)}
        return np.array([lookup[int(index)] for index in indices])


def squared_error(total, S, B, G) -> float:
    """``||X - S Z||^2`` from ``total = ||X||^2``, ``B = X Z^T`` and ``G = Z Z^T``, in float64."""
    cross = (S.double() * B.double()).sum()
    quadratic = ((S.double() @ G.double()) * S.double()).sum()
    return float(total - 2 * cross + quadratic)


def _price(data: CentredRows, ws: WorkingSet, S, C, tol: float, n_candidates: int):
    """Rows outside the working set whose entry into ``C`` would lower the loss.

    The gradient of the loss in ``C`` is ``(H Z - S^T X) X^T`` with ``H = S^T S``. Row
    ``n`` improves archetype ``k`` when its gradient entry lies below the weighted mean
    over the current support of ``C[k]`` (the KKT multiplier) by more than a tolerance
    scaled to the archetype's share of the data.
    """
    H = S.T @ S
    residual_direction = H @ (C @ ws.rows) - data.rmatmul(S.T)
    gradient = data.matmul(residual_direction.T).T
    inside = torch.as_tensor(ws.indices, device=data.device)
    multiplier = (C * gradient[:, inside]).sum(dim=1) / C.sum(dim=1)
    improvement = multiplier[:, None] - gradient
    improvement[:, inside] = -math.inf
    mass = S.sum(dim=0).double().clamp_min(1.0)
    threshold = math.sqrt(tol) * mass * data.total_sum_of_squares / data.shape[0]
    best, candidates = improvement.topk(min(n_candidates, improvement.shape[1]), dim=1)
    keep = best.double() > threshold[:, None].to(best.device)
    return candidates[keep].unique().cpu().numpy()


def _clip_and_normalise(V: torch.Tensor) -> torch.Tensor:
    """PCHA's map back to the simplex: clip at zero, rescale rows to sum one."""
    clipped = V.clamp_min(0)
    total = clipped.sum(dim=1, keepdim=True)
    if bool((total == 0).any()):
        return torch.where(total > 0, clipped / total.clamp_min(1e-300), project_simplex(V))
    return clipped / total


def _line_search_steps(V, value: float, gradient, loss, project, step: float, n_steps: int,
                       slack: float):
    """PCHA's projected-gradient block (Mørup & Hansen 2012).

    Each step removes from the gradient its component along the rows' sum constraint,
    then halves the step size until the loss does not grow by more than ``slack``, and
    grows it by 1.2 after every accepted step. Returns the new ``V``, its loss and the
    step size to start from next time.
    """
    for _ in range(n_steps):
        direction = gradient(V)
        direction = direction - (direction * V).sum(dim=1, keepdim=True)
        while True:
            candidate = project(V - step * direction)
            candidate_value = loss(candidate)
            if candidate_value <= value + slack:
                V, value, step = candidate, candidate_value, step * 1.2
                break
            step /= 2
            if step < 1e-300:
                return V, value, step
    return V, value, step


def fit_archetypes(
    data: CentredRows,
    initial_rows: np.ndarray,
    *,
    initial_archetypes: torch.Tensor | None = None,
    delta: float = 0.0,
    max_iter: int = 500,
    tol: float = 1e-6,
    inner_steps: int = 10,
    n_candidates: int = 10,
    verbose: int = 0,
) -> ArchetypeFit:
    """Fit ``K = len(initial_rows)`` archetypes starting from the given data rows.

    Parameters
    ----------
    data : CentredRows
        The centred data, ``X - mean`` of shape (n_samples, n_features).
    initial_rows : ndarray of shape (K,)
        Row indices of the initial archetypes.
    initial_archetypes : Tensor of shape (K, n_features), optional
        Centred initial archetypes that need not be data points; ``initial_rows`` then
        holds the rows nearest to them, where the archetype weights start.
    delta : float
        Each archetype's weights sum to a value in ``[1 - delta, 1 + delta]``.
    max_iter : int
        Cap on outer (C then S) iterations.
    tol : float
        Stop when an iteration raises the explained variance by less than ``tol`` (plus
        the rounding noise of the dtype) and pricing finds no row to add.
    inner_steps : int
        Projected-gradient steps (each with its line search) per block.
    n_candidates : int
        At most this many rows enter the working set per archetype per pricing.
    verbose : int
        Print the loss every iteration (>= 2) or every pricing (1).

    Returns
    -------
    ArchetypeFit
    """
    n_archetypes = len(initial_rows)
    total = data.total_sum_of_squares
    noise_floor = 16 * torch.finfo(data.dtype).eps * total
    ws = WorkingSet(data, initial_rows)
    C = torch.zeros(n_archetypes, len(ws.indices), device=data.device, dtype=data.dtype)
    C[torch.arange(n_archetypes), torch.as_tensor(ws.position(initial_rows))] = 1.0

    def project_weights(V):
        return project_simplex(V, 1.0 - delta, 1.0 + delta) if delta else _clip_and_normalise(V)

    def s_step(S, sse, step, B=None, G=None, n_steps=inner_steps):
        if B is None:
            B, G = ws.products @ C.T, C @ ws.gram @ C.T
        return _line_search_steps(
            S, sse, lambda Y: Y @ G - B, lambda Y: squared_error(total, Y, B, G),
            _clip_and_normalise, step, n_steps, noise_floor,
        )

    def c_step(C, sse, step):
        H, R = S.T @ S, S.T @ ws.products
        return _line_search_steps(
            C, sse, lambda Y: H @ Y @ ws.gram - R,
            lambda Y: float(total - 2 * (Y * R).double().sum()
                            + ((H @ Y @ ws.gram).double() * Y.double()).sum()),
            project_weights, step, inner_steps, noise_floor,
        )

    def extend(S):
        added = ws.extend(_price(data, ws, S, C, tol, n_candidates))
        return torch.nn.functional.pad(C, (0, added)), added

    generator = torch.Generator(device="cpu").manual_seed(int(initial_rows[0]))
    # PCHA's random start; 1 - U lies in (0, 1], so no weight is infinite
    uniform = torch.rand(data.shape[0], n_archetypes, generator=generator, dtype=torch.float64)
    S = -torch.log1p(-uniform)
    S = (S / S.sum(dim=1, keepdim=True)).to(device=data.device, dtype=data.dtype)
    s_scale, c_scale = data.shape[0] / max(total, 1e-300), 1 / max(total, 1e-300)
    if initial_archetypes is None:
        B, G = ws.products @ C.T, C @ ws.gram @ C.T
    else:
        B, G = data.matmul(initial_archetypes.T), initial_archetypes @ initial_archetypes.T
    S, sse, s_step_size = s_step(S, squared_error(total, S, B, G), s_scale, B, G, 25)
    C, _ = extend(S)
    c_step_size = c_scale
    curve, converged, complete, previous = [sse], False, False, math.inf
    for iteration in range(1, max_iter + 1):
        C, sse, c_step_size = c_step(C, sse, c_step_size)
        S, sse, s_step_size = s_step(S, sse, s_step_size)
        curve.append(sse)
        if verbose >= 2:
            print(f"[ArchetypalAnalysis] iteration {iteration}: EV {1 - sse / total:.6f}")
        decrease = previous - sse
        stalled = decrease <= tol * total + noise_floor
        if stalled or (not complete and decrease <= math.sqrt(tol) * total + noise_floor):
            C, added = extend(S)
            complete = not added
            if verbose:
                print(f"[ArchetypalAnalysis] iteration {iteration}: EV {1 - sse / total:.6f}, "
                      f"{added} rows join the working set ({len(ws.indices)} in all)")
            if stalled and complete:
                converged = True
                break
        previous = sse
    return ArchetypeFit(
        archetypes=C @ ws.rows, coefficients=S, weights=C, working_set=ws.indices, sse=sse,
        n_iter=iteration, converged=converged, loss_curve=curve,
    )
