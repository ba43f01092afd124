"""LatentResponse reads Datasets, DataLoaders and iterables of image batches, streamed batch by
batch through the input layer, with the results of the equivalent tensor."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from skarchetype import LatentResponse

N_IMAGES = 40
BATCH_SIZE = 8


class ConvAutoencoder(nn.Module):
    """(n, 1, 8, 8) images to a (2, 2, 2) latent and back, in float64."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(1, 2, 4, stride=4).double()
        self.decoder = nn.ConvTranspose2d(2, 1, 4, stride=4).double()

    def encode(self, images):
        return self.encoder(images)

    def decode(self, latents):
        return self.decoder(latents)


class ImageStream(IterableDataset):
    """The images one by one, as a stream with no length."""

    def __init__(self, images):
        self.images = images

    def __iter__(self):
        return iter(self.images)


class CountingDataset(Dataset):
    """``(image, label)`` items, counting the reads of each item."""

    def __init__(self, images):
        self.images = images
        self.reads = []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads.append(index)
        return self.images[index], index % 3


def image_tensor(seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(N_IMAGES, 1, 8, 8, generator=generator, dtype=dtype)


def estimator(model=None, **params):
    model = ConvAutoencoder() if model is None else model
    params = {"n_samples": 16, "batch_size": BATCH_SIZE, "random_state": 0, **params}
    return LatentResponse(model.encode, model.decode, **params)


def loader(images, batch_size=BATCH_SIZE):
    return DataLoader(TensorDataset(images), batch_size=batch_size)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ConvAutoencoder()


@pytest.mark.parametrize("make_input", [
    loader,
    lambda images: loader(images, batch_size=5),  # batches of another size than batch_size
    lambda images: CountingDataset(images),
    lambda images: ImageStream(images),
    lambda images: iter([images[:13], images[13:]]),
    lambda images: [(images[:20], torch.zeros(20)), (images[20:], torch.zeros(20))],
], ids=["loader", "loader-of-5", "dataset-of-pairs", "iterable-dataset", "iterator",
       "list-of-pairs"])
def test_streamed_input_gives_the_results_of_the_tensor(model, make_input):
    images = image_tensor()
    reference = estimator(model).fit(images)
    streamed = estimator(model).fit(make_input(images))
    assert_allclose(streamed.response_matrix_, reference.response_matrix_, rtol=1e-12)
    assert_allclose(streamed.latents_, reference.latents_, rtol=1e-12)
    assert_allclose(streamed.transform(make_input(images)), reference.transform(images),
                    rtol=1e-12)
    assert streamed.sample_shape_ == (1, 8, 8) and streamed.latent_shape_ == (2, 2, 2)


def test_fit_transform_of_a_loader_is_its_latent_pool(model):
    images = image_tensor()
    pool = estimator(model).fit_transform(loader(images))
    assert_allclose(pool, estimator(model).fit(images).transform(images), rtol=1e-12)


def test_score_of_a_loader_is_the_score_of_the_tensor(model):
    images = image_tensor()
    fitted = estimator(model).fit(images)
    assert fitted.score(loader(images, batch_size=7)) == pytest.approx(fitted.score(images),
                                                                       rel=1e-12)


def test_a_dataset_is_read_item_by_item_a_batch_at_a_time(model):
    dataset = CountingDataset(image_tensor())
    reads_at_encoding = []
    lr = LatentResponse(lambda x: (reads_at_encoding.append(len(dataset.reads)),
                                   model.encode(x))[1],
                        model.decode, n_samples=16, batch_size=BATCH_SIZE, random_state=0)
    lr.fit(dataset)
    # every item read once, and never more than one batch of them ahead of the encoder
    assert sorted(dataset.reads) == list(range(N_IMAGES))
    encoded_batches = reads_at_encoding[:N_IMAGES // BATCH_SIZE]
    assert encoded_batches == list(range(BATCH_SIZE, N_IMAGES + 1, BATCH_SIZE))


def test_an_iterator_of_batches_is_read_once(model):
    images = image_tensor()
    read = []

    def batches():
        for start in range(0, N_IMAGES, 10):
            read.append(start)
            yield images[start:start + 10]

    lr = estimator(model).fit(batches())
    assert read == [0, 10, 20, 30]
    assert len(lr.latents_) == N_IMAGES


def test_a_used_up_iterator_is_refused_before_any_work(model):
    used = iter([image_tensor()])
    next(used)
    with pytest.raises(ValueError, match="X gave no samples"):
        estimator(model).fit(used)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plain_functions_are_fed_the_dtype_of_the_first_batch(dtype):
    seen = set()

    def encode(x):
        seen.add(x.dtype)
        return x.flatten(1)

    lr = LatentResponse(encode, lambda z: z.reshape(-1, 1, 8, 8), n_samples=8)
    lr.fit(loader(image_tensor(dtype=dtype)))
    assert seen == {dtype}
    assert lr.latents_.dtype == {torch.float32: np.float32, torch.float64: np.float64}[dtype]


def test_integer_images_of_a_dataset_are_read_as_float64(model):
    images = (image_tensor() * 255).to(torch.uint8)
    lr = estimator(model).fit(loader(images))
    assert_allclose(lr.latents_, estimator(model).fit(images.double()).latents_, rtol=1e-12)


def test_a_fit_on_a_loader_records_no_n_features_in(model):
    images = image_tensor()
    lr = estimator(model).fit(images.numpy())
    assert lr.n_features_in_ == 1
    lr.fit(loader(images))
    assert not hasattr(lr, "n_features_in_")


def test_conditioned_matrix_of_an_ordered_loader_follows_the_factors(model):
    images = image_tensor()
    factors = np.column_stack([np.arange(N_IMAGES) % 4, np.arange(N_IMAGES) // 4 % 2])
    lr = estimator(model).fit(images)
    expected = lr.conditioned_response_matrix(images, factors, n_traversals=5, n_draws=4)
    assert_allclose(
        lr.conditioned_response_matrix(loader(images, 6), factors, n_traversals=5, n_draws=4),
        expected, rtol=1e-12,
    )
    options = {"n_traversals": 5, "n_draws": 4}
    assert lr.causal_disentanglement_score(iter([images]), factors, **options) == pytest.approx(
        lr.causal_disentanglement_score(images, factors, **options), rel=1e-12)


def test_a_shuffling_loader_is_refused_for_factors(model):
    images = image_tensor()
    lr = estimator(model).fit(images)
    shuffled = DataLoader(TensorDataset(images), batch_size=8, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        lr.conditioned_response_matrix(shuffled, np.zeros((N_IMAGES, 2)))


@pytest.mark.parametrize("known_length", [True, False])
def test_factors_of_another_length_than_the_stream_are_refused(model, known_length):
    images = image_tensor()
    lr = estimator(model).fit(images)
    X = loader(images) if known_length else iter([images])
    with pytest.raises(ValueError, match=f"X has {N_IMAGES} samples, factors has 3 rows"):
        lr.conditioned_response_matrix(X, np.zeros((3, 2)))


# ---------------------------------------------------------------- bad batches
def test_nan_in_a_later_batch_is_refused(model):
    images = image_tensor()
    images[30, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        estimator(model).fit(loader(images))


def test_complex_batches_are_refused(model):
    images = image_tensor().to(torch.complex128)
    with pytest.raises(ValueError, match="Complex data not supported: X"):
        estimator(model).fit(loader(images))
    fitted = estimator(model).fit(image_tensor())
    with pytest.raises(ValueError, match="Complex data not supported: X"):
        fitted.transform(iter([image_tensor(), images]))


def test_dict_batches_are_refused_naming_x(model):
    with pytest.raises(TypeError, match="X: LatentResponse reads batches of images"):
        estimator(model).fit([{"pixel_values": image_tensor()}])


def test_batches_without_a_feature_axis_are_refused(model):
    with pytest.raises(ValueError, match=r"X: a batch has shape \(40,\)"):
        estimator(model).fit(iter([torch.zeros(N_IMAGES)]))


def test_transform_of_a_stream_checks_the_latent_shape(model):
    lr = estimator(model).fit(image_tensor())
    larger = torch.rand(4, 1, 16, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"not \(2, 2, 2\)"):
        lr.transform(loader(larger))


# ---------------------------------------------------------------- values beyond the models' dtype
def float32_autoencoder():
    torch.manual_seed(0)
    return nn.Linear(3, 2).train(), nn.Linear(2, 3).train()


def test_data_beyond_the_models_dtype_are_refused_naming_the_fix():
    encoder, decoder = float32_autoencoder()
    with pytest.raises(ValueError, match=r"X holds finite values beyond the range of "
                                         r"torch.float32.*Rescale X.*module.double\(\)"):
        LatentResponse(encoder, decoder, n_samples=4).fit(np.full((6, 3), 1e300))
    assert encoder.training and decoder.training


@pytest.mark.parametrize(("method", "name"), [("inverse_transform", "X"), ("response", "Z")])
def test_latent_codes_beyond_the_decoders_dtype_are_refused_by_name(method, name):
    encoder, decoder = float32_autoencoder()
    fitted = LatentResponse(encoder, decoder, n_samples=4, random_state=0).fit(
        np.random.default_rng(0).normal(size=(6, 3))
    )
    with pytest.raises(ValueError, match=rf"^{name} holds finite values beyond the range"):
        getattr(fitted, method)(np.full((2, 2), 1e300))
    assert encoder.training and decoder.training


def test_a_float64_autoencoder_takes_data_beyond_float32():
    encoder, decoder = (module.double() for module in float32_autoencoder())
    X = np.random.default_rng(0).normal(size=(6, 3)) * 1e100  # beyond float32, squares in float64
    latents = LatentResponse(encoder, decoder, n_samples=4, random_state=0).fit_transform(X)
    assert np.isfinite(latents).all()
