"""The one place where arrays meet torch: devices, conversions, batches, module state.

Every estimator of the package converts its inputs here, once, at the API boundary,
and hands plain tensors to its numerics.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch

_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def is_tensor(X) -> bool:
    """Whether ``X`` is a torch tensor."""
    return isinstance(X, torch.Tensor)


def resolve_device(device, data=None) -> torch.device:
    """Turn a ``device`` parameter into a :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        ``"auto"`` picks the device of ``data`` when it is a tensor, otherwise CUDA when
        it is available, otherwise the CPU.
    data : object, optional
        The input the work is about.

    Returns
    -------
    torch.device
    """
    if isinstance(device, str) and device == "auto":
        if is_tensor(data):
            return data.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a device torch knows ({error}); use 'auto', 'cpu', "
            f"'cuda' or 'cuda:N'."
        ) from None
    if resolved.type == "meta":
        raise ValueError(
            f"device={device!r}: the meta device holds shapes but no values, so nothing can be "
            f"computed on it; use 'auto', 'cpu' or 'cuda'."
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='cpu' or device='auto'."
        )
    return resolved


def module_dtype(module) -> torch.dtype:
    """The floating dtype of a module's first floating parameter or buffer; float32 without."""
    if isinstance(module, torch.nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.float32


def check_not_meta(module, name: str = "module") -> None:
    """Refuse a module whose parameters or buffers are meta tensors, naming the fix."""
    if any(tensor.is_meta for tensor in itertools.chain(module.parameters(), module.buffers())):
        raise ValueError(
            f"{name} has meta tensors (shapes without values), as a model built on the meta "
            f"device or loaded lazily has; load its weights first, e.g. "
            f"{name}.to_empty(device='cpu') then load_state_dict(...)."
        )


def torch_dtype(dtype) -> torch.dtype:
    """The torch floating dtype matching a numpy or torch dtype (float32 or float64)."""
    if isinstance(dtype, torch.dtype):
        return dtype if dtype in (torch.float32, torch.float64) else torch.float64
    return _DTYPES.get(np.dtype(dtype), torch.float64)


def as_tensor(X, device, dtype=None) -> torch.Tensor:
    """A tensor view of ``X`` on ``device``, copying only when the device or dtype asks for it.

    Parameters
    ----------
    X : ndarray or Tensor
    device : torch.device
    dtype : torch.dtype, optional
        Defaults to ``X``'s own floating dtype (float32 stays float32, anything else
        becomes float64).
    """
    if not is_tensor(X):
        with warnings.catch_warnings():
            # Read-only arrays (memory maps) are only ever read here, never written.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            X = torch.from_numpy(np.ascontiguousarray(X))
    dtype = torch_dtype(X.dtype) if dtype is None else dtype
    return X.to(device=device, dtype=dtype)


def to_numpy(X) -> np.ndarray:
    """A numpy array of a tensor (from any device), or of anything array-like."""
    if is_tensor(X):
        return X.detach().cpu().numpy()
    return np.asarray(X)


def check_finite(X: torch.Tensor) -> None:
    """Refuse a tensor that holds NaN or infinity, with an error that says so.

    A NaN or an infinity makes the sum non-finite, and one reduction costs a fraction of an
    elementwise mask (and allocates nothing the size of ``X``); only a sum that overflows
    needs the exact check.
    """
    if not (math.isfinite(X.sum().item()) or bool(torch.isfinite(X).all())):
        raise ValueError("Input X contains NaN or infinity; remove or impute those values.")


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@contextlib.contextmanager
def evaluation_mode(*modules):
    """Put torch modules in eval mode and restore every submodule's own mode on exit.

    Objects that are not :class:`torch.nn.Module` (plain callables) are left alone.
    The previous modes are restored even when the body raises.
    """
    saved = [
        (sub, sub.training)
        for module in modules
        if isinstance(module, torch.nn.Module)
        for sub in module.modules()
    ]
    try:
        # a module in eval mode throughout is left alone: eval() visits every submodule
        if any(training for _, training in saved):
            for module in modules:
                if isinstance(module, torch.nn.Module):
                    module.eval()
        yield
    finally:
        # ``modules()`` lists parents before children, so a parent's recursive ``train``
        # never undoes a child restored earlier; modules already in their mode are skipped,
        # which keeps the restore linear in the number of submodules.
        for sub, training in saved:
            if sub.training != training:
                sub.train(training)

