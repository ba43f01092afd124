"""Archetypal analysis by alternating simplex-constrained blocks, on a working set.

The model is ``X ≈ S C X`` with ``S`` (n_samples x K) and ``C`` (K x n_samples) row
stochastic; ``Z = C X`` are the archetypes. The loss is ``||X - S C X||_F^2`` on centred
data (the fit is translation invariant, and centring keeps float32 sums accurate).

As PCHA (Mørup & Hansen 2012) the solver alternates a block of steps on ``C`` with a
block on ``S``, but:

- ``C`` lives on a *working set* ``W`` of candidate rows: optimal archetypes are
  mixtures of a few extreme points, so ``C`` is very sparse. Its block needs only
  ``S^T X`` (K x n_features), the rows ``X_W`` and their Gram matrix, so it never reads
  ``X`` and its cost does not grow with ``n_samples``. With few features (and
  ``delta = 0``) the block is solved exactly, archetype by archetype, as the point of
  the working set's hull nearest to the archetype's unconstrained optimum: gradient
  steps on ``C`` crawl on raw-scale data, whose curvature in ``C`` spans the squared
  ratio of the feature scales; otherwise it is PCHA's line-searched gradient steps.
  When the fit slows down (an iteration gains less than 1 % of the SSE), the full
  gradient of ``C`` is priced in one pass over ``X``, every iteration until it adds no
  row; rows that would enter (violating the KKT conditions) join ``W``. When the fit
  stalls and none would, the restricted optimum is an optimum of the full problem.
  ``C`` is small whatever ``n_samples``: it is held on the host in float64
  (:mod:`._weights`), where its many small operations cost least.
- The rows of ``S`` are independent problems, solved by accelerated projected gradient
  steps with the fixed step ``1 / lambda_max(Z Z^T)``: no line search, so no loss
  evaluations, which cancel catastrophically in float32. ``S`` is held transposed,
  ``S^T`` of shape (K, n_samples), the layout in which those problems vectorise.
- Alternating blocks crawl where ``S`` and ``C`` are strongly coupled, as on raw-scale
  data (features on scales orders of magnitude apart): each block undoes little of the
  other's lag. Once pricing adds no row (the problem no longer changes under the
  iterates), and from iteration 20 on in any case, an iteration therefore starts from
  the last iterate moved further along the last move, by a factor that grows while such
  iterations lower the loss and halves when one does not; that one is then redone from
  the last iterate (extrapolation with restarts, as Ang & Gillis 2019 accelerate NMF).
  ``S^T X`` is linear in ``S``, so the extrapolated start costs no pass over ``X``.
- The stopping rule is PCHA's: the SSE fell by less than ``tol`` times itself. Where
  the SSE's expanded form ``||X||^2 - ...`` cannot resolve that (near-perfect fits,
  float32), the SSE is summed from the residuals ``X - S Z`` themselves.

An iteration reads ``X`` twice (``X Z^T``, and ``S^T X`` or, once the SSE is summed
from the residuals, the residuals' pass; more for a redone iteration, and once more for
an extrapolated start's residual gradient) and holds nothing larger than a few
``n_samples x K`` arrays besides the data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from .._torch import batch_slices
from ._rows import CentredRows
from ._shards import random_coefficients
from ._simplex import (
    N_STEP_BUFFERS,
    _project_onto_sum_,
    adaptive_steps,
    chunk_width,
    leading,
    lipschitz_constant,
    step_coefficients,
)
from ._weights import (
    WorkingSet,
    line_search_steps,
    nearest_weights,
    on_host,
    project_rows,
    project_weights,
)

# condition numbers of Z Z^T (see _condition_number) from which S takes adaptive steps:
# about 10 on standardised and synthetic data, 1e5 to 1e8 on raw-scale data
_STIFF_CONDITION = 1e3
# the iteration from which iterations start from an extrapolated iterate even while the
# working set still grows (once it is complete they do at once: synth20k 22-24 -> 19
# iterations, relu30k, planted and digits unchanged)
_EXTRAPOLATE_FROM = 20
# the extrapolation factor: its start, its bounds, and its growth after an iteration
# that lowered the SSE (one that did not halves it). Factors above 1 amplified rounding:
# two fits of the same data rounded differently (scaled, streamed) took paths apart
_EXTRAPOLATION_START, _EXTRAPOLATION_BOUNDS, _EXTRAPOLATION_GROWTH = 0.5, (0.25, 1.0), 1.2
_TINY = torch.finfo(torch.float64).tiny  # guards the relative change of a zero SSE
# the random start of S is far from optimal: solve it further before the first C block
_INITIAL_COEFFICIENT_STEPS = 20
# an iteration's block on S: rounds of this many steps, at most this many rounds
_COEFFICIENT_STEPS, _COEFFICIENT_ROUNDS = 2, 5
# pricing runs, until it adds no row, whenever an iteration lowers the SSE by less than
# this share of it (sqrt(tol) once the SSE is summed from the residuals: there, in
# float32 near-perfect fits, rows entering early left the weights' steps tiny)
_PRICE_BELOW = 1e-2
# data of at most this many features update C exactly (see nearest_weights), others by
# line-searched gradient steps: with more, the hull solves cost more than the iterations
# they save (relu30k, 96 features: 29 iterations instead of 56, but 20 % slower;
# relu50k, 512 features: 50 % slower), with fewer they save time too (planted,
# 64 features: 17 iterations instead of 37, 0.28 s instead of 0.48 s)
_NEAREST_MAX_FEATURES = 64


@dataclass
class ArchetypeFit:
    """The result of one run of :func:`fit_archetypes` (tensors on the data's device)."""

    archetypes: torch.Tensor  # (K, n_features), centred
    coefficients: torch.Tensor  # (K, n_samples), S transposed
    weights: np.ndarray  # (K, |W|), C restricted to the working set, float64 on the host
    working_set: np.ndarray  # (|W|,) row indices
    sse: float
    n_iter: int
    converged: bool
    loss_curve: list = field(default_factory=list)
    relative_change: float = math.inf  # the last iteration's SSE decrease over the SSE
    # the smallest tol its stopping rule resolves: the rounding of its last SSE, or where
    # larger that of pricing's threshold (see _price), both relative to the SSE
    resolution: float = math.inf


def squared_error(total, St, Bt, G, scratch=None, all_sum=None) -> float:
    """``||X - S Z||^2`` from ``total = ||X||^2``, ``St = S^T``, ``Bt = Z X^T`` and
    ``G = Z Z^T``: ``total - sum_n s_n^T (2 b_n - G s_n)`` over the columns of ``St``.

    Each sample's term is formed in the data's dtype from a dozen products, and the terms
    are summed in float64, which keeps float32's rounding out of the cancellation with
    ``total``. Columns are taken a chunk at a time, in ``scratch`` (at least one chunk of
    ``St``) when given, so that no temporary of the size of ``St`` is allocated.
    """
    explained = torch.zeros((), device=St.device, dtype=torch.float64)
    for columns in batch_slices(St.shape[1], chunk_width(St.shape)):
        S = St[:, columns]
        fitted = leading(scratch, S.shape) if scratch is not None else torch.empty_like(S)
        torch.addmm(Bt[:, columns], G, S, beta=2, alpha=-1, out=fitted)  # 2 b_n - G s_n
        explained += torch.linalg.vecdot(S, fitted, dim=0).sum(dtype=torch.float64)
    return total - float(explained if all_sum is None else all_sum(explained))


def _price(data: CentredRows, ws: WorkingSet, C, pull, sse: float, tol: float,
           mass, n_candidates: int, out):
    """Rows outside the working set whose entry into ``C`` would lower the loss.

    The gradient of the loss in ``C`` is ``-pull X^T``, with ``pull = S^T (X - S Z)``
    and ``mass`` the column sums of ``S`` (both over every process's rows). Row
    ``n`` improves archetype ``k`` when its gradient entry lies below the weighted mean
    over the current support of ``C[k]`` (the KKT multiplier) by more than a tolerance:
    ``sqrt(tol)`` times the archetype's share of the SSE (so that near-perfect fits
    still find their rows), or the rounding noise of the gradient where that is larger.
    ``out``, of the shape of ``S^T``, is overwritten.
    """
    gradient = data.inner(pull.neg(), out=out)
    mine, inside = data.owned(ws.indices)
    C = ws.on_device(C)
    multiplier = data.all_sum((C[:, mine] * gradient[:, inside]).sum(dim=1)) / C.sum(dim=1)
    improvement = gradient.neg_().add_(multiplier[:, None])
    improvement[:, inside] = -math.inf
    mass = mass.double().clamp_min(1.0)
    threshold = mass * max(math.sqrt(tol) * sse, _gradient_rounding(data)) / data.n_samples
    best, candidates = data.top_k(improvement, n_candidates)
    keep = best.double() > threshold[:, None].to(best.device)
    return candidates[keep].unique().cpu().numpy()


def _gradient_rounding(data: CentredRows) -> float:
    """Rounding noise of :func:`_price`'s gradient: the dtype's epsilon times the total
    sum of squares."""
    return torch.finfo(data.dtype).eps * data.total_sum_of_squares


def _loss_noise(data: CentredRows) -> float:
    """Rounding noise of :func:`squared_error` in the data's dtype.

    Each sample's term carries an error of about ``eps * sqrt(n_features)`` times its
    squared norm, of either sign; summed, they grow as the root of the sum of the
    squared terms (measured: float32 errors of 1e-8 of the total variance on
    20 000 x 64 data, where ``16 eps`` of the total is 2e-6).
    """
    root = math.sqrt(float(data.all_sum(data.squared_norms.double().square().sum())))
    return 4 * torch.finfo(data.dtype).eps * math.sqrt(data.shape[1]) * root


class Iterate(NamedTuple):
    """An iterate of :func:`fit_archetypes` and the products it is measured by."""

    C: np.ndarray  # (K, |W|) archetype weights on the working set (host, float64)
    St: torch.Tensor  # (K, n_samples) coefficients, transposed
    Z: torch.Tensor  # (K, n_features) archetypes
    Bt: torch.Tensor  # (K, n_samples) Z X^T
    G: torch.Tensor  # (K, K) Z Z^T
    H: torch.Tensor  # (K, K) S^T S over every process's rows
    products: torch.Tensor | None  # (K, n_features) S^T X; None once SSEs use residuals
    sse: float
    pull: torch.Tensor  # (K, n_features) S^T (X - S Z)


class _CoefficientWork(NamedTuple):
    """State kept across calls of :func:`_solve_coefficients`."""

    scratch: torch.Tensor  # N_STEP_BUFFERS buffers of one chunk of S^T
    thresholds: torch.Tensor  # (1, n_samples): each sample's last projection threshold
    step_factors: torch.Tensor  # (1, n_samples): each sample's step in units of 1 / L
    gains: torch.Tensor  # (1, n_samples): each sample's loss change in the last call


def _coefficient_workspace(St) -> _CoefficientWork:
    """Scratch for the chunks of ``St`` and thresholds for its samples (none yet: ``inf``)."""
    return _CoefficientWork(
        St.new_empty(N_STEP_BUFFERS, St.shape[0], chunk_width(St.shape)),
        St.new_full((1, St.shape[1]), math.inf),
        St.new_ones(1, St.shape[1]),
        St.new_zeros(1, St.shape[1]),
    )


def _solve_coefficients(St, Bt, G, step: float, n_steps: int, work, all_sum) -> float:
    """Accelerated projected-gradient steps on ``min ||X - S Z||^2`` over row-stochastic S.

    ``St = S^T`` and ``Bt = Z X^T`` hold one sample per column; ``St`` is updated in
    place, using ``work`` from :func:`_coefficient_workspace`. The samples are
    independent, so they are stepped in chunks that stay in the CPU's cache for all the
    steps: with a million samples, stepping them all at once made every elementwise
    operation several times slower per entry. ``step`` is ``1 / lambda_max(G)``.
    Returns the decrease of the squared error, computed from the steps themselves
    (exact, unlike a difference of losses).
    """
    work.gains.zero_()
    for columns in batch_slices(St.shape[1], work.scratch.shape[2]):
        adaptive_steps(
            St[:, columns], Bt[:, columns], G, step, n_steps, work.scratch,
            work.thresholds[:, columns], work.step_factors[:, columns], work.gains[:, columns],
        )
    return -2 * float(all_sum(work.gains.sum(dtype=torch.float64)))


def _condition_number(G, largest: float) -> float:
    """``largest``, ``lambda_max(G)``, over the smallest eigenvalue of ``G`` on the
    simplex's tangent space (vectors summing to zero): what sets the pace of gradient
    steps on ``S``."""
    size = G.shape[0]
    if size < 2:
        return 1.0
    centring = torch.eye(size, dtype=torch.float64, device=G.device) - 1.0 / size
    tangent = torch.linalg.eigvalsh(centring @ G.double() @ centring)[1:]  # [0]: the ones
    smallest = float(tangent.min())
    return largest / smallest if smallest > 0 else math.inf


def _coefficient_block(
    St, Bt, G, n_steps: int, max_rounds: int, work, all_sum, feasible: bool = True
) -> None:
    """Steps on ``S``. Where ``G`` is well conditioned, ``n_steps`` fixed accelerated
    steps, which also map a ``S`` off the simplex (not ``feasible``) back onto it.
    Elsewhere (raw-scale data) ``S`` lags far behind the archetypes: rounds of
    ``n_steps`` steps of each sample's own size, more while a round still gains at least
    half as much as the one before; those steps keep only what lowers the loss, so they
    start from ``S`` mapped to the simplex."""
    largest = lipschitz_constant(G)
    step = 1.0 / largest
    chunks = batch_slices(St.shape[1], work.scratch.shape[2])
    if _condition_number(G, largest) <= _STIFF_CONDITION:
        for columns in chunks:
            step_coefficients(
                St[:, columns], Bt[:, columns], G, step, n_steps, work.scratch[:3],
                work.thresholds[:, columns],
            )
        return
    if not feasible:
        for columns in chunks:
            _project_onto_sum_(
                St[:, columns], 1.0, 0, leading(work.scratch[0], St[:, columns].shape),
                work.thresholds[:, columns],
            )
    gained = _solve_coefficients(St, Bt, G, step, n_steps, work, all_sum)
    for _ in range(max_rounds - 1):
        previous, gained = gained, _solve_coefficients(St, Bt, G, step, n_steps, work, all_sum)
        if not gained >= previous / 2:
            break


def _fresh_start(data: CentredRows, initial_rows, initial_archetypes, working_set, seed):
    """Working set, ``C``, ``S^T`` and ``Z`` of a fit starting from data rows."""
    n_archetypes = len(initial_rows)
    candidates = initial_rows if working_set is None else np.append(initial_rows, working_set)
    ws = WorkingSet(data, candidates.astype(np.int64))
    C = np.zeros((n_archetypes, len(ws.indices)))
    C[np.arange(n_archetypes), ws.position(initial_rows)] = 1.0
    St = random_coefficients(data, n_archetypes, seed=seed)
    Z = ws.archetypes(C) if initial_archetypes is None else initial_archetypes
    return ws, C, St, Z


def _continued_start(data: CentredRows, start: ArchetypeFit):
    """Working set, ``C``, ``S^T`` and ``Z`` of ``start`` carried over to ``data``."""
    ws = WorkingSet(data, start.working_set)
    C = np.zeros((len(start.weights), len(ws.indices)))
    C[:, ws.position(start.working_set)] = start.weights
    St = start.coefficients.to(data.device, data.dtype, copy=True)
    return ws, C, St, ws.archetypes(C)


def carry_over(data: CentredRows, fit: ArchetypeFit) -> ArchetypeFit:
    """``fit``, found on the same rows in another precision, as a fit of ``data``: its
    archetypes recomputed from its weights on ``data``'s rows, and its coefficients
    stepped there as an iteration's block on ``S`` would (with :func:`fit_archetypes`'s
    default steps), which settles their faces in ``data``'s precision."""
    _, _, St, Z = _continued_start(data, fit)
    Bt, G = data.inner(Z), Z @ Z.T
    _coefficient_block(St, Bt, G, _COEFFICIENT_STEPS, _COEFFICIENT_ROUNDS,
                       _coefficient_workspace(St), data.all_sum)
    return replace(fit, archetypes=Z, coefficients=St)


def _resolution(sse_rounding: float, gradient_rounding: float, sse: float) -> float:
    """The smallest ``tol`` a stall at ``sse`` resolves: the SSE's rounding relative to it,
    or pricing's, whose threshold ``sqrt(tol) * sse`` gives way to the gradient's rounding
    where that is larger (see :func:`_price`)."""
    sse = max(sse, _TINY)
    return max(sse_rounding / sse, (gradient_rounding / sse) ** 2)


def fit_archetypes(
    data: CentredRows,
    initial_rows: np.ndarray | None = None,
    *,
    initial_archetypes: torch.Tensor | None = None,
    working_set: np.ndarray | None = None,
    start: ArchetypeFit | None = None,
    seed: int = 0,
    delta: float = 0.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
    weight_steps: int = 5,
    coefficient_steps: int = _COEFFICIENT_STEPS,
    coefficient_rounds: int = _COEFFICIENT_ROUNDS,
    n_candidates: int = 10,
    verbose: int = 0,
) -> ArchetypeFit:
    """Fit ``K`` archetypes, starting from the given data rows or continuing a fit.

    Parameters
    ----------
    data : CentredRows
        The centred data, ``X - mean`` of shape (n_samples, n_features).
    initial_rows : ndarray of shape (K,)
        Row indices of the initial archetypes; not used with ``start``.
    initial_archetypes : Tensor of shape (K, n_features), optional
        Centred initial archetypes that need not be data points; ``initial_rows`` then
        holds the rows nearest to them, where the archetype weights start.
    working_set : ndarray, optional
        Further rows the working set starts with; all rows give the unrestricted
        solver (PCHA's problem, slower), the reference the working set must reach.
    seed : int
        Seed of the random start of the coefficients (PCHA's), which steers the fit to
        one of the loss's local minima; not used with ``start``.
    start : ArchetypeFit, optional
        A fit of the same data to continue from, e.g. one found in lower precision:
        its working set, weights and coefficients replace the initial ones.
    delta : float
        Each archetype's weights sum to a value in ``[1 - delta, 1 + delta]``.
    max_iter : int
        Cap on outer (C then S) iterations.
    tol : float
        Stop when an iteration lowers the SSE by less than ``tol`` times the SSE (plus
        the rounding noise of the SSE) and pricing finds no row to add.
    weight_steps : int
        Line-searched projected-gradient steps on ``C`` per iteration (cheap: they do
        not read ``X``).
    coefficient_steps : int
        Accelerated steps on ``S`` per round; an iteration runs up to
        ``coefficient_rounds`` rounds, more only while ``S`` still gains fast (on badly
        conditioned data ``S`` lags behind the archetypes; elsewhere one round is all
        it needs).
    coefficient_rounds : int
        Cap on those rounds.
    n_candidates : int
        At most this many rows enter the working set per archetype per pricing.
    verbose : int
        Print the loss every iteration (>= 2) or every pricing (1).

    Returns
    -------
    ArchetypeFit
    """
    total = data.total_sum_of_squares
    noise = _loss_noise(data)
    eps = torch.finfo(data.dtype).eps

    # whether the SSE is summed from the residuals, which costs a pass over X: only once
    # its expanded form, whose rounding is ``noise``, can no longer resolve ``tol``
    precise = False

    def pricing_share():
        return math.sqrt(tol) if precise else _PRICE_BELOW

    def noise_of(sse):
        return 4 * eps * sse if precise else noise

    def below(decrease, share, sse):
        """Whether ``decrease`` lies below ``share`` of ``sse``, up to the SSE's rounding."""
        return decrease <= share * sse + noise_of(sse)

    def measured(C, St, Z, Bt, G):
        """The iterate ``(C, S)`` with ``H = S^T S``, its SSE and ``pull = S^T (X - S Z)``:
        the last two from the residuals once the expanded forms' rounding cannot resolve
        ``tol``, and otherwise from ``S^T X``, which is kept for extrapolation."""
        H = data.all_sum(St @ St.T)
        if precise:
            return Iterate(C, St, Z, Bt, G, H, None, *data.residual_products(St, Z))
        products = data.rmatmul(St)
        sse = squared_error(total, St, Bt, G, work.scratch, data.all_sum)
        return Iterate(C, St, Z, Bt, G, H, products, sse, products - H @ Z)

    project = functools.partial(project_weights, delta=delta)
    euclidean = functools.partial(project_rows, lower=1.0 - delta, upper=1.0 + delta)

    if start is None:
        ws, C, St, Z = _fresh_start(data, initial_rows, initial_archetypes, working_set, seed)
        n_steps, done = _INITIAL_COEFFICIENT_STEPS, 0
    else:
        ws, C, St, Z = _continued_start(data, start)
        n_steps, done = coefficient_steps, start.n_iter

    exact_weights = not delta and data.shape[1] <= _NEAREST_MAX_FEATURES

    def weights_block(C, Z, H, pull, step):
        if exact_weights:
            return nearest_weights(C, on_host(Z), on_host(H), on_host(pull), ws), step
        return line_search_steps(
            C, ws.gradient(pull), functools.partial(ws.curvature, H), project, euclidean,
            step, weight_steps, eps,
        )

    def iterate(C, Z, St, H, pull, step, Bt, feasible=True):
        """One iteration from ``(C, S)`` with archetypes ``Z``, given ``H = S^T S`` and
        ``pull``: steps on ``C``, then on ``S`` (in place, ending on the simplex), and the
        new iterate's products."""
        C, step = weights_block(C, Z, H, pull, step)
        Z = ws.archetypes(C)
        Bt, G = data.inner(Z, out=Bt), Z @ Z.T
        _coefficient_block(
            St, Bt, G, coefficient_steps, coefficient_rounds, work, data.all_sum, feasible
        )
        return measured(C, St, Z, Bt, G), step

    def extrapolated(now, before, factor):
        """``C``, ``Z``, ``S^T`` (in ``before``'s buffer), ``S^T S`` and ``pull``
        ``factor`` times the last move further on. ``H`` and ``pull`` are those of the
        straight extrapolation of ``S``, which ``C``'s steps see: ``S^T X`` is linear in
        ``S``, so its value there costs no pass over ``X``. ``S`` is left off the
        simplex. The exact weights block moves archetypes, whose weights need not be
        unique (on a face spanned by affinely dependent rows, which of its weights a
        solve returns is up to rounding): there the archetypes themselves are
        extrapolated, off the hull if need be, and ``C`` (projected) is only where the
        block's solves start."""
        C = project(now.C + factor * (now.C - before.C))
        St = before.St.mul_(-factor).add_(now.St, alpha=1 + factor)
        H = data.all_sum(St @ St.T)
        Z = now.Z * (1 + factor) - before.Z * factor if exact_weights else ws.archetypes(C)
        if precise:
            pull = data.residual_products(St, Z)[1]
        else:
            pull = now.products * (1 + factor) - before.products * factor - H @ Z
        return C, Z, St, H, pull

    Bt, G = data.inner(Z), Z @ Z.T
    work = _coefficient_workspace(St)
    _coefficient_block(St, Bt, G, n_steps, coefficient_rounds, work, data.all_sum)
    now = measured(C, St, Z, Bt, G)
    before = None  # the iterate before ``now``, once it can be extrapolated from
    curve, converged, complete, previous = [now.sse], False, False, math.inf
    c_step_size = 1 / max(total, 1e-300)
    factor = _EXTRAPOLATION_START
    for iteration in range(1, max_iter + 1):
        decrease = previous - now.sse
        stalled = below(decrease, tol, now.sse)
        if stalled and not precise and noise > tol * now.sse:
            # the expanded forms cannot resolve tol: from here on SSEs are summed from the
            # residuals, and the last decrease is measured again so (a pass over X, where
            # waiting for the next iteration's took one more iteration)
            precise = True
            sse, pull = data.residual_products(now.St, now.Z)
            now = now._replace(sse=sse, pull=pull)
            curve[-1] = now.sse
            if before is None:
                stalled = False
            else:
                previous = curve[-2] = data.residual_products(before.St, before.Z)[0]
                decrease = previous - now.sse
                stalled = below(decrease, tol, now.sse)
        if stalled or (not complete and below(decrease, pricing_share(), now.sse)):
            # Bt is rewritten before its next use: pricing works in it
            mass = data.all_sum(now.St.sum(dim=1))
            added = ws.extend(
                _price(data, ws, now.C, now.pull, now.sse, tol, mass, n_candidates, out=now.Bt)
            )
            complete = not added
            if added:  # the new rows' weights are zero, before as now
                now = now._replace(C=np.pad(now.C, ((0, 0), (0, added))))
                if before is not None:
                    before = before._replace(C=np.pad(before.C, ((0, 0), (0, added))))
            if verbose:
                print(f"[ArchetypalAnalysis] iteration {iteration}: EV "
                      f"{1 - now.sse / total:.6f}, {added} rows join the working set "
                      f"({len(ws.indices)} in all)")
            if stalled and complete:
                converged = True
                break
        previous, following = now.sse, None
        if before is not None and (complete or done + iteration >= _EXTRAPOLATE_FROM):
            C, Z, St, H, pull = extrapolated(now, before, factor)
            following, step = iterate(C, Z, St, H, pull, c_step_size, now.Bt, feasible=False)
            if following.sse < now.sse - noise_of(now.sse):
                factor = min(factor * _EXTRAPOLATION_GROWTH, _EXTRAPOLATION_BOUNDS[1])
                c_step_size = step
            else:  # back to ``now``, by a plain iteration
                factor = max(factor / 2, _EXTRAPOLATION_BOUNDS[0])
                following = None
        if following is None:
            St = now.St.clone() if before is None else before.St.copy_(now.St)
            following, c_step_size = iterate(
                now.C, now.Z, St, now.H, now.pull, c_step_size, now.Bt
            )
        before, now = now, following
        curve.append(now.sse)
        if verbose >= 2:
            print(f"[ArchetypalAnalysis] iteration {iteration}: EV {1 - now.sse / total:.6f}")
    C, St, Z, sse = now.C, now.St, now.Z, now.sse
    return ArchetypeFit(
        archetypes=Z, coefficients=St, weights=C, working_set=ws.indices, sse=sse,
        n_iter=len(curve) - 1, converged=converged, loss_curve=curve,
        relative_change=(
            (curve[-2] - sse) / max(sse, noise, _TINY) if len(curve) > 1 else math.inf
        ),
        resolution=_resolution(noise_of(sse), _gradient_rounding(data), sse),
    )
