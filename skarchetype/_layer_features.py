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
from ._torch import (
    check_finite,
    check_not_meta,
    evaluation_mode,
    is_tensor,
    module_dtype,
    resolve_device,
)

_POOLINGS = ("auto", "avg", "max", "flatten", "cls", "mean")
_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


class _PoolingError(ValueError):
    """A layer's output does not suit the pooling asked for it."""


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


def _unwrap(output, layer: str):
    """A layer's output tensor: element 0 of a tuple or list (as transformer blocks return)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not is_tensor(output):
        raise _PoolingError(f"Layer {layer!r}: its output is a {type(output).__name__}, not a "
                            f"tensor; hook a submodule that returns one.")
    return output


def _pooler(pooling, shape: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function that reduces a layer's outputs of ``shape`` ``(n, ...)`` to a matrix
    ``(n, n_features)``; a :class:`_PoolingError` when ``pooling`` does not suit them."""
    if callable(pooling):
        return lambda output: pooling(output).reshape(len(output), -1)
    if pooling == "auto":
        pooling = {1: "flatten", 2: "flatten", 3: "cls"}.get(len(shape), "avg")
    if pooling == "flatten":
        return lambda output: output.reshape(len(output), -1)
    if pooling in ("avg", "max"):
        if len(shape) < 3:
            raise _PoolingError(
                f"pooling={pooling!r} reduces the spatial axes of an (n, channels, *spatial) "
                f"map, but the output has shape {shape}; use 'flatten' or 'auto'"
            )
        spatial = tuple(range(2, len(shape)))
        if pooling == "avg":
            return lambda output: output.mean(dim=spatial)
        return lambda output: output.amax(dim=spatial)
    if len(shape) != 3:
        raise _PoolingError(
            f"pooling={pooling!r} expects a token sequence (n, tokens, dim), but the output "
            f"has shape {shape}; use 'avg', 'flatten' or 'auto'"
        )
    if pooling == "cls":
        return lambda output: output[:, 0]
    return lambda output: output.mean(dim=1)


class _LayerRecorder:
    """Forward hooks that pool the outputs of ``layers`` of ``module`` during one forward pass.

    Use as a context manager: the hooks are removed on exit, even when the body raises.
    A layer called several times in one pass contributes its first call. Each layer's
    pooling is resolved at its first output, which also records ``shapes`` and compares the
    number of features with ``widths`` (layer -> count, when given).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        layers: tuple[str, ...],
        poolings: dict,
        *,
        widths: dict | None = None,
    ):
        self.module = module
        self.layers = layers
        self.poolings = poolings
        self.widths = widths
        self.pooled: list[torch.Tensor | None] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._poolers: list[Callable | None] = [None] * len(layers)
        self._waiting = 0
        self._handles = []

    def __enter__(self):
        try:
            for index, layer in enumerate(self.layers):
                hook = self._hook(index, layer)
                self._handles.append(self.module.get_submodule(layer).register_forward_hook(hook))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int, layer: str):
        # runs inside every forward pass: kept to a few list operations per call
        def record(submodule, inputs, output):
            if self.pooled[index] is not None:
                return
            if not isinstance(output, torch.Tensor):
                output = _unwrap(output, layer)
            pool = self._poolers[index]
            self.pooled[index] = pool(output) if pool else self._first(index, layer, output)
            self._waiting -= 1
            if not self._waiting:
                raise _StopForward

        return record

    def _first(self, index: int, layer: str, output: torch.Tensor) -> torch.Tensor:
        """Pool the first output of ``layer``: resolve its pooling, record and check it."""
        shape = self.shapes[layer] = tuple(output.shape[1:])
        try:
            self._poolers[index] = _pooler(self.poolings[layer], tuple(output.shape))
        except _PoolingError as error:
            raise _PoolingError(f"Layer {layer!r}: {error}.") from None
        pooled = self._poolers[index](output)
        if self.widths is not None and pooled.shape[1] != self.widths[layer]:
            raise _PoolingError(
                f"Layer {layer!r} gives {pooled.shape[1]} features per sample (output shape "
                f"{shape}), but {self.widths[layer]} when fitted: the input's shape differs "
                f"from the one seen in fit."
            )
        return pooled

    def record(self, batch, feed: Callable = call_module, dtype=None) -> list[torch.Tensor]:
        """Run ``module`` on ``batch`` as the input layer prepared it (a tensor, a dict of
        tensors, or what a ``forward=`` callable takes), fed by ``feed(module, batch)``;
        the pooled outputs of the layers, in their order. ``dtype``, the floating dtype the
        inputs were cast to, only serves the error message."""
        self.pooled = [None] * len(self.layers)
        self._waiting = len(self.layers)
        try:
            feed(self.module, batch)
        except _StopForward:
            pass
        except _PoolingError as error:
            raise ValueError(str(error)) from None
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
    pooling : {"auto", "avg", "max", "flatten", "cls", "mean"}, callable or dict, \
            default="auto"
        How a layer's output becomes one row per sample:

        - ``"auto"``: ``"avg"`` for maps with 2 or more spatial axes ``(n, c, h, w, ...)``,
          ``"cls"`` for token sequences ``(n, tokens, dim)``, 2-D outputs as they are;
        - ``"avg"`` / ``"max"``: global average / maximum over the spatial axes
          of ``(n, channels, *spatial)``;
        - ``"cls"``: the first token of ``(n, tokens, dim)``; ``"mean"``: the mean over tokens;
        - ``"flatten"``: every value;
        - a callable ``f(output) -> Tensor (n, ...)``, flattened after it;
        - a dict ``{layer: pooling}``; layers it does not name use ``"auto"``.

        Tuple outputs (as transformer blocks return) give their first element.
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
    verbose : int, default=0
        When positive, show progress with rows per second and the time left: a tqdm bar
        where tqdm is installed, plain lines otherwise.

    Attributes
    ----------
    layer_slices_ : dict of str to slice
        The columns of each layer in the output.
    layer_output_shapes_ : dict of str to tuple of int
        Each layer's output shape for one sample, before pooling.
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
        "pooling": [StrOptions(set(_POOLINGS)), callable, dict],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "preprocess": [callable, None],
        "forward": [callable, None],
        "device": [str, torch.device],
        "dtype": [
            StrOptions({"auto", *_DTYPES}),
            Options(type, {np.float16, np.float32, np.float64}),
            Options(torch.dtype, set(_DTYPES.values())),
        ],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        module: torch.nn.Module,
        layers: str | tuple[str, ...],
        *,
        pooling: str | Callable | dict = "auto",
        batch_size: int = 256,
        preprocess: Callable | None = None,
        forward: Callable | None = None,
        device: str | torch.device = "auto",
        dtype="auto",
        verbose: int = 0,
    ):
        self.module = module
        self.layers = layers
        self.pooling = pooling
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.forward = forward
        self.device = device
        self.dtype = dtype
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
        features : ndarray of shape (n_samples, n_features_out)
            Columns ``layer_slices_[layer]`` hold ``layer``'s features.
        """
        check_is_fitted(self)
        X, streamed = self._validate_input(X, reset=False)
        widths = {
            layer: columns.stop - columns.start for layer, columns in self.layer_slices_.items()
        }
        _, writer = self._run(X, widths=widths, check_batches=streamed)
        return writer.result()

    def _record_layers(self, recorder: _LayerRecorder) -> None:
        """The fitted attributes, from the recorder of a pass."""
        widths = [pooled.shape[1] for pooled in recorder.pooled]
        stops = np.cumsum(widths).tolist()
        self.layer_slices_ = {
            layer: slice(stop - width, stop)
            for layer, width, stop in zip(recorder.layers, widths, stops, strict=True)
        }
        self.layer_output_shapes_ = dict(recorder.shapes)

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
        if not isinstance(self.pooling, dict):
            return dict.fromkeys(layers, self.pooling)
        unknown = set(self.pooling) - set(layers)
        if unknown:
            raise ValueError(
                f"pooling names layers {sorted(unknown)} that are not in layers={layers!r}."
            )
        for layer, pooling in self.pooling.items():
            if not (callable(pooling) or pooling in _POOLINGS):
                raise ValueError(
                    f"pooling[{layer!r}]={pooling!r} is not one of {_POOLINGS} or a callable."
                )
        return {layer: self.pooling.get(layer, "auto") for layer in layers}

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
        recorder = _LayerRecorder(self.module, layers, self._poolings(layers), widths=widths)
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
                pooled = recorder.record(inputs, feed=feeder.feed, dtype=dtype)
                if writer is not None:  # side by side, in one copy
                    writer.write(torch.cat(pooled, dim=1), rows.stop - rows.start)
        return recorder, writer
