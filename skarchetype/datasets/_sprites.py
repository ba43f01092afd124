"""Procedural sprites: small grayscale shapes on a full factorial grid of known factors."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.utils import Bunch

SHAPES = ("square", "ellipse", "triangle")
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")

# Fraction of the image left free at each border by the extreme positions, so that the
# largest rotated shape stays (almost) inside the frame.
_MARGIN = 0.3
_ELLIPSE_ASPECT = 0.55
# Subpixels per pixel side: pixel values are the covered fraction, so small moves show.
_SUPERSAMPLING = 4
_CHUNK = 256


def make_sprites(
    *,
    image_size: int = 32,
    n_scales: int = 3,
    n_rotations: int = 4,
    n_positions: int = 8,
    shapes: tuple[str, ...] = SHAPES,
) -> Bunch:
    """Images of shapes with every combination of known factors (a small dSprites).

    Factors, in this order: ``shape`` (square, ellipse, triangle), ``scale`` (half-size from
    12 % to 20 % of the image), ``rotation`` (in ``[0, 90)`` degrees, distinct for every
    shape), ``x`` and ``y`` (centre, from 30 % to 70 % of the image). Pixels hold the
    covered fraction of their area (anti-aliased), in ``[0, 1]``. No download; the
    default 2304 images take a few seconds.

    Parameters
    ----------
    image_size : int, default=32
        Height and width in pixels.
    n_scales, n_rotations, n_positions : int, default=3, 4, 8
        Number of values of the scale, rotation, and of each of x and y.
    shapes : tuple of str, default=("square", "ellipse", "triangle")

    Returns
    -------
    sprites : Bunch
        With the keys:

        - ``images``: ndarray of shape (n_images, 1, image_size, image_size), float32.
        - ``factors``: ndarray of shape (n_images, 5), int64; the index of each factor's
          value; every combination appears exactly once.
        - ``factor_names``: tuple of str.
        - ``factor_values``: dict of str to ndarray; the value behind each index (scale
          and position as fractions of the image size, rotation in degrees, shape names).

    Examples
    --------
    >>> from skarchetype.datasets import make_sprites
    >>> sprites = make_sprites(image_size=16, n_positions=4)
    >>> sprites.images.shape, sprites.factors.shape
    ((576, 1, 16, 16), (576, 5))
    """
    _check_counts(image_size=image_size, n_scales=n_scales, n_rotations=n_rotations,
                  n_positions=n_positions)
    unknown = set(shapes) - set(SHAPES)
    if not shapes or unknown:
        raise ValueError(f"shapes must be a non-empty subset of {SHAPES}; got {shapes!r}.")
    values = {
        "shape": np.asarray(shapes),
        "scale": np.linspace(0.12, 0.20, n_scales),
        "rotation": np.arange(n_rotations) * 90.0 / n_rotations,
        "x": np.linspace(_MARGIN, 1 - _MARGIN, n_positions),
        "y": np.linspace(_MARGIN, 1 - _MARGIN, n_positions),
    }
    factors = np.array(list(itertools.product(*(range(len(v)) for v in values.values()))),
                       dtype=np.int64)
    images = np.empty((len(factors), 1, image_size, image_size), dtype=np.float32)
    for start in range(0, len(factors), _CHUNK):
        rows = slice(start, start + _CHUNK)
        images[rows, 0] = _render(factors[rows], values, image_size)
    return Bunch(images=images, factors=factors, factor_names=FACTOR_NAMES, factor_values=values)


def _check_counts(**counts) -> None:
    for name, count in counts.items():
        minimum = 4 if name == "image_size" else 1
        if not isinstance(count, (int, np.integer)) or count < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {count!r}.")


def _render(factors: np.ndarray, values: dict, image_size: int) -> np.ndarray:
    """Anti-aliased images of shape (len(factors), image_size, image_size)."""
    n_sub = image_size * _SUPERSAMPLING
    centres = (np.arange(n_sub) + 0.5) / n_sub
    grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")  # image rows go along y
    shape, scale, rotation, x, y = (
        values[name][factors[:, k]] for k, name in enumerate(FACTOR_NAMES)
    )
    angle = np.deg2rad(rotation)[:, None, None]
    dx = grid_x[None] - x[:, None, None]
    dy = grid_y[None] - y[:, None, None]
    # Coordinates in each shape's own frame: rotate back, then scale to a unit shape.
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale[:, None, None]
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale[:, None, None]
    inside = np.zeros(u.shape, dtype=bool)
    for name, contains in _CONTAINS.items():
        chosen = shape == name
        inside[chosen] = contains(u[chosen], v[chosen])
    covered = inside.reshape(len(factors), image_size, _SUPERSAMPLING, image_size, _SUPERSAMPLING)
    return covered.mean(axis=(2, 4))


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Equilateral triangle inscribed in the unit circle: inradius 1/2 from each edge."""
    normals = np.deg2rad([90.0, 210.0, 330.0]) + np.pi  # outward normals face away from vertices
    return np.all([np.cos(n) * u + np.sin(n) * v <= 0.5 for n in normals], axis=0)


_CONTAINS = {
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 1.0,
    "ellipse": lambda u, v: u**2 + (v / _ELLIPSE_ASPECT) ** 2 <= 1.0,
    "triangle": _triangle,
}
