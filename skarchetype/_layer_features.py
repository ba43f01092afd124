"""TorchLayerFeatures: the activations of chosen layers of a torch module, as a feature matrix."""

from __future__ import annotations

import contextlib
import copy
import difflib
from collections.abc import Callable
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _clone_parametrized, _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from . import _feature_cache as feature_cache
from ._batches import (
    BatchFeeder,
    RowWriter,
    batch_reader,
    call_module,
    describe_batch,
    failure_hint,
    input_kind,
    stream,
)
from ._feature_cache import frozen
from ._pooling import (
    LAYOUTS,
    POOLINGS,
    Pooler,
    PoolingError,
    attention_mask,
    channel_width,
    output_tensor,
    resolve_pooling,
)
from ._torch import (
    check_finite,
    check_not_meta,
    evaluation_mode,
    is_tensor,
    module_dtype,
    resolve_device,
)

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# parameters that change how features are computed, not what they are
_NOT_SHAPING_FEATURES = frozenset({"module", "batch_size", "verbose", "cache"})


class _StopForward(BaseException):
    """Raised by the last hook: every requested layer is recorded, the rest of the network
    would be computed for nothing. Not an Exception, so a module's own ``except Exception``
    does not swallow it."""


class _SharedReference:
    """Wraps an object so that :func:`sklearn.base.clone` hands back the object itself."""

    def __init__(self, value):
        self.value = value

    def __sklearn_clone__(self):
        return self.value


class _LayerRecorder:
    """Forward hooks that pool the outputs of ``layers`` of ``module`` during one forward pass.

    Use as a context manager: the hooks are removed on exit, even when the body raises.
    A layer called several times in one pass contributes its first call. Each layer's
    pooling is resolved at its first output (``layouts``: layer -> layout, "auto" when
    absent), which also records ``shapes`` and ``poolers``; the first batch's features are
    compared with ``widths`` (layer -> count) and ``n_positions`` (rows per sample), when
    given.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        layers: tuple[str, ...],
        poolings: dict,
        *,
        widths: dict | None = None,
        layouts: dict | None = None,
        n_positions: int | None = None,
    ):
        self.module = module
        self.layers = layers
        self.poolings = poolings
        self.widths = widths
        self.layouts = {layer: layout for layer, layout in (layouts or {}).items() if layout}
        self.n_positions = n_positions
        self.pooled: list[torch.Tensor | None] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.poolers: dict[str, Pooler] = {}
        self._poolers: list[Pooler | None] = [None] * len(layers)
        self._mask = None
        self._ran: list[torch.nn.Module] = []
        self._checked = False
        self._waiting = 0
        self._handles = []

    def __enter__(self):
        try:
            for index, layer in enumerate(self.layers):
                hook = self._hook(index, layer)
                self._handles.append(self.module.get_submodule(layer).register_forward_hook(hook))
            if self.widths is None:  # fit: which layers with a channel width run last
                self._watch_channel_layers()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _watch_channel_layers(self) -> None:
        """Hooks recording, in order, the layers with a known channel width that run inside
        the requested layers: the evidence of a layout (see ``resolve_layout``)."""
        watched = {
            sub
            for layer in self.layers
            for sub in self.module.get_submodule(layer).modules()
            if channel_width(sub) is not None
        }
        for sub in watched:
            self._handles.append(sub.register_forward_hook(
                lambda module, inputs, output: self._ran.append(module)
            ))

    def _last_ran(self, layer: str) -> torch.nn.Module | None:
        inside = set(self.module.get_submodule(layer).modules())
        return next((sub for sub in reversed(self._ran) if sub in inside), None)

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int, layer: str):
        # runs inside every forward pass: kept to a few list operations per call
        def record(submodule, inputs, output):
            if self.pooled[index] is not None:
                return
            try:
                pool = self._poolers[index] or self._resolve(index, layer, output)
                self.pooled[index] = pool(output, self._mask)
            except PoolingError as error:
                raise type(error)(f"Layer {layer!r}: {error}.") from error.__cause__
            self._waiting -= 1
            if not self._waiting:
                raise _StopForward

        return record

    def _resolve(self, index: int, layer: str, output) -> Pooler:
        """Resolve ``layer``'s pooling from its first output and record its shape."""
        pooler = resolve_pooling(
            self.poolings[layer], output, layer=layer, root=self.module,
            layout=self.layouts.get(layer, "auto"), last=self._last_ran(layer),
            quiet=self.widths is not None,
        )
        try:
            self.shapes[layer] = tuple(output_tensor(output).shape[1:])
        except PoolingError:  # a callable pooling reads outputs that hold no tensor
            self.shapes[layer] = ()
        self.poolers[layer] = self._poolers[index] = pooler
        return pooler

    def _check_rows(self, n_samples: int) -> None:
        """Each layer gives one row per sample and position, and all layers as many."""
        for layer, pooled in zip(self.layers, self.pooled, strict=True):
            pooler = self.poolers[layer]
            if len(pooled) != n_samples * pooler.n_positions:
                raise PoolingError(
                    f"Layer {layer!r}: pooling={pooler.name!r} gave {len(pooled)} rows for a "
                    f"batch of {n_samples} samples; it must give one row per sample"
                    + (f" and position ({pooler.n_positions})." if pooler.n_positions > 1 else ".")
                )
        per_sample = {layer: self.poolers[layer].n_positions for layer in self.layers}
        if len(set(per_sample.values())) > 1:
            raise PoolingError(
                f"The layers give different numbers of rows per sample {per_sample}: "
                f"pooling='positions' needs the same number of positions in every layer; "
                f"extract per-position and per-sample layers with two TorchLayerFeatures."
            )

    def _check_first_batch(self) -> None:
        """Compare the first batch's features with the widths and positions seen in fit."""
        for layer, pooled in zip(self.layers, self.pooled, strict=True):
            if self.widths is not None and pooled.shape[1] != self.widths[layer]:
                raise PoolingError(
                    f"Layer {layer!r} gives {pooled.shape[1]} features per sample (output "
                    f"shape {self.shapes[layer]}), but {self.widths[layer]} when fitted: the "
                    f"input's shape differs from the one seen in fit."
                )
            n_positions = self.poolers[layer].n_positions
            if self.n_positions is not None and n_positions != self.n_positions:
                raise PoolingError(
                    f"Layer {layer!r} gives {n_positions} positions per sample (output "
                    f"shape {self.shapes[layer]}), but {self.n_positions} when fitted: the "
                    f"input's shape differs from the one seen in fit."
                )
        self._checked = True

    def record(
        self, batch, n_samples: int, feed: Callable = call_module, dtype=None
    ) -> list[torch.Tensor]:
        """Run ``module`` on ``batch`` of ``n_samples`` samples as the input layer prepared it
        (a tensor, a dict of tensors, or what a ``forward=`` callable takes), fed by
        ``feed(module, batch)``; the pooled outputs of the layers, in their order, each a
        matrix of ``n_samples * n_positions`` rows (sample-major). ``dtype``, the floating
        dtype the inputs were cast to, only serves the error message."""
        self.pooled = [None] * len(self.layers)
        self._waiting = len(self.layers)
        self._mask = attention_mask(batch)
        try:
            feed(self.module, batch)
        except _StopForward:
            pass
        except (PoolingError, Warning):  # a warning raised as an error is not the module's
            raise
        except Exception as error:
            raise ValueError(
                f"The module failed on {describe_batch(batch)} while extracting layers "
                f"{list(self.layers)}: {str(error).rstrip('.')}.{failure_hint(batch, error, dtype)}"
            ) from error
        if self._waiting:
            pairs = zip(self.layers, self.pooled, strict=True)
            missing = [layer for layer, pooled in pairs if pooled is None]
            raise ValueError(
                f"Layer(s) {missing} were never reached by the forward pass on "
                f"{describe_batch(batch)}; choose layers that module.forward calls."
            )
        self._check_rows(n_samples)
        if not self._checked:
            self._check_first_batch()
        return self.pooled


class TorchLayerFeatures(TransformerMixin, BaseEstimator):
    """The activations of chosen layers of a torch module, as a feature matrix.

    All layers come from one forward pass per batch, through forward hooks that are removed
    again when the pass ends. The module runs in eval mode under :func:`torch.inference_mode`
    and gets its previous train/eval state back afterwards, even when the pass raises.
    Nothing is trained: ``fit`` checks the layer names and records each layer's output shape
    from one batch.

    The inputs may be arrays, tensors or memory maps, a dict of them (as a tokenizer
    returns), a :class:`~torch.utils.data.Dataset` (read item by item and collated per
    batch, never held whole), or a :class:`~torch.utils.data.DataLoader` or any iterable of
    batches (used as it batches). A batch or item is a tensor, a tuple or list whose first
    element is the module's input (``(image, label)``), or a dict of tensors passed as
    keyword arguments (``module(**batch)``, e.g. ``input_ids`` and ``attention_mask``).
    Memory stays that of a batch plus the output, whatever the number of samples.

    Cloning (as :class:`~sklearn.model_selection.GridSearchCV` does for every candidate and
    fold) shares the module instead of copying it.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network. It is used as is; an explicit ``device`` moves it there.
    layers : str or tuple of str
        Names from ``module.named_modules()`` (dotted paths such as ``"blocks.3"``; ``""``
        is the whole module). Output columns follow this order.
    pooling : {"auto", "avg", "mean", "max", "cls", "flatten", "positions"}, callable \
            or dict, default="auto"
        How a layer's output becomes rows. Named poolings read a layer's output as one
        channel axis and position axes (spatial axes, tokens), laid out as ``layout`` says:

        - ``"auto"``: 2-D outputs as they are; maps ``"avg"``; token sequences
          ``(n, tokens, dim)`` ``"cls"`` when the model has a class token, else ``"mean"``.
          A model has one when it holds a learned class-token parameter (``cls_token``,
          ``class_token`` or ``class_embedding``, as HF ViT, DeiT, DINOv2, BEiT, CLIP's
          vision tower, timm and torchvision ViTs do), and the layer runs after the module
          owning it (not inside it, nor inside a patch embedding). Swin, BERT-style text
          encoders (whose ``[CLS]`` is a tokenizer token) and ViTs without a class token
          get the mean.
        - ``"avg"`` or ``"mean"`` (the same): the mean over the positions. For token
          sequences of a dict batch holding an ``attention_mask``, padding is left out.
        - ``"max"``: the maximum over the positions (padding left out likewise).
        - ``"cls"``: the first token of a sequence ``(n, tokens, dim)``.
        - ``"flatten"``: every value.
        - ``"positions"``: one row per sample *and position* (spatial location, or patch
          token; learned class, distillation and register tokens are left out, padding
          tokens are kept), sample-major. See ``n_positions_`` and ``position_grid_``.
          Every layer must then give the same number of positions.
        - a callable ``f(output) -> Tensor (n, ...)``, flattened after it. It receives the
          layer's output as the layer returns it: tensor, tuple, dict or ``ModelOutput``.
        - a dict ``{layer: pooling}``; layers it does not name use ``"auto"``.

        Named poolings read a tensor output as it is; a tuple or list, its first element
        (transformer blocks return ``(hidden_states, ...)``; a list of several outputs
        warns); a dict or ``ModelOutput``, its first tensor field (``last_hidden_state``).
    layout : {"auto", "channels_first", "channels_last"} or dict, default="auto"
        Which axis of a layer's output holds the channels: ``(n, channels, *positions)``
        (torch convolutions) or ``(n, *positions, channels)`` (token sequences, timm's
        Swin and ConvNeXt-style channels-last stages ``(n, h, w, c)``); a dict
        ``{layer: layout}`` sets single layers. ``"auto"`` reads it from the layer: torch
        convolutions, norms and pools are channels-first; otherwise the axis whose size
        is the channel count of the last convolution, norm or linear layer that ran in
        it; then square spatial axes beside another channel count. When none of these
        tells, it reads token sequences channels-last and maps channels-first, and warns.
        ``layer_layouts_`` records what each layer got.
    batch_size : int, default=256
        Samples per forward pass, for inputs that are sliced or read item by item; a
        DataLoader or an iterable of batches keeps its own batches.
    preprocess : callable, default=None
        ``preprocess(batch) -> batch``, applied to each batch on the device before the
        forward pass, e.g. ``lambda x: (x.float() / 255 - mean) / std`` for a uint8 memory
        map of images. It must keep the number of samples.
    forward : callable, default=None
        ``forward(module, batch) -> output``: how a batch is fed, for models that take
        anything else than ``module(batch)`` or ``module(**batch)``. It receives the whole
        batch, tuples included (``preprocess`` first).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        ``"auto"`` runs where the module's parameters are.
    dtype : {"auto", "float32", "float64", "float16", "bfloat16"}, default="auto"
        Floating type the floating inputs are cast to; integer tensors (token ids, masks)
        reach the module unchanged, while a numpy array of integers given as ``X`` is data
        and is cast too (unless ``preprocess`` is given). ``"auto"`` takes the module's own
        floating dtype (that of its first floating parameter or buffer). Features come
        back as float64 for float64 inputs and as float32 otherwise (float16 and bfloat16
        included).
    cache : bool, default=False
        Keep the features of every sample transformed, and run the network only on
        samples not seen before (recognised by a hash of their bytes, for these settings
        and the module's current weights). Clones share the module and so the cache: a
        grid search over the steps after this one runs the network once per sample
        instead of once per candidate and fold. The cache lives as long as the module,
        is emptied when its parameters or buffers change, holds a copy of every row it
        kept (``clear_cache`` frees it), and is never pickled. It serves arrays and tensors
        (what a grid search slices); other inputs always run the network.
    verbose : int, default=0
        When positive, show progress with rows per second and the time left: a tqdm bar
        where tqdm is installed, plain lines otherwise.

    Attributes
    ----------
    layer_slices_ : dict of str to slice
        The columns of each layer in the output.
    layer_output_shapes_ : dict of str to tuple of int
        Each layer's output shape for one sample, before pooling.
    layer_poolings_ : dict of str to str or callable
        The pooling each layer got (``"auto"`` resolved, e.g. to ``"cls"``).
    layer_layouts_ : dict of str to str or None
        The layout each layer's output was read in; None for ``"flatten"`` and callables.
    n_positions_ : int
        Rows per sample: the number of positions with ``pooling="positions"``, else 1.
        Row ``i`` of ``transform``'s output is sample ``i // n_positions_``, position
        ``i % n_positions_``.
    position_grid_ : tuple of int
        The shape of the positions, e.g. ``(h, w)`` of a map, for heatmaps: position
        ``p`` is ``np.unravel_index(p, position_grid_)``. Patch tokens give a square grid
        when their number is a square, else ``(n_tokens,)``; ``()`` without positions.
    n_features_in_ : int
        Size of the input's second axis.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of the input columns, when ``X`` had string column names.

    Examples
    --------
    >>> import torch
    >>> from skarchetype import TorchLayerFeatures
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> X = torch.randn(10, 4)
    >>> features = TorchLayerFeatures(net, layers=("1", "2")).fit(X)
    >>> features.transform(X).shape
    (10, 10)
    >>> features.layer_slices_["2"]
    slice(8, 10, None)
    """

    _parameter_constraints: dict = {
        "module": [torch.nn.Module],
        "layers": [str, tuple, list],
        "pooling": [StrOptions(set(POOLINGS)), callable, dict],
        "layout": [StrOptions(set(LAYOUTS)), dict],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "preprocess": [callable, None],
        "forward": [callable, None],
        "device": [str, torch.device],
        "dtype": [
            StrOptions({"auto", *_DTYPES}),
            Options(type, {np.float16, np.float32, np.float64}),
            Options(torch.dtype, set(_DTYPES.values())),
        ],
        "cache": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        module: torch.nn.Module,
        layers: str | tuple[str, ...],
        *,
        pooling: str | Callable | dict = "auto",
        layout: str | dict = "auto",
        batch_size: int = 256,
        preprocess: Callable | None = None,
        forward: Callable | None = None,
        device: str | torch.device = "auto",
        dtype="auto",
        cache: bool = False,
        verbose: int = 0,
    ):
        self.module = module
        self.layers = layers
        self.pooling = pooling
        self.layout = layout
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.forward = forward
        self.device = device
        self.dtype = dtype
        self.cache = cache
        self.verbose = verbose

    def __sklearn_clone__(self):
        # sklearn's clone deep-copies every parameter that is not an estimator: a network
        # would be copied for each candidate and fold. Share it instead, clone the rest.
        proxy = copy.copy(self)
        proxy.module = _SharedReference(self.module)
        return _clone_parametrized(proxy)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = [self._output_dtype().name]
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the layers and record their output shapes on the first batch of ``X``.

        Only one batch is read: one sample where ``X`` is sliced or read item by item, the
        first batch of a DataLoader or iterable (which an iterator then no longer yields:
        use :meth:`fit_transform` on those).

        Parameters
        ----------
        X : ndarray, Tensor, dict, Dataset, DataLoader or iterable of batches
            Inputs of the module, of shape (n_samples, ...) where they are arrays.
        y : None
            Ignored.

        Returns
        -------
        self : TorchLayerFeatures
        """
        X, streamed = self._validate_input(X, reset=True)
        recorder, _ = self._run(X, head=True, check_batches=streamed)
        self._record_layers(recorder)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and transform in one pass over ``X``, which is read once.

        Parameters
        ----------
        X : ndarray, Tensor, dict, Dataset, DataLoader or iterable of batches
            Inputs of the module, of shape (n_samples, ...) where they are arrays.
        y : None
            Ignored.

        Returns
        -------
        features : ndarray of shape (n_rows, n_features_out)
            As :meth:`transform` returns them.
        """
        if self.cache:  # through the cache, which a grid search's later calls read
            return self.fit(X).transform(X)
        X, streamed = self._validate_input(X, reset=True)
        recorder, writer = self._run(X, check_batches=streamed)
        self._record_layers(recorder)
        return writer.result()

    def transform(self, X) -> np.ndarray:
        """The pooled activations of the layers.

        Parameters
        ----------
        X : ndarray, Tensor, dict, Dataset, DataLoader or iterable of batches
            Inputs of the module, of shape (n_samples, ...) where they are arrays. Memory
            maps, Datasets and loaders are read one batch at a time, and checked for NaN and
            infinity as they stream.

        Returns
        -------
        features : ndarray of shape ``(n_samples * n_positions_, n_features_out)``
            Columns ``layer_slices_[layer]`` hold ``layer``'s features. One row per sample,
            or with ``pooling="positions"`` one per sample and position: row ``i`` is
            sample ``i // n_positions_``, position ``i % n_positions_``. Per-position
            rows suit unsupervised steps after this one (``fit``, ``fit_transform`` and
            ``transform`` of a Pipeline into ArchetypalAnalysis), not a supervised step
            whose targets have one value per sample.
        """
        check_is_fitted(self)
        X, streamed = self._validate_input(X, reset=False)
        if self.cache and input_kind(X) == "array":
            return self._cached_features(X, check_batches=streamed)
        return self._features(X, check_batches=streamed)

    def _record_layers(self, recorder: _LayerRecorder) -> None:
        """The fitted attributes, from the recorder of a pass."""
        widths = [pooled.shape[1] for pooled in recorder.pooled]
        stops = np.cumsum(widths).tolist()
        self.layer_slices_ = {
            layer: slice(stop - width, stop)
            for layer, width, stop in zip(recorder.layers, widths, stops, strict=True)
        }
        self.layer_output_shapes_ = dict(recorder.shapes)
        poolers = recorder.poolers
        self.layer_poolings_ = {layer: poolers[layer].name for layer in recorder.layers}
        self.layer_layouts_ = {layer: poolers[layer].layout for layer in recorder.layers}
        first = poolers[recorder.layers[0]]
        self.n_positions_ = first.n_positions
        self.position_grid_ = first.grid

    def clear_cache(self) -> None:
        """Forget the features that ``cache=True`` kept for this module (for every
        estimator sharing it)."""
        feature_cache.clear(self.module)

    def _features(self, X, *, check_batches: bool) -> np.ndarray:
        """The feature rows of every sample of ``X``, from the network."""
        widths = {
            layer: columns.stop - columns.start for layer, columns in self.layer_slices_.items()
        }
        _, writer = self._run(X, widths=widths, check_batches=check_batches)
        return writer.result()

    def _cached_features(self, X, *, check_batches: bool) -> np.ndarray:
        """The feature rows of ``X``, from the network only for samples not seen before
        (by this module, with these settings and the same bytes)."""
        settings = frozen((
            {name: value for name, value in self.get_params(deep=False).items()
             if name not in _NOT_SHAPING_FEATURES},
            str(X.dtype), tuple(X.shape[1:]),
        ))
        store = feature_cache.rows_store(self.module, settings)
        digests = feature_cache.sample_digests(X)
        missing = [index for index, digest in enumerate(digests) if digest not in store]
        n_positions = self.n_positions_
        if missing:
            subset = X if len(missing) == len(X) else X[missing]
            # the store keeps a private copy: the caller may write into what it gets
            computed = self._features(subset, check_batches=check_batches)
            for position, index in enumerate(missing):
                rows = slice(position * n_positions, (position + 1) * n_positions)
                store[digests[index]] = computed[rows]
            if len(missing) == len(X):
                return computed.copy()
        n_features_out = next(reversed(self.layer_slices_.values())).stop
        features = np.empty((len(X) * n_positions, n_features_out), dtype=self._output_dtype())
        for index, digest in enumerate(digests):
            features[index * n_positions:(index + 1) * n_positions] = store[digest]
        return features

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names ``"<layer>__<index>"``, e.g. ``"blocks.3__0"``.

        Parameters
        ----------
        input_features : array-like of str, optional
            Only checked against the input seen in ``fit``.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        names = [
            f"{layer}__{index}"
            for layer, columns in self.layer_slices_.items()
            for index in range(columns.stop - columns.start)
        ]
        return np.asarray(names, dtype=object)

    def _validate_input(self, X, *, reset: bool) -> tuple[object, bool]:
        """Check ``X`` without copying or reading it: tensors stay where they are, memory maps
        on disk, Datasets and loaders unread. Also says whether ``X`` is streamed, and so
        checked for NaN and infinity batch by batch as it is read (once)."""
        if input_kind(X) != "array":
            if reset:  # the sample shape of batches is checked against the fit's layer widths
                for attribute in ("n_features_in_", "feature_names_in_"):
                    self.__dict__.pop(attribute, None)
            return X, True
        if not is_tensor(X):
            streamed = isinstance(X, np.memmap)
            X = validate_data(
                self, X, reset=reset, allow_nd=True, dtype="numeric",
                ensure_all_finite=not streamed,
            )
            return X, streamed
        if X.is_meta:
            raise ValueError(
                "X is a meta tensor, which has a shape but no values; pass a tensor with data."
            )
        if X.ndim < 2 or len(X) == 0:
            raise ValueError(
                f"Expected X of shape (n_samples, ...) with at least 2 dimensions and one "
                f"sample, got a tensor of shape {tuple(X.shape)}."
            )
        _check_n_features(self, X, reset=reset)
        if X.is_floating_point():
            check_finite(X)
        return X, False

    def _layer_names(self) -> tuple[str, ...]:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if not layers or not all(isinstance(layer, str) for layer in layers):
            raise ValueError(
                f"layers must be a name or a non-empty tuple of names from "
                f"module.named_modules(), got {self.layers!r}."
            )
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers must not repeat a name, got {self.layers!r}.")
        for layer in layers:
            try:
                self.module.get_submodule(layer)
            except AttributeError:
                names = [name for name, _ in self.module.named_modules()]
                nearest = difflib.get_close_matches(layer, names, n=5, cutoff=0.5) or names[:10]
                raise ValueError(
                    f"layers: {layer!r} is not a submodule of the module. Nearest valid names: "
                    f"{nearest}; all names are listed by module.named_modules()."
                ) from None
        return layers

    def _poolings(self, layers: tuple[str, ...]) -> dict:
        return _per_layer(
            "pooling", self.pooling, layers,
            lambda pooling: callable(pooling) or pooling in POOLINGS,
            f"one of {POOLINGS} or a callable",
        )

    def _layouts(self, layers: tuple[str, ...]) -> dict:
        return _per_layer(
            "layout", self.layout, layers, lambda layout: layout in LAYOUTS, f"one of {LAYOUTS}"
        )

    def _resolve_device(self) -> torch.device:
        check_not_meta(self.module)
        reference = next(iter(self.module.parameters()), None)
        if reference is None:
            reference = next(iter(self.module.buffers()), None)
        device = resolve_device(self.device, data=reference)
        if reference is not None and reference.device != device:
            self.module.to(device)
        return device

    def _input_dtype(self) -> torch.dtype:
        """The dtype floating inputs are cast to: ``dtype``, or the module's for ``"auto"``."""
        if isinstance(self.dtype, torch.dtype):
            return self.dtype
        if isinstance(self.dtype, str) and self.dtype == "auto":
            return module_dtype(self.module)
        return _DTYPES.get(np.dtype(self.dtype).name, torch.float32)

    def _output_dtype(self) -> np.dtype:
        """float64 features for float64 inputs, float32 for the others."""
        return np.dtype(np.float64 if self._input_dtype() == torch.float64 else np.float32)

    def _run(
        self, X, *, head: bool = False, widths: dict | None = None, check_batches: bool = False
    ) -> tuple[_LayerRecorder, RowWriter | None]:
        """Forward ``X`` through the module with the hooks on, and write the features.

        ``head`` reads only the first batch (for ``fit``) and writes nothing; ``widths``
        (layer -> features) are those the layers must give; ``check_batches`` checks each
        batch for NaN and infinity as it is read.
        """
        layers = self._layer_names()
        # transform pools as fit resolved it: the same poolings, layouts and positions
        fitted = widths is not None
        recorder = _LayerRecorder(
            self.module, layers,
            self.layer_poolings_ if fitted else self._poolings(layers),
            widths=widths,
            layouts=self.layer_layouts_ if fitted else self._layouts(layers),
            n_positions=self.n_positions_ if fitted else None,
        )
        dtype = self._input_dtype()
        feeder = BatchFeeder(
            self._resolve_device(), dtype, module=self.module, preprocess=self.preprocess,
            forward=self.forward, check_finite=check_batches,
            # a numpy matrix of integers is data, as in scikit-learn; integer tensors are
            # token ids or indices, and preprocess receives raw values (uint8 images)
            cast_integers=isinstance(X, np.ndarray) and self.preprocess is None,
        )
        reader = batch_reader(X, self.batch_size)
        writer = None if head else RowWriter(reader.n_samples, self._output_dtype())
        batches = stream(
            reader, feeder, head=head, verbose=0 if head else self.verbose,
            description=type(self).__name__,
        )
        with evaluation_mode(self.module), recorder, contextlib.closing(batches):
            for rows, inputs in batches:
                n_samples = rows.stop - rows.start
                pooled = recorder.record(inputs, n_samples, feed=feeder.feed, dtype=dtype)
                if writer is not None:  # side by side, in one copy
                    writer.write(torch.cat(pooled, dim=1), n_samples)
        return recorder, writer


def _per_layer(name: str, value, layers: tuple[str, ...], valid, choices: str) -> dict:
    """A per-layer parameter (one value for every layer, or a dict by layer name with
    ``"auto"`` for the layers it leaves out) as a dict over ``layers``, checked: the dict
    may name only those layers, and each of its values must be ``valid``, one of
    ``choices``."""
    if not isinstance(value, dict):
        return dict.fromkeys(layers, value)
    unknown = set(value) - set(layers)
    if unknown:
        raise ValueError(
            f"{name} names layers {sorted(unknown)} that are not in layers={layers!r}."
        )
    for layer, entry in value.items():
        if not valid(entry):
            raise ValueError(f"{name}[{layer!r}]={entry!r} is not {choices}.")
    return {layer: value.get(layer, "auto") for layer in layers}
