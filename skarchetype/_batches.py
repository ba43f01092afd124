"""The input layer: every kind of input of the torch-facing estimators, as batches on the device.

Two objects share the work, as skorch's iterators and Hugging Face's collators do: a reader
(:func:`batch_reader`) decides how a batch is made from the input, a :class:`BatchFeeder`
how it is moved, converted and fed to the module. :func:`stream` joins them, and
:class:`RowWriter` gathers the per-batch results.

A *batch* is a tensor (or numpy array), a tuple or list whose first element is the model
input (``(image, label)``), or a dict of tensors fed as keyword arguments
(``module(**batch)``).
"""

from __future__ import annotations

import inspect
import itertools
import mmap
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import scipy.sparse
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ._progress import Progress
from ._torch import batch_slices, check_finite, is_tensor

_HOST_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.bfloat16: np.float32,  # numpy has no bfloat16: converted on the device
}

_ITEM_KINDS = (
    "a tensor or array, a tuple or list whose first element is the model input (such as "
    "(image, label)), or a dict of tensors"
)


def _is_array(value) -> bool:
    return is_tensor(value) or isinstance(value, np.ndarray)


def _is_batch(value) -> bool:
    """Whether ``value`` looks like one batch rather than one row of numbers."""
    if isinstance(value, (tuple, list)):
        return bool(value) and _is_batch(value[0])
    return _is_array(value) or isinstance(value, Mapping)


def input_kind(X) -> str:
    """How the input ``X`` is read in batches.

    Returns
    -------
    {"array", "columns", "dataset", "items", "batches"}
        ``"array"``: an array, tensor, memory map or other array-like, sliced by rows;
        ``"columns"``: a dict (as a tokenizer returns) or tuple of equally long arrays or
        tensors, sliced by rows into dict or tuple batches; ``"dataset"``: a map-style
        :class:`~torch.utils.data.Dataset` (or any object with ``__len__`` and
        ``__getitem__`` that is not array-like), read item by item and collated per batch;
        ``"items"``: an :class:`~torch.utils.data.IterableDataset`, its items collated per
        batch; ``"batches"``: a :class:`~torch.utils.data.DataLoader`, an iterator, a list
        of batches or any other iterable of batches, used as it batches.
    """
    if _is_array(X) or scipy.sparse.issparse(X):  # a sparse dok matrix is a dict
        return "array"
    if isinstance(X, Mapping) or (isinstance(X, tuple) and X and all(map(_is_array, X))):
        return "columns"
    if isinstance(X, IterableDataset):
        return "items"
    if isinstance(X, Dataset):
        return "dataset"
    if isinstance(X, list):  # of batches, or of rows of numbers (a matrix)
        first = X[0] if X else None
        row = isinstance(first, np.ndarray) and first.ndim < 2
        return "batches" if _is_batch(first) and not row else "array"
    if isinstance(X, (DataLoader, Iterator)):
        return "batches"
    if hasattr(X, "__array__") or isinstance(X, (str, bytes, tuple)):
        return "array"
    if hasattr(X, "__len__") and hasattr(X, "__getitem__"):  # a map-style dataset by duck typing
        return "dataset"
    return "batches" if hasattr(X, "__iter__") else "array"


def _map_arrays(function: Callable, batch):
    """``batch`` with ``function`` applied to each array or tensor in it."""
    if _is_array(batch):
        return function(batch)
    if isinstance(batch, Mapping):
        return {key: _map_arrays(function, value) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map_arrays(function, value) for value in batch)
    return batch


def _arrays(batch) -> list:
    """The arrays and tensors in ``batch``, in order."""
    found = []
    _map_arrays(found.append, batch)
    return found


def batch_length(batch) -> int:
    """Samples in ``batch``: the common length of its arrays and tensors."""
    lengths = {len(array) if array.ndim else 0 for array in _arrays(batch)}
    if not lengths:
        raise TypeError(
            f"X: a batch holds no tensor or array ({describe_batch(batch)}); batches must be "
            f"{_ITEM_KINDS}."
        )
    if len(lengths) != 1:
        raise ValueError(
            f"X: the arrays of one batch have different numbers of samples ({sorted(lengths)}); "
            f"every tensor of a batch needs one row per sample."
        )
    return lengths.pop()


def describe_batch(batch) -> str:
    """A short description of ``batch`` for error messages."""
    if _is_array(batch):
        return f"an input batch of shape {tuple(batch.shape)}"
    if isinstance(batch, Mapping):
        fields = ", ".join(
            f"{key!r}: {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
            if _is_array(value) else f"{key!r}: {type(value).__name__}"
            for key, value in batch.items()
        )
        return f"a dict batch {{{fields}}}"
    return f"a batch of type {type(batch).__name__}"


class _RowReader:
    """Batches of an array, tensor or memory map, or of a dict or tuple of them, by rows."""

    def __init__(self, X, batch_size: int):
        self.X = X
        self.batch_size = batch_size
        values = X.values() if isinstance(X, Mapping) else X if isinstance(X, tuple) else [X]
        for value in values:
            if not _is_array(value):
                raise TypeError(
                    f"X: a dict or tuple input holds tensors or arrays of one row per sample, "
                    f"got a {type(value).__name__}; convert it (for a tokenizer, pass "
                    f"return_tensors='pt')."
                )
        self.n_samples = batch_length(X)
        self.n_batches = _n_batches(self.n_samples, batch_size)

    def _take(self, rows: slice):
        return _map_arrays(lambda array: array[rows], self.X)

    def first(self) -> list:
        return [self._take(slice(0, 1))]

    def __iter__(self):
        mapping = _read_only_mapping(self.X)
        for rows in batch_slices(self.n_samples, self.batch_size):
            batch = self._take(rows)
            yield batch  # the next batch is asked for once this one is copied
            if mapping is not None:
                _release_pages(mapping, batch)


def _read_only_mapping(array) -> mmap.mmap | None:
    """The file mapping under a read-only memory map, or under an array viewing one."""
    while isinstance(array, np.ndarray):
        array = array.base
    if not isinstance(array, mmap.mmap) or array.closed or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    with memoryview(array) as view:
        return array if view.readonly else None


def _release_pages(mapping: mmap.mmap, rows: np.ndarray) -> None:
    """Unmap the pages of ``rows`` of a read-only ``mapping``, once they were copied.

    They stay in the kernel's page cache, but no longer count in the process's resident
    memory, which would otherwise grow with every batch until the whole file is mapped.
    Read-only mappings only: on a copy-on-write one (mode "c") it would discard changes.
    """
    if mapping.closed or not rows.flags.c_contiguous:
        return
    start = rows.ctypes.data - np.frombuffer(mapping, np.uint8).ctypes.data
    aligned = start - start % mmap.PAGESIZE
    mapping.madvise(mmap.MADV_DONTNEED, aligned, start + rows.nbytes - aligned)


def _check_item(item, index) -> None:
    if not _is_batch(item):
        raise TypeError(
            f"X: item {index} of the Dataset is a {type(item).__name__}; a Dataset must return "
            f"{_ITEM_KINDS}. Convert it in the Dataset (for images, a transform to a tensor), "
            f"or pass a DataLoader whose collate_fn builds such batches."
        )


def _collate(items: list):
    try:
        return default_collate(items)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"X: the items of one batch do not stack into a batch ({error}). Make the Dataset "
            f"return items of one shape and structure, or pass a DataLoader with a collate_fn "
            f"that pads them."
        ) from None


class _DatasetReader:
    """Batches of a map-style Dataset: items read one by one and collated per batch."""

    def __init__(self, dataset: Dataset, batch_size: int):
        try:
            self.n_samples = len(dataset)
        except TypeError:
            raise TypeError(
                f"X: the Dataset {type(dataset).__name__} has no __len__; give it one, make it "
                f"an IterableDataset, or pass a DataLoader over it."
            ) from None
        self.dataset = dataset
        self.batch_size = batch_size
        self.n_batches = _n_batches(self.n_samples, batch_size)

    def _batch(self, rows: slice):
        items = []
        for index in range(rows.start, rows.stop):
            items.append(self.dataset[index])
            _check_item(items[-1], index)
        return _collate(items)

    def first(self) -> list:
        return [self._batch(slice(0, 1))] if self.n_samples else []

    def __iter__(self):
        return map(self._batch, batch_slices(self.n_samples, self.batch_size))


class _ItemReader:
    """Batches of an IterableDataset: its items collated in groups of ``batch_size``."""

    def __init__(self, dataset: IterableDataset, batch_size: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self.n_samples = _length(dataset)
        self.n_batches = _n_batches(self.n_samples, batch_size)

    def first(self) -> list:
        return list(itertools.islice(self, 1))

    def __iter__(self):
        items = iter(self.dataset)
        for index in itertools.count(step=self.batch_size):
            group = list(itertools.islice(items, self.batch_size))
            if not group:
                return
            for offset, item in enumerate(group):
                _check_item(item, index + offset)
            yield _collate(group)


class _BatchReader:
    """The batches of a DataLoader or any iterable of batches, as it makes them."""

    def __init__(self, batches: Iterable):
        self.batches = batches
        self.n_samples = _loader_length(batches)
        self.n_batches = _length(batches)

    def first(self) -> list:
        return list(itertools.islice(self, 1))

    def __iter__(self):
        for index, batch in enumerate(self.batches):
            if not _is_batch(batch):
                raise TypeError(
                    f"X: batch {index} is a {type(batch).__name__}; an iterable of batches "
                    f"must yield {_ITEM_KINDS}."
                )
            yield batch


def _n_batches(n_samples: int | None, batch_size: int) -> int | None:
    return None if n_samples is None else -(-n_samples // batch_size)


def _length(X) -> int | None:
    try:
        return len(X)
    except TypeError:
        return None


def _loader_length(batches: Iterable) -> int | None:
    """Samples an iterable of batches will yield, where that is known without reading it."""
    if isinstance(batches, list):
        return sum(batch_length(_model_input(batch)) for batch in batches)
    if not isinstance(batches, DataLoader) or batches.batch_size is None:
        return None
    if isinstance(batches.dataset, IterableDataset):
        return None
    n_samples = _length(batches.sampler)
    if n_samples is not None and batches.drop_last:
        n_samples -= n_samples % batches.batch_size
    return n_samples


def batch_reader(X, batch_size: int):
    """The reader of ``X``'s batches of ``batch_size`` samples, by :func:`input_kind`.

    A reader iterates over host (or device) batches, has ``n_samples`` (None when unknown)
    and ``first()``, a list of the one batch that ``fit`` needs: one sample where ``X`` is
    sliced or read item by item, the first batch of a loader. A :class:`Lookahead` is its
    own reader.
    """
    if isinstance(X, Lookahead):
        return X
    kind = input_kind(X)
    if kind in ("array", "columns"):
        return _RowReader(X, batch_size)
    if kind == "dataset":
        return _DatasetReader(X, batch_size)
    if kind == "items":
        return _ItemReader(X, batch_size)
    return _BatchReader(X)


class Lookahead:
    """A reader whose first batch is read ahead, for one pass over its batches.

    What the input holds (its dtype, device, sample shape) can be seen in :attr:`head`
    before the batches are fed, and the input is still read once: the batch read ahead is
    the first one the pass yields, so a one-shot iterator loses nothing.
    """

    def __init__(self, reader):
        self.n_samples = reader.n_samples
        self.n_batches = reader.n_batches
        self._batches = iter(reader)
        #: The first batch, or None when the input gave none.
        self.head = next(self._batches, None)

    @property
    def first_input(self):
        """The model input of :attr:`head` (its first element for tuples)."""
        return _model_input(self.head)

    def first(self) -> list:
        return [] if self.head is None else [self.head]

    def __iter__(self):
        if self.head is not None:
            yield self.head
        yield from self._batches


def _model_input(batch):
    """The part of ``batch`` the module takes: the first element of tuples and lists."""
    while isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if not (_is_array(batch) or isinstance(batch, Mapping)):
        raise TypeError(
            f"X: the model input of a batch is a {type(batch).__name__}; batches must be "
            f"{_ITEM_KINDS}. Pass forward=callable(module, batch) to feed other batches."
        )
    return batch


def _structure(batch):
    """What every batch of one input shares: kinds, dict keys and ranks."""
    if _is_array(batch):
        return batch.ndim
    if isinstance(batch, Mapping):
        return {key: _structure(value) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return [_structure(value) for value in batch]
    return type(batch).__name__


def call_module(module, batch):
    """Feed ``batch`` to ``module``: a dict as keyword arguments, anything else as one input."""
    if isinstance(batch, Mapping):
        return module(**batch)
    return module(batch)


def _check_keywords(module, keys) -> None:
    """Refuse dict keys that ``module.forward`` does not take, before any work is done."""
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # a forward whose signature cannot be read
        return
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [parameter.name for parameter in parameters if parameter.kind in named]
    unknown = sorted(set(keys) - set(accepted))
    if unknown:
        raise ValueError(
            f"X: the dict batches hold {unknown}, which {type(module).__name__}.forward does "
            f"not take as keyword arguments (it takes {accepted}). Drop or rename those keys, "
            f"or pass forward=lambda module, batch: ... to feed the batches yourself."
        )


def failure_hint(batch, error: Exception, dtype: torch.dtype | None) -> str:
    """A sentence on the likely fix when a module fails on ``batch``, or ``""``."""
    if isinstance(batch, Mapping) and isinstance(error, TypeError):
        return (f" The dict batch is passed as keyword arguments module(**batch): rename its "
                f"keys {list(batch)} to the arguments of the module's forward, or pass "
                f"forward=lambda module, batch: ... .")
    if not (isinstance(error, RuntimeError) and "dtype" in str(error).lower()):
        return ""
    if any(is_tensor(array) and not array.is_floating_point() for array in _arrays(batch)):
        return (" Integer and boolean tensors reach the module unchanged (as token ids do): "
                "for numeric data, pass X.float(), or preprocess=lambda batch: batch.float().")
    if dtype is not None:
        return (f" The floating inputs were cast to {dtype}: if the module computes in another "
                f"dtype, pass dtype='auto' (the module's own) or the module's dtype.")
    return ""


class BatchFeeder:
    """How a batch is fed to a module.

    Each batch is moved to ``device`` as a copy (a module writing into its input leaves the
    data as they were), through pinned memory and a non-blocking copy from the CPU to CUDA;
    its floating tensors are cast to ``dtype`` (integer tensors, token ids, stay as they
    are); ``preprocess`` is applied on the device; the result goes to the module as
    ``module(batch)``, ``module(**batch)`` for a dict, or ``forward(module, batch)``.

    Parameters
    ----------
    device : torch.device
    dtype : torch.dtype or None, default=None
        Floating dtype of the inputs; None keeps theirs.
    module : torch.nn.Module, optional
        The module fed, whose ``forward`` is checked against the keys of dict batches.
    preprocess : callable, optional
        ``preprocess(batch) -> batch`` on the device, keeping the number of samples.
    forward : callable, optional
        ``forward(module, batch) -> output``. It receives whole batches (tuples included);
        without it, a tuple or list batch gives its first element.
    check_finite : bool, default=False
        Refuse batches holding NaN or infinity, checked on the host where they come from it.
    cast_integers : bool, default=False
        Cast integer and boolean inputs to ``dtype`` too, as a scikit-learn feature matrix
        of integers is.
    name : str, default="X"
        What the input is called in error messages.

    A batch whose finite values a narrowing cast to ``dtype`` would turn infinite (float64
    data beyond float32's range, or beyond float16's 65504) is refused with a
    ``ValueError`` before it reaches the module.
    """

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype | None = None,
        *,
        module=None,
        preprocess: Callable | None = None,
        forward: Callable | None = None,
        check_finite: bool = False,
        cast_integers: bool = False,
        name: str = "X",
    ):
        self.device = device
        self.dtype = dtype
        self.module = module
        self.preprocess = preprocess
        self.feed = call_module if forward is None else forward
        self.whole_batches = forward is not None
        self.check_finite = check_finite
        self.cast_integers = cast_integers
        self.name = name
        self._structure = None

    def inputs(self, batch) -> tuple[object, int]:
        """The module input of ``batch`` on the device, and its number of samples."""
        selected = batch if self.whole_batches else _model_input(batch)
        self._check_structure(selected)
        n_samples = batch_length(selected)
        inputs = _map_arrays(self._move, selected)
        if self.preprocess is not None:
            inputs = _map_arrays(self._cast, self._preprocessed(inputs, n_samples))
        return inputs, n_samples

    def _check_structure(self, batch) -> None:
        structure = _structure(batch)
        if self._structure is None:
            self._structure = structure
            if isinstance(batch, Mapping) and self.module is not None and not self.whole_batches:
                _check_keywords(self.module, batch.keys())
        elif structure != self._structure:
            raise ValueError(
                f"X: the batches are inconsistent: the first had the structure "
                f"{self._structure} (ranks of its tensors), a later one {structure}. Every batch "
                f"must be of one kind, with the same dict keys and tensor ranks."
            )

    def _preprocessed(self, inputs, n_samples: int):
        processed = self.preprocess(inputs)
        if not self.whole_batches and not (is_tensor(processed) or isinstance(processed, Mapping)):
            raise TypeError(
                f"preprocess returned a {type(processed).__name__}; it must return a tensor or "
                f"a dict of tensors (the module's input)."
            )
        if batch_length(processed) != n_samples:
            raise ValueError(
                f"preprocess changed the number of samples of a batch from {n_samples} to "
                f"{batch_length(processed)}; it must transform each sample, not drop, split or "
                f"add samples."
            )
        return processed

    def _move(self, array):
        if getattr(array, "is_meta", False):
            raise ValueError(
                "X holds meta tensors, which have no values; pass tensors with data (for "
                "instance on device='cpu')."
            )
        pin = self.device.type == "cuda"
        if isinstance(array, np.ndarray):
            if array.dtype.kind not in "biuf":
                return array
            # converted while copied into (pinned) host memory: one host copy per batch
            host_dtype = _HOST_DTYPES.get(self.dtype) if self._casts(array.dtype.kind) else None
            tensor = torch.from_numpy(np.empty(0, dtype=host_dtype or array.dtype))
            host = torch.empty(array.shape, dtype=tensor.dtype, pin_memory=pin)
            with np.errstate(over="ignore"):  # an overflowing cast is refused just below
                host.numpy()[...] = array
            self._check_cast(array, host, self.name)
            fresh = True
        else:
            host, fresh = array, False
        if self.check_finite and host.is_floating_point() and host.device.type == "cpu":
            check_finite(host)
        kind = "f" if host.is_floating_point() else "c" if host.is_complex() else "i"
        cast = self.dtype is not None and self._casts(kind)  # complex values are never cast
        dtype = self.dtype if cast else host.dtype
        if pin and host.device.type == "cpu":
            if not host.is_pinned():
                host, fresh = host.pin_memory(), True
            moved = host.to(self.device, dtype, non_blocking=True, copy=not fresh)
        else:
            moved = host.to(self.device, dtype, copy=not fresh)
        self._check_cast(host, moved, self.name)
        return moved

    def _check_cast(self, source, cast: torch.Tensor, name: str) -> None:
        """Refuse ``cast`` where casting ``source`` to ``dtype`` turned finite values infinite."""
        if _largest(cast.dtype) >= _largest(_torch_dtype(source.dtype)):
            return  # a cast that does not narrow the range cannot overflow
        if bool(torch.isfinite(cast).all()) or _n_non_finite(cast) == _n_non_finite(source):
            return
        raise ValueError(
            f"{name} holds finite values beyond the range of {self.dtype} (largest "
            f"{_largest(self.dtype):.4g}), the dtype the module is fed in, where they would "
            f"become infinite. Rescale {name} (e.g. divide it by its largest absolute value), "
            f"or feed the module in a wider dtype: convert it (module.double()) and, where the "
            f"estimator takes a dtype, pass dtype='auto' or dtype=torch.float64."
        )

    def _casts(self, kind: str) -> bool:
        """Whether arrays of numpy kind ``kind`` ("f", "i", ...) are cast to ``dtype``."""
        return kind == "f" or (self.cast_integers and kind in "biu")

    def _cast(self, array):
        if is_tensor(array) and array.is_floating_point() and self.dtype is not None:
            cast = array.to(self.dtype)
            self._check_cast(array, cast, "the output of preprocess")
            return cast
        return array


def _torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a numpy or torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def _largest(dtype: torch.dtype) -> float:
    """The largest finite value of a torch dtype."""
    if dtype == torch.bool:
        return 1.0
    info = torch.finfo(dtype) if dtype.is_floating_point or dtype.is_complex else torch.iinfo(dtype)
    return float(info.max)


def _n_non_finite(values) -> int:
    """How many entries of a numpy array or tensor are NaN or infinite."""
    if is_tensor(values):
        if not (values.is_floating_point() or values.is_complex()):
            return 0
        return int((~torch.isfinite(values)).sum())
    if values.dtype.kind not in "fc":
        return 0
    return int(values.size - np.isfinite(values).sum())


def stream(
    reader, feeder: BatchFeeder, *, head: bool = False, verbose: int = 0,
    description: str = "batches", bar: bool = True,
) -> Iterator[tuple[slice, object]]:
    """Yield ``(rows, inputs)`` for the batches of ``reader`` fed through ``feeder``, under
    inference mode; ``rows`` are the batch's positions among the samples read so far.

    ``head`` reads only the reader's first batch. ``verbose`` reports progress through
    :class:`~skarchetype._progress.Progress` (a tqdm bar only with ``bar``).
    """
    start = 0
    progress = Progress(
        description, reader.n_samples, verbose, total_batches=reader.n_batches, bar=bar
    )
    with torch.inference_mode(), progress:
        for batch in reader.first() if head else reader:
            inputs, n_samples = feeder.inputs(batch)
            if not n_samples:
                continue
            yield slice(start, start + n_samples), inputs
            start += n_samples
            progress.update(n_samples)
    if not start:
        raise ValueError(
            "X gave no samples: an empty input, or an iterator already used up (by an earlier "
            "fit, for instance). Pass a DataLoader or another input that can be read again."
        )


def map_batches(
    function: Callable[[torch.Tensor], object],
    X,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
    verbose: int = 0,
    description: str = "batches",
    name: str = "X",
) -> Iterator[tuple[slice, object]]:
    """Apply ``function`` to batches of ``X`` moved to ``device``, under inference mode.

    ``X`` is any input of :func:`batch_reader` (an array, a read-only memory map read one
    batch at a time, a tensor on any device, a Dataset, a DataLoader, an iterable of
    batches) or a :class:`Lookahead`. Each batch is a copy, so that a function writing into
    its input (a module with in-place operations) leaves ``X`` as it was; its floating and
    integer tensors are cast to ``dtype`` when it is given, and ``function`` receives its
    model input (the first element of an ``(image, label)`` tuple). Yields
    ``(rows, function(batch))``; ``verbose`` prints a line per batch or two seconds.
    ``name`` is what error messages call ``X``.
    """
    batches = stream(
        batch_reader(X, batch_size), BatchFeeder(device, dtype, cast_integers=True, name=name),
        verbose=verbose, description=description, bar=False,
    )
    for rows, batch in batches:
        yield rows, function(batch)


class RowWriter:
    """Per-batch results of any number of rows gathered into one numpy array.

    The array is allocated at the first batch for ``n_samples`` samples (as many rows per
    sample as that batch gives) when ``n_samples`` is known, and grows otherwise.
    """

    def __init__(self, n_samples: int | None, dtype):
        self.n_samples = n_samples
        self.dtype = dtype
        self.n_rows = 0
        self._array = None

    def write(self, block: torch.Tensor, n_samples: int) -> None:
        """Append ``block`` ``(rows, columns)``, the results of ``n_samples`` samples."""
        if self._array is None:
            rows_per_sample = max(len(block) // n_samples, 1)
            capacity = len(block) if self.n_samples is None else self.n_samples * rows_per_sample
            self._array = np.empty((capacity, block.shape[1]), dtype=self.dtype)
        elif block.shape[1] != self._array.shape[1]:
            raise ValueError(
                f"X: a batch gives {block.shape[1]} features per row where the first gave "
                f"{self._array.shape[1]}: the samples of different batches differ in shape. "
                f"Make every batch's samples the same shape (resize or pad them)."
            )
        stop = self.n_rows + len(block)
        if stop > len(self._array):
            grown = np.empty((max(stop, 2 * len(self._array)), self._array.shape[1]), self.dtype)
            grown[: self.n_rows] = self._array[: self.n_rows]
            self._array = grown
        # one copy (one transfer from a GPU) into the result
        torch.from_numpy(self._array[self.n_rows:stop]).copy_(block)
        self.n_rows = stop

    def result(self) -> np.ndarray:
        """The rows written, as one array."""
        if self.n_rows == len(self._array):
            return self._array
        return self._array[: self.n_rows].copy()
