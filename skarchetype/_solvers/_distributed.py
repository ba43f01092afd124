"""Data split by rows across the processes of a ``torch.distributed`` process group.

Each process holds its own rows (its *shard*); the rows of all shards, in rank order,
are the data. The solver reads the data through products that are either per row
(they stay local) or sums over rows (one all-reduce each), so no process ever receives
another's rows except the few that become candidate archetypes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ._rows import CentredRows


@dataclass
class Traffic:
    """Bytes and calls of the collectives one process took part in: the payload it
    contributed to all-reduces plus what it received from all-gathers."""

    bytes: int = 0
    calls: int = 0

    def add(self, tensor: torch.Tensor, copies: int = 1) -> None:
        self.bytes += tensor.numel() * tensor.element_size() * copies
        self.calls += 1


def check_process_group() -> None:
    """Raise a clear error when no default process group is running."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True needs an initialised default process group: call "
            "torch.distributed.init_process_group(...) in every process first (torchrun "
            "sets up its environment), or pass distributed=False."
        )


class DistributedRows(CentredRows):
    """The centred rows of every process's shard, as one data matrix.

    ``shape`` is the local shard's; ``n_samples`` counts all rows and ``offset`` is the
    global index of this shard's first row. The column mean, the total sum of squares
    and the scale are global. :meth:`rows` takes global indices and returns the same rows
    on every process; :meth:`rmatmul` sums over all shards; :meth:`inner` stays local.
    Every collective runs in the default process group (or ``group``), so all processes
    must build the data and call the solver in the same order.

    Parameters
    ----------
    X : ndarray, memmap or Tensor of shape (n_local, n_features)
        This process's rows, at least one.
    device, dtype, block_size, reach
        As for :class:`CentredRows`; ``reach`` must be the same in every process.
    group : ProcessGroup, optional
        The processes sharing the data; the default group by default.
    """

    def __init__(self, X, device, dtype, block_size=None, group=None, reach=0.0):
        self.group = group
        self.rank = dist.get_rank(group)
        self.traffic = Traffic()
        self.device = device  # the collectives below need it before CentredRows runs
        sizes = self.all_gather(torch.tensor([len(X)], device=device)).flatten().tolist()
        self.shard_sizes = sizes
        self.offset = sum(sizes[: self.rank])
        self._n_samples = sum(sizes)
        super().__init__(X, device, dtype, block_size=block_size, reach=reach)

    @property
    def n_samples(self) -> int:
        return self._n_samples

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total, group=self.group)
        self.traffic.add(total)
        return total

    def all_max(self, tensor: torch.Tensor) -> torch.Tensor:
        largest = tensor.clone()
        dist.all_reduce(largest, op=dist.ReduceOp.MAX, group=self.group)
        self.traffic.add(largest)
        return largest

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(self.group))]
        dist.all_gather(parts, tensor.contiguous(), group=self.group)
        self.traffic.add(tensor, copies=len(parts))
        return torch.stack(parts)

    def rmatmul(self, A: torch.Tensor) -> torch.Tensor:
        """``A @ (X - mean)`` over all shards, for ``A`` of shape (q, n_local)."""
        return self.all_sum(super().rmatmul(A))

    def rows(self, index) -> torch.Tensor:
        """The centred rows at global positions ``index``, on every process."""
        mask, positions = self.owned(index)
        out = torch.zeros(len(mask), self.shape[1], device=self.device, dtype=self.dtype)
        if len(positions):
            out[mask] = super().rows(positions)
        return self.all_sum(out)


class ShardError(ValueError):
    """Another process's shard or parameters failed a check."""


def agree(check, fingerprint, group=None):
    """Run ``check()`` in every process and make them agree before any collective work.

    ``check`` validates this process's input and returns it; ``fingerprint(result)``
    describes what must be equal in all processes (parameters, number of features,
    dtype). If any process's check raises, every process raises: its own error where it
    had one, otherwise a :class:`ShardError` quoting the first failing rank's message.
    Differing fingerprints raise a :class:`ShardError` naming the ranks and values.

    Returns
    -------
    result
        ``check()``'s result.
    shard_sizes : list of int
        Every process's number of rows, in rank order.
    """
    try:
        result, failure = check(), None
        report = (None, fingerprint(result), len(result))
    except Exception as error:  # re-raised below, after every process has heard of it
        result, failure = None, error
        report = (f"{type(error).__name__}: {error}", None, 0)
    reports = [None] * dist.get_world_size(group)
    dist.all_gather_object(reports, report, group=group)
    failed = [(rank, message) for rank, (message, _, _) in enumerate(reports) if message]
    if failure is not None:
        raise failure
    if failed:
        rank, message = failed[0]
        raise ShardError(f"distributed fit stopped: rank {rank} failed its checks ({message}).")
    prints = [print_ for _, print_, _ in reports]
    if any(print_ != prints[0] for print_ in prints):
        differing = sorted({
            key for print_ in prints for key in print_ if print_[key] != prints[0][key]
        })
        by_rank = "; ".join(
            f"rank {rank}: { {key: print_[key] for key in differing} }"
            for rank, print_ in enumerate(prints)
        )
        raise ShardError(
            f"distributed fit stopped: the ranks disagree on {differing} ({by_rank}). Every "
            "rank must pass the same parameters and data with the same number of features."
        )
    return result, [size for _, _, size in reports]


def broadcast(value, group=None):
    """``value`` as rank 0 of ``group`` has it, in every process."""
    box = [value]
    dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0) if group else 0,
                               group=group)
    return box[0]


def array_fingerprint(array) -> str:
    """A short digest of an array's shape and bytes, to compare across processes."""
    array = np.ascontiguousarray(array)
    return f"{array.shape}:{hashlib.sha1(array.tobytes()).hexdigest()[:16]}"
