"""Figures of latent response assays: response matrices and response maps."""

from __future__ import annotations

import numpy as np

from ._matplotlib import figure_and_axes, require_pyplot

# Beyond this many rows or columns (a spatial latent), ticks are numbered by matplotlib
# instead of labelled one by one.
_MAX_LABELLED = 40


def _heatmap(matrix: np.ndarray, ax, *, row_labels, column_labels, title, xlabel, ylabel):
    n_rows, n_columns = matrix.shape
    figure, ax = figure_and_axes(
        ax, figsize=(2 + 0.5 * min(n_columns, 24), 1.2 + 0.5 * min(n_rows, 16)),
        layout="constrained",
    )
    small = max(n_rows, n_columns) <= _MAX_LABELLED
    image = ax.imshow(matrix, cmap="viridis", vmin=0, aspect="equal" if small else "auto")
    if n_columns <= _MAX_LABELLED:
        ax.set_xticks(range(n_columns), column_labels, rotation=90 if n_columns > 12 else 0)
    if n_rows <= _MAX_LABELLED:
        ax.set_yticks(range(n_rows), row_labels)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    figure.colorbar(image, ax=ax, label="RMS response")
    return ax


def plot_response_matrix(matrix, *, labels=None, row_labels=None, ax=None,
                         title: str = "Latent response matrix"):
    """Heatmap of a response matrix: row ``j`` intervened, column ``i`` responding.

    Parameters
    ----------
    matrix : array-like of shape (n_interventions, n_latent)
        ``LatentResponse.response_matrix_``.
    labels : list of str, default=None
        Names of the latent dimensions (columns); ``z0, z1, ...`` when omitted.
    row_labels : list of str, default=None
        Names of the interventions (rows); the column names for a square matrix,
        ``#0, #1, ...`` (the rows of ``intervened_``) otherwise.
    ax : matplotlib Axes, default=None
    title : str

    Returns
    -------
    matplotlib Axes
    """
    matrix = np.asarray(matrix)
    labels = [f"z{i}" for i in range(matrix.shape[1])] if labels is None else list(labels)
    if row_labels is None:
        square = matrix.shape[0] == matrix.shape[1]
        row_labels = labels if square else [f"#{j}" for j in range(matrix.shape[0])]
    return _heatmap(matrix, ax, row_labels=list(row_labels), column_labels=labels, title=title,
                    xlabel="responding dimension", ylabel="intervened dimension")


def plot_conditioned_response_matrix(matrix, factor_names, *, labels=None, ax=None,
                                     title: str = "Conditioned response matrix"):
    """Heatmap of how much each latent responds to each true factor.

    Parameters
    ----------
    matrix : array-like of shape (n_factors, n_latent)
        ``LatentResponse.conditioned_response_matrix(X, factors)``.
    factor_names : list of str
    labels : list of str, default=None
        Names of the latent dimensions; ``z0, z1, ...`` when omitted.
    ax : matplotlib Axes, default=None
    title : str

    Returns
    -------
    matplotlib Axes
    """
    matrix = np.asarray(matrix)
    labels = [f"z{i}" for i in range(matrix.shape[1])] if labels is None else list(labels)
    return _heatmap(matrix, ax, row_labels=list(factor_names), column_labels=labels, title=title,
                    xlabel="latent dimension", ylabel="factor")


def plot_response_maps(response_map, latents=None, *, axes=None, bins: int = 40):
    """The magnitude, divergence and mean curvature of a response field, beside the data density.

    Parameters
    ----------
    response_map : Bunch
        ``LatentResponse.response_map(...)``.
    latents : array-like of shape (n_samples, n_latent), default=None
        Encoded data (e.g. ``LatentResponse.latents_``); its 2-D histogram on the same slice
        is drawn first. Where the data is dense, a trained model contracts (negative
        divergence) towards its learned manifold.
    axes : sequence of matplotlib Axes, default=None
        Four axes with data, three without.
    bins : int, default=40
        Histogram bins per axis.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    plt = require_pyplot()
    n_panels = 3 if latents is None else 4
    if axes is None:
        _, axes = plt.subplots(1, n_panels, figsize=(3.6 * n_panels, 3.2), layout="constrained")
    axes = np.asarray(axes).ravel()
    a, b = response_map.dims
    axis_a, axis_b = response_map.coordinates
    extent = (axis_a[0], axis_a[-1], axis_b[0], axis_b[-1])
    panels = list(axes)
    if latents is not None:
        latents = np.asarray(latents)
        ax = panels.pop(0)
        *_, image = ax.hist2d(latents[:, a], latents[:, b], bins=bins,
                              range=[extent[:2], extent[2:]], cmap="Greys")
        ax.figure.colorbar(image, ax=ax, label="samples")
        ax.set_title("Encoded data")
    maps = [
        ("Response magnitude", response_map.magnitude, "magma", False),
        ("Divergence", response_map.divergence, "RdBu_r", True),
        ("Mean curvature", response_map.mean_curvature, "PuOr_r", True),
    ]
    for ax, (title, values, cmap, centred) in zip(panels, maps, strict=True):
        # Robust limits: curvature spikes where the field changes direction.
        limit = np.percentile(np.abs(values), 98) or 1.0
        limits = dict(vmin=-limit, vmax=limit) if centred else dict(vmin=0, vmax=limit)
        image = ax.imshow(values, origin="lower", extent=extent, cmap=cmap, aspect="auto", **limits)
        ax.figure.colorbar(image, ax=ax)
        ax.set_title(title)
    for ax in axes:
        ax.set(xlabel=f"z{a}", ylabel=f"z{b}")
    return axes
