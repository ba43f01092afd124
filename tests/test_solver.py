"""The fast paths of the archetype solver reach the optimum of the plain solver."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import brute_force_simplex_least_squares
from sklearn.datasets import load_digits

from skarchetype._solvers import (
    _simplex,
    _weights,
    carry_over,
    fit_archetypes,
    squared_error,
)
from skarchetype._solvers._hull import nearest_in_hull
from skarchetype._solvers._init import furthest_sum
from skarchetype._solvers._rows import CentredRows
from skarchetype._solvers._simplex import (
    lipschitz_constant,
    minimise_on_faces_,
    simplex_least_squares,
    step_coefficients,
)
from skarchetype._solvers._weights import WorkingSet, nearest_weights, project_rows
from skarchetype.datasets import make_archetypal_data

CPU = torch.device("cpu")


def explained_variance(fit, data):
    return 1 - fit.sse / data.total_sum_of_squares


def data_set(name, n_samples=1000):
    """Small data sets: the unrestricted solver's cost grows with n_samples squared."""
    if name == "digits":
        return load_digits().data[:n_samples], 10
    if name == "synth":
        return make_archetypal_data(n_samples, 32, 6, concentration=0.5, noise=0.05,
                                    random_state=0)[0], 6
    return make_archetypal_data(n_samples, 16, 5, concentration=0.1, noise=0.01, plant=True,
                                random_state=0)[0], 5


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("name", ["digits", "synth", "planted"])
def test_working_set_reaches_an_optimum_of_the_unrestricted_problem(name, seed):
    # the restricted fit, continued by the unrestricted solver (every row a candidate),
    # gains nothing: it is a local optimum of PCHA's problem, not only of its working
    # set's. (Which local optimum a path ends in is up to the path: on digits the two
    # solvers from one start land in different ones, either better.)
    X, n_archetypes = data_set(name)
    data = CentredRows(X, CPU, torch.float64)
    restricted = fit_archetypes(data, furthest_sum(data, n_archetypes, np.random.RandomState(seed)))
    assert restricted.converged
    assert len(restricted.working_set) < X.shape[0] / 2
    weights = np.zeros((n_archetypes, X.shape[0]))
    weights[:, restricted.working_set] = restricted.weights
    unrestricted = fit_archetypes(data, start=dataclasses.replace(
        restricted, weights=weights, working_set=np.arange(X.shape[0])))
    gain = explained_variance(unrestricted, data) - explained_variance(restricted, data)
    assert gain <= 1e-5


@pytest.mark.parametrize("name", ["digits", "synth", "planted"])
def test_float32_stops_at_the_float64_optimum(name):
    X, n_archetypes = data_set(name)
    fits = {}
    for dtype in (torch.float32, torch.float64):
        data = CentredRows(X, CPU, dtype)
        start = furthest_sum(data, n_archetypes, np.random.RandomState(0))
        fits[dtype] = (fit_archetypes(data, start), data)
    single, double = (explained_variance(*fits[dtype]) for dtype in fits)
    assert fits[torch.float32][0].converged
    assert single >= double - 1e-3


def test_streamed_blocks_give_the_in_memory_fit():
    X, n_archetypes = data_set("synth")
    in_memory = CentredRows(X, CPU, torch.float64)
    streamed = CentredRows(X, CPU, torch.float64, block_size=512)
    start = furthest_sum(in_memory, n_archetypes, np.random.RandomState(0))
    a, b = fit_archetypes(in_memory, start), fit_archetypes(streamed, start)
    # only the summation order differs
    torch.testing.assert_close(b.archetypes, a.archetypes, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("block_size", [None, 512])
def test_residual_products_match_the_residuals_of_any_layout(dtype, block_size):
    # the in-memory copy is column-major, streamed blocks are row-major
    X, n_archetypes = data_set("synth")
    data = CentredRows(X, CPU, dtype, block_size=block_size)
    rng = np.random.RandomState(0)
    At = rng.dirichlet(np.ones(n_archetypes), len(X)).T
    Z = rng.randn(n_archetypes, X.shape[1]) * 0.1
    residual = (X - X.mean(axis=0)) * 2.0**-data.exponent - At.T @ Z
    squares, products = data.residual_products(
        torch.as_tensor(At, dtype=dtype), torch.as_tensor(Z, dtype=dtype)
    )
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    assert squares == pytest.approx((residual**2).sum(), rel=rtol)
    np.testing.assert_allclose(products.double().numpy(), At @ residual, rtol=rtol * 100,
                               atol=rtol * np.abs(At @ residual).max())


def test_weights_stay_on_the_simplex_over_the_working_set():
    X, n_archetypes = data_set("planted")
    data = CentredRows(X, CPU, torch.float64)
    fit = fit_archetypes(data, furthest_sum(data, n_archetypes, np.random.RandomState(0)))
    assert fit.weights.shape == (n_archetypes, len(fit.working_set))
    assert fit.weights.min() >= 0
    np.testing.assert_allclose(fit.weights.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        fit.archetypes.numpy(), fit.weights @ data.rows(fit.working_set).numpy(), atol=1e-12
    )


def test_loss_curve_has_one_entry_per_iteration_after_the_start():
    X, n_archetypes = data_set("synth")
    data = CentredRows(X, CPU, torch.float64)
    fit = fit_archetypes(data, furthest_sum(data, n_archetypes, np.random.RandomState(0)))
    assert fit.converged
    assert len(fit.loss_curve) == fit.n_iter + 1
    assert fit.loss_curve[-1] == fit.sse


def sorted_projection(V, total=1.0):
    """Projection of each row onto ``{v >= 0, sum(v) = total}`` by sorting (Held et al.
    1974)."""
    U = np.sort(V, axis=1)[:, ::-1]
    partial = np.cumsum(U, axis=1) - total
    ranks = np.arange(1, V.shape[1] + 1)
    support = (U - partial / ranks > 0).sum(axis=1)
    threshold = partial[np.arange(len(V)), support - 1] / support
    return np.maximum(V - threshold[:, None], 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [0, 1])
def test_projection_matches_the_sorting_reference_along_either_axis(dim, dtype):
    rng = np.random.default_rng(0)
    # near-sparse points as the solver meets them, plus far-off and tied ones
    V = np.vstack([rng.dirichlet(np.full(12, 0.3), 500) + 0.05 * rng.normal(size=(500, 12)),
                   10 * rng.normal(size=(100, 12)), np.full((3, 12), 0.25)])
    expected = sorted_projection(V)
    tensor = torch.as_tensor(V if dim == 1 else V.T.copy(), dtype=dtype)
    _simplex._project_onto_sum_(tensor, 1.0, dim)
    projected = tensor.double().numpy()
    atol = 16 * torch.finfo(dtype).eps * np.abs(V).max()  # rounding at the inputs' scale
    np.testing.assert_allclose(projected if dim == 1 else projected.T, expected, atol=atol)


def test_host_projection_of_the_weights_matches_the_sorting_reference():
    rng = np.random.default_rng(0)
    V = np.vstack([rng.dirichlet(np.full(40, 0.3), 200) + 0.05 * rng.normal(size=(200, 40)),
                   10 * rng.normal(size=(50, 40)), np.full((3, 40), 0.025), -np.ones((2, 40))])
    np.testing.assert_allclose(project_rows(V), sorted_projection(V), atol=1e-14)


@pytest.mark.parametrize("total", [1.0, "per slice"])
@pytest.mark.parametrize("dim", [0, 1])
def test_projection_started_from_any_threshold_is_exact(dim, total):
    """Thresholds below, above (even beyond every entry) and at the solution, and inf."""
    rng = np.random.default_rng(0)
    V = torch.as_tensor(rng.dirichlet(np.full(12, 0.3), 400) + 0.1 * rng.normal(size=(400, 12)))
    V = V if dim == 1 else V.T.contiguous()
    shape = (400, 1) if dim == 1 else (1, 400)
    if total != 1.0:
        total = torch.as_tensor(rng.uniform(0.5, 2.0, size=shape))
    expected = V.clone()
    solution = _simplex._project_onto_sum_(expected, total, dim)
    starts = torch.as_tensor(rng.choice([-3.0, 0.0, 0.1, 0.5, 10.0, np.inf], size=shape))
    for start in (starts, solution, torch.full(shape, -1e3)):
        projected = V.clone()
        threshold = _simplex._project_onto_sum_(projected, total, dim, start=start.clone())
        torch.testing.assert_close(projected, expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(threshold, solution, rtol=0, atol=1e-12)
    torch.testing.assert_close(expected.sum(dim=dim, keepdim=True),
                               torch.as_tensor(total, dtype=V.dtype).expand(shape))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("start", [None, math.inf])
def test_projection_of_entries_that_dwarf_the_total_stays_finite(dtype, start):
    """Where ``max(v) - total`` rounds to ``max(v)``: one entry is the simplex's one
    point, exactly (NaN coefficients came back from a one-archetype fit whose archetype
    sat at the data's mean); more entries get finite values."""
    huge = 1 / torch.finfo(dtype).eps
    for V in (torch.tensor([[30 * huge]]), torch.tensor([[30 * huge], [-huge], [20 * huge]])):
        for dim, slices in ((0, V.to(dtype)), (1, V.T.to(dtype))):
            projected = slices.clone()
            first = None if start is None else torch.full((1, 1), start, dtype=dtype)
            _simplex._project_onto_sum_(projected, 1.0, dim, start=first)
            assert torch.isfinite(projected).all()
            if len(V) == 1:
                assert projected.item() == 1.0


def coefficient_problem(n_archetypes, n_samples, n_features):
    """``B = Z X^T``, ``G = Z Z^T`` and the step ``1 / lambda_max(G)`` of random data."""
    generator = torch.Generator().manual_seed(0)
    Z = torch.randn(n_archetypes, n_features, generator=generator, dtype=torch.float64)
    X = torch.randn(n_samples, n_features, generator=generator, dtype=torch.float64)
    B, G = Z @ X.T, Z @ Z.T
    return B, G, 1 / lipschitz_constant(G)


def test_steps_started_from_earlier_thresholds_equal_steps_without_them():
    B, G, step = coefficient_problem(n_archetypes=5, n_samples=300, n_features=7)
    S, thresholds = torch.full((5, 300), 0.2, dtype=torch.float64), torch.full((1, 300), np.inf)
    step_coefficients(S, B, G, step, 1, thresholds=thresholds)
    assert torch.isfinite(thresholds).all()  # the last step's thresholds came back
    step_coefficients(S, 0.999 * B, G, step, 2, thresholds=thresholds)  # a nearby problem
    reference = step_coefficients(torch.full((5, 300), 0.2, dtype=torch.float64), B, G, step, 1)
    step_coefficients(reference, 0.999 * B, G, step, 2)
    torch.testing.assert_close(S, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_squared_error_matches_the_residual_in_any_chunking(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 9))
    Z = rng.normal(size=(4, 9))
    S = rng.dirichlet(np.ones(4), 500)
    expected = ((X - S @ Z) ** 2).sum()
    St, Bt, G = (torch.as_tensor(A, dtype=dtype) for A in (S.T.copy(), Z @ X.T, Z @ Z.T))
    total = float((X**2).sum())
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    assert squared_error(total, St, Bt, G) == pytest.approx(expected, rel=rtol)
    monkeypatch.setattr(_simplex, "_ENTRIES_PER_CHUNK", 4 * 150)  # chunks of 150, 150, 150, 50
    scratch = torch.full((3, 4, 150), torch.nan, dtype=dtype)
    assert squared_error(total, St, Bt, G, scratch) == pytest.approx(expected, rel=rtol)


def test_relaxed_projection_is_the_nearest_point_with_sums_in_bounds():
    # rows whose positive part sums below, inside and above [0.8, 1.2]
    V = np.random.default_rng(0).normal(size=(300, 7)) * np.geomspace(0.05, 3, 300)[:, None]
    projected = project_rows(V, 0.8, 1.2)
    positive = np.maximum(V, 0)
    sums = positive.sum(axis=1)
    inside = (sums >= 0.8) & (sums <= 1.2)
    np.testing.assert_array_equal(projected[inside], positive[inside])
    for bound, rows in ((0.8, sums < 0.8), (1.2, sums > 1.2)):
        assert rows.any()
        np.testing.assert_allclose(
            projected[rows], sorted_projection(V[rows], total=bound), atol=1e-14
        )


def test_coefficients_stepped_in_chunks_match_one_chunk(monkeypatch):
    """The cache-sized chunks (and the last, shorter one) step every sample as one call would."""
    X, n_archetypes = data_set("synth")
    data = CentredRows(X, CPU, torch.float64)
    start = furthest_sum(data, n_archetypes, np.random.RandomState(0))
    whole = fit_archetypes(data, start)
    monkeypatch.setattr(_simplex, "_ENTRIES_PER_CHUNK", n_archetypes * 300)
    chunked = fit_archetypes(data, start)
    assert chunked.n_iter == whole.n_iter
    # equal up to the rounding of products taken over chunks of other widths
    torch.testing.assert_close(chunked.coefficients, whole.coefficients, rtol=0, atol=1e-9)


def test_step_coefficients_reuses_its_workspace_and_updates_in_place():
    B, G, step = coefficient_problem(n_archetypes=4, n_samples=50, n_features=6)
    fresh = step_coefficients(torch.full((4, 50), 0.25, dtype=torch.float64), B, G, step, 7)
    S = torch.full((4, 50), 0.25, dtype=torch.float64)
    work = torch.full((3, 4, 80), torch.nan, dtype=torch.float64)  # larger than needed
    assert step_coefficients(S, B, G, step, 7, work) is S
    torch.testing.assert_close(S, fresh, rtol=0, atol=0)
    torch.testing.assert_close(S.sum(dim=0), torch.ones(50, dtype=torch.float64))


def face_problems(n_samples=60, n_archetypes=6, n_features=9):
    """Samples with their exact simplex least-squares optimum, one sample per column."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(n_archetypes, n_features))
    X = rng.dirichlet(np.full(n_archetypes, 0.4), n_samples) @ Z
    X += 0.3 * rng.normal(size=X.shape)  # many samples outside the hull: optima on faces
    optimum = np.array([brute_force_simplex_least_squares(x, Z) for x in X]).T
    return torch.as_tensor(Z @ X.T), torch.as_tensor(Z @ Z.T), optimum


@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("order", ["C", "F"])
def test_face_minimisation_solves_columns_started_on_their_optimal_face(monkeypatch, order,
                                                                         chunks):
    """Columns whose search ends early drop out of it: the rest go on without them."""
    B, G, optimum = face_problems()
    rng = np.random.default_rng(1)
    # any point of the optimal face: random positive weights on the optimum's support
    start = np.where(optimum > 0, rng.uniform(0.1, 1, optimum.shape), 0)
    S = torch.as_tensor(np.asarray(start / start.sum(axis=0), order=order))
    if chunks == 3:
        monkeypatch.setattr(_simplex, "_ENTRIES_PER_CHUNK", 6 * 25)  # three, one short
    minimise_on_faces_(S, B, G)
    np.testing.assert_allclose(S.numpy(), optimum, atol=1e-10)


def test_face_minimisation_leaves_columns_whose_face_minimiser_is_infeasible():
    B, G, optimum = face_problems()
    # the whole simplex as the face: its minimiser is negative somewhere unless the
    # optimum has full support
    start = torch.full(B.shape, 1 / B.shape[0], dtype=torch.float64)
    S = start.clone()
    minimise_on_faces_(S, B, G)
    interior = (optimum > 0).all(axis=0)
    assert 0 < interior.sum() < len(interior)
    np.testing.assert_allclose(S[:, interior].numpy(), optimum[:, interior], atol=1e-10)
    torch.testing.assert_close(S[:, ~interior], start[:, ~interior], rtol=0, atol=0)


@pytest.mark.parametrize("start", ["uniform", "warm"])
def test_simplex_least_squares_reaches_the_brute_force_optimum(start):
    B, G, optimum = face_problems()
    S = None if start == "uniform" else torch.full(B.shape, 1 / B.shape[0], dtype=B.dtype)
    solved, worst_gap = simplex_least_squares(B, G, S=S)
    assert worst_gap == 0
    np.testing.assert_allclose(solved.numpy(), optimum, atol=1e-9)


@pytest.mark.parametrize("start", ["vertex", "uniform", "sparse"])
def test_nearest_point_of_the_hull_matches_brute_force(start):
    # raw scales (features from 1 to 1000), duplicated points and targets inside the hull
    rng = np.random.RandomState(0)
    for _ in range(40):
        n_points, n_features = rng.randint(1, 9), rng.randint(1, 5)
        points = rng.randn(n_points, n_features) * np.logspace(0, 3, n_features)
        points[-1] = points[0]
        target = rng.randn(n_features) * np.logspace(0, 3, n_features) * rng.choice([0.1, 3])
        weights = {
            "vertex": np.eye(n_points)[rng.randint(n_points)],
            "uniform": np.full(n_points, 1 / n_points),
            "sparse": rng.dirichlet(np.ones(n_points)) * (rng.rand(n_points) < 0.5),
        }[start]
        weights = weights / weights.sum() if weights.sum() else np.eye(n_points)[0]
        scale = np.sqrt((points**2).sum(axis=1).max())
        nearest = nearest_in_hull(points, target, weights, scale)
        assert nearest.min() >= 0 and nearest.sum() == pytest.approx(1, abs=1e-12)
        optimum = brute_force_simplex_least_squares(target, points)
        distance = ((nearest @ points - target) ** 2).sum()
        assert distance <= ((optimum @ points - target) ** 2).sum() * (1 + 1e-9) + 1e-9


@pytest.mark.parametrize("block", ["exact", "line search"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_weights_blocks_lower_the_loss_and_leave_their_inputs(dtype, block):
    # the iterate's C, Z and pull are kept to extrapolate from: float64 host tensors share
    # memory with their numpy views, which a block must not write through
    X, n_archetypes = data_set("synth")
    data = CentredRows(X, CPU, dtype)
    ws = WorkingSet(data, furthest_sum(data, 3 * n_archetypes, np.random.RandomState(0)))
    rng = np.random.RandomState(1)
    C = rng.dirichlet(np.ones(len(ws.indices)), n_archetypes)
    St = torch.as_tensor(rng.dirichlet(np.ones(n_archetypes), len(X)).T.copy(), dtype=dtype)
    H, products = St @ St.T, data.rmatmul(St)
    pull = products - H @ ws.archetypes(C)
    H, products, pull = (_weights.on_host(tensor) for tensor in (H, products, pull))
    Z = _weights.on_host(ws.archetypes(C))
    before = [array.copy() for array in (C, Z, pull)]

    def loss(C):  # ||X - S C X_W||^2 up to its constant ||X||^2
        Z = C @ ws.host_rows
        return float((H * (Z @ Z.T)).sum() - 2 * (products * Z).sum())

    if block == "exact":
        updated = nearest_weights(C, Z, H, pull, ws)
    else:
        device_H = ws.on_device(H)
        updated, _ = _weights.line_search_steps(
            C, ws.gradient(ws.on_device(pull)), lambda D: ws.curvature(device_H, D),
            _weights.clip_and_normalise, project_rows, 1 / data.total_sum_of_squares, 5,
            torch.finfo(dtype).eps,
        )
    for array, kept in zip((C, Z, pull), before, strict=True):
        np.testing.assert_array_equal(array, kept)
    assert loss(updated) < loss(C)
    assert updated.min() >= 0
    np.testing.assert_allclose(updated.sum(axis=1), 1.0, rtol=1e-12)


def test_exact_weights_fit_does_not_depend_on_which_of_equal_rows_carry_the_weights(
    monkeypatch,
):
    # every row twice: a point of the hull has many weights, and which one a solve returns
    # is up to rounding (so it differs between shardings of the data); the fit must not
    # depend on it. Before the archetypes themselves were extrapolated, extrapolating two
    # iterates' unrelated weights moved the archetypes apart.
    X = np.vstack([make_archetypal_data(150, 5, 3, random_state=0)[0]] * 2)
    data = CentredRows(X, CPU, torch.float64)
    rows = furthest_sum(data, 3, np.random.RandomState(0))

    def fit():
        return fit_archetypes(data, rows, working_set=np.arange(len(X)), seed=0)

    reference = fit()
    rng = np.random.RandomState(0)

    def nearest_split_between_twins(points, target, weights, scale):
        nearest = nearest_in_hull(points, target, weights, scale)
        for row in np.flatnonzero(nearest):
            equal = (points == points[row]).all(axis=1)
            equal[row] = False
            share = rng.uniform() * nearest[row]
            nearest[row] -= share
            nearest[np.flatnonzero(equal)[0]] += share
        return nearest

    monkeypatch.setattr(_weights, "nearest_in_hull", nearest_split_between_twins)
    split = fit()
    assert split.n_iter == reference.n_iter
    assert split.sse == pytest.approx(reference.sse, rel=1e-12)
    torch.testing.assert_close(split.archetypes, reference.archetypes, rtol=0, atol=1e-10)


def test_a_fit_resolves_tol_only_above_its_rounding():
    # float32 rounds a stall's SSE to a few machine epsilons of itself (more on
    # near-perfect fits, where the gradient's rounding also blunts pricing)
    X, n_archetypes = data_set("synth")
    data = CentredRows(X, CPU, torch.float32)
    start = furthest_sum(data, n_archetypes, np.random.RandomState(0))
    fit = fit_archetypes(data, start)
    assert fit.converged and 1e-9 < fit.resolution <= 1e-6
    exact = fit_archetypes(CentredRows(X, CPU, torch.float64), start)
    assert exact.resolution < 1e-12


def test_a_fit_carried_over_to_float64_is_exact_there():
    X, n_archetypes = data_set("synth")
    coarse_data = CentredRows(X, CPU, torch.float32)
    coarse = fit_archetypes(coarse_data, furthest_sum(coarse_data, n_archetypes,
                                                       np.random.RandomState(0)))
    data = CentredRows(X, CPU, torch.float64)
    fine = carry_over(data, coarse)
    assert fine.archetypes.dtype == fine.coefficients.dtype == torch.float64
    np.testing.assert_array_equal(fine.weights, coarse.weights)
    np.testing.assert_allclose(
        fine.archetypes.numpy(), fine.weights @ data.rows(fine.working_set).numpy(), atol=1e-14
    )
    assert (fine.n_iter, fine.sse, fine.loss_curve) == (coarse.n_iter, coarse.sse,
                                                       coarse.loss_curve)


def test_a_converged_fit_continued_in_float64_stays_at_its_optimum():
    X, n_archetypes = data_set("synth")
    start = furthest_sum(CentredRows(X, CPU, torch.float32), n_archetypes,
                         np.random.RandomState(0))
    coarse = fit_archetypes(CentredRows(X, CPU, torch.float32), start)
    data = CentredRows(X, CPU, torch.float64)
    fine = fit_archetypes(data, start=coarse)
    again = fit_archetypes(data, start=fine)
    assert coarse.converged and fine.converged and again.converged
    assert fine.archetypes.dtype == torch.float64
    # continuing never loses ground; a float64 optimum continued gains less than tol (1e-6)
    # in each of the iterations that confirm it
    assert explained_variance(fine, data) >= 1 - coarse.sse / data.total_sum_of_squares - 1e-6
    assert again.n_iter <= 2
    gain = explained_variance(again, data) - explained_variance(fine, data)
    assert -1e-12 <= gain <= again.n_iter * 1e-6
    np.testing.assert_allclose(
        fine.archetypes.numpy(), fine.weights @ data.rows(fine.working_set).numpy(), atol=1e-12
    )
