"""LatentResponse: the exact answers of the methods note (section 4), sklearn contract, errors."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import requires_cuda
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils.estimator_checks import parametrize_with_checks

from skarchetype import LatentResponse
from skarchetype.plotting import (
    plot_conditioned_response_matrix,
    plot_response_maps,
    plot_response_matrix,
)

N_LARGE = 10_000  # the note's N >= 1e4 for answers exact in expectation
TOLERANCE = 0.05


class LinearMap(torch.nn.Module):
    """``x -> x @ weight.T + bias`` with fixed weights: a linear encoder or decoder."""

    def __init__(self, weight, bias=None):
        super().__init__()
        weight = torch.as_tensor(weight, dtype=torch.float64)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.zeros(len(weight), dtype=torch.float64)
                             if bias is None else torch.as_tensor(bias, dtype=torch.float64))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def cumulative_encoder(x):
    """An invertible linear encoder for any number of features (for sklearn's checks)."""
    return torch.cumsum(x, dim=1) / 2


def cumulative_decoder(z):
    return torch.diff(2 * z, dim=1, prepend=torch.zeros_like(z[:, :1]))


def standard_normal(n_samples, n_features, seed=0):
    return np.random.default_rng(seed).standard_normal((n_samples, n_features))


def rotation(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def fit_linear_response(C, X, **params):
    """LatentResponse of an identity encoder and the decoder ``C``, so that ``r(z) = C z``."""
    d = C.shape[0]
    params = {"n_samples": len(X), "batch_size": 4096, "random_state": 0, **params}
    return LatentResponse(LinearMap(np.eye(d)), LinearMap(C), **params).fit(X)


@parametrize_with_checks(
    [LatentResponse(cumulative_encoder, cumulative_decoder, n_samples=64, random_state=0)]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- 1. linear responses
def test_orthonormal_autoencoder_gives_sqrt2_identity():
    W = np.linalg.qr(standard_normal(6, 3))[0]
    X = standard_normal(N_LARGE, 3) @ W.T
    lr = LatentResponse(LinearMap(W.T), LinearMap(W), n_samples=N_LARGE, batch_size=4096,
                        random_state=0).fit(X)
    assert_allclose(lr.response_matrix_, np.sqrt(2) * np.eye(3), atol=TOLERANCE)


@pytest.mark.parametrize("intervention", ["aggregate", "prior"])
def test_linear_response_gives_sqrt2_abs_transpose(intervention):
    C = np.array([[0.5, -1.0, 0.0], [0.3, 0.8, 0.0], [0.0, 0.4, -0.6]])
    lr = fit_linear_response(C, standard_normal(N_LARGE, 3), intervention=intervention)
    assert_allclose(lr.response_matrix_, np.sqrt(2) * np.abs(C).T, atol=TOLERANCE)


def test_projection_encoder_gives_sqrt2_abs_projection():
    u = np.array([[1.0], [1.0], [0.0]]) / np.sqrt(2)
    P = u @ u.T
    lr = fit_linear_response(P, standard_normal(N_LARGE, 3))
    assert_allclose(lr.response_matrix_, np.sqrt(2) * np.abs(P), atol=TOLERANCE)


def test_option_scale_scales_the_row():
    sigma = np.array([0.5, 1.0, 2.0])
    lr = fit_linear_response(np.eye(3), standard_normal(N_LARGE, 3) * sigma)
    assert_allclose(np.diag(lr.response_matrix_) / sigma, np.sqrt(2), atol=TOLERANCE)


def test_std_normalization_reads_one_for_identity():
    X = standard_normal(N_LARGE, 3) * np.array([0.5, 1.0, 3.0]) + 4.0
    lr = fit_linear_response(np.eye(3), X, normalize="std")
    assert_allclose(lr.response_matrix_, np.eye(3), atol=TOLERANCE)


# ---------------------------------------------------------------- 2. ignored and collapsed dims
def test_decoder_ignoring_a_dimension_gives_exactly_zero_row():
    C = np.array([[0.5, 0.0, 0.2], [0.3, 0.0, 1.0], [0.1, 0.0, -0.6]])
    lr = fit_linear_response(C, standard_normal(2000, 3))
    assert_array_equal(lr.response_matrix_[1], 0.0)
    assert (np.delete(lr.response_matrix_, 1, axis=0).max(axis=1) > 0.1).all()


def test_encoder_constant_in_a_dimension_gives_exactly_zero_column():
    A = np.eye(3)
    A[2] = 0.0
    lr = LatentResponse(LinearMap(A, bias=[0.0, 0.0, 0.7]), LinearMap(np.ones((3, 3))),
                        random_state=0).fit(standard_normal(2000, 3))
    assert_array_equal(lr.response_matrix_[:, 2], 0.0)
    with pytest.warns(UserWarning, match="collapsed"):
        normalized = LatentResponse(LinearMap(A, bias=[0.0, 0.0, 0.7]), LinearMap(np.ones((3, 3))),
                                    normalize="std", random_state=0).fit(standard_normal(2000, 3))
    assert_array_equal(normalized.response_matrix_[:, 2], 0.0)


# ---------------------------------------------------------------- 3. causal disentanglement
def factor_grid(n_values=10):
    values = np.arange(n_values)
    factors = np.array([(a, b) for a in values for b in values])
    return factors, factors - (n_values - 1) / 2


def rotated_autoencoder(theta, collapsed_dim=False):
    """Encoder ``R_theta`` and decoder ``R_theta^T`` (so r = id), optionally with a third latent
    that the encoder keeps constant and the decoder ignores (a collapsed VAE dimension)."""
    R = rotation(theta)
    if not collapsed_dim:
        return LinearMap(R), LinearMap(R.T)
    encoder = LinearMap(np.vstack([R, np.zeros(2)]), bias=[0, 0, 0.3])
    return encoder, LinearMap(np.hstack([R.T, np.zeros((2, 1))]))


@pytest.mark.parametrize("theta", [0.0, math.pi / 8, math.pi / 4])
def test_rotation_encoder_cds(theta):
    factors, X = factor_grid()
    encoder, decoder = rotated_autoencoder(theta)
    lr = LatentResponse(encoder, decoder, batch_size=4096, random_state=0).fit(X)
    score = lr.causal_disentanglement_score(X, factors, n_traversals=10, n_draws=2000)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    assert score == pytest.approx(max(c, s) / (c + s), abs=TOLERANCE)


def test_permutation_encoder_cds_is_one():
    factors, X = factor_grid()
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    lr = LatentResponse(LinearMap(swap), LinearMap(swap), random_state=0).fit(X)
    assert lr.causal_disentanglement_score(X, factors) == 1.0


def test_collapsed_dimension_leaves_cds_unchanged_and_is_zero():
    factors, X = factor_grid()
    scores = []
    for collapsed in (False, True):
        lr = LatentResponse(*rotated_autoencoder(math.pi / 8, collapsed), random_state=0).fit(X)
        scores.append(lr.causal_disentanglement_score(X, factors, n_draws=200))
    assert_array_equal(lr.response_matrix_[2], 0.0)
    assert_array_equal(lr.response_matrix_[:, 2], 0.0)
    assert scores[1] == pytest.approx(scores[0])


def test_conditioned_matrix_has_one_row_per_factor():
    factors, X = factor_grid(4)
    factors = np.column_stack([factors, np.zeros(len(factors))])  # a constant third factor
    lr = LatentResponse(LinearMap(np.eye(2)), LinearMap(np.eye(2)), random_state=0).fit(X)
    with pytest.raises(ValueError, match="No two samples differ only in factor 2"):
        lr.conditioned_response_matrix(X, factors)
    assert lr.conditioned_response_matrix(X, factors[:, :2]).shape == (2, 2)


# ---------------------------------------------------------------- 4. response maps
def map_of(decoder, d=2, **kwargs):
    lr = LatentResponse(LinearMap(np.eye(d)), decoder, random_state=0).fit(standard_normal(50, d))
    return lr.response_map(dims=(0, 1), base=np.zeros(d), **kwargs)


@pytest.mark.parametrize("c", [0.5, 1.5])
def test_scaling_response_has_divergence_two_c_minus_one(c):
    response_map = map_of(LinearMap(c * np.eye(2)), n_grid=21)
    assert_allclose(response_map.divergence, 2 * (c - 1), atol=1e-9)


def test_line_projection_has_divergence_minus_one():
    response_map = map_of(LinearMap(np.diag([1.0, 0.0])), n_grid=21)
    assert_allclose(response_map.divergence, -1.0, atol=1e-9)


def test_identity_field_vanishes_without_nan():
    response_map = map_of(LinearMap(np.eye(2)), n_grid=11)
    assert_array_equal(response_map.magnitude, 0.0)
    assert np.isfinite(response_map.mean_curvature).all()


def test_circle_projection_has_curvature_one_over_twice_radius():
    # An even grid misses the origin, where the projection is undefined (NaN would be refused).
    response_map = map_of(lambda z: z / z.norm(dim=1, keepdim=True), n_grid=200, extent=2.0)
    grid_a, grid_b = np.meshgrid(*response_map.coordinates)
    radius = np.hypot(grid_a, grid_b)
    away = (radius > 1.3) & (radius < 1.9)
    assert_allclose(np.abs(response_map.mean_curvature[away]), 1 / (2 * radius[away]), rtol=0.05)


def test_response_map_projects_field_on_the_slice():
    C = np.diag([0.5, 2.0, 3.0])
    response_map = map_of(LinearMap(C), d=3, n_grid=5)
    a, b = np.meshgrid(*response_map.coordinates)
    assert_allclose(response_map.field[..., 0], -0.5 * a)
    assert_allclose(response_map.field[..., 1], 1.0 * b)


# ---------------------------------------------------------------- API behaviour
def test_interventions_of_a_batch_share_one_pass():
    rows_per_call = []

    def decoder(z):
        rows_per_call.append(len(z))
        return z

    LatentResponse(LinearMap(np.eye(3)), decoder, n_samples=100, batch_size=400,
                   random_state=0).fit(standard_normal(100, 3))
    assert rows_per_call[-1] == 400  # 100 base points and their 3 interventions each
    assert max(rows_per_call) <= 400


def test_batch_size_does_not_change_the_result():
    X = standard_normal(300, 3)
    C = np.array([[0.5, 0.2, 0.0], [0.3, 0.8, 0.1], [0.0, 0.4, 0.6]])
    small = fit_linear_response(C, X, batch_size=7).response_matrix_
    assert_allclose(small, fit_linear_response(C, X).response_matrix_)


def test_random_state_makes_fit_reproducible():
    X = standard_normal(500, 3)
    C = np.ones((3, 3))
    first = fit_linear_response(C, X, n_samples=50).response_matrix_
    assert_array_equal(first, fit_linear_response(C, X, n_samples=50).response_matrix_)


@pytest.mark.parametrize(
    "encoder_output",
    [
        lambda mean: (mean, torch.zeros_like(mean)),
        lambda mean: torch.distributions.Normal(mean, torch.ones_like(mean)),
        lambda mean: SimpleNamespace(loc=mean),
    ],
    ids=["tuple", "distribution", "loc"],
)
def test_encoder_outputs_reduce_to_the_posterior_mean(encoder_output):
    X = standard_normal(40, 3)
    lr = LatentResponse(lambda x: encoder_output(2 * x), lambda z: z / 2).fit(X)
    assert_allclose(lr.transform(X), 2 * X)
    assert_allclose(lr.response(X), X)


def test_image_input_round_trips_to_its_shape():
    images = np.random.default_rng(0).random((20, 1, 4, 4))
    W = standard_normal(16, 5)
    lr = LatentResponse(lambda x: x.flatten(1) @ torch.as_tensor(W),
                        lambda z: (z @ torch.as_tensor(W).T).reshape(-1, 1, 4, 4)).fit(images)
    assert lr.transform(images).shape == (20, 5)
    assert lr.inverse_transform(lr.transform(images)).shape == (20, 1, 4, 4)


def test_score_is_centred_explained_variance():
    X = standard_normal(200, 3)
    half = LatentResponse(LinearMap(np.eye(3)), LinearMap(0.5 * np.eye(3))).fit(X)
    residual = np.square(X - 0.5 * X).sum()
    assert half.score(X) == pytest.approx(1 - residual / np.square(X - X.mean(0)).sum())
    assert fit_linear_response(np.eye(3), X).score(X) == pytest.approx(1.0)


def test_train_mode_is_restored_and_unused_during_fit():
    encoder = torch.nn.Sequential(torch.nn.Dropout(0.5), LinearMap(np.eye(3)))
    encoder.train()
    X = standard_normal(100, 3)
    lr = LatentResponse(encoder, LinearMap(np.eye(3))).fit(X)
    assert encoder.training and encoder[0].training
    assert_allclose(lr.transform(X), X)


def test_float32_model_receives_float32_and_returns_float32():
    encoder = torch.nn.Linear(3, 2).float()
    decoder = torch.nn.Linear(2, 3).float()
    lr = LatentResponse(encoder, decoder, random_state=0).fit(standard_normal(50, 3))
    assert lr.latents_.dtype == np.float32
    assert lr.transform(standard_normal(5, 3)).dtype == np.float32


def test_tensor_input_is_accepted():
    X = torch.as_tensor(standard_normal(60, 3))
    lr = fit_linear_response(np.eye(3), X)
    assert_allclose(lr.transform(X), X.numpy())


@requires_cuda
def test_cuda_device_is_respected():
    encoder, decoder = LinearMap(np.eye(3)).cuda(), LinearMap(np.eye(3)).cuda()
    lr = LatentResponse(encoder, decoder, device="cuda", random_state=0).fit(standard_normal(64, 3))
    assert_allclose(lr.response_matrix_, fit_linear_response(np.eye(3), standard_normal(64, 3),
                                                             n_samples=1024).response_matrix_)


# ---------------------------------------------------------------- errors
def test_non_callable_encoder_is_rejected():
    with pytest.raises(TypeError, match="'encoder' parameter"):
        LatentResponse("encoder", cumulative_decoder).fit(standard_normal(10, 3))


def test_latent_without_a_feature_axis_is_rejected():
    lr = LatentResponse(lambda x: x[:, 0], cumulative_decoder)
    with pytest.raises(ValueError, match=r"\(n_samples, \*latent_shape\).*returned shape \(10,\)"):
        lr.fit(standard_normal(10, 3))


@pytest.mark.parametrize("decoder", [LinearMap(np.ones((4, 3))), LinearMap(np.ones((3, 2)))],
                         ids=["wrong-width", "decoder-fails"])
def test_shapes_that_do_not_chain_are_rejected(decoder):
    with pytest.raises(ValueError, match="do not chain"):
        LatentResponse(LinearMap(np.eye(3)), decoder).fit(standard_normal(10, 3))


def test_nan_latents_are_rejected():
    with pytest.raises(ValueError, match="encoder returned NaN or infinite values for 10 of 10"):
        LatentResponse(lambda x: x * np.nan, cumulative_decoder).fit(standard_normal(10, 3))


def test_unknown_encoder_output_is_rejected():
    with pytest.raises(TypeError, match="encoder returned dict"):
        LatentResponse(lambda x: {"z": x}, cumulative_decoder).fit(standard_normal(10, 3))


def test_factors_of_wrong_length_are_rejected():
    factors, X = factor_grid(3)
    lr = LatentResponse(LinearMap(np.eye(2)), LinearMap(np.eye(2))).fit(X)
    with pytest.raises(ValueError, match="X has 9 samples, factors has 8 rows"):
        lr.conditioned_response_matrix(X, factors[:8])


def test_non_positive_draws_are_rejected():
    factors, X = factor_grid(3)
    lr = LatentResponse(LinearMap(np.eye(2)), LinearMap(np.eye(2))).fit(X)
    with pytest.raises(ValueError, match="n_draws must be a positive integer; got 0"):
        lr.conditioned_response_matrix(X, factors, n_draws=0)


def test_verbose_reports_progress(capsys):
    fit_linear_response(np.eye(3), standard_normal(50, 3), verbose=1)
    output = capsys.readouterr().out
    assert "encoding: 1/1" in output and "interventions: 50/50" in output


def test_latents_of_wrong_width_are_rejected():
    lr = fit_linear_response(np.eye(3), standard_normal(20, 3))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        lr.inverse_transform(np.zeros((2, 4)))


def test_bad_map_dims_are_rejected():
    lr = fit_linear_response(np.eye(3), standard_normal(20, 3))
    with pytest.raises(ValueError, match="two different latent indices"):
        lr.response_map(dims=(1, 1))


# ---------------------------------------------------------------- plots
@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_response_matrix_plot_labels_dimensions(pyplot):
    lr = fit_linear_response(np.eye(3), standard_normal(50, 3))
    ax = plot_response_matrix(lr.response_matrix_, labels=["a", "b", "c"])
    assert [label.get_text() for label in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylabel() == "intervened dimension" and ax.get_title()
    assert len(ax.figure.axes) == 2  # the heatmap and its colorbar


def test_conditioned_matrix_plot_names_factors(pyplot):
    ax = plot_conditioned_response_matrix(np.ones((2, 3)), ["shape", "scale"])
    assert [label.get_text() for label in ax.get_yticklabels()] == ["shape", "scale"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["z0", "z1", "z2"]


def test_response_maps_plot_density_beside_three_maps(pyplot):
    lr = fit_linear_response(np.diag([0.5, 1.0]), standard_normal(200, 2))
    axes = plot_response_maps(lr.response_map(n_grid=9), lr.latents_)
    assert [ax.get_title() for ax in axes] == [
        "Encoded data", "Response magnitude", "Divergence", "Mean curvature"]
    assert all(ax.get_xlabel() == "z0" and ax.get_ylabel() == "z1" for ax in axes)


def test_response_matrix_plot_of_groups_numbers_its_rows(pyplot):
    ax = plot_response_matrix(np.ones((2, 3)))
    assert [label.get_text() for label in ax.get_yticklabels()] == ["#0", "#1"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["z0", "z1", "z2"]


def test_response_matrix_plot_of_a_spatial_latent_leaves_columns_unlabelled(pyplot):
    ax = plot_response_matrix(np.ones((4, 256)))
    assert not any(label.get_text().startswith("z") for label in ax.get_xticklabels())
