"""TorchLayerFeatures: layer activations of a torch module as sklearn features."""

import copy
import pickle

import numpy as np
import pytest
import torch
from conftest import requires_cuda
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn
from torch.utils.data import DataLoader, Dataset

from skarchetype import TorchLayerFeatures


class SmallCNN(nn.Module):
    """Conv maps (n, c, h, w) then a linear head; ``unused`` is never called."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(6, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        x = self.conv2(self.act(self.conv1(x)))
        return self.head(self.dropout(x.mean(dim=(2, 3))))


class TupleBlock(nn.Module):
    """Returns a tuple, as Hugging Face transformer blocks do."""

    def __init__(self, dim):
        super().__init__()
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        return (torch.tanh(self.mix(x)), None)


class TokenNet(nn.Module):
    """Token sequences (n, tokens, dim) through two tuple-returning blocks."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(5, 6)
        self.blocks = nn.ModuleList([TupleBlock(6), TupleBlock(6)])

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)[0]
        return x[:, 0]


class ColumnwiseNet(nn.Module):
    """A 2-D net for inputs of any width: each column goes through the same tiny MLP."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(1, 3)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.hidden(x.unsqueeze(-1))).flatten(1)


def hooked_output(module, layer, X):
    """The raw output of ``layer`` on ``X``, by a hand-written forward hook."""
    captured = []
    handle = module.get_submodule(layer).register_forward_hook(
        lambda sub, inputs, output: captured.append(output)
    )
    module.eval()
    with torch.no_grad():
        module(torch.as_tensor(X))
    handle.remove()
    output = captured[0]
    return output[0] if isinstance(output, tuple) else output


@pytest.fixture
def cnn():
    return SmallCNN()


@pytest.fixture
def images(rng):
    return rng.normal(size=(20, 1, 6, 6)).astype(np.float32)


@pytest.fixture
def tokens(rng):
    return rng.normal(size=(12, 4, 5)).astype(np.float32)


def expected_failed_checks(estimator):
    return {
        "check_estimators_overwrite_params": (
            "the check compares joblib.hash of each parameter with that of its deepcopy, and a "
            "torch tensor pickles differently from its deepcopy even when untouched, so any "
            "module with parameters fails it; test_fit_and_transform_leave_the_module_unchanged "
            "checks the same property on the state dict, modes and hooks"
        )
    }


@parametrize_with_checks(
    [TorchLayerFeatures(ColumnwiseNet(), layers=("hidden", "act"), pooling="flatten")],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


def test_fit_and_transform_leave_the_module_unchanged(cnn, images):
    state = {name: value.clone() for name, value in cnn.state_dict().items()}
    modes = [sub.training for sub in cnn.modules()]
    TorchLayerFeatures(cnn, ("conv1", "head")).fit_transform(images)
    for name, value in cnn.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    assert [sub.training for sub in cnn.modules()] == modes
    assert all(not sub._forward_hooks for sub in cnn.modules())


def test_features_match_a_hand_written_hook(cnn, images):
    features = TorchLayerFeatures(cnn, "conv2", batch_size=7).fit_transform(images)
    expected = hooked_output(cnn, "conv2", images).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("pooling", "reduce"),
    [
        ("avg", lambda out: out.mean(dim=(2, 3))),
        ("max", lambda out: out.amax(dim=(2, 3))),
        ("flatten", lambda out: out.flatten(1)),
        ("auto", lambda out: out.mean(dim=(2, 3))),
        (lambda out: out[:, :2, 0, 0], lambda out: out[:, :2, 0, 0]),
    ],
    ids=["avg", "max", "flatten", "auto", "callable"],
)
def test_pooling_of_conv_maps(cnn, images, pooling, reduce):
    features = TorchLayerFeatures(cnn, "conv1", pooling=pooling).fit_transform(images)
    expected = reduce(hooked_output(cnn, "conv1", images)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("pooling", "reduce"),
    [
        ("cls", lambda out: out[:, 0]),
        ("mean", lambda out: out.mean(dim=1)),
        ("flatten", lambda out: out.flatten(1)),
        # TokenNet has no class-token parameter: "auto" averages its tokens
        ("auto", lambda out: out.mean(dim=1)),
    ],
)
def test_pooling_of_token_sequences_from_tuple_outputs(tokens, pooling, reduce):
    net = TokenNet()
    features = TorchLayerFeatures(net, "blocks.1", pooling=pooling).fit_transform(tokens)
    expected = reduce(hooked_output(net, "blocks.1", tokens)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_auto_keeps_2d_outputs_as_they_are(cnn, images):
    features = TorchLayerFeatures(cnn, "head").fit_transform(images)
    np.testing.assert_allclose(features, hooked_output(cnn, "head", images).numpy(), atol=1e-6)


def test_pooling_dict_sets_each_layer(cnn, images):
    features = TorchLayerFeatures(
        cnn, ("conv1", "conv2"), pooling={"conv1": "max"}
    ).fit_transform(images)
    expected = torch.cat(
        [
            hooked_output(cnn, "conv1", images).amax(dim=(2, 3)),
            hooked_output(cnn, "conv2", images).mean(dim=(2, 3)),
        ],
        dim=1,
    ).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_columns_follow_the_order_of_layers(cnn, images):
    forward = TorchLayerFeatures(cnn, ("conv1", "head")).fit(images)
    backward = TorchLayerFeatures(cnn, ("head", "conv1")).fit(images)
    assert forward.layer_slices_ == {"conv1": slice(0, 4), "head": slice(4, 7)}
    assert backward.layer_slices_ == {"head": slice(0, 3), "conv1": slice(3, 7)}
    np.testing.assert_array_equal(
        forward.transform(images), backward.transform(images)[:, [3, 4, 5, 6, 0, 1, 2]]
    )


def test_layer_features_equal_single_layer_features(cnn, images):
    both = TorchLayerFeatures(cnn, ("conv1", "conv2")).fit(images)
    alone = TorchLayerFeatures(cnn, "conv2").fit_transform(images)
    np.testing.assert_array_equal(both.transform(images)[:, both.layer_slices_["conv2"]], alone)


def test_output_shapes_are_recorded(cnn, images):
    features = TorchLayerFeatures(cnn, ("conv2", "head")).fit(images)
    assert features.layer_output_shapes_ == {"conv2": (6, 6, 6), "head": (3,)}


def test_feature_names_name_the_layer(cnn, images):
    features = TorchLayerFeatures(cnn, ("head", "conv1")).fit(images)
    names = features.get_feature_names_out()
    assert names.tolist() == ["head__0", "head__1", "head__2"] + [f"conv1__{i}" for i in range(4)]


def test_batch_size_does_not_change_features(cnn, images):
    small = TorchLayerFeatures(cnn, "conv2", batch_size=3).fit_transform(images)
    large = TorchLayerFeatures(cnn, "conv2", batch_size=100).fit_transform(images)
    np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-6)


def test_runs_in_eval_mode_and_restores_train_mode(cnn, images):
    cnn.train()
    features = TorchLayerFeatures(cnn, "head").fit(images)
    # dropout before the head would make two transforms differ in train mode
    np.testing.assert_array_equal(features.transform(images), features.transform(images))
    assert cnn.training and cnn.dropout.training


def test_failure_restores_train_mode_and_removes_hooks(cnn, images):
    cnn.train()
    features = TorchLayerFeatures(cnn, ("conv1", "conv2")).fit(images)
    with pytest.raises(ValueError):
        features.transform(images[:, :, :, :0])
    assert cnn.training and cnn.conv1.training
    assert all(not sub._forward_hooks for sub in cnn.modules())


def test_mixed_train_and_eval_submodules_get_their_own_modes_back(cnn, images):
    cnn.train()
    cnn.dropout.eval()
    TorchLayerFeatures(cnn, ("conv1", "head")).fit_transform(images)
    assert cnn.training and cnn.conv1.training and not cnn.dropout.training


def test_forward_pass_stops_after_the_last_requested_layer(cnn, images):
    calls = []
    cnn.head.register_forward_hook(lambda *args: calls.append(1))
    TorchLayerFeatures(cnn, "conv1").fit_transform(images)
    assert calls == []


def test_tensor_and_array_inputs_give_the_same_features(cnn, images):
    features = TorchLayerFeatures(cnn, "conv2").fit(images)
    np.testing.assert_array_equal(
        features.transform(torch.from_numpy(images)), features.transform(images)
    )


class InPlaceNet(nn.Module):
    """Scales its input in place before a linear layer."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x.mul_(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("as_input", [np.array, torch.from_numpy])
def test_a_module_writing_into_its_input_leaves_x_unchanged(rng, as_input, dtype):
    X = rng.normal(size=(7, 3)).astype(dtype)
    given = as_input(X.copy())
    net = InPlaceNet()
    features = TorchLayerFeatures(net, "linear", batch_size=3).fit_transform(given)
    np.testing.assert_array_equal(np.asarray(given), X)
    with torch.no_grad():
        expected = net.linear(torch.from_numpy(2 * X).float()).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-6)


def test_float64_input_is_converted_for_a_float32_module(cnn, images):
    features = TorchLayerFeatures(cnn, ("conv1", "head"), batch_size=7).fit(images)
    np.testing.assert_array_equal(
        features.transform(images.astype(np.float64)), features.transform(images)
    )


def test_read_only_memmap_is_streamed(cnn, images, tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, images)
    mapped = np.load(path, mmap_mode="r")
    features = TorchLayerFeatures(cnn, "conv2", batch_size=6).fit(mapped)
    np.testing.assert_array_equal(features.transform(mapped), features.transform(images))


@requires_cuda
def test_features_on_cuda_match_those_on_the_cpu(images):
    net = SmallCNN()
    on_cpu = TorchLayerFeatures(net, ("conv1", "head")).fit_transform(images)
    on_gpu = TorchLayerFeatures(copy.deepcopy(net), ("conv1", "head"), device="cuda")
    np.testing.assert_allclose(on_gpu.fit_transform(images), on_cpu, rtol=1e-4, atol=1e-5)


def test_float64_features_on_request(cnn, images):
    features = TorchLayerFeatures(cnn.double(), "head", dtype="float64").fit_transform(images)
    assert features.dtype == np.float64


def test_verbose_shows_a_progress_bar_with_rows_per_second(cnn, images, capsys):
    pytest.importorskip("tqdm")
    TorchLayerFeatures(cnn, "conv1", batch_size=10, verbose=1).fit_transform(images)
    bar = capsys.readouterr().err
    assert "TorchLayerFeatures: 100%" in bar and "rows/s" in bar


def test_verbose_prints_lines_without_tqdm(cnn, images, capsys, monkeypatch):
    monkeypatch.setattr("skarchetype._progress._tqdm", None)
    TorchLayerFeatures(cnn, "conv1", batch_size=10, verbose=1).fit_transform(images)
    last = capsys.readouterr().out.splitlines()[-1]
    assert "TorchLayerFeatures: 2/2 batches, 20/20 rows" in last and "rows/s, 0:00:00 left" in last


def test_unknown_layer_lists_the_nearest_names(cnn, images):
    with pytest.raises(ValueError, match=r"'conv3'.*Nearest valid names.*'conv1'"):
        TorchLayerFeatures(cnn, "conv3").fit(images)


def test_layer_never_reached_is_named(cnn, images):
    with pytest.raises(ValueError, match=r"\['unused'\] were never reached.*\(1, 1, 6, 6\)"):
        TorchLayerFeatures(cnn, ("conv1", "unused")).fit(images)


def test_module_failure_names_the_layers_and_input_shape(cnn, rng):
    wrong_channels = rng.normal(size=(4, 3, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 6, 6\).*\['conv2'\]") as info:
        TorchLayerFeatures(cnn, "conv2").fit(wrong_channels)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_pooling_that_does_not_fit_the_output_names_the_layer(cnn, images):
    with pytest.raises(ValueError, match=r"Layer 'head'.*'cls'.*\(1, 3\)"):
        TorchLayerFeatures(cnn, "head", pooling="cls").fit(images)


class ShapeBlock(nn.Module):
    """Returns a dict that holds no tensor."""

    def forward(self, x):
        return {"shape": tuple(x.shape)}


class ShapeOutputNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = ShapeBlock()
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        self.block(x)
        return self.head(x)


def test_layer_whose_output_holds_no_tensor_is_named(rng):
    with pytest.raises(ValueError, match=r"Layer 'block': its output is a dict, not a tensor"):
        TorchLayerFeatures(ShapeOutputNet(), "block").fit(rng.normal(size=(4, 3)))


def test_pooling_dict_naming_another_layer_is_refused(cnn, images):
    with pytest.raises(ValueError, match=r"\['conv2'\].*not in layers"):
        TorchLayerFeatures(cnn, "conv1", pooling={"conv2": "max"}).fit(images)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_input", [np.asarray, torch.from_numpy])
def test_non_finite_input_is_refused_at_transform(cnn, images, value, as_input):
    features = TorchLayerFeatures(cnn, "conv1", batch_size=6).fit(images)
    spoiled = images.copy()
    spoiled[-1, 0, 2, 3] = value
    with pytest.raises(ValueError, match="NaN|infinity"):
        features.transform(as_input(spoiled))


def test_non_finite_memmap_is_refused_as_it_streams(cnn, images, tmp_path):
    spoiled = images.copy()
    spoiled[-1, 0, 2, 3] = np.nan
    np.save(tmp_path / "images.npy", spoiled)
    features = TorchLayerFeatures(cnn, "conv1", batch_size=6).fit(images)
    with pytest.raises(ValueError, match="NaN or infinity"):
        features.transform(np.load(tmp_path / "images.npy", mmap_mode="r"))


def test_finite_input_whose_sum_overflows_is_accepted(cnn, images):
    # the per-batch check sums the batch first; an overflowing sum must not count as non-finite
    features = TorchLayerFeatures(cnn, "conv1").fit(images)
    huge = np.full_like(images, np.finfo(np.float32).max)
    assert features.transform(huge).shape == (len(images), 4)


def test_input_of_another_size_is_refused_at_transform(cnn, images):
    features = TorchLayerFeatures(cnn, "conv1", pooling="flatten").fit(images)
    with pytest.raises(ValueError, match="Layer 'conv1' gives 64 features"):
        features.transform(np.zeros((2, 1, 4, 4), dtype=np.float32))


def test_clone_shares_the_module(cnn):
    features = TorchLayerFeatures(cnn, "conv1", batch_size=5)
    copy = clone(features)
    assert copy.module is cnn
    assert copy.get_params()["batch_size"] == 5


def test_pickle_round_trip_gives_the_same_features(cnn, images):
    features = TorchLayerFeatures(cnn, ("conv1", "head")).fit(images)
    restored = pickle.loads(pickle.dumps(features))
    np.testing.assert_array_equal(restored.transform(images), features.transform(images))


def test_grid_search_shares_the_network(cnn, images, rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from skarchetype import ArchetypalAnalysis

    X = np.concatenate([images, images + 1.0, images - 1.0])
    y = np.repeat([0, 1, 2], len(images))
    pipe = Pipeline(
        [
            ("features", TorchLayerFeatures(cnn, "conv2")),
            ("aa", ArchetypalAnalysis(random_state=0, max_iter=50)),
            ("classify", LogisticRegression()),
        ]
    )
    search = GridSearchCV(pipe, {"aa__n_archetypes": [2, 3]}, cv=2).fit(X, y)
    assert search.best_estimator_.named_steps["features"].module is cnn
    assert search.cv_results_["mean_test_score"].shape == (2,)


def test_demo_networks_expose_their_documented_layers():
    from skarchetype.demo._digits_models import DigitsCNN, DigitsViT, load_digit_images

    images, _ = load_digit_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    cnn = TorchLayerFeatures(DigitsCNN(), ("conv1", "conv2", "conv3", "head")).fit(images[:4])
    vit = TorchLayerFeatures(DigitsViT(), ("patch_embedding", "blocks.2", "head")).fit(images[:4])
    assert cnn.layer_slices_ == {
        "conv1": slice(0, 12), "conv2": slice(12, 36), "conv3": slice(36, 84),
        "head": slice(84, 94),
    }
    assert vit.layer_slices_ == {
        "patch_embedding": slice(0, 32), "blocks.2": slice(32, 64), "head": slice(64, 74)
    }
    assert vit.layer_output_shapes_["blocks.2"] == (17, 32)


def test_train_classifier_learns_the_digits():
    from skarchetype.demo._digits_models import (
        DigitsCNN,
        classifier_accuracy,
        load_digit_images,
        train_classifier,
    )

    images, labels = load_digit_images()
    network = DigitsCNN(width=8)
    before = classifier_accuracy(network, images[:200], labels[:200])
    train_classifier(network, images[:200], labels[:200], epochs=8, batch_size=16,
                     random_state=0)
    assert not network.training
    assert classifier_accuracy(network, images[:200], labels[:200]) > before + 0.3


# --- inputs users have: Hugging Face models fed by Datasets and DataLoaders ----------------

def hidden_states(model, **inputs):
    with torch.no_grad():
        return model(**inputs, output_hidden_states=True).hidden_states


@pytest.fixture
def sentences(rng):
    """Token ids of 10 sentences padded to 9 tokens, with their attention mask."""
    lengths = rng.integers(3, 10, size=10)
    mask = torch.as_tensor(np.arange(9) < lengths[:, None]).long()
    ids = torch.as_tensor(rng.integers(1, 100, size=(10, 9))) * mask
    return {"input_ids": ids, "attention_mask": mask}


def test_bert_fed_by_a_dataloader_of_dict_batches_gives_its_cls_states(sentences):
    from hf_models import tiny_bert

    bert = tiny_bert()
    rows = [{key: value[index] for key, value in sentences.items()} for index in range(10)]
    loader = DataLoader(rows, batch_size=4)  # default collation: dict batches
    layers = ("encoder.layer.0", "encoder.layer.1")
    features = TorchLayerFeatures(bert, layers, pooling="cls").fit_transform(loader)
    states = hidden_states(bert, **sentences)
    reference = torch.cat([states[1][:, 0], states[2][:, 0]], dim=1).numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5)


def test_bert_takes_a_tokenizer_style_dict_of_all_samples(sentences):
    from hf_models import tiny_bert

    bert = tiny_bert()
    features = TorchLayerFeatures(bert, "encoder.layer.1", pooling="cls", batch_size=3)
    reference = hidden_states(bert, **sentences)[2][:, 0].numpy()
    np.testing.assert_allclose(features.fit_transform(sentences), reference, rtol=1e-4, atol=1e-5)


class ImageLabelDataset(Dataset):
    """(image, label) pairs, as torchvision datasets return them."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return torch.as_tensor(self.images[index]), index % 10


@pytest.fixture
def rgb(rng):
    return rng.normal(size=(6, 3, 16, 16)).astype(np.float32)


def test_vit_fed_by_a_dataset_of_image_label_pairs_gives_its_cls_states(rgb):
    from hf_models import tiny_vit

    vit = tiny_vit()
    layers = ("layers.0", "layers.1")
    features = TorchLayerFeatures(vit, layers, pooling="cls", batch_size=4)
    features.fit(ImageLabelDataset(rgb))
    states = hidden_states(vit, pixel_values=torch.as_tensor(rgb))
    reference = torch.cat([states[1][:, 0], states[2][:, 0]], dim=1).numpy()
    np.testing.assert_allclose(
        features.transform(ImageLabelDataset(rgb)), reference, rtol=1e-4, atol=1e-5
    )


def test_vit_takes_dict_batches_of_pixel_values(rgb):
    from hf_models import tiny_vit

    vit = tiny_vit()
    loader = DataLoader([{"pixel_values": torch.as_tensor(image)} for image in rgb], batch_size=4)
    features = TorchLayerFeatures(vit, "layers.1", pooling="cls").fit_transform(loader)
    reference = hidden_states(vit, pixel_values=torch.as_tensor(rgb))[2][:, 0].numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_vit_gives_float32_features_of_its_states(rgb, dtype):
    from hf_models import tiny_vit

    vit = tiny_vit().to(dtype)
    features = TorchLayerFeatures(vit, "layers.1", pooling="cls").fit_transform(rgb)
    assert features.dtype == np.float32
    states = hidden_states(vit, pixel_values=torch.as_tensor(rgb).to(dtype))
    np.testing.assert_array_equal(features, states[2][:, 0].float().numpy())


def test_uint8_images_preprocessed_batch_by_batch_give_the_normalised_features(rng, tmp_path):
    from hf_models import tiny_resnet

    resnet = tiny_resnet()
    images = rng.integers(0, 256, size=(5, 3, 16, 16), dtype=np.uint8)
    path = tmp_path / "images.u8"
    images.tofile(path)
    memmap = np.memmap(path, dtype=np.uint8, mode="r", shape=images.shape)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    features = TorchLayerFeatures(
        resnet, "encoder.stages.1", pooling="avg", batch_size=2,
        preprocess=lambda x: (x / 255 - mean) / std,
    ).fit_transform(memmap)
    normalised = (torch.as_tensor(images) / 255 - mean) / std
    reference = hidden_states(resnet, pixel_values=normalised)[2].mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5)


def test_bert_rejecting_a_positional_tuple_names_forward(sentences):
    from hf_models import tiny_bert

    bert = tiny_bert().train()
    batches = [(sentences["input_ids"].float(), sentences["attention_mask"])]
    with pytest.raises(ValueError, match=r"The module failed"):
        TorchLayerFeatures(bert, "encoder.layer.0", dtype="float32").fit(batches)
    assert all(module.training for module in bert.modules())
    assert not any(module._forward_hooks for module in bert.modules())


def test_integer_data_tensor_for_a_float_module_is_refused_with_the_fix():
    # integer tensors reach the module unchanged (they may be token ids), so a Linear fails
    network = torch.nn.Sequential(torch.nn.Linear(3, 2))
    X = torch.zeros(4, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"X\.float\(\)"):
        TorchLayerFeatures(network, layers="0").fit(X)
    assert not network._forward_hooks and not network[0]._forward_hooks
