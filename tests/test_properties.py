"""Property-based tests: hostile input against the estimators, the inspection functions and the CLI.

Every call either raises a documented exception (``ValueError``, ``TypeError`` or
``NotFittedError``, with a message) or returns a valid result (finite, the right shape,
coefficient rows on the simplex); either way the caller's data, and a module's modes,
hooks and weights, are as they were.

The generators draw tables of random shapes, dtypes, scales, memory layouts (C and F
order, strided and reversed views) and special values (NaN, infinities, zeros, constant
columns). The example budget and seed come from the profiles of ``conftest.py``: with
``CI`` set, a fixed number of examples from a fixed seed; ``pytest --hypothesis-profile
thorough`` draws 500 examples per test.
"""

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError

from skarchetype import ArchetypalAnalysis, LatentResponse, TorchLayerFeatures
from skarchetype.cli import main
from skarchetype.inspection import (
    archetype_purity,
    elbow,
    match_archetypes,
    nearest_samples,
    soft_nmi,
)

# Scales of the torch estimators' tables: a module's own arithmetic (a BatchNorm's variance)
# may overflow beyond them, which is the model's business, not the input layer's.
SCALES = (0.0, 1e-4, 1e-2, 1.0, 1e2, 1e4)
# ... and beyond, where the cast to a float32 module overflows and must be refused
INPUT_SCALES = (*SCALES, 1e-30, 1e30, 1e300)
# ArchetypalAnalysis is scale equivariant: every scale a table's dtype can hold
EVERY_SCALE = (0.0, 1e-300, 1e-25, 1e-4, 1.0, 1e4, 1e30, 1e150, 1e300)
OFFSETS = (0.0, -3.0, 1e3)
DTYPES = (np.float64, np.float32, np.float16, np.int64, np.bool_)
SPECIALS = ("none", "nan", "inf", "-inf", "zeros", "constant column", "duplicate rows")
LAYOUTS = ("C", "F", "strided", "reversed")
DOCUMENTED = (ValueError, TypeError, NotFittedError)
REFUSED = object()


@st.composite
def tables(draw, max_rows=10, features=None, dtypes=DTYPES, scales=SCALES):
    """A hostile 2-D numpy array, and whether it holds NaN or infinity."""
    n, d = draw(st.integers(1, max_rows)), draw(st.integers(1, 4) if features is None else features)
    unit = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-1, 1, width=32)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    largest = float(np.finfo(dtype).max) if dtype.kind == "f" else np.inf  # ints wrap, bools clip
    offset = draw(st.sampled_from(OFFSETS))
    scale = draw(st.sampled_from([scale for scale in scales if scale + abs(offset) < largest]))
    values = unit * scale + offset
    special = draw(st.sampled_from(SPECIALS))
    row, column = draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))
    non_finite = special in ("nan", "inf", "-inf") and dtype.kind == "f"
    if non_finite:
        values[row, column] = float(special)
    elif special == "zeros":
        values[:] = 0.0
    elif special == "constant column":
        values[:, column] = values[row, column]
    elif special == "duplicate rows":
        values[:] = values[row]
    with np.errstate(over="ignore", invalid="ignore"):
        array = values.astype(dtype)
    return lay_out(array, draw(st.sampled_from(LAYOUTS))), non_finite


def lay_out(array, layout: str):
    """The same values (a numpy array or a tensor) in another memory layout."""
    tensor = isinstance(array, torch.Tensor)
    if layout == "F":
        return array.t().contiguous().t() if tensor else np.asfortranarray(array)
    if layout == "strided":
        shape = (len(array), 2 * array.shape[1])
        wide = torch.zeros(shape, dtype=array.dtype) if tensor else np.zeros(shape, array.dtype)
        wide[:, ::2] = array
        return wide[:, ::2]
    if layout == "reversed" and len(array) > 1:
        # One row with a negative stride fails in torch.from_numpy today: left to the
        # input layer's issue, so it is not drawn here yet.
        return array.flip(0) if tensor else array[::-1]
    return array


def attempt(call):
    """``call()``, or REFUSED when it raised a documented exception with a message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and zero-variance warnings are allowed
            return call()
    except DOCUMENTED as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return REFUSED


def copy_of(X):
    return X.detach().clone() if isinstance(X, torch.Tensor) else np.array(X, copy=True)


def assert_unchanged(X, before):
    if isinstance(X, torch.Tensor):
        assert torch.equal(X.nan_to_num(), before.nan_to_num()) and X.dtype == before.dtype
    else:
        np.testing.assert_array_equal(X, before, strict=True)


def assert_on_simplex(coefficients, n_rows, n_archetypes):
    assert coefficients.shape == (n_rows, n_archetypes)
    assert np.isfinite(coefficients).all()
    assert coefficients.min() >= -1e-6
    np.testing.assert_allclose(coefficients.sum(axis=1), 1.0, atol=1e-4)


# --------------------------------------------------------------------------- ArchetypalAnalysis


def check_archetypal_analysis(X, non_finite, n_archetypes):
    before = copy_of(X)
    model = ArchetypalAnalysis(n_archetypes, max_iter=50, random_state=0)
    fitted = attempt(lambda: model.fit(X))
    assert_unchanged(X, before)
    n, d = X.shape
    if non_finite or n_archetypes > n:
        assert fitted is REFUSED
        return
    assert fitted is model
    assert model.archetypes_.shape == (n_archetypes, d) and np.isfinite(model.archetypes_).all()
    assert_on_simplex(model.coefficients_, n, n_archetypes)
    assert np.isfinite(model.explained_variance_)
    assert_on_simplex(attempt(lambda: model.transform(X)), n, n_archetypes)
    assert np.isfinite(attempt(lambda: model.score(X)))
    assert_unchanged(X, before)


@given(table=tables(scales=EVERY_SCALE), n_archetypes=st.integers(1, 4))
def test_archetypal_analysis_of_any_array_fits_validly_or_refuses(table, n_archetypes):
    check_archetypal_analysis(*table, n_archetypes)


@given(
    table=tables(dtypes=(np.float64, np.float32, np.int64), scales=EVERY_SCALE),
    n_archetypes=st.integers(1, 4),
    requires_grad=st.booleans(),
    layout=st.sampled_from(("C", "F", "strided", "reversed")),
)
def test_archetypal_analysis_of_any_tensor_fits_validly_or_refuses(
    table, n_archetypes, requires_grad, layout
):
    X, non_finite = table
    tensor = torch.tensor(X.copy(order="C"))
    tensor = lay_out(tensor.requires_grad_(requires_grad and tensor.is_floating_point()), layout)
    check_archetypal_analysis(tensor, non_finite, n_archetypes)


@given(
    table=tables(features=st.just(3), scales=EVERY_SCALE),
    coefficients=tables(features=st.integers(1, 4)),
)
def test_transform_and_inverse_transform_of_any_input(table, coefficients):
    X, non_finite = table
    assume(not non_finite and len(X) >= 2)
    model = attempt(lambda: ArchetypalAnalysis(2, max_iter=50, random_state=0).fit(X))
    assert model is not REFUSED
    S, non_finite_s = coefficients
    before = copy_of(S)
    result = attempt(lambda: model.inverse_transform(S))
    assert_unchanged(S, before)
    if non_finite_s or S.shape[1] != 2:
        assert result is REFUSED
    else:
        assert result.shape == (len(S), 3) and np.isfinite(result).all()
    projected = attempt(lambda: model.transform(S))
    if non_finite_s or S.shape[1] != 3:
        assert projected is REFUSED
    else:
        assert_on_simplex(projected, len(S), 2)


# --------------------------------------------------------------------------- torch estimators


def module_state(module: torch.nn.Module):
    return (
        [sub.training for sub in module.modules()],
        [(len(sub._forward_hooks), len(sub._forward_pre_hooks)) for sub in module.modules()],
        {name: value.clone() for name, value in module.state_dict().items()},
    )


def assert_same_state(module, before):
    training, hooks, weights = module_state(module)
    assert (training, hooks) == before[:2]
    assert weights.keys() == before[2].keys()
    assert all(torch.equal(weights[name], before[2][name]) for name in weights)


def small_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(5, 2),
    )


@given(
    table=tables(features=st.sampled_from((3, 3, 3, 2)), scales=INPUT_SCALES),
    training=st.booleans(),
    as_tensor=st.booleans(),
    batch_size=st.integers(1, 4),
)
def test_layer_features_of_any_input_are_valid_or_refused(table, training, as_tensor, batch_size):
    X, non_finite = table
    X = torch.tensor(X.copy(order="C")) if as_tensor else X
    network = small_network().train(training)
    state, before = module_state(network), copy_of(X)
    features = TorchLayerFeatures(network, layers=("2", "4"), batch_size=batch_size)
    result = attempt(lambda: features.fit_transform(X))
    assert_unchanged(X, before)
    assert_same_state(network, state)
    # integer and boolean tensors reach the module unchanged (token ids): a Linear refuses them
    integer_tensor = as_tensor and not X.is_floating_point()
    with np.errstate(over="ignore"):  # values beyond float32, which the network computes in
        overflows = not np.isfinite(np.asarray(X, dtype=np.float32)).all()
    if non_finite or overflows or X.shape[1] != 3 or integer_tensor:
        assert result is REFUSED
    else:
        assert result.shape == (len(X), 7) and np.isfinite(result).all()


def linear_autoencoder():
    torch.manual_seed(0)
    encoder = torch.nn.Linear(3, 2, dtype=torch.float64)
    decoder = torch.nn.Linear(2, 3, dtype=torch.float64)
    return encoder, decoder


# Inputs of the wrong width (the encoder fails) are left to LatentResponse's own issue.
@given(table=tables(features=st.just(3)), n_samples=st.integers(1, 12))
def test_latent_response_of_any_input_is_valid_or_refused(table, n_samples):
    X, non_finite = table
    encoder, decoder = linear_autoencoder()
    states, before = (module_state(encoder), module_state(decoder)), copy_of(X)
    model = LatentResponse(encoder, decoder, n_samples=n_samples, random_state=0)
    fitted = attempt(lambda: model.fit(X))
    assert_unchanged(X, before)
    assert_same_state(encoder, states[0])
    assert_same_state(decoder, states[1])
    if non_finite:
        assert fitted is REFUSED
        return
    assert model.response_matrix_.shape == (2, 2) and np.isfinite(model.response_matrix_).all()
    latents = attempt(lambda: model.transform(X))
    assert latents.shape == (len(X), 2) and np.isfinite(latents).all()


# --------------------------------------------------------------------------- inspection


@st.composite
def coefficient_matrices(draw, n=None):
    """Coefficients as a model returns them, or hostile ones; and whether they are finite
    (and non-empty) and whether also non-negative."""
    n = draw(st.integers(0, 8)) if n is None else n
    k = draw(st.integers(1, 4))
    weights = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0, 1, width=32)))
    kind = draw(st.sampled_from(("simplex", "simplex", "raw", "nan", "inf", "negative")))
    if kind == "simplex":
        weights[:, 0] += 1e-3
        weights /= weights.sum(axis=1, keepdims=True)
    elif n and kind != "raw":
        weights[draw(st.integers(0, n - 1)), 0] = {"nan": np.nan, "inf": np.inf}.get(kind, -0.5)
    finite = n > 0 and kind not in ("nan", "inf")
    return weights, finite, finite and kind != "negative"


@given(a=coefficient_matrices(), b=coefficient_matrices())
def test_soft_nmi_is_non_negative_or_refused(a, b):
    (A, _, valid_a), (B, _, valid_b) = a, b
    before = (copy_of(A), copy_of(B))
    nmi = attempt(lambda: soft_nmi(A, B))
    assert_unchanged(A, before[0])
    assert_unchanged(B, before[1])
    if not (valid_a and valid_b and len(A) == len(B)):
        assert nmi is REFUSED
    elif nmi is not REFUSED:  # a total of zero weight is refused too
        # not bounded by 1: very soft coefficients carry little self-information
        assert np.isnan(nmi) or 0 <= nmi < np.inf


@given(
    ks=st.lists(st.integers(1, 50), min_size=1, max_size=8, unique=True),
    data=st.data(),
)
def test_elbow_is_a_candidate_whatever_their_order(ks, data):
    scores = data.draw(
        st.lists(st.floats(-1, 1, width=32), min_size=len(ks), max_size=len(ks))
    )
    order = data.draw(st.permutations(range(len(ks))))
    best = elbow(ks, scores)
    assert best in ks
    assert elbow(np.array(ks)[order], np.array(scores)[order]) == best
    scores[data.draw(st.integers(0, len(ks) - 1))] = np.nan
    assert attempt(lambda: elbow(ks, scores)) is REFUSED


@given(
    coefficients=coefficient_matrices(),
    n_labels=st.integers(0, 9),
    n_samples=st.one_of(st.integers(-1, 9), st.floats(0.5, 3.5)),
    data=st.data(),
)
def test_purity_is_between_zero_and_one_or_refused(coefficients, n_labels, n_samples, data):
    S, valid, _ = coefficients
    y = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n_labels, max_size=n_labels)))
    before = copy_of(S)
    purity = attempt(lambda: archetype_purity(S, y, n_samples=n_samples))
    assert_unchanged(S, before)
    acceptable = (
        valid and len(y) == len(S) and len(np.unique(y)) >= 2
        and isinstance(n_samples, int) and 1 <= n_samples <= len(S)
    )
    if not acceptable:
        assert purity is REFUSED
    else:
        assert purity.shape == (S.shape[1],) and ((purity >= -1e-9) & (purity <= 1 + 1e-9)).all()


@given(a=tables(features=st.just(3)), b=tables(features=st.sampled_from((3, 3, 2))))
def test_matching_pairs_every_archetype_of_the_smaller_set_or_refuses(a, b):
    (A, non_finite_a), (B, non_finite_b) = a, b
    matching = attempt(lambda: match_archetypes(A, B))
    if non_finite_a or non_finite_b or B.shape[1] != 3:
        assert matching is REFUSED
        return
    assert len(matching.indices_a) == min(len(A), len(B))
    assert (np.abs(matching.cosine) <= 1 + 1e-6).all()


@given(coefficients=coefficient_matrices(), n_samples=st.integers(-2, 10))
def test_nearest_samples_are_valid_indices_or_refused(coefficients, n_samples):
    S, valid, _ = coefficients
    result = attempt(lambda: nearest_samples(S, n_samples))
    if not valid or not 1 <= n_samples <= len(S):
        assert result is REFUSED
        return
    indices, values = result
    assert indices.shape == (S.shape[1], n_samples)
    assert ((indices >= 0) & (indices < len(S))).all()


# --------------------------------------------------------------------------- the command line


def run_command(argv):
    """The exit status of ``skarchetype argv`` and its stderr."""
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status = main(argv)
    return status, error.getvalue()


def write_table(folder: Path, X, kind: str) -> Path:
    if kind == "npy":
        np.save(folder / "X.npy", X)
        return folder / "X.npy"
    text = "\n".join(",".join(repr(float(value)) for value in row) for row in X)
    header = ",".join(f"c{i}" for i in range(X.shape[1])) + "\n" if kind == "csv header" else ""
    prefix = b"\xef\xbb\xbf" if kind == "csv bom" else b""
    (folder / "X.csv").write_bytes(prefix + (header + text + "\n").encode())
    return folder / "X.csv"


@settings(max_examples=12)
@given(
    table=tables(max_rows=6, dtypes=(np.float64, np.float32, np.int64)),
    kind=st.sampled_from(("npy", "csv", "csv header", "csv bom")),
    k=st.integers(0, 7),
    seed=st.one_of(st.integers(0, 3), st.integers(-(2**40), 2**40)),
)
def test_fit_command_succeeds_or_fails_cleanly(table, kind, k, seed):
    X, non_finite = table
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = write_table(folder, X, kind)
        before = sorted(os.listdir(folder))
        out = folder / "model.joblib"
        argv = ["fit", str(data), "-k", str(k), "--out", str(out), "--seed", str(seed)]
        status, error = run_command([*argv, "--max-iter", "30"])
        assert "Traceback" not in error
        if non_finite or not 1 <= k <= len(X) or not 0 <= seed < 2**32:
            assert status == 2 and error.strip()
            assert sorted(os.listdir(folder)) == before
        else:
            assert status == 0, error
            assert joblib.load(out).n_features_in_ == X.shape[1]


@settings(max_examples=10)
@given(
    n_rows=st.integers(1, 5),
    start=st.integers(-1, 6),
    stop=st.one_of(st.integers(-1, 6), st.just(10**12)),
    step=st.integers(-2, 2),
)
def test_sweep_command_accepts_exactly_the_ks_the_data_allow(n_rows, start, stop, step):
    X = np.random.default_rng(0).normal(size=(n_rows, 2))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "X.npy", X)
        k_range = f"{start}:{stop}:{step}"
        argv = ["sweep", str(folder / "X.npy"), "--k", k_range, "--seeds", "1", "--max-iter", "20"]
        status, error = run_command(argv)
        ks = list(range(start, stop + (1 if step > 0 else -1), step)) if step and stop < 100 else []
        valid = bool(ks) and min(ks) >= 1 and max(ks) <= n_rows
        assert "Traceback" not in error
        assert status == (0 if valid else 2), error
        assert sorted(os.listdir(folder)) == ["X.npy"]

