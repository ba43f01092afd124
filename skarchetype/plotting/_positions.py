"""Per-position archetypes drawn over the inputs: where in each image each archetype is."""

from __future__ import annotations

import numpy as np

from .._torch import to_numpy
from ._archetypes import _image_for_display
from ._matplotlib import require_pyplot


def _position_grid(grid) -> tuple[int, int]:
    """``(rows, columns)`` of positions, from a tuple or a fitted TorchLayerFeatures."""
    grid = tuple(getattr(grid, "position_grid_", grid))
    if len(grid) != 2:
        raise ValueError(
            f"grid must give the 2-D grid of positions (rows, columns), got {grid}; for "
            f"token sequences whose count is not a square, pass the patch grid yourself, "
            f"e.g. (image_height // patch, image_width // patch)."
        )
    return grid


def plot_position_heatmaps(
    images,
    coefficients,
    grid,
    *,
    archetypes=None,
    n_images: int = 6,
    title: str = "Archetype coefficients of each position",
    cmap: str = "magma",
    alpha: float = 0.6,
    image_cmap: str = "gray_r",
):
    """Each image beside heatmaps of its positions' archetype coefficients, drawn over it.

    The concept-extraction view: archetypes fitted on per-position features
    (``TorchLayerFeatures(pooling="positions")``) are parts or textures, and the heatmap
    of archetype ``k`` over an image shows where that concept lies in it.

    Parameters
    ----------
    images : array-like or Tensor of shape (n_samples, H, W), (n_samples, C, H, W) \
            or (n_samples, H, W, C)
        The inputs whose positions were analysed, in the order of the rows.
    coefficients : array-like of shape (n_samples * n_positions, n_archetypes)
        Coefficients of the positions, sample-major (as ``transform`` returns them): row
        ``i`` is sample ``i // n_positions``, position ``i % n_positions``.
    grid : tuple of 2 int, or fitted TorchLayerFeatures
        The grid of positions ``(rows, columns)``, or the transformer whose
        ``position_grid_`` it is.
    archetypes : sequence of int, optional
        The archetypes to show, one column each; all by default.
    n_images : int, default=6
        The first ``n_images`` images get a row each.
    title : str
    cmap : str, default="magma"
        Colour map of the coefficients (0 to 1, shared by every panel).
    alpha : float, default=0.6
        Opacity of the heatmaps over the images.
    image_cmap : str, default="gray_r"
        Colour map of single-channel images.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, columns = _position_grid(grid)
    images = to_numpy(images)
    coefficients = np.asarray(to_numpy(coefficients), dtype=float)
    n_positions = rows * columns
    if coefficients.ndim != 2 or len(coefficients) != len(images) * n_positions:
        raise ValueError(
            f"coefficients must have one row per image and position, {len(images)} x "
            f"{n_positions} = {len(images) * n_positions} rows, got shape "
            f"{coefficients.shape}; pass the coefficients of these images' positions."
        )
    shown = range(coefficients.shape[1]) if archetypes is None else list(archetypes)
    maps = coefficients.reshape(len(images), rows, columns, -1)
    n_rows = min(n_images, len(images))
    plt = require_pyplot()
    fig, axes = plt.subplots(
        n_rows, len(shown) + 1, figsize=(1.4 * (len(shown) + 1) + 1, 1.4 * n_rows + 0.8),
        squeeze=False, constrained_layout=True,
    )
    for index in range(n_rows):
        image = _image_for_display(images[index])
        height, width = image.shape[:2]
        axes[index, 0].imshow(image, cmap=image_cmap)
        axes[index, 0].set_ylabel(f"#{index}", rotation=0, ha="right", va="center")
        for column, archetype in enumerate(shown, start=1):
            ax = axes[index, column]
            ax.imshow(image, cmap=image_cmap)
            heat = ax.imshow(
                maps[index, :, :, archetype], cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest",
            )
            if index == 0:
                ax.set_title(f"archetype {archetype}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("input", fontsize=9)
    fig.colorbar(heat, ax=axes, shrink=min(1.0, 3 / max(n_rows, 3) + 0.2),
                 label="coefficient")
    fig.suptitle(title)
    return fig
