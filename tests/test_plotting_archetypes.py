"""Archetype figures: each returns a titled, labelled matplotlib figure."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from skarchetype.inspection import ArchetypeSelection, LocalExplanation  # noqa: E402
from skarchetype.plotting import (  # noqa: E402
    plot_class_composition,
    plot_depth_profile,
    plot_exemplars,
    plot_explanation,
    plot_selection,
    plot_simplex,
    simplex_vertices,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


def selection(offset=0.0):
    ks = np.array([2, 3, 4, 5])
    ev = np.array([[0.4, 0.42], [0.7, 0.71], [0.75, 0.76], [0.78, 0.78]]) - offset
    return ArchetypeSelection(ks, ev, np.array([1.0, 0.95, 0.7, 0.6]),
                              np.array([1.0, 0.99, 0.9, 0.8]), 3)


def test_selection_figure_has_both_panels_labelled_with_a_line_per_layer():
    fig = plot_selection({"conv1": selection(), "conv2": selection(0.1)})
    ev_ax, nmi_ax = fig.axes
    assert ev_ax.get_ylabel() == "explained variance (centred)"
    assert nmi_ax.get_ylabel() == "soft NMI across seeds"
    assert [t.get_text() for t in ev_ax.get_legend().get_texts()] == ["conv1", "conv2"]
    assert fig._suptitle.get_text() == "Choosing the number of archetypes"


def test_exemplar_grid_has_one_row_per_archetype(rng):
    images = rng.random((20, 1, 8, 8))
    fig = plot_exemplars(images, [[0, 1, 2], [3, 4, 5]])
    assert len(fig.axes) == 6
    assert fig.axes[0].get_ylabel() == "archetype 0"
    assert fig.axes[3].get_ylabel() == "archetype 1"
    assert fig.axes[4].get_xlabel() == "#4"


def test_simplex_vertices_are_regular_on_the_unit_circle():
    vertices = simplex_vertices(5)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0)
    np.testing.assert_allclose(vertices[0], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(vertices.sum(axis=0), 0.0, atol=1e-12)


def test_simplex_plot_puts_pure_samples_on_the_corners(rng):
    coefficients = np.eye(4)
    fig = plot_simplex(coefficients, labels=[0, 1, 2, 3])
    ax = fig.axes[0]
    offsets = np.vstack([collection.get_offsets() for collection in ax.collections])
    np.testing.assert_allclose(offsets, simplex_vertices(4), atol=1e-12)
    assert ax.get_legend().get_title().get_text() == "class"
    assert ax.get_title() == "Samples on the archetype simplex"


def test_simplex_legend_sits_beside_the_axes_within_the_figure(rng):
    coefficients = rng.dirichlet(np.full(10, 0.3), size=200)
    fig = plot_simplex(coefficients, labels=coefficients.argmax(axis=1))
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1
    assert fig.bbox.contains(legend.x1, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)


def test_simplex_plot_draws_on_a_given_axes(rng):
    fig, ax = matplotlib.pyplot.subplots()
    assert plot_simplex(rng.dirichlet(np.ones(3), size=10), ax=ax) is fig


def test_class_composition_has_a_panel_per_layer_and_a_colorbar():
    fig = plot_class_composition({"conv1": np.full((3, 10), 0.1), "head": np.eye(3, 10)})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["conv1", "head"]
    assert all(ax.get_xlabel() == "class" and ax.get_ylabel() == "archetype" for ax in panels)
    assert any(ax.get_ylabel() == "mean coefficient" for ax in fig.axes)


def test_class_composition_wraps_many_layers_into_rows_of_three():
    fig = plot_class_composition({f"layer{i}": np.eye(3, 10) for i in range(5)})
    panels = [ax for ax in fig.axes if ax.get_title()]
    rows = [ax.get_subplotspec().rowspan.start for ax in panels]
    columns = [ax.get_subplotspec().colspan.start for ax in panels]
    assert rows == [0, 0, 0, 1, 1] and columns == [0, 1, 2, 0, 1]


def test_explanation_bar_stacks_to_one_and_reports_the_residual():
    explanation = LocalExplanation(
        coefficients=np.array([0.2, 0.0, 0.8]), top_archetypes=np.array([2, 0]),
        top_coefficients=np.array([0.8, 0.2]), exemplars=np.zeros((2, 3), dtype=int),
        residual=0.5, relative_residual=0.25,
    )
    fig = plot_explanation(explanation)
    ax = fig.axes[0]
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == pytest.approx([0.8, 0.2])
    assert "relative residual 0.25" in ax.get_title()
    assert ax.get_xlabel() == "coefficient (cumulative, sums to 1)"


def test_depth_profile_names_networks_and_layers():
    fig = plot_depth_profile(
        {"CNN": {"conv1": 0.2, "conv2": 0.5}, "ViT": {"blocks.0": 0.1, "blocks.1": 0.6}},
        ylabel="purity", title="Purity against depth",
    )
    ax = fig.axes[0]
    assert ax.get_ylabel() == "purity" and ax.get_title() == "Purity against depth"
    assert {t.get_text() for t in ax.texts} == {"conv1", "conv2", "blocks.0", "blocks.1"}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CNN", "ViT"]


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skarchetype\[plots\]"'):
        plot_selection(selection())


def test_depth_profile_labels_of_two_close_networks_neither_overlap_nor_leave_the_figure():
    fig = plot_depth_profile(
        {"CNN": {"conv1": 0.21, "conv2": 0.35, "conv3": 0.62, "head": 0.81},
         "ViT": {"patch_embedding": 0.12, "blocks.0": 0.34, "blocks.1": 0.61,
                 "blocks.2": 0.80, "head": 0.81}},
        ylabel="purity", title="Purity against depth",
    )
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    boxes = [text.get_window_extent(renderer) for text in fig.axes[0].texts]
    assert len(boxes) == 9
    for i, box in enumerate(boxes):
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:])


def test_depth_profile_colours_each_label_like_its_line():
    fig = plot_depth_profile({"CNN": {"conv1": 0.2}, "ViT": {"blocks.0": 0.3}},
                             ylabel="purity", title="Purity against depth")
    ax = fig.axes[0]
    assert [text.get_color() for text in ax.texts] == [line.get_color() for line in ax.lines]
