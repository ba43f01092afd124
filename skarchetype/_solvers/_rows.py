"""Centred data matrices, held on the device or streamed from host memory in row blocks.

The data are rescaled by an exact power of two so that their largest entry lies in
``[1/2, 1)``: the solvers then see the same numbers at every scale, and no product or
sum of squares over- or underflows, whatever the data's units.
"""

from __future__ import annotations

import math

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

    Every product is in *scaled units*: the rows are ``X * 2**-exponent``, with the
    power of two chosen from the largest ``|x|`` (and ``reach``) so that it lies in
    ``[1/2, 1)``. The rescaling is applied as rows are read, in ``X``'s own dtype before
    any narrowing cast, so float64 data beyond float32's range can be fitted in float32;
    it is exact, so data differing by a power-of-two factor give identical products.
    :meth:`scaled` and :meth:`unscaled` convert to and from the user's units.

    Parameters
    ----------
    X : ndarray, memmap or Tensor of shape (n_samples, n_features)
    device : torch.device
    dtype : torch.dtype
    block_size : int or None
    mean : ndarray or Tensor of shape (n_features,), optional
        The centre to subtract, in ``X``'s units; the column mean of ``X`` by default
        (exactly a column's value where the column is constant, so constant data centre
        to exact zeros).
    reach : float, default=0.0
        A magnitude, in ``X``'s units, that the scale must also cover: the largest entry
        of the archetypes compared with ``X``.
    """

    def __init__(self, X, device, dtype, block_size=None, mean=None, reach=0.0):
        self.shape = tuple(X.shape)
        self.device, self.dtype = device, dtype
        self._source = X
        self._streamed = block_size is not None and block_size < self.shape[0]
        self._block_size = block_size or self.shape[0]
        low, high = self._column_range()
        largest = max(float(high.max()), float(-low.min()), reach)
        if mean is not None:
            largest = max(largest, float(as_tensor(mean, device).abs().max()))
        self.exponent = math.frexp(largest)[1]  # largest / 2**exponent lies in [1/2, 1)
        self.mean = self._column_mean(low, high) if mean is None else self.scaled(mean)
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
            yield rows, self._read(rows).sub_(self.mean)

    def scaled(self, values) -> torch.Tensor:
        """``values`` (an array or tensor in ``X``'s units) in scaled units, as a tensor of
        the data's dtype on its device."""
        tensor = as_tensor(values, self.device)
        return times_power_of_two(tensor, -self.exponent).to(self.dtype)

    def unscaled(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor in scaled units back in ``X``'s units."""
        return times_power_of_two(tensor, self.exponent)

    def _source_rows(self, index) -> torch.Tensor:
        """Rows of ``X`` as a tensor in ``X``'s own dtype and place, sharing its memory
        where it can."""
        block = self._source[index]
        return block if is_tensor(block) else as_tensor(np.asarray(block), torch.device("cpu"))

    def _read(self, index) -> torch.Tensor:
        """Rows of ``X`` in scaled units, as a new tensor: rescaled before they are cast to
        the data's dtype."""
        return times_power_of_two(self._source_rows(index).to(self.device), -self.exponent).to(
            self.dtype
        )

    def _chunks(self):
        """Slices covering ``X`` of at most ``_CHUNK_ROWS`` rows, and no more than a block."""
        return batch_slices(self.shape[0], min(self._block_size, _CHUNK_ROWS))

    def _column_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each column's smallest and largest entry over all processes, in float64, found
        in ``X``'s own dtype (nothing is cast before the scale is known)."""
        low = torch.full((self.shape[1],), math.inf, device=self.device, dtype=torch.float64)
        high = -low
        for rows in self._chunks():  # reduced where X lies: only the extremes move
            block = self._source_rows(rows)
            low = torch.minimum(low, block.amin(dim=0).to(self.device, torch.float64))
            high = torch.maximum(high, block.amax(dim=0).to(self.device, torch.float64))
        high, low = self.all_max(torch.stack([high, -low]))
        return -low, high

    def _column_mean(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The column means in scaled units; a constant column's is its value, exactly."""
        # summed in float64 over small row chunks, so no float64 copy of X is ever made
        total = torch.zeros(self.shape[1], device=self.device, dtype=torch.float64)
        for rows in self._chunks():
            block = self._source_rows(rows).to(self.device, torch.float64)
            total += times_power_of_two(block, -self.exponent).sum(dim=0)
        mean = self.all_sum(total) / self.n_samples
        constant = times_power_of_two(low, -self.exponent)
        return torch.where(low == high, constant, mean).to(self.dtype)

    def _centred_copy(self) -> torch.Tensor:
        """``X - mean`` as one new tensor, converted and centred a chunk at a time, so that
        no other temporary of the size of ``X`` is made.

        The copy is laid out column by column (a transposed view of a contiguous
        ``(n_features, n_samples)`` tensor): the products the solver takes, ``Z X^T`` and
        ``S^T X`` with few rows ``Z`` and ``S^T``, run up to 3x faster on it than on rows
        (measured for float64 ``S^T X`` at 30 000 x 96 on the CPU).
        """
        columns = torch.empty(self.shape[::-1], device=self.device, dtype=self.dtype)
        for rows in batch_slices(self.shape[0], _CHUNK_ROWS):
            torch.sub(self._read(rows), self.mean, out=columns[:, rows].T)
        return columns.T

    def _row_squared_norms(self) -> torch.Tensor:
        """Each centred row's squared norm, summed a chunk at a time (a temporary of a
        chunk's size, which also avoids a norm reduction across the copy's columns)."""
        norms = torch.empty(self.shape[0], device=self.device, dtype=self.dtype)
        for rows, block in self._blocks():
            for chunk in batch_slices(block.shape[0], _CHUNK_ROWS):
                norms[rows][chunk] = block[chunk].square().sum(dim=1)
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
            out.addmm_(A[:, rows], block)
        return out

    def residual_products(self, At: torch.Tensor, Z: torch.Tensor):
        """``||R||^2`` and ``A R`` for the residuals ``R = (X - mean) - A^T Z``, over
        every process's rows, for ``At`` (q, n_samples) and ``Z`` (q, n_features).

        Both are formed from the residuals themselves, ``_CHUNK_ROWS`` rows at a time:
        their rounding is relative to ``R``, where expanding them into products of ``X``
        leaves a rounding relative to ``X``, which swamps ``R`` in near-perfect fits.
        The squares are summed in float64.

        Returns
        -------
        sum_of_squares : float
        products : Tensor of shape (q, n_features)
        """
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        products = torch.zeros(Z.shape, device=self.device, dtype=self.dtype)
        for rows, block in self._blocks():
            for chunk in batch_slices(block.shape[0], _CHUNK_ROWS):
                weights = At[:, rows][:, chunk]
                squares, product = _residual_terms(block[chunk], weights, Z)
                total += squares.sum(dtype=torch.float64)
                products += product
        return float(self.all_sum(total)), self.all_sum(products)

    def rows(self, index) -> torch.Tensor:
        """The centred rows at integer positions ``index``."""
        if not self._streamed:
            return self._centred[index]
        order = np.asarray(index.cpu() if is_tensor(index) else index)
        return self._read(np.sort(order))[np.argsort(np.argsort(order))] - self.mean


def _residual_terms(block: torch.Tensor, weights: torch.Tensor, Z: torch.Tensor):
    """Each row's squared norm and ``weights @ R`` for the residuals
    ``R = block - weights^T Z``, formed in ``block``'s own layout: written row by row, the
    residuals of a column-major block (the centred copy) took a transposing copy (float32
    20 000 x 128, K=12: 5.1 ms a pass, 4.1 ms in the block's layout)."""
    if block.stride(0) == 1:  # column-major: R^T, (n_features, rows), is contiguous
        residual = torch.addmm(block.T, Z.T, weights, alpha=-1)
        return torch.linalg.vecdot(residual, residual, dim=0), weights @ residual.T
    residual = torch.addmm(block, weights.T, Z, alpha=-1)
    return torch.linalg.vecdot(residual, residual), weights @ residual


def times_power_of_two(tensor: torch.Tensor, exponent: int) -> torch.Tensor:
    """``tensor * 2**exponent`` as a new tensor of its dtype, exact wherever the result
    is a normal number.

    A factor beyond the dtype's range (data near the edges of float64, or float32's
    subnormals) is applied in two halves, neither of which over- or underflows.
    """
    if abs(exponent) < 100:
        return tensor * 2.0**exponent
    half = exponent // 2
    return (tensor * 2.0**half).mul_(2.0 ** (exponent - half))
