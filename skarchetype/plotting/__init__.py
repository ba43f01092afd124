"""Matplotlib figures (the optional ``plots`` extra: ``pip install "skarchetype[plots]"``)."""

from ._archetypes import (
    plot_class_composition,
    plot_depth_profile,
    plot_exemplars,
    plot_explanation,
    plot_selection,
    plot_simplex,
    simplex_vertices,
)
from ._latent_response import (
    plot_conditioned_response_matrix,
    plot_response_maps,
    plot_response_matrix,
)
from ._positions import plot_position_heatmaps

__all__ = [
    "plot_class_composition",
    "plot_conditioned_response_matrix",
    "plot_depth_profile",
    "plot_exemplars",
    "plot_explanation",
    "plot_position_heatmaps",
    "plot_response_maps",
    "plot_response_matrix",
    "plot_selection",
    "plot_simplex",
    "simplex_vertices",
]
