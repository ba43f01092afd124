"""Response maps: the response field ``r(z) - z`` on a 2-D slice of the latent space.

The grid's latents are made a batch at a time (:class:`SliceGrid`), so a map of a large
latent (a diffusion VAE's 4 x 32 x 32) never holds n_grid^2 full latent codes at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._torch import batch_slices

# Guards the normalisation of a vanishing response field (mean curvature) against 0 / 0.
_FIELD_EPS = 1e-12


class SliceGrid:
    """The latents of a 2-D grid through ``base``, built on demand by row ranges.

    Row ``r * n_b + c`` of the grid (``r`` along axis b, ``c`` along axis a) equals
    ``base`` except ``z[a] = axis_a[c]`` and ``z[b] = axis_b[r]``.

    Parameters
    ----------
    base : (d,) ndarray
    dims : (a, b) flat coordinates swept
    axes : the two 1-D arrays of values along ``a`` and ``b``
    """

    def __init__(self, base: np.ndarray, dims: tuple[int, int], axes: tuple):
        self.base, self.dims = base, dims
        grid_a, grid_b = np.meshgrid(*axes)  # [row = dims[1], column = dims[0]]
        self.values = np.column_stack([grid_a.ravel(), grid_b.ravel()]).astype(base.dtype)

    def __len__(self) -> int:
        return len(self.values)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """The grid's latents in order, as (at most ``batch_size``, d) blocks made on demand:
        an iterable of batches for the input layer, which would read an indexable object
        item by item."""
        for rows in batch_slices(len(self.values), batch_size):
            points = np.repeat(self.base[None], rows.stop - rows.start, axis=0)
            points[:, list(self.dims)] = self.values[rows]
            yield points


def map_summaries(field: np.ndarray, steps: tuple[float, float]) -> dict:
    """Magnitude, divergence and mean curvature of a (rows = b, columns = a, 2) field.

    The mean curvature is ``-1/2 div(U / |U|)``; where the field vanishes the normalised
    field is 0 instead of NaN.
    """
    magnitude = np.linalg.norm(field, axis=-1)
    normals = field / np.maximum(magnitude, _FIELD_EPS)[..., None]
    return dict(magnitude=magnitude, divergence=divergence(field, steps),
                mean_curvature=-0.5 * divergence(normals, steps))


def divergence(field: np.ndarray, steps: tuple[float, float]) -> np.ndarray:
    """``dU_a/dz_a + dU_b/dz_b`` of a (rows = b, columns = a, 2) field with grid ``steps``."""
    d_along_a = np.gradient(field[..., 0], steps[0], axis=1)
    d_along_b = np.gradient(field[..., 1], steps[1], axis=0)
    return d_along_a + d_along_b
