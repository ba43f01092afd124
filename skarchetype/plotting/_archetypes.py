"""Figures of archetypal analyses: choice of K, exemplars, simplex, composition, explanation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._torch import to_numpy
from ._matplotlib import figure_and_axes, require_pyplot


def _as_named(results, default_name: str) -> dict:
    return dict(results) if isinstance(results, Mapping) else {default_name: results}


def plot_selection(selections, *, title: str = "Choosing the number of archetypes"):
    """Explained variance and stability against K, one line per layer.

    Parameters
    ----------
    selections : ArchetypeSelection or dict of str to ArchetypeSelection
        Results of :func:`skarchetype.inspection.select_n_archetypes`, by layer name.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Left: mean explained variance over seeds (band: one standard deviation), the elbow
        marked. Right: mean pairwise soft NMI across seeds.
    """
    plt = require_pyplot()
    fig, (ev_ax, nmi_ax) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for name, selection in _as_named(selections, "features").items():
        ks = selection.n_archetypes
        mean = selection.mean_explained_variance
        spread = selection.explained_variance.std(axis=1)
        (line,) = ev_ax.plot(ks, mean, marker="o", label=name)
        ev_ax.fill_between(ks, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
        best = np.flatnonzero(ks == selection.best_n_archetypes)
        ev_ax.plot(ks[best], mean[best], marker="*", markersize=16, color=line.get_color())
        nmi_ax.plot(ks, selection.stability, marker="o", label=name, color=line.get_color())
    ev_ax.set(xlabel="number of archetypes K", ylabel="explained variance (centred)",
              title="Explained variance (star: elbow)")
    nmi_ax.set(xlabel="number of archetypes K", ylabel="soft NMI across seeds",
               title="Stability across seeds", ylim=(0, 1.02))
    for ax in (ev_ax, nmi_ax):
        ax.legend(title="layer")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def _image_for_display(image: np.ndarray) -> np.ndarray:
    """(H, W), or (H, W, 3|4) from channel-first or channel-last images."""
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (3, 4):
        image = np.moveaxis(image, 0, -1)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def plot_exemplars(
    images,
    indices,
    *,
    row_labels=None,
    title: str = "Exemplars of each archetype",
    cmap: str = "gray_r",
):
    """A grid of images: one row per archetype, its exemplars from left to right.

    Parameters
    ----------
    images : array-like or Tensor of shape (n_samples, H, W), (n_samples, C, H, W) \
            or (n_samples, H, W, C)
        The inputs the indices point into.
    indices : array-like of int of shape (n_archetypes, n_exemplars)
        E.g. from :func:`~skarchetype.inspection.nearest_samples` or
        :func:`~skarchetype.inspection.generating_samples`.
    row_labels : sequence of str, optional
        Defaults to ``"archetype k"``.
    title : str
    cmap : str, default="gray_r"
        Colour map of single-channel images.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require_pyplot()
    images = to_numpy(images)
    indices = np.atleast_2d(np.asarray(indices))
    n_rows, n_columns = indices.shape
    labels = row_labels if row_labels is not None else [f"archetype {k}" for k in range(n_rows)]
    fig, axes = plt.subplots(
        n_rows, n_columns, figsize=(1.1 * n_columns + 1, 1.1 * n_rows + 0.6), squeeze=False
    )
    for row, (label, row_indices) in enumerate(zip(labels, indices, strict=True)):
        for column, index in enumerate(row_indices):
            ax = axes[row, column]
            ax.imshow(_image_for_display(images[index]), cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"#{index}", fontsize=7)
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def simplex_vertices(n_archetypes: int) -> np.ndarray:
    """Corners of a regular K-gon on the unit circle, the first at the top; shape (K, 2)."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(n_archetypes) / n_archetypes
    return np.column_stack([np.cos(angles), np.sin(angles)])


def plot_simplex(
    coefficients,
    *,
    labels=None,
    ax=None,
    title: str = "Samples on the archetype simplex",
):
    """Samples drawn at ``S @ V``, V the corners of a regular K-gon, one per archetype.

    Parameters
    ----------
    coefficients : array-like of shape (n_samples, n_archetypes)
        Rows on the simplex (``coefficients_`` or ``transform``'s output).
    labels : array-like of shape (n_samples,), optional
        Class of each sample; colours the points, with a legend.
    ax : matplotlib Axes, optional
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    coefficients = np.asarray(to_numpy(coefficients), dtype=np.float64)
    fig, ax = figure_and_axes(ax, figsize=(7, 6), constrained_layout=True)
    vertices = simplex_vertices(coefficients.shape[1])
    points = coefficients @ vertices
    outline = np.vstack([vertices, vertices[:1]])
    ax.plot(outline[:, 0], outline[:, 1], color="0.6", linewidth=1)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=8, alpha=0.6, label="samples")
    else:
        labels = np.asarray(to_numpy(labels))
        for label in np.unique(labels):
            chosen = labels == label
            ax.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.6, label=str(label))
    for k, (x, y) in enumerate(vertices):
        ax.annotate(f"A{k}", (1.1 * x, 1.1 * y), ha="center", va="center", fontweight="bold")
    # Outside the axes: inside, it hides the labels of the corners on its side.
    ax.legend(title="class" if labels is not None else None, loc="upper left",
              bbox_to_anchor=(1.02, 1), fontsize=7, markerscale=2)
    ax.set(xlabel="simplex coordinate 1", ylabel="simplex coordinate 2", title=title,
           xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal")
    return fig


_MAX_PANELS_PER_ROW = 3


def _panel_grid(n_panels: int) -> tuple[int, int]:
    """``(rows, columns)`` holding the panels in rows of at most three, as even as can be.

    One row of many panels makes each too narrow for its tick labels to be read.
    """
    n_rows = -(-n_panels // _MAX_PANELS_PER_ROW)
    return n_rows, -(-n_panels // n_rows)


def plot_class_composition(
    compositions,
    classes=None,
    *,
    title: str = "Class composition of each archetype",
):
    """Heatmaps of mean coefficient per archetype and class, one panel per layer.

    Parameters
    ----------
    compositions : ndarray of shape (n_archetypes, n_classes) or dict of str to such arrays
        From :func:`~skarchetype.inspection.class_composition`, by layer name.
    classes : sequence, optional
        Class names for the columns; defaults to 0 ... n_classes - 1.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require_pyplot()
    named = {name: np.asarray(value) for name, value in _as_named(compositions, "").items()}
    vmax = max(value.max() for value in named.values())
    n_rows, n_columns = _panel_grid(len(named))
    fig, axes = plt.subplots(
        n_rows, n_columns, figsize=(3.6 * n_columns + 1, 3.4 * n_rows + 0.6), squeeze=False,
        constrained_layout=True,
    )
    panels = axes.ravel()[: len(named)]
    for unused in axes.ravel()[len(named):]:
        unused.remove()
    for ax, (name, composition) in zip(panels, named.items(), strict=True):
        image = ax.imshow(composition, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        n_archetypes, n_classes = composition.shape
        column_names = classes if classes is not None else range(n_classes)
        ax.set_xticks(range(n_classes), [str(c) for c in column_names])
        ax.set_yticks(range(n_archetypes))
        ax.set(xlabel="class", ylabel="archetype", title=name)
    fig.colorbar(image, ax=panels.tolist(), label="mean coefficient")
    fig.suptitle(title)
    return fig


def plot_explanation(explanation, *, ax=None, title: str = "Explanation of one input"):
    """The input's coefficients as one stacked bar, one segment per archetype.

    Parameters
    ----------
    explanation : LocalExplanation
        From :func:`~skarchetype.inspection.explain_sample`.
    ax : matplotlib Axes, optional
    title : str
        The relative residual is appended.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = figure_and_axes(ax, figsize=(8, 2.4), constrained_layout=True)
    colors = require_pyplot().get_cmap("tab20")
    left = 0.0
    for k in np.argsort(-explanation.coefficients, kind="stable"):
        weight = explanation.coefficients[k]
        if weight <= 0:
            continue
        ax.barh(0, weight, left=left, color=colors(k % 20), edgecolor="white",
                label=f"A{k}: {weight:.2f}")
        if weight > 0.06:
            ax.text(left + weight / 2, 0, f"A{k}", ha="center", va="center", fontsize=9)
        left += weight
    ax.set(xlim=(0, 1), yticks=[], xlabel="coefficient (cumulative, sums to 1)",
           title=f"{title} (relative residual {explanation.relative_residual:.2f})")
    ax.legend(title="archetype", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return fig


def _labels_above(series: dict) -> dict:
    """``{(network, depth): bool}``: at each depth, the upper half of the points are labelled
    above, the lower half below, so that two networks' labels at one depth never meet."""
    above = {}
    for depth in range(1, max(len(by_layer) for by_layer in series.values()) + 1):
        present = [(network, list(by_layer.values())[depth - 1])
                   for network, by_layer in series.items() if len(by_layer) >= depth]
        ranked = sorted(present, key=lambda item: -item[1])
        for rank, (network, _) in enumerate(ranked):
            above[network, depth] = rank < len(ranked) / 2
    return above


def _label_point(ax, layer: str, x: int, y: float, *, above: bool, color, deepest: int) -> None:
    """Name a point by its layer, in its line's colour, on a pale box that keeps it legible
    where lines cross it; labels at the first and deepest layers extend inwards so that long
    names stay inside the axes."""
    ha = "left" if x == 1 < deepest else "right" if x == deepest > 1 else "center"
    ax.annotate(layer, (x, y), textcoords="offset points", xytext=(0, 5 if above else -5),
                ha=ha, va="bottom" if above else "top", fontsize=8, color=color,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                      "alpha": 0.75})


def plot_depth_profile(
    values,
    *,
    ylabel: str,
    title: str,
    ax=None,
):
    """A quantity against depth for one or several networks, each point named by its layer.

    Parameters
    ----------
    values : dict of str to float, or dict of str to (dict of str to float)
        ``{layer: value}`` in forward order, or ``{network: {layer: value}}``.
    ylabel, title : str
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    first = next(iter(values.values()))
    series = values if isinstance(first, Mapping) else {"": values}
    fig, ax = figure_and_axes(ax, figsize=(6, 4), constrained_layout=True)
    above = _labels_above(series)
    deepest = max(len(by_layer) for by_layer in series.values())
    for network, by_layer in series.items():
        depth = np.arange(1, len(by_layer) + 1)
        (line,) = ax.plot(depth, list(by_layer.values()), marker="o", label=network or None)
        for x, (layer, y) in zip(depth, by_layer.items(), strict=True):
            _label_point(ax, layer, x, y, above=above[network, x],
                         color=line.get_color(), deepest=deepest)
    # Room inside the axes for the labels of the outermost points.
    ax.margins(x=0.08, y=0.12)
    ax.xaxis.set_major_locator(require_pyplot().MaxNLocator(integer=True))
    ax.set(xlabel="depth (layer index)", ylabel=ylabel, title=title)
    if len(series) > 1 or next(iter(series)):
        ax.legend(title="network")
    ax.grid(alpha=0.3)
    return fig
