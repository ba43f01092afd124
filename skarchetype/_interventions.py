"""Interventions on latent codes and the responses they cause: the numerics of LatentResponse.

Latents are flat here, shape (n, d), whatever shape the model gives them. An intervention
replaces a set of coordinates (one coordinate, or a group such as one channel of a spatial
latent) by the values of a *donor*: a row of a pool of values (encoded data, prior draws
or values the user fixed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from numbers import Integral

import numpy as np
import torch

from ._torch import batch_slices


class InterventionGroups:
    """The coordinates each intervention replaces.

    Parameters
    ----------
    members : sequence of 1-D int arrays
        ``members[j]``: the flat latent coordinates intervention ``j`` replaces.
    n_latent : int
        Number of flat latent coordinates ``d``.
    """

    def __init__(self, members: Sequence[np.ndarray], n_latent: int):
        self.members = [np.asarray(group, dtype=np.intp) for group in members]
        self.n_latent = n_latent
        self._offsets = np.cumsum([0] + [len(group) for group in self.members])
        self._coordinates = np.concatenate(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def sizes(self) -> np.ndarray:
        """Number of coordinates of each intervention, shape (k,)."""
        return np.diff(self._offsets)

    def mask(self, interventions: slice, device) -> torch.Tensor:
        """(len(interventions), d) boolean mask: row ``j`` marks the coordinates replaced."""
        start, stop = self._offsets[interventions.start], self._offsets[interventions.stop]
        rows = np.repeat(np.arange(interventions.stop - interventions.start),
                         self.sizes()[interventions])
        mask = torch.zeros(interventions.stop - interventions.start, self.n_latent,
                           dtype=torch.bool, device=device)
        mask[torch.as_tensor(rows, device=device),
             torch.as_tensor(self._coordinates[start:stop], device=device)] = True
        return mask


def intervention_groups(dims, latent_shape: tuple[int, ...]) -> InterventionGroups:
    """Parse LatentResponse's ``dims`` parameter into the groups of coordinates intervened on.

    Parameters
    ----------
    dims : None, "channels" or sequence
        ``None``: every coordinate, one at a time. ``"channels"``: one group per index of
        the first latent axis (a channel of a ``(c, h, w)`` latent). A sequence: each
        element a flat coordinate (intervened alone) or a sequence of flat coordinates
        (intervened together).
    latent_shape : tuple of int

    Returns
    -------
    InterventionGroups
    """
    n_latent = int(np.prod(latent_shape))
    if dims is None:
        return InterventionGroups(np.arange(n_latent)[:, None], n_latent)
    if isinstance(dims, str):  # "channels", the only string the parameter allows
        return InterventionGroups(np.arange(n_latent).reshape(latent_shape[0], -1), n_latent)
    if len(dims) == 0:
        raise ValueError("dims must name at least one latent coordinate; got an empty sequence.")
    return InterventionGroups([_group(element, n_latent) for element in dims], n_latent)


def _group(element, n_latent: int) -> np.ndarray:
    coordinates = np.atleast_1d(np.asarray(element, dtype=object))
    valid = (coordinates.ndim == 1 and len(coordinates) > 0 and all(
        isinstance(c, Integral) and not isinstance(c, bool) and 0 <= c < n_latent
        for c in coordinates))
    if not valid or len(set(coordinates.tolist())) != len(coordinates):
        raise ValueError(
            f"Each element of dims must be a flat latent coordinate in [0, {n_latent}) or a "
            f"non-empty sequence of distinct ones (a group intervened together); got "
            f"{element!r}. For a coordinate of a latent of shape (c, h, w), pass "
            "numpy.ravel_multi_index((c, y, x), latent_shape_)."
        )
    return coordinates.astype(np.intp)


def cycled_permutations(rng, n_pool: int, n_draws: int, n_columns: int) -> np.ndarray:
    """(n_columns, n_draws) indices into a pool: each row a random order of the pool.

    A row is a permutation cut to ``n_draws``, or consecutive permutations when the pool is
    smaller, so that every pool entry is drawn equally often (give or take one).
    """
    repeats = -(-n_draws // n_pool)
    return np.stack([
        np.concatenate([rng.permutation(n_pool) for _ in range(repeats)])[:n_draws]
        for _ in range(n_columns)
    ])


def response_differences(
    respond: Callable[[torch.Tensor], torch.Tensor],
    base: torch.Tensor,
    pool: torch.Tensor,
    donors: torch.Tensor,
    groups: InterventionGroups,
    *,
    batch_size: int,
) -> Iterator[tuple[slice, slice, torch.Tensor, torch.Tensor]]:
    """Yield ``r(z~) - r(z)`` for the base points and their interventions, a block at a time.

    A block's base points and interventions go through ``respond`` as one batch of at
    most ``batch_size`` rows (a single base point may need several blocks when it has more
    interventions than that), so memory stays O(batch_size * d).

    Parameters
    ----------
    respond : callable, (m, d) tensor -> (m, d) tensor
    base : (n, d) tensor of base latents ``z``
    pool : (m, d) tensor of values
    donors : (k, n) int tensor; intervention ``j`` of base point ``n`` takes its
        coordinates' values from ``pool[donors[j, n]]``.
    groups : InterventionGroups with k interventions
    batch_size : int

    Yields
    ------
    interventions : slice of the k interventions
    rows : slice of the base points
    differences : (len(interventions), len(rows), d) tensor,
        ``[j, n, i] = r_i(z~^{(n, j)}) - r_i(z^{(n)})``
    mask : (len(interventions), d) boolean tensor of the coordinates each one replaced
    """
    n_interventions, n_latent = len(groups), base.shape[1]
    per_block = max(1, batch_size // (n_interventions + 1))  # base points per block
    interventions_per_block = max(1, batch_size // per_block - 1)
    for rows in batch_slices(len(base), per_block):
        points = base[rows]
        for interventions in batch_slices(n_interventions, interventions_per_block):
            mask = groups.mask(interventions, base.device)
            values = pool[donors[interventions, rows]]
            intervened = torch.where(mask[:, None, :], values, points)
            copies = torch.cat([points[None], intervened])
            responses = respond(copies.reshape(-1, n_latent)).reshape(len(copies), -1, n_latent)
            yield interventions, rows, responses[1:] - responses[:1], mask
