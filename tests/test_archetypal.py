"""ArchetypalAnalysis against independent references and data with known answers."""

import functools
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import brute_force_simplex_least_squares, requires_cuda
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skarchetype import ArchetypalAnalysis, archetypal_analysis
from skarchetype.datasets import make_archetypal_data


def centred_ev(X, S, Z):
    X = np.asarray(X, dtype=np.float64)
    return 1 - ((X - S @ Z) ** 2).sum() / ((X - X.mean(0)) ** 2).sum()


def py_pcha_ev(X, n_archetypes, seed):
    """Centred EV of the reference PCHA implementation (py_pcha 0.1.3, float64)."""
    py_pcha = pytest.importorskip("py_pcha")
    np.mat = np.asmatrix  # noqa: NPY201 (py_pcha still calls np.mat, removed in NumPy 2)
    np.random.seed(seed)  # noqa: NPY002 (py_pcha draws its start from the global generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # py_pcha's np.matrix
        XC, S, *_ = py_pcha.PCHA(np.asarray(X, dtype=np.float64).T, n_archetypes)
    return centred_ev(X, np.asarray(S).T, np.asarray(XC).T)


def squared_error(X, aa):
    """``||X - S Z||^2`` in float64, whatever the dtype of the fit."""
    X = np.asarray(X, dtype=np.float64)
    return ((X - aa.coefficients_ @ aa.archetypes_.astype(np.float64)) ** 2).sum()


def recovery_error(true, estimated, X):
    distances = np.linalg.norm(true[:, None] - estimated[None], axis=2)
    rows, cols = linear_sum_assignment(distances)
    return distances[rows, cols].mean() / np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())


@pytest.fixture(scope="module")
def digits():
    return load_digits().data


@pytest.fixture(scope="module")
def synth():
    """A shrunk ``synth20k`` of the benchmark protocol (Dirichlet(0.5), noise 0.05)."""
    return make_archetypal_data(3000, 32, 6, concentration=0.5, noise=0.05, random_state=0)[0]


@pytest.fixture(scope="module")
def planted():
    """A shrunk ``planted`` set: the exact archetypes are rows of X."""
    X, Z, _ = make_archetypal_data(
        3000, 16, 5, concentration=0.1, noise=0.01, plant=True, random_state=0
    )
    return X, Z


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("data, n_archetypes", [("digits", 10), ("synth", 6), ("planted", 5)])
def test_explained_variance_at_least_py_pcha(data, n_archetypes, seed, request):
    X = request.getfixturevalue(data)
    X = X[0] if isinstance(X, tuple) else X
    aa = ArchetypalAnalysis(n_archetypes, random_state=seed).fit(X)
    assert aa.explained_variance_ >= py_pcha_ev(X, n_archetypes, seed) - 1e-3


# raw-scale sets (features from about 0.1 to about 1000: Z Z^T badly conditioned), a
# near-perfect fit (EV about 0.99998), K equal to D, and fewer samples than features,
# and raw scales with more archetypes than features
HARD_SETS = {
    "wine": (lambda: load_wine().data, 4),
    "breast cancer": (lambda: load_breast_cancer().data, 5),
    "near-perfect": (lambda: make_archetypal_data(
        3000, 16, 5, concentration=0.1, noise=0.001, plant=True, random_state=2)[0], 5),
    "iris, K = D": (lambda: load_iris().data, 4),
    "N < D": (lambda: np.maximum(0, np.random.RandomState(0).randn(120, 800)
                                + np.random.RandomState(1).randn(1, 800)), 10),
    # gradient steps on C left it 1.2-1.4x py_pcha's SSE, on a plateau for 1500 iterations
    "raw-scale, K > D": (
        lambda: np.random.RandomState(0).randn(1000, 4) * [1, 10, 100, 1000], 5),
}


@functools.cache
def py_pcha_squared_error(name):
    """py_pcha's smallest SSE over seeds 0 and 1 on one of ``HARD_SETS``."""
    load, n_archetypes = HARD_SETS[name]
    X = load()
    total = ((X - X.mean(0)) ** 2).sum()
    return min((1 - py_pcha_ev(X, n_archetypes, seed)) * total for seed in (0, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(HARD_SETS))
def test_squared_error_at_most_py_pcha_on_every_kind_of_data(name, dtype):
    # the SSE of the best of two seeds within 1.001 of py_pcha's best, every seed's
    # within 1.01 (the old stopping rule left wine at 2.5x, the near-perfect set at 1.9x)
    load, n_archetypes = HARD_SETS[name]
    X = load()
    reference = py_pcha_squared_error(name)
    errors = []
    for seed in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # raw scale may take max_iter
            # one start each: the solver's own reach, not the best of several
            aa = ArchetypalAnalysis(n_archetypes, n_init=1, random_state=seed)
            aa.fit(X.astype(dtype))
        errors.append(squared_error(X, aa))
    assert min(errors) <= 1.001 * reference
    assert max(errors) <= 1.01 * reference


@pytest.mark.parametrize("n_archetypes", [5, 6, 8])
def test_default_starts_reach_py_pcha_on_low_dimensional_data(n_archetypes):
    # diabetes (442 x 10) at K close to D: single starts from seeds 0 to 3 end up to 4.8 %
    # (K = 5), 1.2 % (K = 6: FurthestSum's every start) and 2.8 % (K = 8) above py_pcha's
    # best; n_init="auto" makes four, the last three from AA++ draws
    X = load_diabetes().data * 1e3
    total = ((X - X.mean(0)) ** 2).sum()
    reference = min((1 - py_pcha_ev(X, n_archetypes, seed)) * total for seed in (0, 1))
    for seed in (0, 1):
        aa = ArchetypalAnalysis(n_archetypes, random_state=seed).fit(X)
        assert squared_error(X, aa) <= 1.001 * reference


def test_default_starts_leave_furthest_sums_basin():
    # K = 6 archetypes of data from 8 in 6 dimensions: FurthestSum's starts from seeds 0
    # to 3 and py_pcha's all end in one local optimum; AA++ draws find one 26 % lower
    X = make_archetypal_data(2000, 6, 8, noise=0.05, random_state=4)[0]
    total = ((X - X.mean(0)) ** 2).sum()
    reference = min((1 - py_pcha_ev(X, 6, seed)) * total for seed in (0, 1))
    for seed in (0, 1):
        single = ArchetypalAnalysis(6, n_init=1, random_state=seed).fit(X)
        assert squared_error(X, single) >= 0.99 * reference
        assert squared_error(X, ArchetypalAnalysis(6, random_state=seed).fit(X)) <= 0.8 * reference


def test_tol_is_relative_to_the_squared_error(planted):
    # a near-perfect fit: its SSE is 1e-4 of the total, so a rule in units of the total
    # variance would stop at once; PCHA's relative rule runs until the SSE settles
    X, _ = planted
    aa = ArchetypalAnalysis(5, random_state=0, precision="full").fit(X)
    curve = aa.loss_curve_
    assert curve[-2] - curve[-1] <= 1e-6 * curve[-1] * 1.0001 + 1e-12 * curve[0]
    assert aa.n_iter_ > 2
    loose = ArchetypalAnalysis(5, random_state=0, precision="full", tol=1e-2).fit(X)
    assert loose.n_iter_ < aa.n_iter_


def test_explained_variance_is_centred_and_matches_reconstruction(digits):
    aa = ArchetypalAnalysis(6, random_state=0).fit(digits)
    expected = centred_ev(digits, aa.coefficients_, aa.archetypes_)
    assert aa.explained_variance_ == pytest.approx(expected, abs=1e-10)
    assert aa.score(digits) == pytest.approx(expected, abs=1e-10)
    assert aa.reconstruction_err_ == pytest.approx(
        np.linalg.norm(digits - aa.coefficients_ @ aa.archetypes_), rel=1e-8
    )


def test_planted_archetypes_are_recovered(planted):
    X, true = planted
    aa = ArchetypalAnalysis(5, random_state=0).fit(X)
    assert recovery_error(true, aa.archetypes_, X) < 0.05


def test_archetypes_are_convex_combinations_of_samples(digits):
    aa = ArchetypalAnalysis(5, random_state=0).fit(digits)
    C = aa.archetype_weights_.toarray()
    assert C.min() >= 0
    np.testing.assert_allclose(C.sum(axis=1), 1, atol=1e-10)
    np.testing.assert_allclose(C @ digits, aa.archetypes_, atol=1e-8)
    assert aa.components_ is aa.archetypes_


def test_coefficients_lie_on_the_simplex(digits):
    S = ArchetypalAnalysis(5, random_state=0).fit_transform(digits)
    assert S.min() >= 0
    np.testing.assert_allclose(S.sum(axis=1), 1, atol=1e-10)


def test_archetypes_move_with_a_translation(synth):
    shift = np.linspace(-100, 100, synth.shape[1])
    plain = ArchetypalAnalysis(6, precision="full", random_state=0).fit(synth)
    shifted = ArchetypalAnalysis(6, precision="full", random_state=0).fit(synth + shift)
    np.testing.assert_allclose(shifted.archetypes_, plain.archetypes_ + shift, atol=1e-6)


def test_raw_scale_data_converge_like_standardised_data(digits):
    raw = ArchetypalAnalysis(8, random_state=0).fit(digits)
    scaled = ArchetypalAnalysis(8, random_state=0).fit(digits / 16.0)
    assert raw.explained_variance_ == pytest.approx(scaled.explained_variance_, abs=1e-6)
    assert raw.n_iter_ < raw.max_iter


def test_same_random_state_gives_the_same_fit(synth):
    first = ArchetypalAnalysis(6, init="aa++", random_state=3).fit(synth)
    second = ArchetypalAnalysis(6, init="aa++", random_state=3).fit(synth)
    np.testing.assert_array_equal(first.archetypes_, second.archetypes_)


@pytest.mark.parametrize("init", ["furthest_sum", "aa++", "random"])
def test_every_initialisation_reaches_the_optimum(synth, init):
    reference = py_pcha_ev(synth, 6, 0)
    aa = ArchetypalAnalysis(6, init=init, n_init=3, random_state=0).fit(synth)
    assert aa.explained_variance_ >= reference - 1e-3


def test_initial_archetypes_given_as_an_array(planted):
    X, true = planted
    start = true + 0.05 * np.random.default_rng(0).normal(size=true.shape)
    aa = ArchetypalAnalysis(5, init=start).fit(X)
    assert recovery_error(true, aa.archetypes_, X) < 0.05


def test_best_of_several_starts_is_kept(digits):
    single = [ArchetypalAnalysis(8, random_state=s).fit(digits).reconstruction_err_
              for s in range(3)]
    several = ArchetypalAnalysis(8, n_init=3, n_jobs=2, random_state=0).fit(digits)
    assert several.reconstruction_err_ <= max(single) + 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_and_float32_reaches_the_optimum(as_large_data, synth, dtype):
    aa = ArchetypalAnalysis(6, random_state=0).fit(synth.astype(dtype))
    assert aa.archetypes_.dtype == dtype
    assert aa.transform(synth.astype(dtype)).dtype == dtype
    assert aa.explained_variance_ >= py_pcha_ev(synth, 6, 0) - 1e-3


def test_mixed_precision_finishes_at_the_full_precision_optimum(as_large_data, synth):
    full = ArchetypalAnalysis(6, precision="full", random_state=0).fit(synth)
    mixed = ArchetypalAnalysis(6, random_state=0).fit(synth)
    assert mixed.explained_variance_ == pytest.approx(full.explained_variance_, abs=1e-5)
    assert len(mixed.loss_curve_) == mixed.n_iter_ + 1
    # everything the user sees is float64 and exact for the float64 data
    assert mixed.archetypes_.dtype == mixed.coefficients_.dtype == np.float64
    np.testing.assert_allclose(mixed.archetype_weights_ @ synth, mixed.archetypes_, atol=1e-12)
    np.testing.assert_allclose(mixed.transform(synth), mixed.coefficients_, atol=1e-12)
    assert mixed.score(synth) == pytest.approx(mixed.explained_variance_, abs=1e-12)


@pytest.mark.parametrize(("tol", "continued"), [(1e-6, False), (1e-10, True)])
def test_mixed_precision_steps_in_float64_only_where_float32_cannot_resolve_tol(
    as_large_data, synth, monkeypatch, tol, continued
):
    # float32 rounds the SSE to about 5e-7 of itself: at tol=1e-6 its stop stands and the
    # weights carry over; at 1e-10 the fit goes on in float64 until float64's rule holds
    from skarchetype import _archetypal

    continuations = []

    def spy(data, *args, **kwargs):
        continuations.append(kwargs.get("start") is not None)
        return fit_archetypes(data, *args, **kwargs)

    fit_archetypes = _archetypal.fit_archetypes
    monkeypatch.setattr(_archetypal, "fit_archetypes", spy)
    mixed = ArchetypalAnalysis(6, tol=tol, random_state=0).fit(synth)
    assert continuations == ([False, True] if continued else [False])
    full = ArchetypalAnalysis(6, tol=tol, precision="full", random_state=0).fit(synth)
    assert mixed.explained_variance_ == pytest.approx(full.explained_variance_, abs=1e-5)


def test_data_whose_spread_float32_cannot_hold_are_fitted_in_float64(as_large_data, synth):
    # a spread 1e-13 of the largest entry: float32 would round the centred data to noise
    X = synth + 1e13
    full = ArchetypalAnalysis(6, precision="full", random_state=0).fit(X)
    mixed = ArchetypalAnalysis(6, random_state=0).fit(X)
    np.testing.assert_array_equal(mixed.archetypes_, full.archetypes_)
    assert np.isfinite(mixed.explained_variance_) and mixed.explained_variance_ > 0.9


def test_small_data_are_fitted_in_float64_whatever_their_dtype(planted):
    X = planted[0]
    as_float32 = ArchetypalAnalysis(5, random_state=0).fit(X.astype(np.float32))
    as_float64 = ArchetypalAnalysis(5, random_state=0, precision="full").fit(
        X.astype(np.float32).astype(np.float64))
    assert as_float32.archetypes_.dtype == as_float32.coefficients_.dtype == np.float32
    np.testing.assert_array_equal(as_float32.archetypes_,
                                  as_float64.archetypes_.astype(np.float32))
    assert as_float32.explained_variance_ == as_float64.explained_variance_
    mixed = ArchetypalAnalysis(5, random_state=0).fit(X)
    full = ArchetypalAnalysis(5, random_state=0, precision="full").fit(X)
    np.testing.assert_array_equal(mixed.archetypes_, full.archetypes_)


def test_max_iter_caps_both_precisions_together(as_large_data, digits):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        aa = ArchetypalAnalysis(8, max_iter=3, random_state=0).fit(digits)
    assert aa.n_iter_ == 3 and aa.archetypes_.dtype == np.float64


def test_torch_tensor_input_gives_the_numpy_result(synth):
    from_numpy = ArchetypalAnalysis(6, random_state=0).fit(synth)
    from_tensor = ArchetypalAnalysis(6, random_state=0).fit(torch.from_numpy(synth))
    np.testing.assert_allclose(from_tensor.archetypes_, from_numpy.archetypes_, atol=1e-8)
    assert isinstance(from_tensor.transform(torch.from_numpy(synth[:5])), np.ndarray)


def test_streamed_memory_map_gives_the_in_memory_result(synth, tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, synth)
    mapped = np.load(path, mmap_mode="r")
    in_memory = ArchetypalAnalysis(6, precision="full", random_state=0).fit(synth)
    streamed = ArchetypalAnalysis(6, batch_size=700, precision="full", random_state=0).fit(mapped)
    np.testing.assert_allclose(streamed.archetypes_, in_memory.archetypes_, atol=1e-6)
    np.testing.assert_allclose(streamed.transform(mapped[:10]), in_memory.transform(synth[:10]),
                               atol=1e-6)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_and_cpu_agree(as_large_data, synth, dtype):
    X = torch.from_numpy(synth).to(dtype)
    cpu = ArchetypalAnalysis(6, random_state=0, device="cpu").fit(X)
    cuda = ArchetypalAnalysis(6, random_state=0).fit(X.cuda())
    assert cuda.explained_variance_ == pytest.approx(cpu.explained_variance_, abs=1e-4)
    assert recovery_error(cpu.archetypes_, cuda.archetypes_, synth) < 1e-2


def test_transform_is_row_independent(digits):
    aa = ArchetypalAnalysis(8, random_state=0).fit(digits)
    together = aa.transform(digits[:200])
    alone = np.vstack([aa.transform(digits[i : i + 1]) for i in range(0, 200, 17)])
    np.testing.assert_allclose(alone, together[::17], atol=1e-9)


def test_transform_matches_a_brute_force_solver(digits):
    aa = ArchetypalAnalysis(4, random_state=0).fit(digits)
    expected = [brute_force_simplex_least_squares(x, aa.archetypes_) for x in digits[:20]]
    np.testing.assert_allclose(aa.transform(digits[:20]), expected, atol=1e-7)


def test_inverse_transform_reconstructs_from_coefficients(digits):
    aa = ArchetypalAnalysis(5, random_state=0).fit(digits)
    np.testing.assert_allclose(aa.inverse_transform(aa.coefficients_),
                               aa.coefficients_ @ aa.archetypes_)


def test_score_grows_with_the_number_of_archetypes(digits):
    scores = [ArchetypalAnalysis(k, random_state=0).fit(digits).score(digits) for k in (2, 4, 8)]
    assert scores[0] < scores[1] < scores[2] <= 1


def test_relaxed_weights_sum_within_delta(synth):
    aa = ArchetypalAnalysis(6, delta=0.1, random_state=0).fit(synth)
    sums = aa.archetype_weights_.toarray().sum(axis=1)
    assert np.all((sums >= 0.9 - 1e-9) & (sums <= 1.1 + 1e-9))
    assert aa.explained_variance_ >= ArchetypalAnalysis(6, random_state=0).fit(
        synth).explained_variance_ - 1e-3


def test_hitting_max_iter_warns_with_the_last_relative_change(digits):
    with pytest.warns(ConvergenceWarning, match=r"max_iter=2 .* lowered the SSE by \d"):
        ArchetypalAnalysis(8, max_iter=2, random_state=0).fit(digits)


def test_sparse_input_gives_the_dense_result(digits):
    dense = ArchetypalAnalysis(5, random_state=0).fit(digits)
    sparse = ArchetypalAnalysis(5, random_state=0).fit(sp.csr_matrix(digits))
    np.testing.assert_allclose(sparse.archetypes_, dense.archetypes_)


def test_constant_data_warns_and_reconstructs_exactly():
    X = np.ones((20, 3))
    with pytest.warns(UserWarning, match="zero variance"):
        aa = ArchetypalAnalysis(3, random_state=0).fit(X)
    np.testing.assert_allclose(aa.inverse_transform(aa.transform(X)), X)
    assert aa.explained_variance_ == 1.0


def test_duplicated_rows_work():
    X = np.repeat(np.eye(3), 10, axis=0)
    aa = ArchetypalAnalysis(3, random_state=0).fit(X)
    order = np.argsort(aa.archetypes_.argmax(axis=1))
    np.testing.assert_allclose(aa.archetypes_[order], np.eye(3), atol=1e-8)
    assert aa.explained_variance_ == pytest.approx(1.0)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]]), "infinity"),
        (np.zeros((0, 3)), "0 sample"),
        (np.ones((3, 2)) * 1j, "Complex"),
        (torch.tensor([[1.0, float("nan")], [2.0, 3.0], [0.0, 1.0]]), "NaN"),
        (torch.ones(3, 2) * 1j, "Complex"),
        (torch.ones(3, 2, 2), "2-D"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(X, message):
    with pytest.raises(ValueError, match=message):
        ArchetypalAnalysis(2).fit(X)


@pytest.mark.parametrize("n_archetypes, message", [(0, "n_archetypes"), (11, "n_samples=10")])
def test_impossible_number_of_archetypes_is_rejected(n_archetypes, message):
    with pytest.raises(ValueError, match=message):
        ArchetypalAnalysis(n_archetypes).fit(np.random.default_rng(0).normal(size=(10, 3)))


def test_transform_rejects_a_wrong_number_of_features(digits):
    aa = ArchetypalAnalysis(3, random_state=0).fit(digits)
    with pytest.raises(ValueError, match="64 features"):
        aa.transform(digits[:, :10])
    with pytest.raises(ValueError, match="64 features"):
        aa.transform(torch.from_numpy(digits[:, :10]))


def test_initial_array_of_the_wrong_shape_is_rejected(digits):
    with pytest.raises(ValueError, match="init must be"):
        ArchetypalAnalysis(3, init=np.zeros((2, 64))).fit(digits)


def test_pipeline_grid_search_clone_and_pickle(digits):
    y = load_digits().target
    pipe = make_pipeline(StandardScaler(), ArchetypalAnalysis(random_state=0))
    search = GridSearchCV(pipe, {"archetypalanalysis__n_archetypes": [2, 4]}, cv=2)
    search.fit(digits[:300], y[:300])
    assert search.best_params_["archetypalanalysis__n_archetypes"] == 4
    fitted = search.best_estimator_[-1]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.archetypes_, fitted.archetypes_)
    assert clone(fitted).get_params() == fitted.get_params()


def test_pandas_output_and_feature_names(digits):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(digits, columns=[f"pixel{i}" for i in range(64)])
    aa = ArchetypalAnalysis(3, random_state=0).set_output(transform="pandas").fit(frame)
    out = aa.transform(frame)
    assert list(out.columns) == ["archetypalanalysis0", "archetypalanalysis1",
                                 "archetypalanalysis2"]
    assert list(aa.feature_names_in_) == list(frame.columns)


def test_function_returns_the_estimator_results(digits):
    Z, S, C = archetypal_analysis(digits, 4, random_state=0)
    aa = ArchetypalAnalysis(4, random_state=0).fit(digits)
    np.testing.assert_array_equal(Z, aa.archetypes_)
    np.testing.assert_array_equal(S, aa.coefficients_)
    assert (C != aa.archetype_weights_).nnz == 0


def test_verbose_reports_progress(digits, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ArchetypalAnalysis(4, verbose=2, max_iter=3, random_state=0).fit(digits)
    assert "iteration 3" in capsys.readouterr().out


# --------------------------------------------------------------------------- hostile input


@pytest.fixture
def small():
    X, _, _ = make_archetypal_data(60, 3, 3, noise=0.01, random_state=0)
    return X


def test_a_tensor_that_requires_grad_fits_like_its_detached_value(small):
    X = torch.tensor(small, requires_grad=True)
    model = ArchetypalAnalysis(3, random_state=0).fit(X)
    expected = ArchetypalAnalysis(3, random_state=0).fit(small)
    np.testing.assert_array_equal(model.archetypes_, expected.archetypes_)
    assert X.grad is None and X.requires_grad


def test_transform_and_score_of_a_tensor_that_requires_grad(small):
    model = ArchetypalAnalysis(3, random_state=0).fit(small)
    X = torch.tensor(small, requires_grad=True)
    np.testing.assert_array_equal(model.transform(X), model.transform(small))
    assert model.score(X) == model.score(small)


def test_an_init_tensor_that_requires_grad_is_used_as_its_value(small):
    init = small[:3]
    tensor = torch.tensor(init, requires_grad=True)
    model = ArchetypalAnalysis(3, init=tensor, random_state=0).fit(small)
    expected = ArchetypalAnalysis(3, init=init, random_state=0).fit(small)
    np.testing.assert_array_equal(model.archetypes_, expected.archetypes_)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_inverse_transform_refuses_non_finite_coefficients(small, value):
    model = ArchetypalAnalysis(3, random_state=0).fit(small)
    coefficients = np.full((2, 3), 1 / 3)
    coefficients[1, 0] = value
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.inverse_transform(coefficients)


@pytest.mark.parametrize(
    "init", [[["a", "b", "c"]] * 3, [[1.0, 2.0, 3.0], [1.0, 2.0]]], ids=["strings", "ragged"]
)
def test_an_init_that_is_not_an_array_of_numbers_names_init(small, init):
    with pytest.raises(ValueError, match="^init must be an array of numbers"):
        ArchetypalAnalysis(3, init=init).fit(small)


def test_a_sparse_tensor_is_refused_with_the_way_out(small):
    with pytest.raises(ValueError, match="to_dense"):
        ArchetypalAnalysis(3).fit(torch.tensor(small).to_sparse())


@pytest.fixture
def frame(small):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(small, columns=["a", "b", "c"])


@pytest.mark.parametrize(
    ("dtype", "values"),
    [("category", ["red", "green", "blue"]), ("category", [1, 2, 3]), ("string", ["1", "2", "3"]),
     (object, ["x", "y", "z"])],
    ids=["category-text", "category-numbers", "string", "object-text"],
)
def test_non_numeric_pandas_columns_are_named_with_the_fix(frame, dtype, values):
    frame["colour"] = np.resize(np.array(values, dtype=object), len(frame))
    frame["colour"] = frame["colour"].astype(dtype)
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) 'colour'.*OneHotEncoder"):
        ArchetypalAnalysis(3).fit(frame)


def test_every_non_numeric_column_is_named(frame):
    frame["colour"] = ["red"] * len(frame)
    frame["size"] = frame["a"].astype("category")
    with pytest.raises(ValueError, match="'colour' .*'size' "):
        ArchetypalAnalysis(3).fit(frame)


def test_transform_names_a_non_numeric_column_too(frame):
    model = ArchetypalAnalysis(3, random_state=0).fit(frame)
    frame["c"] = frame["c"].astype("category")
    with pytest.raises(ValueError, match="'c' \\(category\\)"):
        model.transform(frame)


def test_numbers_held_as_python_objects_or_booleans_are_numbers(frame, small):
    frame["a"] = frame["a"].astype(object)
    frame["flag"] = small[:, 0] > 0
    model = ArchetypalAnalysis(3, random_state=0).fit(frame)
    expected = np.column_stack([small, small[:, 0] > 0]).astype(np.float64)
    np.testing.assert_allclose(
        model.archetypes_, ArchetypalAnalysis(3, random_state=0).fit(expected).archetypes_
    )
