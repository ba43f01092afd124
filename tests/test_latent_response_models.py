"""LatentResponse on real autoencoders: module state, library outputs, latent shapes, bad values.

Closed forms used here, for a linear response ``r(z) = C z`` (identity encoder, decoder C):
intervening on a group G of coordinates with values v gives ``r(z~) - r(z) = C[:, G] (v_G -
z_G)``, so with v and z independent, zero-mean and of unit variance in every coordinate,
``M[G, i] = sqrt(2 * sum_{g in G} C[i, g]^2)``; with one fixed value ``a`` and every data
point a base point, ``M[j, i] = |C[i, j]| * sqrt(mean_n (a - z_j^(n))^2)`` exactly.
"""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from torch import nn

from skarchetype import LatentResponse
from skarchetype._interventions import (
    InterventionGroups,
    cycled_permutations,
    response_differences,
)

N_LARGE = 10_000
TOLERANCE = 0.05


def standard_normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def flat_linear(C):
    """A decoder applying ``C`` to flattened latents and restoring their shape."""
    weight = torch.as_tensor(C, dtype=torch.float64)
    return lambda z: (z.flatten(1) @ weight.T).reshape(z.shape)


def identity(x):
    return x


class ConvVAE(nn.Module):
    """A small convolutional VAE: (n, 1, 16, 16) images, a (4, 4, 4) latent, BatchNorm, Dropout."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.3),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Dropout(0.3), nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )

    def encode(self, images):
        mean, log_var = self.encoder(images).chunk(2, dim=1)
        return torch.distributions.Normal(mean, (0.5 * log_var).exp())

    def decode(self, latents):
        return self.decoder(latents)


def images(n=64, seed=0):
    return np.random.default_rng(seed).random((n, 1, 16, 16), dtype=np.float32)


# ---------------------------------------------------------------- 1. module state
def test_fits_on_a_train_mode_model_are_identical_and_leave_its_state():
    vae = ConvVAE().train()
    state = {name: value.clone() for name, value in vae.state_dict().items()}
    X = images()
    first = LatentResponse(vae.encode, vae.decode, n_samples=32, random_state=0).fit(X)
    second = LatentResponse(vae.encode, vae.decode, n_samples=32, random_state=0).fit(X)
    assert_array_equal(first.response_matrix_, second.response_matrix_)
    assert all(torch.equal(state[name], value) for name, value in vae.state_dict().items())
    assert all(module.training for module in vae.modules())


def test_assay_runs_the_owning_module_in_eval_mode():
    vae = ConvVAE().train()
    modes = []

    def decode(latents):  # a plain function, so the check sees only vae.encode's owner
        modes.append(vae.training)
        return vae.decode(latents)

    LatentResponse(vae.encode, decode, n_samples=8, random_state=0).fit(images(16))
    assert modes and not any(modes)


def test_modes_are_restored_after_an_error():
    vae = ConvVAE().train()
    vae.decoder[1].eval()  # a submodule in its own mode must come back to it

    def failing_decoder(latents):
        raise RuntimeError("out of memory")

    with pytest.raises(ValueError, match="do not chain"):
        LatentResponse(vae.encode, failing_decoder).fit(images(8))
    assert vae.training and vae.encoder.training and not vae.decoder[1].training


def test_modules_parameter_protects_plain_functions():
    vae = ConvVAE().train()
    state = {name: value.clone() for name, value in vae.state_dict().items()}
    modes = []

    def encode(x):
        modes.append(vae.training)
        return vae.encode(x)

    LatentResponse(encode, lambda z: vae.decode(z), modules=[vae], n_samples=8,
                   random_state=0).fit(images(16))
    assert not any(modes) and vae.training
    assert all(torch.equal(state[name], value) for name, value in vae.state_dict().items())


def test_modules_that_are_not_modules_are_rejected():
    with pytest.raises(TypeError, match="modules must be a torch.nn.Module.*element 1 is a str"):
        LatentResponse(identity, identity, modules=[nn.Linear(2, 2), "vae"]).fit(
            standard_normal(10, 2))


# ---------------------------------------------------------------- 2. library outputs
class ModelOutput(OrderedDict):
    """The behaviour of transformers' ModelOutput and diffusers' BaseOutput: a dict whose
    fields are also attributes, with ``to_tuple``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_tuple(self):
        return tuple(self.values())


class DiagonalGaussian:
    """Like diffusers' DiagonalGaussianDistribution: ``.mean`` a tensor, ``sample`` a method."""

    def __init__(self, parameters):
        self.mean, self.logvar = parameters.chunk(2, dim=1)

    def sample(self):
        return self.mean + torch.randn_like(self.mean) * (0.5 * self.logvar).exp()


class LibraryStyleVAE(nn.Module):
    """The output types of diffusers' AutoencoderKL, with a linear map inside."""

    def __init__(self, weight):
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float64))

    def encode(self, x):
        mean = x @ self.weight
        return ModelOutput(latent_dist=DiagonalGaussian(torch.cat([mean, -mean], dim=1)))

    def decode(self, z):
        return ModelOutput(sample=z @ self.weight.T)


def test_library_style_outputs_are_read():
    weight = np.linalg.qr(standard_normal(5, 3))[0]
    X = standard_normal(200, 3) @ weight.T
    vae = LibraryStyleVAE(weight)
    lr = LatentResponse(vae.encode, vae.decode, random_state=0).fit(X)
    assert_allclose(lr.transform(X), X @ weight)
    assert_allclose(lr.inverse_transform(X @ weight), X)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda mean: {"mean": mean, "log_var": torch.zeros_like(mean)},
        lambda mean: {"latents": mean},
        lambda mean: ModelOutput(last_hidden_state=mean, hidden_states=None),
        lambda mean: [mean, mean.exp()],
        lambda mean: torch.distributions.Independent(
            torch.distributions.Normal(mean, torch.ones_like(mean)), 1),
    ],
    ids=["dict-mean", "dict-latents", "model-output-first-field", "list", "independent"],
)
def test_encoder_outputs_reduce_to_the_posterior_mean(wrap):
    X = standard_normal(40, 3)
    lr = LatentResponse(lambda x: wrap(2 * x), lambda z: z / 2).fit(X)
    assert_allclose(lr.transform(X), 2 * X)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: ModelOutput(sample=x),
        lambda x: {"reconstruction": x, "kl": torch.zeros(())},
        lambda x: (x, None),
        lambda x: torch.distributions.Bernoulli(probs=x),
    ],
    ids=["model-output-sample", "dict-reconstruction", "tuple", "bernoulli-mean"],
)
def test_decoder_outputs_reduce_to_the_sample(wrap):
    X = np.random.default_rng(0).uniform(0.1, 0.9, (40, 3))
    lr = LatentResponse(identity, lambda z: wrap(z)).fit(X)
    assert_allclose(lr.inverse_transform(X), X)


def test_dict_without_a_known_field_is_rejected_naming_its_keys():
    lr = LatentResponse(identity, lambda z: {"logits": z})
    with pytest.raises(TypeError, match=r"decoder returned dict with keys \['logits'\].*'sample'"):
        lr.fit(standard_normal(10, 3))


def test_diffusers_autoencoder_kl_is_assayed_by_channel():
    diffusers = pytest.importorskip("diffusers")
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
        latent_channels=4, norm_num_groups=4, sample_size=8,
    ).double().train()
    X = np.random.default_rng(0).random((12, 3, 8, 8))
    lr = LatentResponse(vae.encode, vae.decode, dims="channels", n_samples=6,
                        random_state=0).fit(X)
    assert lr.latent_shape_ == (4, 4, 4)
    assert lr.response_matrix_.shape == (4, 64)
    assert np.isfinite(lr.response_matrix_).all() and (lr.response_matrix_ > 0).any()
    assert vae.training
    with torch.no_grad():
        expected = vae.eval().encode(torch.as_tensor(X)).latent_dist.mean.flatten(1).numpy()
    assert_allclose(lr.latents_, expected)
    assert lr.inverse_transform(lr.latents_[:2]).shape == (2, 3, 8, 8)


# ---------------------------------------------------------------- 3. latents of any shape
def test_spatial_latent_gives_the_flat_latents_matrix():
    C = standard_normal(8, 8, seed=1) / 3
    X = standard_normal(500, 8)
    flat = LatentResponse(identity, flat_linear(C), random_state=0).fit(X)
    spatial = LatentResponse(identity, flat_linear(C), random_state=0).fit(X.reshape(-1, 2, 2, 2))
    assert spatial.latent_shape_ == (2, 2, 2) and spatial.n_latent_ == 8
    assert_allclose(spatial.response_matrix_, flat.response_matrix_)
    assert spatial.transform(X.reshape(-1, 2, 2, 2)).shape == (500, 8)


def test_channel_groups_follow_the_closed_form():
    P = np.linalg.qr(standard_normal(8, 3, seed=2))[0]
    P = P @ P.T  # a projection: encode(decode(z)) = P z
    X = standard_normal(N_LARGE, 2, 2, 2)
    lr = LatentResponse(identity, flat_linear(P), dims="channels", intervention="prior",
                        n_samples=N_LARGE, batch_size=4096, random_state=0).fit(X)
    expected = np.sqrt(2 * np.stack([(P[:, group] ** 2).sum(axis=1)
                                     for group in (range(4), range(4, 8))]))
    assert lr.response_matrix_.shape == (2, 8)
    assert_allclose(lr.response_matrix_, expected, atol=TOLERANCE)
    assert [list(group) for group in lr.intervened_] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_dims_choose_coordinates_and_groups():
    C = np.array([[0.5, -1.0, 0.0], [0.3, 0.8, 0.0], [0.0, 0.4, -0.6]])
    lr = LatentResponse(identity, flat_linear(C), dims=[2, [0, 1]], n_samples=N_LARGE,
                        batch_size=4096, random_state=0).fit(standard_normal(N_LARGE, 3))
    expected = np.sqrt(2) * np.stack([np.abs(C[:, 2]), np.hypot(C[:, 0], C[:, 1])])
    assert_allclose(lr.response_matrix_, expected, atol=TOLERANCE)


def test_fixed_intervention_value_gives_the_exact_matrix():
    C = np.array([[0.5, -1.0], [0.3, 0.8]])
    X = standard_normal(300, 2)
    lr = LatentResponse(identity, flat_linear(C), intervention=[1.5], n_samples=300).fit(X)
    expected = np.abs(C).T * np.sqrt(((1.5 - X) ** 2).mean(axis=0))[:, None]
    assert_allclose(lr.response_matrix_, expected, rtol=1e-12)


def test_fixed_values_per_coordinate_are_each_used_equally_often():
    X = standard_normal(10, 2)
    X[:, 0] = 0.0  # base value 0: coordinate 0's mean square is that of its values
    values = np.array([[1.0, -4.0], [3.0, -4.0]])  # coordinate 1 always gets -4
    lr = LatentResponse(identity, identity, intervention=values, n_samples=10).fit(X)
    expected = [np.sqrt((5 * 1.0**2 + 5 * 3.0**2) / 10), np.sqrt(((-4 - X[:, 1]) ** 2).mean())]
    assert_allclose(lr.response_matrix_, np.diag(expected), rtol=1e-12)


def test_prior_base_points_ignore_the_data_scale():
    C = np.array([[0.5, -1.0], [0.3, 0.8]])
    X = 5 * standard_normal(N_LARGE, 2)
    params = dict(n_samples=N_LARGE, batch_size=4096, random_state=0)
    prior = LatentResponse(identity, flat_linear(C), base="prior", intervention="prior",
                           **params).fit(X)
    mixed = LatentResponse(identity, flat_linear(C), base="prior", **params).fit(X)
    assert_allclose(prior.response_matrix_, np.sqrt(2) * np.abs(C).T, atol=TOLERANCE)
    assert_allclose(mixed.response_matrix_, np.sqrt(26) * np.abs(C).T, rtol=TOLERANCE)


def test_prior_base_takes_n_samples_draws_beyond_the_data_size():
    rows = []

    def decoder(z):
        rows.append(len(z))
        return z

    LatentResponse(identity, decoder, base="prior", n_samples=50, batch_size=1000,
                   random_state=0).fit(standard_normal(10, 2))
    assert rows[-1] == 50 * 3


def test_many_interventions_are_split_into_batches_without_changing_the_result():
    rows = []
    C = standard_normal(12, 12, seed=3) / 4

    def decoder(z):
        rows.append(len(z))
        return flat_linear(C)(z)

    X = standard_normal(40, 12)
    small = LatentResponse(identity, decoder, batch_size=5, random_state=0).fit(X)
    assert max(rows) <= 5
    large = LatentResponse(identity, flat_linear(C), batch_size=10_000, random_state=0).fit(X)
    assert_allclose(small.response_matrix_, large.response_matrix_)


def test_response_keeps_the_latent_shape():
    lr = LatentResponse(identity, flat_linear(0.5 * np.eye(8))).fit(standard_normal(20, 2, 4))
    Z = standard_normal(3, 2, 4)
    assert_allclose(lr.response(Z), 0.5 * Z)
    assert_allclose(lr.response(Z.reshape(3, 8)), 0.5 * Z.reshape(3, 8))


def test_response_map_takes_multi_indices_of_a_spatial_latent():
    lr = LatentResponse(identity, flat_linear(0.5 * np.eye(8))).fit(standard_normal(20, 2, 2, 2))
    by_index = lr.response_map(dims=((0, 1, 1), (1, 0, 0)), base=np.zeros((2, 2, 2)), n_grid=5)
    flat = lr.response_map(dims=(3, 4), base=np.zeros(8), n_grid=5)
    assert by_index.dims == (3, 4)
    assert_allclose(by_index.field, flat.field)


def test_response_map_bounds_set_each_axis():
    lr = LatentResponse(identity, flat_linear(1.5 * np.eye(2))).fit(standard_normal(20, 2))
    response_map = lr.response_map(bounds=((-1, 3), (0, 0.5)), n_grid=9)
    assert_allclose(response_map.coordinates[0], np.linspace(-1, 3, 9))
    assert_allclose(response_map.coordinates[1], np.linspace(0, 0.5, 9))
    assert_allclose(response_map.divergence, 2 * (1.5 - 1), atol=1e-9)


# ---------------------------------------------------------------- 4. bad values and bad models
def test_nan_from_the_decoder_names_the_decoder():
    lr = LatentResponse(identity, lambda z: torch.where(z[:, :1] > 1, np.nan, z))
    with pytest.raises(ValueError, match="decoder returned NaN or infinite values"):
        lr.fit(standard_normal(200, 2))


def test_nan_on_re_encoding_names_the_encoder():
    def encoder(x):
        return torch.log(3 - x.abs().amax(dim=1, keepdim=True)) * torch.ones_like(x)

    lr = LatentResponse(encoder, lambda z: 10 * z)
    with pytest.raises(ValueError, match="encoder returned NaN or infinite .*decoded samples"):
        lr.fit(np.full((10, 2), 0.5))


@pytest.mark.parametrize("to_complex", [lambda X: X + 1j, lambda X: torch.as_tensor(X) + 1j,
                                        lambda X: (X + 1j).tolist()],
                         ids=["numpy", "tensor", "list"])
def test_complex_input_is_refused(to_complex):
    with pytest.raises(ValueError, match="X is complex .*real part"):
        LatentResponse(identity, identity).fit(to_complex(standard_normal(10, 2)))


@pytest.mark.parametrize("call", [
    lambda lr: lr.response(np.ones((2, 2)) * 1j),
    lambda lr: lr.inverse_transform(torch.ones(2, 2) * 1j),
    lambda lr: lr.response_map(base=np.ones(2) * 1j),
], ids=["response", "inverse_transform", "map-base"])
def test_complex_latents_given_by_the_user_are_refused(call):
    lr = LatentResponse(identity, identity).fit(standard_normal(10, 2))
    with pytest.raises(ValueError, match="(Z|X|base) is complex"):
        call(lr)


def test_complex_latents_are_refused_naming_the_encoder():
    with pytest.raises(ValueError, match="encoder returned complex values"):
        LatentResponse(lambda x: x + 1j, identity).fit(standard_normal(10, 2))


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_a_model_dropping_rows_is_named(role):
    drop = lambda t: t[1:]  # noqa: E731
    models = {"encoder": identity, "decoder": identity, role: drop}
    with pytest.raises(ValueError, match=f"The {role} returned shape .* one row per input row"):
        LatentResponse(models["encoder"], models["decoder"]).fit(standard_normal(10, 2))


@pytest.mark.parametrize("extent", [np.inf, np.nan, 0.0])
def test_non_finite_extent_is_refused(extent):
    lr = LatentResponse(identity, identity).fit(standard_normal(10, 2))
    with pytest.raises(ValueError, match="extent must be a positive finite number.*bounds="):
        lr.response_map(extent=extent)


@pytest.mark.parametrize("bounds", [((0, 1),), ((1, 0), (0, 1)), ((0, np.inf), (0, 1))])
def test_bad_bounds_are_refused(bounds):
    lr = LatentResponse(identity, identity).fit(standard_normal(10, 2))
    with pytest.raises(ValueError, match="bounds must be"):
        lr.response_map(bounds=bounds)


@pytest.mark.parametrize("dims", [[5], [[0, 0]], [[]], [1.5]])
def test_bad_dims_are_refused(dims):
    with pytest.raises(ValueError, match="Each element of dims"):
        LatentResponse(identity, identity, dims=dims).fit(standard_normal(10, 3))


def test_intervention_values_of_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"intervention must have shape .*got shape \(4, 2\)"):
        LatentResponse(identity, identity, intervention=np.zeros((4, 2))).fit(
            standard_normal(10, 3))


def test_tensors_that_require_grad_behave_like_their_values():
    X = standard_normal(50, 3)
    C = flat_linear(0.5 * np.eye(3))
    plain = LatentResponse(identity, C, random_state=0).fit(X)
    grad = torch.as_tensor(X).requires_grad_()
    lr = LatentResponse(identity, C, random_state=0).fit(grad)
    assert_array_equal(lr.response_matrix_, plain.response_matrix_)
    assert_array_equal(lr.transform(grad), plain.transform(X))
    assert lr.score(grad) == plain.score(X)
    assert_array_equal(lr.response(grad), plain.response(X))
    assert_array_equal(lr.response_map(base=grad[0]).field, plain.response_map(base=X[0]).field)


@pytest.mark.parametrize("inspect", [
    lambda lr: lr.response(np.zeros((1, 2))),
    lambda lr: lr.response_map(),
    lambda lr: lr.conditioned_response_matrix(np.zeros((4, 2)), np.zeros((4, 2))),
    lambda lr: lr.causal_disentanglement_score(np.zeros((4, 2)), np.zeros((4, 2))),
    lambda lr: lr.inverse_transform(np.zeros((1, 2))),
    lambda lr: lr.score(np.zeros((1, 2))),
], ids=["response", "map", "conditioned", "cds", "inverse", "score"])
def test_inspecting_an_unfitted_assay_raises_not_fitted(inspect):
    with pytest.raises(NotFittedError):
        inspect(LatentResponse(identity, identity))


# ---------------------------------------------------------------- 5. collapsed coordinates
def near_collapsed_assay(**params):
    scale = torch.tensor([1.0, 0.8, 0.03], dtype=torch.float64)
    return LatentResponse(lambda x: x * scale, lambda z: z / scale, normalize="std",
                          random_state=0, **params)


def test_std_normalisation_zeroes_collapsed_columns_with_a_warning():
    with pytest.warns(UserWarning, match=r"1 of 3 latent coordinates are collapsed.*: 2\."):
        lr = near_collapsed_assay().fit(standard_normal(2000, 3))
    assert_array_equal(lr.collapsed_, [False, False, True])
    assert_array_equal(lr.response_matrix_[:, 2], 0.0)
    assert_allclose(np.diag(lr.response_matrix_)[:2], 1.0, atol=0.1)


def test_collapse_threshold_can_be_lowered():
    lr = near_collapsed_assay(collapse_threshold=0.01).fit(standard_normal(2000, 3))
    assert not lr.collapsed_.any()
    assert_allclose(np.diag(lr.response_matrix_), 1.0, atol=0.1)


def test_collapsed_columns_of_the_conditioned_matrix_are_zero():
    factors = np.array([(a, b, c) for a in range(4) for b in range(4) for c in range(2)])
    with pytest.warns(UserWarning, match="collapsed"):
        lr = near_collapsed_assay().fit(factors.astype(float))
        conditioned = lr.conditioned_response_matrix(factors.astype(float), factors)
    assert_array_equal(conditioned[:, 2], 0.0)


# ---------------------------------------------------------------- 6. per-traversal output
def test_per_traversal_output_averages_to_the_matrix():
    factors = np.array([(a, b) for a in range(5) for b in range(3)])
    X = factors - factors.mean(axis=0)
    lr = LatentResponse(identity, identity, random_state=0).fit(X)
    matrix = lr.conditioned_response_matrix(X, factors, n_traversals=4)
    traversals = lr.conditioned_response_matrix(X, factors, n_traversals=4, per_traversal=True)
    assert traversals.shape == (2, 4, 2)
    assert np.isnan(traversals[0, 3]).all()  # factor 0 has three traversals only
    assert_allclose(np.nanmean(traversals, axis=1), matrix)


def test_conditioned_matrix_of_a_group_is_the_rms_over_its_coordinates():
    # Partners differ from their base point in factor k only, so for the identity the
    # group {0, 1} moves in coordinate k alone: half of its mean square.
    factors = np.array([(a, b) for a in range(4) for b in range(5)])
    X = factors - factors.mean(axis=0)
    single = LatentResponse(identity, identity, random_state=0).fit(X)
    group = LatentResponse(identity, identity, dims=[[0, 1]], random_state=0).fit(X)
    expected = np.diag(single.conditioned_response_matrix(X, factors))[:, None] / np.sqrt(2)
    assert_allclose(group.conditioned_response_matrix(X, factors), expected, rtol=1e-12)


# ---------------------------------------------------------------- numerics without an estimator
@pytest.mark.parametrize("batch_size", [1, 4, 7, 1000])
def test_response_differences_of_the_identity_are_the_interventions(batch_size):
    base, pool = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    groups = InterventionGroups([[0], [1, 3], [2]], n_latent=4)
    donors = torch.randint(3, (3, 5))
    differences = torch.zeros(3, 5, 4, dtype=torch.float64)
    for interventions, rows, block, _ in response_differences(
            identity, base, pool, donors, groups, batch_size=batch_size):
        differences[interventions, rows] = block
    for j, members in enumerate(groups.members):
        expected = torch.zeros(5, 4, dtype=torch.float64)
        expected[:, members] = pool[donors[j]][:, members] - base[:, members]
        assert torch.equal(differences[j], expected)


def test_cycled_permutations_use_every_value_equally_often():
    donors = cycled_permutations(np.random.RandomState(0), n_pool=3, n_draws=10, n_columns=4)
    counts = np.stack([np.bincount(row, minlength=3) for row in donors])
    assert donors.shape == (4, 10) and counts.min() == 3 and counts.max() == 4
