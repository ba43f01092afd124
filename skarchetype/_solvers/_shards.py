"""What the solvers need to know about how the samples are split across processes.

A data object holds the rows ``offset .. offset + shape[0]`` of ``n_samples`` rows in
all. The solvers reach the other processes' rows only through the reductions below,
written once in terms of three collectives, :meth:`SampleReductions.all_sum`,
:meth:`SampleReductions.all_max` and :meth:`SampleReductions.all_gather`, which are the
identity for data held by one process
(:class:`~skarchetype._solvers._distributed.DistributedRows` overrides them). Every
result that steers the solver is thus the same number in every process.
"""

from __future__ import annotations

import numpy as np
import torch

# rows per chunk of the random start, and the distance between the chunks' seeds
_START_CHUNK = 2**16
_SEED_STRIDE = 0x9E3779B97F4A7C15  # odd, so the chunks' seeds differ


class SampleReductions:
    """Reductions over samples, for data whose rows may be split across processes.

    The defaults describe one process holding every row.
    """

    offset = 0  # global index of this process's first row
    rank = 0  # this process's place in the rank order

    @property
    def n_samples(self) -> int:
        """Rows in all processes together."""
        return self.shape[0]

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the processes (a new tensor where there are several)."""
        return tensor

    def all_max(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s elementwise maximum over the processes (a new tensor where there
        are several)."""
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``tensor`` (same shape everywhere), stacked in rank order."""
        return tensor[None]

    def owned(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Which of the global row indices ``index`` this process holds, and where.

        Returns
        -------
        mask : bool Tensor of shape (len(index),)
        positions : int64 Tensor
            The local positions of the rows in ``mask``, in ``index``'s order.
        """
        local = torch.as_tensor(np.asarray(index, dtype=np.int64), device=self.device)
        local = local - self.offset
        mask = (local >= 0) & (local < self.shape[0])
        return mask, local[mask]

    def argmax(self, values: torch.Tensor) -> np.ndarray:
        """Global row index of the largest entry along the last axis of ``values``
        (..., n_local); ties go to the first row, as ``torch.argmax`` on all rows."""
        where = values.argmax(dim=-1, keepdim=True)
        best = values.gather(-1, where)
        candidates = self.all_gather(torch.cat([best.double(), (where + self.offset).double()], -1))
        winner = candidates[..., 0].argmax(dim=0, keepdim=True)  # the first rank on ties
        index = candidates[..., 1].gather(0, winner)[0]
        return index.long().cpu().numpy()

    def top_k(self, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest entries of each row of ``values`` (q, n_local) over all
        processes' columns (at most ``n_samples``), and their global row indices."""
        k = min(k, self.n_samples)
        best, where = values.topk(min(k, values.shape[1]), dim=1)
        padding = k - best.shape[1]  # every process sends k entries
        best = torch.nn.functional.pad(best, (0, padding), value=-torch.inf)
        where = torch.nn.functional.pad(where + self.offset, (0, padding), value=-1)
        best, where = self.all_gather(best), self.all_gather(where)
        best, where = (part.permute(1, 0, 2).flatten(1) for part in (best, where))
        best, position = best.topk(k, dim=1)
        return best, where.gather(1, position)

    def weighted_choice(self, weights: torch.Tensor, uniform: float) -> int:
        """The global row whose slot holds ``uniform * sum(weights)`` when the
        non-negative ``weights`` (n_local,) of all processes are laid end to end in rank
        order: a draw with probability proportional to the weight, as ``numpy``'s
        ``choice(p=...)`` makes it from the same uniform number."""
        cumulative = weights.double().cumsum(0)
        totals = self.all_gather(cumulative[-1:])[:, 0]
        ends = totals.cumsum(0)
        target = uniform * float(ends[-1])
        owner = min(int(torch.searchsorted(ends, target, right=True)), len(ends) - 1)
        choice = torch.full((1,), -1, dtype=torch.int64, device=weights.device)
        if owner == self.rank:
            local = int(torch.searchsorted(cumulative, target - float(ends[owner] - totals[owner]),
                                           right=True))
            last_weighted = int(weights.nonzero().max())  # rounding may point past the end
            choice[0] = min(local, last_weighted) + self.offset
        return int(self.all_gather(choice).max())


def random_coefficients(data: SampleReductions, n_archetypes: int, seed: int) -> torch.Tensor:
    """PCHA's random start of ``S^T``, shape (n_archetypes, n_local): exponential weights
    normalised per sample.

    The weights are drawn in fixed chunks of global rows, chunk ``c`` from a stream
    seeded by ``seed + c * stride``, so that a row's start does not depend on how the
    rows are split across processes (and data of one chunk draw as a single stream).
    """
    begin, stop = data.offset, data.offset + data.shape[0]
    parts = []
    for chunk in range(begin // _START_CHUNK, (stop - 1) // _START_CHUNK + 1):
        first = chunk * _START_CHUNK
        generator = torch.Generator(device="cpu")
        generator.manual_seed((seed + chunk * _SEED_STRIDE) % 2**63)
        size = min(_START_CHUNK, data.n_samples - first)
        draw = torch.rand(n_archetypes, size, generator=generator, dtype=torch.float64)
        parts.append(draw[:, max(begin - first, 0): stop - first])
    St = torch.cat(parts, dim=1)
    St.neg_().log1p_().neg_()  # 1 - U lies in (0, 1], so no weight is infinite
    return St.div_(St.sum(dim=0, keepdim=True)).to(device=data.device, dtype=data.dtype)
