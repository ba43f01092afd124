"""The input layer: every kind of input reaches the module batch by batch, as it should."""

import numpy as np
import pytest
import torch
from conftest import requires_cuda
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from skarchetype import TorchLayerFeatures
from skarchetype._batches import (
    BatchFeeder,
    RowWriter,
    batch_reader,
    input_kind,
    map_batches,
    stream,
)


class Probe(nn.Module):
    """Records the dtype and length of every input it is called with; a linear map of it."""

    def __init__(self, width=4):
        super().__init__()
        self.linear = nn.Linear(width, 3)
        self.calls = []

    def forward(self, x):
        self.calls.append((x.dtype, len(x)))
        return self.linear(x.float() if not x.is_floating_point() else x)


class TextProbe(nn.Module):
    """Token ids (and an optional mask) to one vector per token: an embedding table."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.seen = []

    def forward(self, input_ids, attention_mask=None):
        mask_dtype = None if attention_mask is None else attention_mask.dtype
        self.seen.append((input_ids.dtype, mask_dtype))
        hidden = self.embed(input_ids)
        return hidden if attention_mask is None else hidden * attention_mask[..., None]


class CountingDataset(Dataset):
    """(image, label) items of a fixed array; counts every item read."""

    def __init__(self, images):
        self.images = images
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads += 1
        return torch.as_tensor(self.images[index]), index % 3


@pytest.fixture
def vectors(rng):
    return rng.normal(size=(10, 4)).astype(np.float32)


def expected(module, X):
    with torch.no_grad():
        return module.linear(torch.as_tensor(X)).numpy()


class ListDataset:
    """A map-style dataset by duck typing: ``__len__`` and ``__getitem__``, no torch class."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        return {"x": torch.as_tensor(self.X[index])}


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda X: X, "array"),
        (torch.as_tensor, "array"),
        (lambda X: X.tolist(), "array"),
        (lambda X: {"x": X}, "columns"),
        (lambda X: (X, np.arange(len(X))), "columns"),
        (lambda X: TensorDataset(torch.as_tensor(X)), "dataset"),
        (lambda X: DataLoader(TensorDataset(torch.as_tensor(X)), batch_size=3), "batches"),
        (lambda X: [torch.as_tensor(X[:5]), torch.as_tensor(X[5:])], "batches"),
        (lambda X: iter([torch.as_tensor(X)]), "batches"),
        (lambda X: list(X), "array"),
        (lambda X: ListDataset(X), "dataset"),
    ],
)
def test_input_kind_names_how_x_is_read(vectors, make, kind):
    assert input_kind(make(vectors)) == kind


class Items(IterableDataset):
    def __init__(self, X):
        self.X = X

    def __iter__(self):
        return iter(torch.as_tensor(self.X))


@pytest.mark.parametrize(
    "make",
    [
        lambda X: TensorDataset(torch.as_tensor(X), torch.arange(len(X))),
        lambda X: DataLoader(TensorDataset(torch.as_tensor(X)), batch_size=3),
        lambda X: DataLoader(torch.as_tensor(X), batch_size=4, shuffle=False),
        lambda X: [(torch.as_tensor(X[:6]), "labels"), (torch.as_tensor(X[6:]), "labels")],
        lambda X: (torch.as_tensor(X[rows]) for rows in (slice(0, 7), slice(7, None))),
        lambda X: Items(X),
        lambda X: ListDataset(X),
    ],
    ids=[
        "dataset", "loader", "loader-of-tensors", "list-of-tuples", "generator", "iterable-ds",
        "duck-typed-dataset-of-dicts",
    ],
)
def test_every_kind_of_input_gives_the_features_of_the_array(vectors, make):
    probe = Probe()
    features = TorchLayerFeatures(probe, "linear", batch_size=4).fit_transform(make(vectors))
    np.testing.assert_allclose(features, expected(probe, vectors), rtol=1e-6)


def test_transform_of_a_loader_equals_that_of_the_array(vectors):
    probe = Probe()
    loader = DataLoader(TensorDataset(torch.as_tensor(vectors)), batch_size=3)
    features = TorchLayerFeatures(probe, "linear").fit(loader)
    np.testing.assert_allclose(
        features.transform(loader), features.transform(vectors), rtol=1e-6
    )


def test_a_loader_with_workers_is_used_as_it_is(vectors):
    probe = Probe()
    loader = DataLoader(TensorDataset(torch.as_tensor(vectors)), batch_size=3, num_workers=2)
    features = TorchLayerFeatures(probe, "linear").fit_transform(loader)
    np.testing.assert_allclose(features, expected(probe, vectors), rtol=1e-6)
    assert [length for _, length in probe.calls] == [3, 3, 3, 1]


def test_a_loader_keeps_its_own_batches(vectors):
    probe = Probe()
    loader = DataLoader(TensorDataset(torch.as_tensor(vectors)), batch_size=3)
    TorchLayerFeatures(probe, "linear", batch_size=100).fit(loader).transform(loader)
    assert [length for _, length in probe.calls] == [3, 3, 3, 3, 1]  # fit read one batch


def test_fit_reads_one_dataset_item_and_transform_each_item_once(rng):
    dataset = CountingDataset(rng.normal(size=(50, 4)).astype(np.float32))
    features = TorchLayerFeatures(Probe(), "linear", batch_size=8).fit(dataset)
    assert dataset.reads == 1
    features.transform(dataset)
    assert dataset.reads == 1 + 50


def test_a_dataset_is_never_held_whole(rng):
    probe = Probe()
    dataset = CountingDataset(rng.normal(size=(50, 4)).astype(np.float32))
    TorchLayerFeatures(probe, "linear", batch_size=8).fit_transform(dataset)
    assert max(length for _, length in probe.calls) == 8
    assert dataset.reads == 50


def test_dict_input_is_sliced_by_rows_and_fed_as_keywords(rng):
    text = TextProbe()
    ids = torch.as_tensor(rng.integers(0, 10, size=(6, 5)))
    mask = torch.ones_like(ids)
    mask[:, 3:] = 0
    features = TorchLayerFeatures(text, "", pooling="flatten", batch_size=4).fit_transform(
        {"input_ids": ids, "attention_mask": mask}
    )
    with torch.no_grad():
        reference = (text.embed(ids) * mask[..., None]).flatten(1).numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-6)


@pytest.mark.parametrize("as_input", [torch.as_tensor, np.asarray])
def test_integer_token_ids_reach_the_module_unchanged(rng, as_input):
    text = TextProbe()
    ids = rng.integers(0, 10, size=(6, 5))
    batches = [{"input_ids": as_input(ids), "attention_mask": as_input(ids > 2)}]
    TorchLayerFeatures(text, "embed", dtype="float32").fit_transform(batches)
    assert text.seen == [(torch.int64, torch.bool)]
    text.seen.clear()
    TorchLayerFeatures(text, "embed", dtype="float64").fit_transform(torch.as_tensor(ids))
    assert text.seen == [(torch.int64, None)]


def test_floating_values_of_a_dict_are_cast_and_integers_kept(rng):
    seen = {}

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2).double()

        def forward(self, values, index):
            seen.update(values=values.dtype, index=index.dtype)
            return self.linear(values)

    batch = {"values": torch.randn(3, 2), "index": torch.arange(3)}
    TorchLayerFeatures(Mixed(), "linear").fit_transform([batch])
    assert seen == {"values": torch.float64, "index": torch.int64}


def test_a_tuple_of_columns_feeds_its_first_column(rng, vectors):
    probe = Probe()
    features = TorchLayerFeatures(probe, "linear").fit_transform((vectors, np.arange(10)))
    np.testing.assert_allclose(features, expected(probe, vectors), rtol=1e-6)


def test_forward_feeds_whole_batches(rng):
    text = TextProbe()
    ids = torch.as_tensor(rng.integers(0, 10, size=(6, 5)))
    mask = (ids > 2).long()
    features = TorchLayerFeatures(
        text, "", pooling="flatten", forward=lambda module, batch: module(*batch)
    ).fit_transform((ids, mask))
    with torch.no_grad():
        reference = (text.embed(ids) * mask[..., None]).flatten(1).numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-6)


def test_preprocess_streams_a_uint8_memmap(rng, tmp_path):
    images = rng.integers(0, 256, size=(12, 4), dtype=np.uint8)
    path = tmp_path / "images.u8"
    images.tofile(path)
    memmap = np.memmap(path, dtype=np.uint8, mode="r", shape=images.shape)
    probe = Probe()
    features = TorchLayerFeatures(
        probe, "linear", batch_size=5, preprocess=lambda x: (x.float() - 127.5) / 127.5
    ).fit_transform(memmap)
    np.testing.assert_allclose(
        features, expected(probe, (images.astype(np.float32) - 127.5) / 127.5), rtol=1e-5
    )
    assert [dtype for dtype, _ in probe.calls] == [torch.float32] * 3


def test_preprocess_receives_the_raw_integers(rng):
    received = []
    images = rng.integers(0, 256, size=(6, 4), dtype=np.uint8)

    def preprocess(batch):
        received.append(batch.dtype)
        return batch / 255

    TorchLayerFeatures(Probe(), "linear", preprocess=preprocess).fit_transform(images)
    assert received == [torch.uint8]


def test_preprocess_output_is_cast_to_the_module_dtype(vectors):
    probe = Probe().double()
    TorchLayerFeatures(probe, "linear", preprocess=lambda x: x.float()).fit_transform(vectors)
    assert probe.calls == [(torch.float64, 10)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_modules_give_float32_features(vectors, dtype):
    probe = Probe().to(dtype)
    features = TorchLayerFeatures(probe, "linear").fit_transform(vectors)
    assert features.dtype == np.float32
    assert probe.calls == [(dtype, 10)]
    with torch.no_grad():
        reference = probe.linear(torch.as_tensor(vectors).to(dtype)).float().numpy()
    np.testing.assert_array_equal(features, reference)


def test_a_float64_module_gets_float64_inputs_by_default(vectors):
    probe = Probe().double()
    features = TorchLayerFeatures(probe, "linear").fit(vectors)
    assert features.transform(vectors).dtype == np.float64
    assert features.__sklearn_tags__().transformer_tags.preserves_dtype == ["float64"]
    assert probe.calls[-1] == (torch.float64, 10)


def test_a_dtype_the_module_cannot_take_says_to_use_auto(vectors):
    with pytest.raises(ValueError, match=r"dtype='auto'"):
        TorchLayerFeatures(Probe().double(), "linear", dtype="float32").fit(vectors)


def test_rows_of_any_number_per_sample_are_gathered():
    writer = RowWriter(None, np.float32)
    for start in range(0, 10, 4):
        samples = min(4, 10 - start)
        writer.write(torch.arange(start * 3, (start + samples) * 3.0).reshape(-1, 1), samples)
    np.testing.assert_array_equal(writer.result().ravel(), np.arange(30.0))


def test_rows_are_preallocated_when_the_length_is_known():
    writer = RowWriter(10, np.float64)
    writer.write(torch.ones(6, 2), 3)  # two rows per sample
    assert writer._array.shape == (20, 2)


def test_a_used_up_iterator_is_refused(vectors):
    batches = iter([torch.as_tensor(vectors)])
    features = TorchLayerFeatures(Probe(), "linear").fit_transform(batches)
    assert features.shape == (10, 3)
    with pytest.raises(ValueError, match="no samples.*DataLoader"):
        TorchLayerFeatures(Probe(), "linear").fit(batches)


@pytest.mark.parametrize(
    "empty", [TensorDataset(torch.zeros(0, 4)), iter([]), {"x": torch.zeros(0, 4)}],
    ids=["dataset", "iterator", "dict"],
)
def test_an_empty_input_is_refused(empty):
    with pytest.raises(ValueError, match="no samples"):
        TorchLayerFeatures(Probe(), "linear").fit(empty)


def test_refit_on_a_loader_forgets_the_array_width(vectors):
    features = TorchLayerFeatures(Probe(), "linear").fit(vectors)
    features.fit(DataLoader(TensorDataset(torch.as_tensor(vectors)), batch_size=5))
    assert not hasattr(features, "n_features_in_")


def test_map_batches_casts_and_slices_as_before(vectors):
    parts = list(map_batches(
        lambda batch: batch, np.arange(10)[:, None], batch_size=4, device=torch.device("cpu"),
        dtype=torch.float64,
    ))
    assert [rows for rows, _ in parts] == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert all(batch.dtype == torch.float64 for _, batch in parts)


def test_each_batch_is_a_copy_of_the_input(vectors):
    reader = batch_reader(torch.as_tensor(vectors), 4)
    feeder = BatchFeeder(torch.device("cpu"))
    for _, batch in stream(reader, feeder):
        batch.zero_()
    assert np.abs(vectors).sum() > 0 and reader.X.abs().sum() > 0


# --- errors -----------------------------------------------------------------------------

def module_state(module):
    return [sub.training for sub in module.modules()], [
        len(sub._forward_hooks) for sub in module.modules()
    ]


@pytest.fixture
def trained_probe():
    return Probe().train()


def assert_refused(module, X, match, **params):
    before = module_state(module)
    with pytest.raises((ValueError, TypeError), match=match):
        TorchLayerFeatures(module, "linear", **params).fit_transform(X)
    assert module_state(module) == before


def test_batches_of_different_kinds_are_refused(trained_probe, vectors):
    batches = [torch.as_tensor(vectors[:5]), {"x": torch.as_tensor(vectors[5:])}]
    assert_refused(trained_probe, batches, r"X: the batches are inconsistent")


def test_batches_whose_samples_differ_in_shape_are_refused(vectors):
    net = nn.Sequential(nn.Flatten(), nn.Identity())
    batches = [torch.zeros(3, 2, 2), torch.zeros(3, 2, 3)]
    with pytest.raises(ValueError, match=r"X: a batch gives 6 features per row where the first"):
        TorchLayerFeatures(net, "1").fit_transform(batches)


def test_a_batch_whose_tensors_differ_in_length_is_refused(trained_probe):
    batch = {"input_ids": torch.zeros(4, 3, dtype=torch.long), "mask": torch.zeros(3, 3)}
    assert_refused(trained_probe, [batch], r"X: the arrays of one batch have different numbers")


def test_keys_the_module_does_not_take_are_refused_before_it_runs(trained_probe, vectors):
    batches = [{"pixel_values": torch.as_tensor(vectors)}]
    assert_refused(trained_probe, batches, r"\['pixel_values'\].*forward=")
    assert trained_probe.calls == []


def test_a_module_failing_on_keywords_names_the_fix():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, **inputs):
            return self.linear(inputs.pop("x"), **inputs)

    batches = [{"x": torch.zeros(2, 2), "y": torch.zeros(2, 2)}]
    assert_refused(Picky(), batches, r"keyword arguments module\(\*\*batch\).*forward=")


def test_preprocess_changing_the_number_of_samples_is_refused(trained_probe, vectors):
    assert_refused(
        trained_probe, vectors, r"preprocess changed the number of samples of a batch from 10 to 5",
        preprocess=lambda x: x[::2],
    )
    assert trained_probe.calls == []


@pytest.mark.parametrize("item", ["a string", 3.5, None, object()])
def test_dataset_items_of_another_kind_are_refused(trained_probe, item):
    class Odd(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return item

    assert_refused(trained_probe, Odd(), r"X: item 0 of the Dataset is a .*tensor")


def test_dataset_items_that_do_not_stack_are_refused(trained_probe):
    class Ragged(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.zeros(index + 1)

    assert_refused(trained_probe, Ragged(), r"do not stack.*collate_fn")


def test_a_dataset_without_length_is_refused(trained_probe):
    class Endless(Dataset):
        def __getitem__(self, index):
            return torch.zeros(4)

    assert_refused(trained_probe, Endless(), r"has no __len__")


@pytest.mark.parametrize("device", ["meta", "tpu7", "cuda:x"])
def test_devices_torch_cannot_compute_on_name_device(vectors, device):
    with pytest.raises(ValueError, match=rf"device={device!r}.*use 'auto'"):
        TorchLayerFeatures(Probe(), "linear", device=device).fit(vectors)


def test_a_module_of_meta_tensors_is_refused(vectors):
    with torch.device("meta"):
        probe = Probe()
    with pytest.raises(ValueError, match=r"module has meta tensors.*to_empty"):
        TorchLayerFeatures(probe, "linear").fit(vectors)


def test_a_meta_tensor_input_is_refused(vectors):
    with pytest.raises(ValueError, match=r"X is a meta tensor"):
        TorchLayerFeatures(Probe(), "linear").fit(torch.empty(3, 4, device="meta"))


# --- CUDA -----------------------------------------------------------------------------

@requires_cuda
def test_a_loader_on_cuda_gives_the_cpu_features(vectors):
    probe = Probe()
    loader = DataLoader(TensorDataset(torch.as_tensor(vectors)), batch_size=3)
    cpu = TorchLayerFeatures(probe, "linear", device="cpu").fit_transform(loader)
    cuda = TorchLayerFeatures(probe, "linear", device="cuda").fit_transform(loader)
    probe.cpu()
    np.testing.assert_allclose(cuda, cpu, rtol=1e-5, atol=1e-6)


@requires_cuda
@pytest.mark.parametrize("as_input", [np.asarray, torch.as_tensor])
def test_host_batches_reach_cuda_without_a_synchronisation(vectors, as_input):
    feeder = BatchFeeder(torch.device("cuda"), torch.float32, check_finite=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch, _ = feeder.inputs(as_input(vectors))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batch.device.type == "cuda"
    np.testing.assert_array_equal(batch.cpu().numpy(), vectors)


def _resident_file_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))


@pytest.mark.skipif(not hasattr(__import__("mmap"), "MADV_DONTNEED"), reason="needs madvise")
def test_a_read_only_memmap_does_not_stay_resident_as_it_streams(tmp_path):
    path = tmp_path / "images.u8"
    n_rows, width = 2000, 32 * 1024  # 64 MiB, in batches of 1 MiB
    np.arange(n_rows * width, dtype=np.uint8).tofile(path)
    memmap = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_rows, width))
    before = _resident_file_kib()
    means = TorchLayerFeatures(
        nn.Identity(), "", pooling="flatten", batch_size=32,
        preprocess=lambda x: x.float().mean(dim=1, keepdim=True),
    ).fit_transform(memmap)
    assert _resident_file_kib() - before < 8 * 1024
    np.testing.assert_allclose(means[:, 0], memmap.mean(axis=1), rtol=1e-6)


def test_progress_of_an_input_without_length_counts_rows(vectors, capsys, monkeypatch):
    monkeypatch.setattr("skarchetype._progress._tqdm", None)
    batches = (torch.as_tensor(vectors[rows]) for rows in (slice(0, 6), slice(6, None)))
    TorchLayerFeatures(Probe(), "linear", verbose=1).fit_transform(batches)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[skarchetype] TorchLayerFeatures: 1 batches, 6 rows, ")
    assert "left" not in lines[0]


def test_complex_tensors_are_never_cast_to_the_real_dtype():
    feeder = BatchFeeder(torch.device("cpu"), torch.float64, cast_integers=True)
    inputs, _ = feeder.inputs(torch.ones(2, 3, dtype=torch.complex64) * 1j)
    assert inputs.dtype == torch.complex64 and inputs.imag.sum() == 6


# --- values a narrowing cast would overflow ----------------------------------------------

@pytest.mark.parametrize(("module_dtype", "X"), [
    (torch.float32, np.full((6, 4), 1e300)),
    (torch.float32, torch.full((6, 4), -1e300, dtype=torch.float64)),
    (torch.bfloat16, np.full((6, 4), 1e300)),
    (torch.float16, np.full((6, 4), 1e5, dtype=np.float32)),
    (torch.float16, torch.full((6, 4), 1e5)),
    (torch.float16, np.full((6, 4), 100_000)),  # integers of a matrix are cast as data
], ids=["float64-array", "float64-tensor", "bfloat16", "float16", "float16-tensor", "int64"])
def test_values_beyond_the_module_dtype_are_refused_before_the_module_runs(module_dtype, X):
    probe = Probe().to(module_dtype).train()
    before = module_state(probe)
    with pytest.raises(ValueError, match=rf"X holds finite values beyond the range of "
                                         rf"{module_dtype}.*Rescale X.*module.double\(\)"):
        TorchLayerFeatures(probe, "linear").fit_transform(X)
    assert probe.calls == []
    assert module_state(probe) == before


def test_an_overflowing_later_batch_is_refused_and_the_module_restored(trained_probe, vectors):
    X = vectors.astype(np.float64)
    X[-1, 0] = 1e300
    assert_refused(trained_probe, X, r"X holds finite values beyond the range of torch.float32",
                   batch_size=3)


def test_a_float64_module_takes_data_beyond_float32(vectors):
    probe = Probe().double()
    X = vectors.astype(np.float64) * 1e300
    features = TorchLayerFeatures(probe, "linear").fit_transform(X)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(features, expected(probe, X))


def test_infinities_already_in_the_input_are_not_blamed_on_the_cast():
    feeder = BatchFeeder(torch.device("cpu"), torch.float32)  # no finiteness check of its own
    batch = torch.tensor([[1.0, np.inf, -np.inf, np.nan]], dtype=torch.float64)
    inputs, _ = feeder.inputs(batch)
    assert inputs.dtype == torch.float32
    torch.testing.assert_close(inputs, batch.float(), equal_nan=True)
    batch[0, 0] = 1e300
    with pytest.raises(ValueError, match="beyond the range"):
        feeder.inputs(batch)


def test_a_preprocess_output_beyond_the_module_dtype_is_refused(vectors):
    with pytest.raises(ValueError, match=r"the output of preprocess holds finite values beyond"):
        TorchLayerFeatures(Probe(), "linear",
                           preprocess=lambda x: x.double() * 1e300).fit_transform(vectors)


def test_map_batches_names_its_input_when_the_cast_overflows():
    batches = map_batches(lambda batch: batch, np.full((2, 2), 1e300), batch_size=2,
                          device=torch.device("cpu"), dtype=torch.float32, name="Z")
    with pytest.raises(ValueError, match=r"^Z holds finite values"):
        list(batches)
