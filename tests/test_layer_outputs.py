"""TorchLayerFeatures on what layers return: tuples, dicts, ModelOutputs, token sequences,
channels-first and channels-last maps; poolings per sample and per position."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.pipeline import Pipeline
from torch import nn
from torch.utils.data import DataLoader, Dataset

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype._batches import batch_length
from skarchetype._layer_features import _LayerRecorder


def hooked(module, layer, X):
    """The raw output of ``layer`` on ``X``, by a hand-written forward hook."""
    captured = []
    handle = module.get_submodule(layer).register_forward_hook(
        lambda sub, inputs, output: captured.append(output)
    )
    with torch.no_grad():
        module.eval()(torch.as_tensor(X))
    handle.remove()
    return captured[0]


class ChannelsLastStage(nn.Module):
    """A stage in timm's Swin style: (n, c, h, w) images to (n, h, w, channels) maps."""

    def __init__(self, in_channels=3, channels=6):
        super().__init__()
        self.proj = nn.Linear(in_channels, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(self.proj(x.permute(0, 2, 3, 1)))


class StageNet(nn.Module):
    def __init__(self, channels=6):
        super().__init__()
        self.stage = ChannelsLastStage(channels=channels)
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        return self.head(self.stage(x).mean(dim=(1, 2)))


class Permute(nn.Module):
    """No parameters: nothing says which axis holds the channels."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class Outputs(nn.Module):
    """Returns its input in the container ``kind`` gives: list, tuple or dict."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "list":
            return [x, 2 * x]
        if self.kind == "tuple":
            return (x, None)
        return {"mask": None, "hidden": x, "doubled": 2 * x}


class Wrap(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        self.block(x)
        return x


class TokenNet(nn.Module):
    """Token sequences (n, tokens, dim); with ``cls``, a learned class token goes first."""

    def __init__(self, cls=False, dim=6):
        super().__init__()
        self.embed = nn.Linear(5, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim)) if cls else None
        self.block = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))

    def forward(self, x):
        tokens = self.embed(x)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        return self.block(tokens)


@pytest.fixture
def images(rng):
    return rng.normal(size=(7, 3, 4, 4)).astype(np.float32)


@pytest.fixture
def tokens(rng):
    return rng.normal(size=(6, 9, 5)).astype(np.float32)


# --- layer outputs ------------------------------------------------------------------------


def test_channels_last_maps_are_averaged_over_their_spatial_axes(images):
    net = StageNet()
    features = TorchLayerFeatures(net, "stage").fit(images)
    expected = hooked(net, "stage", images).mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(features.transform(images), expected, rtol=1e-5, atol=1e-6)
    assert features.layer_layouts_ == {"stage": "channels_last"}
    assert features.layer_poolings_ == {"stage": "avg"}


def test_channels_last_maps_max_pool_over_their_spatial_axes(images):
    net = StageNet()
    features = TorchLayerFeatures(net, "stage", pooling="max").fit_transform(images)
    expected = hooked(net, "stage", images).amax(dim=(1, 2)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_ambiguous_layout_warns_and_names_the_layout_option(rng):
    X = rng.normal(size=(3, 4, 4, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"Layer 'block'.*cannot tell.*layout="):
        TorchLayerFeatures(Wrap(Permute()), "block").fit(X)


def test_layout_option_says_which_axis_holds_the_channels(rng):
    X = rng.normal(size=(3, 4, 4, 4)).astype(np.float32)
    net = Wrap(Permute())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = TorchLayerFeatures(net, "block", layout={"block": "channels_last"}).fit(X)
    np.testing.assert_allclose(features.transform(X), X.mean(axis=(2, 3)), rtol=1e-6)


def test_square_maps_beside_other_channel_counts_need_no_option(rng):
    X = rng.normal(size=(3, 5, 5, 8)).astype(np.float32)  # (n, h, w, c): read channels-last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = TorchLayerFeatures(Wrap(nn.Identity()), "block").fit(X)
    assert features.layer_layouts_ == {"block": "channels_last"}
    np.testing.assert_allclose(features.transform(X), X.mean(axis=(1, 2)), rtol=1e-5)


def test_convolution_outputs_are_channels_first_whatever_their_shape(rng):
    net = nn.Sequential(nn.Conv2d(2, 4, 1))  # (n, 4, 4, 4): every axis could be the channels
    X = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = TorchLayerFeatures(net, "0").fit(X)
    assert features.layer_layouts_ == {"0": "channels_first"}


class ConvNeXtStyleBlock(nn.Module):
    """Ends in a linear layer on channels-last maps, then permutes back to channels-first."""

    def __init__(self, channels=6):
        super().__init__()
        self.depthwise = nn.Conv2d(3, channels, 3, padding=1)
        self.pointwise = nn.Linear(channels, channels)

    def forward(self, x):
        return self.pointwise(self.depthwise(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_channels_first_output_of_a_block_ending_in_a_linear_layer(rng):
    X = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)  # not square: the width tells
    net = Wrap(ConvNeXtStyleBlock())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = TorchLayerFeatures(net, "block").fit(X)
    expected = hooked(net, "block", X).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(features.transform(X), expected, rtol=1e-5, atol=1e-6)
    assert features.layer_layouts_ == {"block": "channels_first"}


def test_avg_on_token_sequences_averages_the_tokens(tokens):
    net = TokenNet()
    features = TorchLayerFeatures(net, "block", pooling="avg").fit_transform(tokens)
    expected = hooked(net, "block", tokens).mean(dim=1).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_auto_takes_the_class_token_of_models_that_have_one(tokens):
    net = TokenNet(cls=True)
    features = TorchLayerFeatures(net, "block").fit(tokens)
    expected = hooked(net, "block", tokens)[:, 0].numpy()
    np.testing.assert_allclose(features.transform(tokens), expected, rtol=1e-5, atol=1e-6)
    assert features.layer_poolings_ == {"block": "cls"}


def test_auto_averages_the_tokens_of_models_without_a_class_token(tokens):
    net = TokenNet()
    features = TorchLayerFeatures(net, "block").fit(tokens)
    expected = hooked(net, "block", tokens).mean(dim=1).numpy()
    np.testing.assert_allclose(features.transform(tokens), expected, rtol=1e-5, atol=1e-6)
    assert features.layer_poolings_ == {"block": "mean"}


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_named_poolings_read_the_first_tensor_of_tuples_and_dicts(rng, kind):
    X = rng.normal(size=(4, 3)).astype(np.float32)
    features = TorchLayerFeatures(Wrap(Outputs(kind)), "block").fit_transform(X)
    np.testing.assert_allclose(features, X)


def test_list_of_several_outputs_warns_that_only_the_first_is_read(rng):
    X = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"list of 2 outputs.*reads only the first"):
        features = TorchLayerFeatures(Wrap(Outputs("list")), "block").fit(X)
    np.testing.assert_allclose(features.transform(X), X)


@pytest.mark.parametrize(
    ("kind", "pooling"),
    [("list", lambda out: out[1]), ("dict", lambda out: out["doubled"])],
)
def test_callable_pooling_receives_the_raw_output(rng, kind, pooling):
    X = rng.normal(size=(4, 3)).astype(np.float32)
    features = TorchLayerFeatures(Wrap(Outputs(kind)), "block", pooling=pooling).fit_transform(X)
    np.testing.assert_allclose(features, 2 * X)


def test_failing_pooling_callable_is_named_not_the_module(rng):
    X = rng.normal(size=(4, 3)).astype(np.float32)

    def broken(output):
        return output["missing"]

    with pytest.raises(ValueError, match=r"Layer 'block': the pooling callable .*broken.* "
                                         r"failed.*dict.*'missing'") as info:
        TorchLayerFeatures(Wrap(Outputs("dict")), "block", pooling=broken).fit(X)
    assert "module failed" not in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


def test_pooling_callable_returning_no_tensor_is_named(rng):
    X = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(TypeError, match=r"pooling callable .* returned a list; it must return "
                                        r"a tensor"):
        TorchLayerFeatures(Wrap(Outputs("dict")), "block", pooling=lambda out: [1]).fit(X)


def test_pooling_callable_returning_other_rows_is_named(rng):
    X = rng.normal(size=(4, 3)).astype(np.float32)
    features = TorchLayerFeatures(nn.Linear(3, 2), "", pooling=lambda out: out[:1])
    with pytest.raises(ValueError, match=r"Layer '': pooling=.*gave 1 rows for a batch of 4"):
        features.fit(X).transform(X)


def test_failures_leave_no_hooks_and_restore_modes(rng):
    net = Wrap(Outputs("dict")).train()
    with pytest.raises(ValueError):
        TorchLayerFeatures(net, "block", pooling=lambda out: out["missing"]).fit(
            rng.normal(size=(4, 3)).astype(np.float32)
        )
    assert net.training and all(not sub._forward_hooks for sub in net.modules())


# --- attention masks ----------------------------------------------------------------------


class DictFed(nn.Module):
    """A token model fed a dict batch ``{"tokens", "attention_mask"}`` as keywords."""

    def __init__(self):
        super().__init__()
        self.net = TokenNet()

    def forward(self, tokens, attention_mask=None):
        return self.net(tokens)


def recorded(module, layers, poolings, batch):
    with torch.inference_mode(), _LayerRecorder(module, layers, poolings) as recorder:
        return recorder.record(batch, batch_length(batch))


@pytest.mark.parametrize("pooling", ["mean", "auto"])
def test_mean_over_tokens_excludes_the_padding_of_the_attention_mask(tokens, pooling):
    module = DictFed()
    mask = torch.ones(tokens.shape[:2], dtype=torch.long)
    mask[0, 3:] = 0
    mask[4, 1:] = 0
    batch = {"tokens": torch.from_numpy(tokens), "attention_mask": mask}
    (pooled,) = recorded(module, ("net.block",), {"net.block": pooling}, batch)
    outputs = hooked(module.net, "block", tokens)
    expected = torch.stack([outputs[i, : int(m.sum())].mean(dim=0) for i, m in enumerate(mask)])
    torch.testing.assert_close(pooled, expected)


def test_max_over_tokens_excludes_the_padding_of_the_attention_mask(tokens):
    module = DictFed()
    mask = torch.ones(tokens.shape[:2], dtype=torch.long)
    mask[2, 4:] = 0
    batch = {"tokens": torch.from_numpy(tokens), "attention_mask": mask}
    (pooled,) = recorded(module, ("net.block",), {"net.block": "max"}, batch)
    outputs = hooked(module.net, "block", tokens)
    expected = torch.stack([outputs[i, : int(m.sum())].amax(dim=0) for i, m in enumerate(mask)])
    torch.testing.assert_close(pooled, expected)


def test_attention_mask_of_another_length_is_refused(tokens):
    batch = {"tokens": torch.from_numpy(tokens), "attention_mask": torch.ones(6, 4)}
    with pytest.raises(ValueError, match=r"Layer 'net.block'.*attention_mask.*\(6, 4\).*9 tokens"):
        recorded(DictFed(), ("net.block",), {"net.block": "mean"}, batch)


# --- per-position features ------------------------------------------------------------------


def test_positions_of_a_conv_map_give_a_row_per_sample_and_location(rng):
    net = nn.Sequential(nn.Conv2d(3, 5, 1))
    X = rng.normal(size=(4, 3, 2, 3)).astype(np.float32)
    features = TorchLayerFeatures(net, "0", pooling="positions").fit(X)
    rows = features.transform(X)
    maps = hooked(net, "0", X).numpy()
    assert rows.shape == (4 * 6, 5)
    assert features.n_positions_ == 6 and features.position_grid_ == (2, 3)
    for row in (0, 7, 23):
        sample, position = divmod(row, features.n_positions_)
        h, w = np.unravel_index(position, features.position_grid_)
        np.testing.assert_allclose(rows[row], maps[sample, :, h, w], rtol=1e-5, atol=1e-6)


def test_positions_of_channels_last_maps(images):
    net = StageNet()
    features = TorchLayerFeatures(net, "stage", pooling="positions").fit(images)
    expected = hooked(net, "stage", images).reshape(-1, 6).numpy()
    np.testing.assert_allclose(features.transform(images), expected, rtol=1e-5, atol=1e-6)
    assert features.position_grid_ == (4, 4)


def test_positions_of_tokens_leave_out_the_class_token(rng):
    X = rng.normal(size=(3, 16, 5)).astype(np.float32)
    net = TokenNet(cls=True)
    features = TorchLayerFeatures(net, "block", pooling="positions").fit(X)
    expected = hooked(net, "block", X)[:, 1:].reshape(-1, 6).numpy()
    np.testing.assert_allclose(features.transform(X), expected, rtol=1e-5, atol=1e-6)
    assert features.n_positions_ == 16 and features.position_grid_ == (4, 4)


def test_per_sample_poolings_have_one_position(images):
    features = TorchLayerFeatures(StageNet(), "stage").fit(images)
    assert features.n_positions_ == 1 and features.position_grid_ == ()


def test_positions_in_every_layer_must_agree(images):
    net = StageNet()
    with pytest.raises(ValueError, match=r"different numbers of rows per sample.*positions"):
        TorchLayerFeatures(net, ("stage", "head"), pooling={"stage": "positions"}).fit(images)


def test_positions_of_an_output_without_positions_are_refused(images):
    with pytest.raises(ValueError, match=r"Layer 'head'.*'positions'.*\(1, 2\) has none"):
        TorchLayerFeatures(StageNet(), "head", pooling="positions").fit(images)


def test_positions_of_inputs_of_another_size_are_refused(rng):
    net = nn.Sequential(nn.Conv2d(3, 5, 1))
    features = TorchLayerFeatures(net, "0", pooling="positions").fit(
        rng.normal(size=(2, 3, 2, 2)).astype(np.float32)
    )
    with pytest.raises(ValueError, match=r"gives 9 positions per sample.*but 4 when fitted"):
        features.transform(rng.normal(size=(2, 3, 3, 3)).astype(np.float32))


def test_archetypes_of_positions_in_a_pipeline(images):
    pipe = Pipeline([
        ("features", TorchLayerFeatures(StageNet(), "stage", pooling="positions")),
        ("aa", ArchetypalAnalysis(n_archetypes=3, random_state=0)),
    ])
    coefficients = pipe.fit_transform(images)
    assert coefficients.shape == (len(images) * 16, 3)
    np.testing.assert_allclose(coefficients.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(pipe.fit(images).transform(images), coefficients, atol=1e-6)


# --- Hugging Face models: features equal the models' own hidden states ---------------------


@pytest.fixture
def hf_models():
    pytest.importorskip("transformers")
    import hf_models

    return hf_models


@pytest.fixture
def pixels(rng):
    return rng.normal(size=(5, 3, 16, 16)).astype(np.float32)


def hidden_states(model, **inputs):
    with torch.no_grad():
        return model(**inputs, output_hidden_states=True)


def test_vit_blocks_give_their_cls_token(hf_models, pixels):
    vit = hf_models.tiny_vit()
    features = TorchLayerFeatures(vit, ("layers.0", "layers.1")).fit(pixels)
    states = hidden_states(vit, pixel_values=torch.from_numpy(pixels)).hidden_states
    expected = torch.cat([states[1][:, 0], states[2][:, 0]], dim=1).numpy()
    np.testing.assert_allclose(features.transform(pixels), expected, rtol=1e-4, atol=1e-5)
    assert features.layer_poolings_ == {"layers.0": "cls", "layers.1": "cls"}


def test_vit_model_output_gives_the_cls_token_of_its_last_hidden_state(hf_models, pixels):
    vit = hf_models.tiny_vit()
    features = TorchLayerFeatures(vit, "").fit_transform(pixels)
    expected = hidden_states(vit, pixel_values=torch.from_numpy(pixels)).last_hidden_state[:, 0]
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_vit_patch_embeddings_come_before_the_cls_token(hf_models, pixels):
    vit = hf_models.tiny_vit()
    features = TorchLayerFeatures(vit, "embeddings.patch_embeddings").fit(pixels)
    expected = hooked(vit, "embeddings.patch_embeddings", pixels).mean(dim=1).numpy()
    np.testing.assert_allclose(features.transform(pixels), expected, rtol=1e-4, atol=1e-5)
    assert features.layer_poolings_ == {"embeddings.patch_embeddings": "mean"}


def test_vit_positions_are_its_patch_tokens(hf_models, pixels):
    vit = hf_models.tiny_vit()
    features = TorchLayerFeatures(vit, "layers.1", pooling="positions").fit(pixels)
    states = hidden_states(vit, pixel_values=torch.from_numpy(pixels)).hidden_states
    expected = states[2][:, 1:].reshape(-1, 32).numpy()
    np.testing.assert_allclose(features.transform(pixels), expected, rtol=1e-4, atol=1e-5)
    assert features.position_grid_ == (4, 4)


def test_resnet_stages_give_their_spatial_averages(hf_models, pixels):
    resnet = hf_models.tiny_resnet()
    layers = ("embedder", "encoder.stages.0", "encoder.stages.1")
    features = TorchLayerFeatures(resnet, layers).fit(pixels)
    states = hidden_states(resnet, pixel_values=torch.from_numpy(pixels)).hidden_states
    expected = torch.cat([state.mean(dim=(2, 3)) for state in states], dim=1).numpy()
    np.testing.assert_allclose(features.transform(pixels), expected, rtol=1e-4, atol=1e-5)
    assert set(features.layer_layouts_.values()) == {"channels_first"}


@pytest.mark.filterwarnings("ignore:Layer .* cannot tell:UserWarning")  # 16 tokens of 16 channels
def test_swin_stages_have_no_cls_token_and_give_their_token_means(hf_models, pixels):
    swin = hf_models.tiny_swin()
    features = TorchLayerFeatures(swin, ("encoder.layers.0", "encoder.layers.1")).fit(pixels)
    states = hidden_states(swin, pixel_values=torch.from_numpy(pixels)).hidden_states
    expected = torch.cat([states[1].mean(dim=1), states[2].mean(dim=1)], dim=1).numpy()
    np.testing.assert_allclose(features.transform(pixels), expected, rtol=1e-4, atol=1e-5)
    assert set(features.layer_poolings_.values()) == {"mean"}


@pytest.mark.parametrize("pooling", ["mean", "auto"])
def test_bert_layers_give_the_mean_of_their_tokens_without_padding(hf_models, rng, pooling):
    bert = hf_models.tiny_bert()
    ids = torch.from_numpy(rng.integers(1, 100, size=(4, 7)))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    layers = ("encoder.layer.0", "encoder.layer.1")
    pooled = recorded(bert, layers, dict.fromkeys(layers, pooling),
                      {"input_ids": ids, "attention_mask": mask})
    states = hidden_states(bert, input_ids=ids, attention_mask=mask).hidden_states
    weights = mask.unsqueeze(-1).float()
    for layer_pooled, state in zip(pooled, states[1:], strict=True):
        expected = (state * weights).sum(dim=1) / weights.sum(dim=1)
        torch.testing.assert_close(layer_pooled, expected, rtol=1e-4, atol=1e-5)


class DictRows(Dataset):
    """Row ``index`` of each tensor of a tokenizer-style dict, as one dict item."""

    def __init__(self, columns):
        self.columns = columns

    def __len__(self):
        return len(self.columns["input_ids"])

    def __getitem__(self, index):
        return {key: value[index] for key, value in self.columns.items()}


@pytest.fixture
def padded_sentences(rng):
    """A tokenizer's output for 7 sentences of 2 to 8 tokens, padded with id 0 to 8 tokens."""
    lengths = np.array([8, 2, 5, 3, 8, 6, 4])
    mask = torch.as_tensor(np.arange(8) < lengths[:, None]).long()
    ids = torch.as_tensor(rng.integers(1, 100, size=(7, 8))) * mask
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("pooling", ["mean", "auto"])
@pytest.mark.parametrize("feed", ["dict", "dataloader"])
def test_bert_features_are_the_masked_means_of_its_hidden_states(
    hf_models, padded_sentences, pooling, feed
):
    bert = hf_models.tiny_bert()
    X = padded_sentences if feed == "dict" else DataLoader(DictRows(padded_sentences),
                                                           batch_size=3)
    layers = ("encoder.layer.0", "encoder.layer.1")
    features = TorchLayerFeatures(bert, layers, pooling=pooling, batch_size=3).fit_transform(X)
    states = hidden_states(bert, **padded_sentences).hidden_states
    weights = padded_sentences["attention_mask"].unsqueeze(-1).float()
    expected = torch.cat([(state * weights).sum(dim=1) / weights.sum(dim=1)
                          for state in states[1:]], dim=1)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("feed", ["dict", "dataloader"])
def test_bert_receives_the_token_ids_unchanged_as_int64(hf_models, padded_sentences, feed):
    bert = hf_models.tiny_bert()
    received = []
    bert.register_forward_pre_hook(
        lambda module, args, kwargs: received.append(kwargs["input_ids"]), with_kwargs=True
    )
    X = padded_sentences if feed == "dict" else DataLoader(DictRows(padded_sentences),
                                                           batch_size=3)
    features = TorchLayerFeatures(bert, "encoder.layer.1", pooling="mean", batch_size=3).fit(X)
    received.clear()
    features.transform(X)
    assert {ids.dtype for ids in received} == {torch.int64}
    torch.testing.assert_close(torch.cat(received), padded_sentences["input_ids"], rtol=0, atol=0)


# --- the network runs once per sample: cache=True -------------------------------------------


class Counting(nn.Module):
    """Counts the samples that go through ``net``."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.samples = 0

    def forward(self, x):
        self.samples += len(x)
        return self.net(x)


def conv_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3))


def searched_samples(cache, images, labels):
    """Samples run through the network by a 3 K x 3 fold grid search, and its scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    torch.manual_seed(0)
    net = Counting(conv_net())
    pipe = Pipeline([
        ("features", TorchLayerFeatures(net, "net.2", cache=cache)),
        ("aa", ArchetypalAnalysis(random_state=0, max_iter=20, tol=1e-3)),
        ("classify", LogisticRegression()),
    ])
    search = GridSearchCV(pipe, {"aa__n_archetypes": [2, 3, 4]}, cv=3).fit(images, labels)
    return net.samples, search.cv_results_["mean_test_score"]


@pytest.fixture
def labelled(rng):
    images = rng.normal(size=(30, 3, 6, 6)).astype(np.float32)
    images[10:20] += 1.0
    images[20:] -= 1.0
    return images, np.repeat([0, 1, 2], 10)


def test_grid_search_with_cache_runs_the_network_once_per_sample(labelled):
    images, labels = labelled
    uncached, uncached_scores = searched_samples(False, *labelled)
    cached, cached_scores = searched_samples(True, *labelled)
    # uncached: each fit_transform is one pass over its fold (it fits on the way), for the
    # 9 candidates x folds and the refit; cached: fit reads one sample to learn the shapes
    assert uncached == 10 * len(images)
    assert cached == len(images) + 3 * 3 + 1
    np.testing.assert_array_equal(cached_scores, uncached_scores)


def test_cached_features_equal_the_network_s(images):
    net = Counting(conv_net())
    features = TorchLayerFeatures(net, "net.2", cache=True).fit(images)
    first, again = features.transform(images), features.transform(images[::-1])
    expected = TorchLayerFeatures(net, "net.2").fit_transform(images)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(again, expected[::-1])
    assert net.samples == 1 + len(images) + len(images)  # the second transform: no pass


def test_cache_is_shared_by_clones(images):
    from sklearn.base import clone

    net = Counting(conv_net())
    features = TorchLayerFeatures(net, "net.2", cache=True).fit(images)
    features.transform(images)
    seen = net.samples
    clone(features).fit(images[:1]).transform(images)
    assert net.samples == seen + 1


def test_cache_recomputes_after_the_weights_change(images):
    net = conv_net()
    features = TorchLayerFeatures(net, "2", cache=True).fit(images)
    before = features.transform(images)
    with torch.no_grad():
        net[2].weight.mul_(2.0)
    after = features.transform(images)
    np.testing.assert_allclose(after, TorchLayerFeatures(net, "2").fit_transform(images))
    assert not np.allclose(after, before)


def test_cache_keeps_settings_apart(images):
    net = conv_net()
    TorchLayerFeatures(net, "2", cache=True).fit_transform(images)
    maxed = TorchLayerFeatures(net, "2", pooling="max", cache=True).fit_transform(images)
    np.testing.assert_array_equal(maxed, TorchLayerFeatures(net, "2", pooling="max")
                                  .fit_transform(images))


def test_writing_into_cached_features_leaves_the_cache_as_it_was(images):
    features = TorchLayerFeatures(conv_net(), "2", cache=True).fit(images)
    expected = features.transform(images)
    features.transform(images)[:] = 0.0
    np.testing.assert_array_equal(features.transform(images), expected)


def test_cache_holds_positions(images):
    net = Counting(conv_net())
    features = TorchLayerFeatures(net, "net.2", pooling="positions", cache=True).fit(images)
    first = features.transform(images[:4])
    both = features.transform(images[2:6])
    n_positions = features.n_positions_
    assert n_positions == 4
    np.testing.assert_array_equal(both[: 2 * n_positions], first[2 * n_positions :])
    assert net.samples == 1 + 4 + 2


def test_clear_cache_forgets_the_features(images):
    net = Counting(conv_net())
    features = TorchLayerFeatures(net, "net.2", cache=True).fit(images)
    features.transform(images)
    features.clear_cache()
    features.transform(images)
    assert net.samples == 1 + 2 * len(images)


def test_pickled_estimator_with_cache_gives_the_same_features(images):
    import pickle

    features = TorchLayerFeatures(conv_net(), "2", cache=True).fit(images)
    restored = pickle.loads(pickle.dumps(features))
    np.testing.assert_array_equal(restored.transform(images), features.transform(images))
