"""Centred data matrices, held on the device or streamed from host memory in row blocks."""

from __future__ import annotations

import numpy as np
import torch

from .._torch import as_tensor, batch_slices, is_tensor
from ._shards import SampleReductions

_CHUNK_ROWS = 8192


class CentredRows(SampleReductions):
    """The matrix ``X - mean(X)`` as the products an archetype solver needs.

    The solvers touch the data only through :meth:`inner`, :meth:`rmatmul` and
    :meth:`rows`, and sum over samples through :class:`SampleReductions`. When
    ``block_size`` is None the centred matrix is one tensor on the device; otherwise
    rows are read ``block_size`` at a time from ``X`` (a numpy array or a read-only
    memory map larger than memory) and centred on the fly, so no copy of ``X`` is ever
    made.

    Parameters
    ----------
    X : ndarray, memmap or Tensor of shape (n_samples, n_features)
    device : torch.device
    dtype : torch.dtype
    block_size : int or None
    mean : Tensor of shape (n_features,), optional
        The centre to subtract; the column mean of ``X`` by default.
    """

    def __init__(self, X, device, dtype, block_size=None, mean=None):
        self.shape = tuple(X.shape)
        self.device, self.dtype = device, dtype
        self._source = X
        self._streamed = block_size is not None and block_size < self.shape[0]
        self._block_size = block_size or self.shape[0]
        self.mean = self._column_mean() if mean is None else mean.to(device, dtype)
        if not self._streamed:
            self._centred = self._centred_copy()
        self.squared_norms = self._row_squared_norms()
        self.total_sum_of_squares = float(self.all_sum(self.squared_norms.double().sum()))

    def _blocks(self):
        """Yield ``(rows, centred block)`` over the whole matrix."""
        if not self._streamed:
            yield slice(0, self.shape[0]), self._centred
            return
        for rows in batch_slices(self.shape[0], self._block_size):
            yield rows, self._read(rows) - self.mean

    def _source_rows(self, index) -> torch.Tensor:
        """Rows of ``X`` as a tensor in ``X``'s own dtype and place, sharing its memory
        where it can."""
        block = self._source[index]
        return block if is_tensor(block) else as_tensor(np.asarray(block), torch.device("cpu"))

    def _read(self, index) -> torch.Tensor:
        return self._source_rows(index).to(self.device, self.dtype)

    def _column_mean(self) -> torch.Tensor:
        # summed in float64 over small row chunks, so no float64 copy of X is ever made
        total = torch.zeros(self.shape[1], device=self.device, dtype=torch.float64)
        for rows in batch_slices(self.shape[0], min(self._block_size, _CHUNK_ROWS)):
            total += self._source_rows(rows).to(self.device, torch.float64).sum(dim=0)
        return (self.all_sum(total) / self.n_samples).to(self.dtype)

    def _centred_copy(self) -> torch.Tensor:
        """``X - mean`` as one new tensor, converted and centred a chunk at a time, so that
        no other temporary of the size of ``X`` is made."""
        centred = torch.empty(self.shape, device=self.device, dtype=self.dtype)
        for rows in batch_slices(self.shape[0], _CHUNK_ROWS):
            centred[rows].copy_(self._source_rows(rows)).sub_(self.mean)
        return centred

    def _row_squared_norms(self) -> torch.Tensor:
        norms = torch.empty(self.shape[0], device=self.device, dtype=self.dtype)
        for rows, block in self._blocks():
            norms[rows] = torch.linalg.vector_norm(block, dim=1).square()
        return norms

    def inner(self, Y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``Y @ (X - mean).T``: inner products of the rows of ``Y`` (q, n_features) with
        every centred sample, shape (q, n_samples), written into ``out`` when given."""
        if out is None:
            out = torch.empty(Y.shape[0], self.shape[0], device=self.device, dtype=self.dtype)
        for rows, block in self._blocks():
            torch.matmul(Y, block.T, out=out[:, rows])
        return out

    def rmatmul(self, A: torch.Tensor) -> torch.Tensor:
        """``A @ (X - mean)`` for ``A`` of shape (q, n_samples)."""
        out = torch.zeros(A.shape[0], self.shape[1], device=self.device, dtype=self.dtype)
        for rows, block in self._blocks():
            out += A[:, rows] @ block
        return out

    def rows(self, index) -> torch.Tensor:
        """The centred rows at integer positions ``index``."""
        if not self._streamed:
            return self._centred[index]
        order = np.asarray(index.cpu() if is_tensor(index) else index)
        return self._read(np.sort(order))[np.argsort(np.argsort(order))] - self.mean
