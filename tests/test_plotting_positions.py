"""Heatmaps of per-position archetype coefficients over the images."""

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from skarchetype import TorchLayerFeatures  # noqa: E402
from skarchetype.plotting import plot_position_heatmaps  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


@pytest.fixture
def coefficients(rng):
    values = rng.random(size=(5 * 6, 3))
    return values / values.sum(axis=1, keepdims=True)


def test_a_row_per_image_and_a_column_per_archetype(rng, coefficients):
    fig = plot_position_heatmaps(rng.random((5, 1, 8, 12)), coefficients, (2, 3), n_images=4)
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 4 * (1 + 3)
    assert image_axes[1].get_title() == "archetype 0"


def test_heatmap_holds_each_position_s_coefficient_over_the_image(rng, coefficients):
    fig = plot_position_heatmaps(rng.random((5, 8, 12)), coefficients, (2, 3), archetypes=[2])
    # row 1 (the second image), column 1 (archetype 2); images: the input, then the heatmap
    second_image_heatmap = fig.axes[1 * 2 + 1].get_images()[1]
    np.testing.assert_array_equal(
        second_image_heatmap.get_array(), coefficients[6:12, 2].reshape(2, 3)
    )
    assert second_image_heatmap.get_extent() == [-0.5, 11.5, 7.5, -0.5]


def test_grid_is_read_from_a_fitted_transformer(rng):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 2, stride=2))
    images = rng.random((4, 1, 6, 6)).astype(np.float32)
    features = TorchLayerFeatures(net, "0", pooling="positions").fit(images)
    coefficients = rng.random((4 * features.n_positions_, 2))
    fig = plot_position_heatmaps(images, coefficients, features)
    assert fig.axes[1].get_images()[1].get_array().shape == (3, 3)


def test_coefficients_of_other_rows_are_refused(rng, coefficients):
    with pytest.raises(ValueError, match=r"one row per image and position, 4 x 6 = 24 rows"):
        plot_position_heatmaps(rng.random((4, 8, 12)), coefficients, (2, 3))


def test_a_grid_that_is_not_2d_is_refused(rng, coefficients):
    with pytest.raises(ValueError, match=r"2-D grid of positions.*\(30,\)"):
        plot_position_heatmaps(rng.random((1, 8, 12)), coefficients, (30,))
