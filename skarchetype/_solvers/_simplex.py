"""Projections onto the simplex and simplex-constrained least squares, vectorised.

The projection treats the slices of a matrix along ``dim`` as independent points: rows
with ``dim=1`` (the archetype weights), columns with ``dim=0``. The many small problems
of the coefficients ``S`` are held transposed, one sample per column, because torch
reduces and broadcasts along the long axis several times faster than across rows of a
dozen entries.
"""

from __future__ import annotations

import math

import torch

from .._torch import batch_slices

# entries of S stepped or refined together: a chunk's few working arrays stay in the CPU's
# cache (per entry, a two-step block in chunks of 2**19 took 0.78 to 0.93 of its time in
# chunks of 2**18 on 10 to 20 rows of 30 000 to 1 000 000 columns, in float32 and float64
# alike; chunks of 2**20 were no faster)
_ENTRIES_PER_CHUNK = 2**19


def chunk_width(shape) -> int:
    """Columns per chunk of a matrix of ``shape`` whose columns are stepped or refined."""
    n_rows, n_columns = shape
    return min(n_columns, max(1, _ENTRIES_PER_CHUNK // n_rows))


def _project_onto_sum_(V: torch.Tensor, total, dim: int, work=None, start=None) -> torch.Tensor:
    """Project each slice of ``V`` along ``dim`` onto ``{v >= 0, sum(v) = total}``, in place.

    The projection is ``max(v - t, 0)`` for the threshold ``t`` at which the entries above
    it sum to ``total`` (Michelot 1986). A round moves ``t`` to where the entries now above
    it would sum to ``total``. The entries above any ``t`` are a subset or a superset of
    the solution's, so after one round ``t`` lies at or below the solution; from there it
    only grows, the set above it only shrinks, and a round that leaves that set's size
    unchanged ends at the exact ``t``: at most ``V.shape[dim] + 1`` rounds, and no sort
    (which dominated the solver's time). The first threshold is ``start`` (one per slice,
    e.g. those of the previous projection of similar points), capped at
    ``max(v) - total / V.shape[dim]``, which no solution exceeds; most points then settle
    in two rounds, and once few still move, rounds visit only those. ``work``, a tensor of
    ``V``'s shape, receives the first round's excess instead of a new one.

    Returns
    -------
    threshold : Tensor
        Each slice's threshold ``t`` (its sum over ``dim`` kept as an axis of size 1).
    """
    across = 1 - dim
    size = V.shape[dim]
    if size == 1:  # the simplex's one point, which ``v - t`` need not resolve where v >> total
        threshold = V - total
        V.zero_().add_(total)
        return threshold
    if start is None:  # the threshold of all entries, which lies below the solution
        threshold = V.sum(dim=dim, keepdim=True).sub_(total).div_(size)
        count = torch.full_like(threshold, size)
    else:
        threshold = torch.minimum(V.amax(dim=dim, keepdim=True).sub_(total / size), start)
        count = torch.zeros_like(threshold)  # no set was counted at this threshold
    moving = None  # every point
    for _ in range(size + 1):
        if moving is None:
            current, counted, target = threshold, count, total
            excess = torch.sub(V, current, out=work)
        else:
            current = threshold.index_select(across, moving)
            counted = count.index_select(across, moving)
            target = total.index_select(across, moving) if torch.is_tensor(total) else total
            excess = V.index_select(across, moving).sub_(current)
        mass = excess.clamp_min_(0).sum(dim=dim, keepdim=True)
        # at least one: where the entries dwarf ``total``, ``max(v) - total / size`` may
        # round to ``max(v)``, leaving none above it (a finite threshold all the same)
        above = excess.sign_().sum(dim=dim, keepdim=True).clamp_min_(1)
        updated = mass.sub_(target).div_(above).add_(current)
        changes = above.sub(counted).flatten()  # nonzero where the set above t changed
        if moving is None:
            threshold, count = updated, above
            n_changed = int(torch.count_nonzero(changes))
            if n_changed == 0:
                break
            if 8 * n_changed < changes.numel():
                moving = changes.nonzero()[:, 0]
        else:
            threshold.index_copy_(across, moving, updated)
            count.index_copy_(across, moving, above)
            moving = moving[changes != 0]
            if moving.numel() == 0:
                break
    V.sub_(threshold).clamp_min_(0)
    return threshold


def lipschitz_constant(gram: torch.Tensor) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite matrix (at least tiny)."""
    largest = torch.linalg.eigvalsh(gram.double()).max().item()
    return max(largest, torch.finfo(gram.dtype).tiny)


def leading(buffer: torch.Tensor, shape) -> torch.Tensor:
    """The first entries of the contiguous ``buffer`` as a contiguous tensor of ``shape``."""
    return buffer.view(-1)[: math.prod(shape)].view(shape)


def step_coefficients(
    S, B, G, step: float, n_steps: int, work=None, thresholds=None
) -> torch.Tensor:
    """Accelerated projected-gradient steps on ``min_s 1/2 s^T G s - s^T b`` over the simplex.

    Every column ``s`` of ``S`` (with ``b`` the same column of ``B``) is its own problem
    with its own Nesterov momentum, restarted when a step overshoots; ``step`` is the
    step size. ``S`` is updated in place and returned. ``work`` holds three contiguous
    scratch tensors of at least ``S.numel()`` entries each: a solver that steps many
    times passes the same ones, so that no step allocates (fresh memory costs a page
    fault per 4 KiB). ``thresholds``, shape (1, n_columns), are where the columns' first
    projections start (the last ones of earlier steps on these columns; ``inf`` where
    there are none) and receive this call's last ones. Without them the first step's
    projections start from scratch and later steps from the step before.
    """
    if work is None:
        work = S.new_empty(3, *S.shape)
    Y, V, spare = (leading(buffer, S.shape) for buffer in work)
    Y.copy_(S)
    current, momentum, threshold = S, S.new_ones(1, S.shape[1]), thresholds
    for _ in range(n_steps):
        torch.addmm(B, G, Y, beta=-1, out=V)  # the gradient at Y
        threshold = _project_onto_sum_(V.mul_(-step).add_(Y), 1.0, 0, spare, threshold)
        torch.sub(Y, V, out=spare)
        change = torch.sub(V, current, out=Y)
        # 0 where the step overshoots (restart), else 1; float arithmetic beats boolean masks
        keep = spare.mul_(change).sum(dim=0, keepdim=True).sign_().clamp_min_(0).neg_().add_(1)
        momentum_next = momentum.square().mul_(4).add_(1).sqrt_().add_(1).div_(2)
        Y = change.mul_(momentum.sub_(1).div_(momentum_next).mul_(keep)).add_(V)
        current, V, momentum = V, current, momentum_next.sub_(1).mul_(keep).add_(1)
    if thresholds is not None:
        thresholds.copy_(threshold)
    return S if current is S else S.copy_(current)


# scratch tensors of the size of S that adaptive_steps works in
N_STEP_BUFFERS = 6
# per-sample step factors grow by this after an accepted step and halve after a rejected one
_STEP_GROWTH = 1.2


def adaptive_steps(
    S, B, G, step: float, n_steps: int, work, thresholds, step_factors, gains
) -> torch.Tensor:
    """:func:`step_coefficients` with a step size of each column's own, for the
    alternating solver, where ``G`` may be badly conditioned.

    Every column ``s`` of ``S`` (with ``b`` the same column of ``B``) is its own problem
    with its own Nesterov momentum and its own step size, ``step`` (at most
    ``1 / lambda_max(G)``) times its entry of ``step_factors``. A step is kept only
    where it lowers the column's loss, a change computed exactly from the step and the
    gradient (no difference of losses, so no cancellation in float32); the column's
    factor then grows by 1.2. Elsewhere the column stays, its momentum restarts and its
    factor halves (but stays at least 1). Steps far above ``1 / lambda_max(G)`` are
    what make progress when ``G`` is badly conditioned (features on scales orders of
    magnitude apart): the simplex's faces pin the stiff directions, and the curvature
    left along a column's face can be far smaller than ``lambda_max(G)``.

    ``S`` is updated in place and returned. ``work`` holds :data:`N_STEP_BUFFERS`
    contiguous scratch tensors of at least ``S.numel()`` entries each: a solver that
    steps many times passes the same ones, so that no step allocates (fresh memory
    costs a page fault per 4 KiB). ``thresholds``, shape (1, n_columns), are where the
    columns' first projections start (the last ones of earlier steps on these columns;
    ``inf`` where there are none) and receive this call's last ones. ``step_factors``,
    shape (1, n_columns), are updated in place. ``gains``, shape (1, n_columns), receive
    (added) each column's change of ``1/2 s^T G s - s^T b``, half that of its squared
    error.
    """
    gradient, previous_gradient, previous, trial, change, spare = (
        leading(buffer, S.shape) for buffer in work[:N_STEP_BUFFERS]
    )
    torch.addmm(B, G, S, beta=-1, out=gradient)
    previous.copy_(S)
    previous_gradient.copy_(gradient)
    momentum, threshold = S.new_ones(1, S.shape[1]), thresholds
    # a step stays far above the dtype's resolution of the entries, which lie in [0, 1]
    largest_factor = 1 / (1024 * torch.finfo(S.dtype).eps)
    for _ in range(n_steps):
        momentum_next = momentum.square().mul(4).add_(1).sqrt_().add_(1).div_(2)
        extrapolation = momentum.sub_(1).div_(momentum_next)
        # the extrapolated point and its gradient (linear in the point)
        torch.sub(S, previous, out=trial).mul_(extrapolation).add_(S)
        torch.sub(gradient, previous_gradient, out=change).mul_(extrapolation).add_(gradient)
        trial.addcmul_(change, step_factors, value=-step)
        threshold = _project_onto_sum_(trial, 1.0, 0, spare, threshold)
        torch.sub(trial, S, out=change)
        # spare = gradient + G change / 2: the loss changes by change . spare
        torch.addmm(gradient, G, change, alpha=0.5, out=spare)
        gain = torch.linalg.vecdot(change, spare, dim=0).unsqueeze_(0)
        # 1 where the step lowers the column's loss, else 0; float arithmetic beats masks
        accept = gain.sign().clamp_min_(0).neg_().add_(1)
        gains.addcmul_(gain, accept)
        previous.copy_(S)
        previous_gradient.copy_(gradient)
        S.addcmul_(change, accept)
        gradient.addcmul_(spare.sub_(gradient), accept, value=2)  # + G change where kept
        step_factors.mul_(accept * (_STEP_GROWTH - 0.5) + 0.5).clamp_(1.0, largest_factor)
        momentum = momentum_next.sub_(1).mul_(accept).add_(1)
    thresholds.copy_(threshold)
    return S


def minimise_on_faces_(S, B, G) -> None:
    """Move each column of ``S`` to the minimiser of ``1/2 s^T G s - s^T b`` on its face.

    A column's face is the part of the simplex where its zero entries stay zero.
    Conjugate gradients in the face's tangent space (entries off the face zero, entries
    summing to zero) reach the face's minimiser in one iteration less than the face has
    vertices, or sooner once rounding sets the residual. A column takes that minimiser
    where it has no negative entry (it then lies no higher than the column, which was
    on the face) and is left as it was elsewhere. Once projected-gradient steps have
    found a column's optimal face, this solves it exactly, where further steps would
    only creep up on the solution. Columns are refined in chunks: the scratch memory
    stays small.
    """
    for columns in batch_slices(S.shape[1], chunk_width(S.shape)):
        _minimise_on_face_(S[:, columns], B[:, columns], G)


def _tangent_(V, mask, size):
    """Project the columns of ``V`` onto their faces' tangent spaces, in place."""
    return V.sub_(torch.linalg.vecdot(V, mask, dim=0) / size).mul_(mask)


def _minimise_on_face_(S, B, G) -> None:
    mask = torch.sign(S)  # S >= 0: 1 on the face, 0 off it
    size = mask.sum(dim=0)
    n_iter = int(size.max()) - 1
    if n_iter < 1:
        return
    # squared residual at which rounding, not the search, sets the error
    floor = (torch.finfo(S.dtype).eps * float(torch.diagonal(G).mean())) ** 2
    minimiser = solution = S.clone()
    residual = _tangent_(torch.addmm(B, G, S, alpha=-1), mask, size)  # minus the gradient
    direction, curvature_buffer = residual.clone(), S.new_empty(S.shape)
    residual_norm = torch.linalg.vecdot(residual, residual, dim=0)
    columns = None  # every column is still searching
    for _ in range(n_iter):
        curvature = torch.mm(G, direction, out=leading(curvature_buffer, direction.shape))
        stiffness = torch.linalg.vecdot(direction, curvature, dim=0)
        length = torch.where(stiffness > 0, residual_norm / stiffness, 0)
        solution.addcmul_(direction, length)
        residual.addcmul_(_tangent_(curvature, mask, size), length, value=-1)
        next_norm = torch.linalg.vecdot(residual, residual, dim=0)
        direction.mul_(torch.where(residual_norm > 0, next_norm / residual_norm, 0)).add_(residual)
        residual_norm = next_norm
        searching = residual_norm > floor
        n_searching = int(searching.sum())
        if n_searching == 0:
            break
        if 2 * n_searching < searching.numel():  # go on with the columns still searching
            if columns is not None:
                minimiser.index_copy_(1, columns, solution)
            keep = searching.nonzero()[:, 0]
            columns = keep if columns is None else columns[keep]
            solution, residual, direction, mask = (
                tensor.index_select(1, keep) for tensor in (solution, residual, direction, mask)
            )
            size, residual_norm = size[keep], residual_norm[keep]
    if columns is not None:
        minimiser.index_copy_(1, columns, solution)
    feasible = minimiser.amin(dim=0) >= 0
    S.copy_(torch.where(feasible, minimiser, S))


def simplex_least_squares(
    B: torch.Tensor,
    G: torch.Tensor,
    *,
    tol: float | None = None,
    max_iter: int = 10_000,
    S: torch.Tensor | None = None,
    check_every: int = 5,
):
    """Solve ``min_s 1/2 s^T G s - s^T b`` over the simplex for every column ``b`` of ``B``.

    With ``G = Z Z^T`` and ``B = Z X^T`` this is ``min ||x - Z^T s||^2`` for each row ``x``
    of ``X``: the coefficients of samples on fixed archetypes, one sample per column.
    Rounds of accelerated projected-gradient steps, which find each sample's face of the
    simplex, alternate with exact minimisation on that face (:func:`minimise_on_faces_`).
    Every sample stops on its own certificate (its Frank-Wolfe gap, which bounds its
    suboptimality), so its result does not depend on which other samples are solved
    with it.

    Parameters
    ----------
    B : Tensor of shape (n_archetypes, n_samples)
    G : Tensor of shape (n_archetypes, n_archetypes)
    tol : float, optional
        A sample stops when its gap is below ``tol * mean(diag(G))``; defaults to 1e-10
        in float64 and 8 machine epsilons (about 1e-6) in float32.
    max_iter : int
        Cap on accelerated projected-gradient iterations.
    S : Tensor of shape (n_archetypes, n_samples), optional
        Starting point, updated in place; uniform weights by default.
    check_every : int
        Projected-gradient steps between face minimisations and certificate checks.

    Returns
    -------
    S : Tensor of shape (n_archetypes, n_samples)
    worst_gap : float
        The largest gap, relative to ``mean(diag(G))``, of the samples that did not meet
        ``tol`` in ``max_iter`` iterations; 0 when all did. Samples reach a small gap only
        slowly when archetypes are affinely dependent (more archetypes than the data's
        dimension), where their solution is not unique.
    """
    if tol is None:
        tol = max(1e-10, 8 * torch.finfo(B.dtype).eps)
    # a given start may already lie on its optimal face; uniform weights lie on none
    first = 0 if S is not None else check_every
    if S is None:
        S = B.new_full(B.shape, 1.0 / B.shape[0])
    scale = torch.diagonal(G).mean().clamp_min(torch.finfo(G.dtype).tiny)
    step = 1.0 / lipschitz_constant(G)
    work = S.new_empty(3, *S.shape)
    active = None  # every sample
    for done in range(first, max_iter + 1, check_every):
        solved, targets = (S, B) if active is None else (S[:, active], B[:, active])
        if done:
            step_coefficients(solved, targets, G, step, check_every, work)
        minimise_on_faces_(solved, targets, G)
        gradient = torch.addmm(targets, G, solved, beta=-1, out=leading(work[0], solved.shape))
        minimum = gradient.amin(dim=0)
        gaps = (gradient.mul_(solved).sum(dim=0) - minimum) / scale  # Frank-Wolfe gaps
        if active is not None:
            S[:, active] = solved
        unsolved = gaps > tol
        if not bool(unsolved.any()):
            return S, 0.0
        active = unsolved.nonzero()[:, 0] if active is None else active[unsolved]
    return S, float(gaps.max())
