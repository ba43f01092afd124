"""The rows that TorchLayerFeatures computed, by module, settings and sample content.

A grid search clones the pipeline for every candidate and fold, and each clone transforms
its training and test folds: the network would run over the data once per candidate and
fold. Clones share the module (``TorchLayerFeatures.__sklearn_clone__``), so a store keyed
by the module is shared by all of them; within it, rows are found by the settings that
shape them and by a hash of each sample's bytes. Every sample then goes through the
network once, whichever folds it falls in.

The store holds the module weakly: it lives as long as the module. It belongs to no
estimator, so pickling an estimator carries none of it. A change to any parameter or
buffer of the module (in place, as optimisers and ``load_state_dict`` do, or by assigning
a new tensor, as ``.to()`` does) empties the module's store at its next use.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref

import numpy as np
import torch

from ._torch import batch_slices, is_tensor

_STORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_HASHED_ROWS = 1024  # samples per block read for hashing


def _version(tensor: torch.Tensor):
    try:
        return tensor._version
    except RuntimeError:  # inference tensors keep no version counter
        return None


def module_fingerprint(module: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of ``module`` is modified or replaced:
    each tensor's storage address, shape, dtype, device and in-place version counter."""
    tensors = itertools.chain(module.named_parameters(), module.named_buffers())
    return tuple(
        (name, tensor.data_ptr(), tuple(tensor.shape), tensor.dtype, tensor.device,
         _version(tensor))
        for name, tensor in tensors
    )


def frozen(value):
    """A hashable stand-in for a parameter value (dicts, lists and dtypes included)."""
    if isinstance(value, dict):
        return tuple(sorted((str(key), frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    try:
        hash(value)
    except TypeError:
        return ("unhashable", id(value))
    return value if not isinstance(value, (np.dtype, type, torch.dtype)) else str(value)


def rows_store(module: torch.nn.Module, settings) -> dict:
    """The ``{sample digest: rows}`` table of ``module`` for ``settings`` (hashable),
    emptied first when the module's weights changed since its last use."""
    fingerprint = module_fingerprint(module)
    store = _STORES.get(module)
    if store is None or store[0] != fingerprint:
        store = _STORES[module] = (fingerprint, {})
    return store[1].setdefault(settings, {})


def clear(module: torch.nn.Module) -> None:
    """Forget every row computed with ``module``."""
    _STORES.pop(module, None)


def sample_digests(X) -> list[bytes]:
    """A 128-bit BLAKE2 hash of each sample's bytes, read in blocks (``X``: array, memory
    map or tensor on any device)."""
    digests = []
    for rows in batch_slices(len(X), _HASHED_ROWS):
        block = X[rows]
        if is_tensor(block):  # bytes of any dtype, bfloat16 included
            block = block.detach().contiguous().cpu().view(torch.uint8).numpy()
        block = np.ascontiguousarray(block)
        digests.extend(hashlib.blake2b(sample, digest_size=16).digest() for sample in block)
    return digests
