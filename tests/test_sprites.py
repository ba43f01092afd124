"""make_sprites: a full factorial grid of known factors, rendered as small images."""

import numpy as np
import pytest

from skarchetype.datasets import make_sprites


@pytest.fixture(scope="module")
def sprites():
    return make_sprites(image_size=16, n_scales=2, n_rotations=2, n_positions=3)


def test_every_factor_combination_appears_exactly_once(sprites):
    counts = [len(values) for values in sprites.factor_values.values()]
    assert len(np.unique(sprites.factors, axis=0)) == len(sprites.factors) == np.prod(counts)
    assert sprites.factors.min(axis=0).tolist() == [0] * 5
    assert (sprites.factors.max(axis=0) + 1).tolist() == counts


def test_images_are_float32_single_channel_in_unit_range(sprites):
    assert sprites.images.shape == (len(sprites.factors), 1, 16, 16)
    assert sprites.images.dtype == np.float32
    assert sprites.images.min() >= 0.0 and sprites.images.max() <= 1.0


def test_factor_names_follow_factor_columns(sprites):
    assert sprites.factor_names == ("shape", "scale", "rotation", "x", "y")
    assert list(sprites.factor_values) == list(sprites.factor_names)


def test_every_image_is_distinct(sprites):
    flat = sprites.images.reshape(len(sprites.images), -1)
    assert len(np.unique(flat.round(4), axis=0)) == len(flat)


def test_ink_grows_with_scale(sprites):
    ink = sprites.images.sum(axis=(1, 2, 3))
    scale = sprites.factors[:, 1]
    assert ink[scale == 1].mean() > ink[scale == 0].mean()


def test_x_moves_the_centre_of_mass_right(sprites):
    columns = np.arange(16)
    images = sprites.images[:, 0]
    centre_x = (images.sum(axis=1) * columns).sum(axis=1) / images.sum(axis=(1, 2))
    x = sprites.factors[:, 3]
    assert np.all(np.diff([centre_x[x == k].mean() for k in range(3)]) > 1.0)


def test_square_has_area_of_its_half_size():
    sprites = make_sprites(image_size=32, n_scales=1, n_rotations=1, n_positions=1,
                           shapes=("square",))
    half_size = sprites.factor_values["scale"][0] * 32
    assert sprites.images.sum() == pytest.approx((2 * half_size) ** 2, rel=0.02)


@pytest.mark.parametrize("params", [{"n_scales": 0}, {"image_size": 2}, {"shapes": ("star",)}])
def test_bad_parameters_are_rejected(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        make_sprites(**params)
