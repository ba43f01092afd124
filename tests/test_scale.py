"""ArchetypalAnalysis at every representable scale.

Archetypal analysis is scale equivariant: the archetypes of ``c * X`` are ``c`` times those
of ``X``, with the same coefficients and archetype weights. The estimator rescales the data
internally by an exact power of two, so a power-of-two factor ``c`` commutes with all its
arithmetic and the fit is bit-identical to the unit-scale fit; any other factor changes
only the rounding of the data, so fits run to the optimum agree up to rounding (and
under ``precision="mixed"`` to the float32 starts' resolution).
"""

import warnings

import numpy as np
import pytest
import torch

from skarchetype import ArchetypalAnalysis
from skarchetype.datasets import make_archetypal_data

# (dtype, scale): powers of two, where results are exact, then decimal scales that
# overflowed or underflowed before the data were rescaled
EXACT = [
    (np.float64, 2.0**-80), (np.float64, 2.0**-1000), (np.float64, 2.0**900),
    (np.float32, 2.0**-80), (np.float32, 2.0**100),
]
ROUNDED = [
    (np.float64, 1e-25), (np.float32, 1e-25), (np.float32, 1e30),
    (np.float64, 1e150), (np.float64, 1e300),
]
# agreement of fits (run to the optimum, in full precision) of data differing by rounding
# float32 fits stop where the SSE's decrease meets its rounding: the loss is flat there
# to eps, so archetypes and weights are set only to about sqrt(eps_float32) = 3e-4, and
# rounding the data differently moves them that far
RTOL = {np.float64: 1e-10, np.float32: 1e-3}
# the weights may also trade off between rows close to one another (a flat direction of
# the loss), where they move by more than the archetypes they form
WEIGHTS_ATOL = {np.float64: 1e-10, np.float32: 1e-2}
# tight enough that fits reach the optimum rather than stop at different points short of it
PARAMS = dict(n_archetypes=3, random_state=0, tol=1e-11, max_iter=5000, precision="full")
# float32 data are fitted in float32, as large ones are (small ones are in float64)
pytestmark = pytest.mark.usefixtures("as_large_data")


@pytest.fixture(scope="module")
def unit():
    """Noisy mixtures of three archetypes planted among the rows (a unique optimum), off
    the origin, in float64."""
    return make_archetypal_data(61, 5, 3, plant=True, random_state=0)[0] + 2.0


def at_scale(X, dtype, scale):
    """``X * scale`` rounded once to ``dtype`` (as a user's data at that scale would be)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scaled data must be representable
        return (X * scale).astype(dtype)


def fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no zero-variance or overflow warning at any scale
        return ArchetypalAnalysis(**{**PARAMS, **params}).fit(X)


@pytest.mark.parametrize("precision", ["mixed", "full"])
@pytest.mark.parametrize(("dtype", "scale"), EXACT)
def test_power_of_two_scale_gives_the_unit_fit_exactly(unit, dtype, scale, precision):
    reference = fit(unit.astype(dtype), precision=precision, tol=1e-6)
    scaled = fit(at_scale(unit, dtype, scale), precision=precision, tol=1e-6)
    np.testing.assert_array_equal(scaled.archetypes_, reference.archetypes_ * scale)
    np.testing.assert_array_equal(scaled.mean_, reference.mean_ * scale)
    np.testing.assert_array_equal(scaled.coefficients_, reference.coefficients_)
    np.testing.assert_array_equal(scaled.archetype_weights_.toarray(),
                                  reference.archetype_weights_.toarray())
    assert scaled.explained_variance_ == reference.explained_variance_
    assert scaled.n_iter_ == reference.n_iter_
    assert scaled.reconstruction_err_ == reference.reconstruction_err_ * scale


@pytest.mark.parametrize(("dtype", "scale"), ROUNDED)
def test_any_representable_scale_gives_the_unit_fit_up_to_rounding(unit, dtype, scale):
    rtol = RTOL[dtype]
    reference = fit(unit.astype(dtype))
    scaled = fit(at_scale(unit, dtype, scale))
    assert scaled.archetypes_.dtype == dtype and np.isfinite(scaled.archetypes_).all()
    np.testing.assert_allclose(scaled.archetypes_ / scale, reference.archetypes_, rtol=rtol)
    np.testing.assert_allclose(scaled.coefficients_, reference.coefficients_, atol=rtol)
    np.testing.assert_allclose(scaled.archetype_weights_.toarray(),
                               reference.archetype_weights_.toarray(), atol=WEIGHTS_ATOL[dtype])
    assert scaled.explained_variance_ == pytest.approx(reference.explained_variance_, abs=rtol)
    # a decrease within rounding of the threshold may stop the fit one iteration apart
    assert abs(scaled.n_iter_ - reference.n_iter_) <= 1


@pytest.mark.parametrize("scale", [1e-25, 1e150, 1e300])
def test_mixed_precision_at_any_scale_gives_the_unit_fit(unit, scale):
    # float32 starts round the two data differently: they agree to the starts' resolution
    reference = fit(unit, precision="mixed")
    scaled = fit(at_scale(unit, np.float64, scale), precision="mixed")
    np.testing.assert_allclose(scaled.archetypes_ / scale, reference.archetypes_, atol=1e-5)
    np.testing.assert_allclose(scaled.coefficients_, reference.coefficients_, atol=1e-5)
    assert scaled.explained_variance_ == pytest.approx(reference.explained_variance_, abs=1e-9)


@pytest.mark.parametrize(("dtype", "scale"), EXACT + ROUNDED)
def test_transform_score_and_inverse_transform_scale_with_the_data(unit, dtype, scale):
    rtol = RTOL[dtype]
    X = at_scale(unit, dtype, scale)
    reference, scaled = fit(unit.astype(dtype)), fit(X)
    new, new_unit = X[::7], unit.astype(dtype)[::7]
    coefficients = scaled.transform(new)
    np.testing.assert_allclose(coefficients, reference.transform(new_unit), atol=rtol)
    assert scaled.score(new) == pytest.approx(reference.score(new_unit), abs=rtol)
    assert scaled.score(X) == pytest.approx(scaled.explained_variance_, abs=rtol)
    restored = scaled.inverse_transform(coefficients)
    assert np.isfinite(restored).all()
    np.testing.assert_allclose(restored / scale, reference.inverse_transform(coefficients),
                               rtol=rtol)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float64, 1e300), (np.float32, 2.0**100)])
def test_fit_transform_at_scale_is_the_unit_fit_transform(unit, dtype, scale):
    expected = ArchetypalAnalysis(**PARAMS).fit_transform(unit.astype(dtype))
    result = ArchetypalAnalysis(**PARAMS).fit_transform(at_scale(unit, dtype, scale))
    np.testing.assert_allclose(result, expected, atol=RTOL[dtype])


# from this start the fit approaches the optimum slowly: rounding moves its end by ~1e-6
@pytest.mark.parametrize(("scale", "rtol"), [(2.0**900, 0.0), (1e300, 1e-5)])
def test_init_array_at_the_datas_scale(unit, scale, rtol):
    init = unit[[3, 30, 50]] + 0.01
    reference = fit(unit, init=init)
    scaled = fit(at_scale(unit, np.float64, scale), init=init * scale)
    np.testing.assert_allclose(scaled.archetypes_ / scale, reference.archetypes_, rtol=rtol)


@pytest.mark.parametrize("scale", [2.0**-1000, 1e-300, 2.0**1000, 1e308])
def test_the_edges_of_float64(unit, scale):
    X = unit / np.abs(unit).max() * scale  # the largest entry at the scale
    reference = fit(unit / np.abs(unit).max())
    scaled = fit(X)
    np.testing.assert_allclose(scaled.archetypes_ / scale, reference.archetypes_, rtol=1e-10)
    assert scaled.n_iter_ == reference.n_iter_


@pytest.mark.parametrize("precision", ["mixed", "full"])
def test_tensor_input_at_scale(unit, precision):
    reference = fit(unit, precision=precision, tol=1e-6)
    scaled = fit(torch.from_numpy(unit * 2.0**700), precision=precision, tol=1e-6)
    np.testing.assert_array_equal(scaled.archetypes_, reference.archetypes_ * 2.0**700)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float64, 1e300), (np.float32, 1e-25)])
def test_streamed_memory_map_at_scale_gives_the_in_memory_fit(unit, tmp_path, dtype, scale):
    X = at_scale(unit, dtype, scale)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    in_memory = fit(X)
    streamed = fit(mapped, batch_size=20)
    np.testing.assert_allclose(streamed.archetypes_ / scale, in_memory.archetypes_ / scale,
                               rtol=RTOL[dtype])
    np.testing.assert_allclose(streamed.transform(mapped[:20]), in_memory.transform(X[:20]),
                               atol=RTOL[dtype])


def test_streamed_fit_at_a_power_of_two_scale_is_exact(unit):
    reference = fit(unit, batch_size=20, tol=1e-6)
    scaled = fit(unit * 2.0**-900, batch_size=20, tol=1e-6)
    np.testing.assert_array_equal(scaled.archetypes_, reference.archetypes_ * 2.0**-900)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 1e-25), (np.float64, 1e-300)])
def test_constant_data_at_any_scale_warn_of_zero_variance(dtype, scale):
    X = np.full((20, 3), 0.1 * scale, dtype=dtype)
    with pytest.warns(UserWarning, match="zero variance"):
        model = ArchetypalAnalysis(2, random_state=0).fit(X)
    assert model.explained_variance_ == 1.0
    np.testing.assert_array_equal(model.archetypes_, X[:2])


def test_constant_columns_are_centred_exactly(unit):
    X = unit.copy()
    X[:, 2] = 0.1  # its float64 mean, summed, would not be exactly 0.1
    model = fit(X)
    assert model.mean_[2] == 0.1
    np.testing.assert_array_equal(model.archetypes_[:, 2], 0.1)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 1e-25), (np.float32, 1e-30)])
def test_tiny_data_are_not_taken_for_constant(unit, dtype, scale):
    model = fit(at_scale(unit, dtype, scale))  # fit() turns a zero-variance warning into an error
    assert model.explained_variance_ > 0.9
