"""Projections onto the simplex and simplex-constrained least squares, row by row."""

from __future__ import annotations

import math

import torch


def project_simplex(V: torch.Tensor, lower: float = 1.0, upper: float = 1.0) -> torch.Tensor:
    """Euclidean projection of each row of ``V`` onto ``{v >= 0, lower <= sum(v) <= upper}``.

    With ``lower == upper == 1`` this is the probability simplex. A wider interval is
    PCHA's relaxation of the archetype weights' sums.

    Parameters
    ----------
    V : Tensor of shape (n_rows, n_columns)
    lower, upper : float
        Bounds on each projected row's sum, ``0 < lower <= upper``.

    Returns
    -------
    Tensor of shape (n_rows, n_columns)
    """
    if lower == upper:
        return _project_onto_sum(V, lower)
    clamped = V.clamp_min(0)
    total = clamped.sum(dim=1, keepdim=True)
    inside = (total >= lower) & (total <= upper)
    target = torch.full_like(total, upper).masked_fill(total < lower, lower)
    return torch.where(inside, clamped, _project_onto_sum(V, target))


def _project_onto_sum(V: torch.Tensor, total) -> torch.Tensor:
    """Projection of each row onto ``{v >= 0, sum(v) = total}`` (Michelot 1986).

    The threshold of the projection is found by repeatedly dropping the coordinates
    below it; it only grows, so at most ``n_columns`` rounds, and no sort (which
    dominated the cost of the solver). Most rows settle in two or three rounds, but
    among a million rows some take many: once few rows still move, rounds visit only
    those.
    """
    total = torch.as_tensor(total, device=V.device, dtype=V.dtype).expand(V.shape[0], 1)
    threshold = (V.sum(dim=1, keepdim=True) - total) / V.shape[1]
    moving = None  # every row
    for _ in range(V.shape[1]):
        rows, current, target = (
            (V, threshold, total) if moving is None
            else (V[moving], threshold[moving], total[moving])
        )
        kept = rows > current
        updated = ((rows * kept).sum(dim=1, keepdim=True) - target) / kept.sum(dim=1, keepdim=True)
        changed = (updated != current)[:, 0]
        if moving is None:
            threshold = updated
            if 8 * int(changed.sum()) < V.shape[0]:
                moving = changed.nonzero()[:, 0]
        else:
            threshold[moving] = updated
            moving = moving[changed]
        if moving is not None and moving.numel() == 0:
            break
    return (V - threshold).clamp_min(0)


def lipschitz_constant(gram: torch.Tensor) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite matrix (at least tiny)."""
    largest = torch.linalg.eigvalsh(gram.double()).max().item()
    return max(largest, torch.finfo(gram.dtype).tiny)


def accelerated_steps(V, gradient, step: float, project, n_steps: int) -> torch.Tensor:
    """Projected gradient steps with Nesterov momentum, restarted row by row on overshoot.

    The rows of ``V`` are independent problems, each with its own momentum;
    ``gradient(Y)`` returns the gradient at ``Y`` and ``project`` maps rows back onto the
    feasible set.
    """
    momentum = torch.ones(V.shape[0], 1, device=V.device, dtype=V.dtype)
    Y = V
    for _ in range(n_steps):
        V_next = project(Y - step * gradient(Y))
        momentum_next = (1 + torch.sqrt(1 + 4 * momentum**2)) / 2
        change = V_next - V
        overshoot = ((Y - V_next) * change).sum(dim=1, keepdim=True) > 0
        momentum_next = torch.where(overshoot, torch.ones_like(momentum_next), momentum_next)
        weight = torch.where(overshoot, torch.zeros_like(momentum), (momentum - 1) / momentum_next)
        Y = V_next + weight * change
        V, momentum = V_next, momentum_next
    return V


def frank_wolfe_gap(S: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Per-row duality gap of a simplex-constrained problem: an upper bound on suboptimality."""
    return (S * gradient).sum(dim=1) - gradient.min(dim=1).values


def simplex_least_squares(
    B: torch.Tensor,
    G: torch.Tensor,
    *,
    tol: float | None = None,
    max_iter: int = 10_000,
    S: torch.Tensor | None = None,
    check_every: int = 10,
):
    """Solve ``min_s 1/2 s^T G s - s^T b`` over the simplex, independently for every row.

    With ``G = Z Z^T`` and ``B = X Z^T`` this is ``min ||x - Z^T s||^2`` for each row ``x``
    of ``X``: the coefficients of samples on fixed archetypes. Every row stops on its
    own certificate (its Frank-Wolfe gap), so a row's result does not depend on which
    other rows are solved with it.

    Parameters
    ----------
    B : Tensor of shape (n_samples, n_archetypes)
    G : Tensor of shape (n_archetypes, n_archetypes)
    tol : float, optional
        A row stops when its gap is below ``tol * mean(diag(G))``; defaults to 1e-10 in
        float64 and 8 machine epsilons (about 1e-6) in float32.
    max_iter : int
        Cap on accelerated projected-gradient iterations.
    S : Tensor of shape (n_samples, n_archetypes), optional
        Starting point; uniform weights by default.

    Returns
    -------
    S : Tensor of shape (n_samples, n_archetypes)
    worst_gap : float
        The largest gap, relative to ``mean(diag(G))``, of the rows that did not meet
        ``tol`` in ``max_iter`` iterations; 0 when all did. Rows reach a small gap only
        slowly when archetypes are affinely dependent (more archetypes than the data's
        dimension), where their solution is not unique.
    """
    n_samples, n_archetypes = B.shape
    if tol is None:
        tol = max(1e-10, 8 * torch.finfo(B.dtype).eps)
    if S is None:
        S = B.new_full((n_samples, n_archetypes), 1.0 / n_archetypes)
    S = S.clone()
    scale = torch.diagonal(G).mean().clamp_min(torch.finfo(G.dtype).tiny)
    step = 1.0 / lipschitz_constant(G)
    active = torch.arange(n_samples, device=B.device)
    rounds = math.ceil(max_iter / check_every)
    for _ in range(rounds):
        rows_B = B[active]
        solved = accelerated_steps(
            S[active], lambda Y, b=rows_B: Y @ G - b, step, project_simplex, check_every
        )
        S[active] = solved
        gaps = frank_wolfe_gap(solved, solved @ G - rows_B) / scale
        active = active[gaps > tol]
        if active.numel() == 0:
            return S, 0.0
    return S, float(gaps.max())
