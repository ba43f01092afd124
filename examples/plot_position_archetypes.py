"""
Archetypes of image positions: where each concept lies in an image
==================================================================

Archetypes fitted on one feature vector per image describe whole images. Fitted on one
vector per *position* (a location of a convolutional map, or a patch token of a vision
transformer), they describe the parts that images are made of: strokes, ends, crossings,
background. ``TorchLayerFeatures(pooling="positions")`` gives those rows, and
:func:`~skarchetype.plotting.plot_position_heatmaps` draws each image's coefficients over
it: a map, per archetype, of where that concept is.

A small CNN is trained for a few seconds on :func:`sklearn.datasets.load_digits`. Nothing
below depends on it: pass your own module and layer.
"""

# %%
# A small CNN, trained from scratch
# ---------------------------------

# sphinx_gallery_thumbnail_number = 1
import numpy as np
import torch
from sklearn.pipeline import Pipeline

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype.demo._digits_models import (
    DigitsCNN,
    classifier_accuracy,
    load_digit_images,
    train_classifier,
)
from skarchetype.plotting import plot_exemplars, plot_position_heatmaps

threads = torch.get_num_threads()
torch.set_num_threads(1)  # a small network: one thread is faster than several

images, labels = load_digit_images()
torch.manual_seed(0)
network = DigitsCNN()
train_classifier(network, images[:1200], labels[:1200], epochs=12, random_state=0)
print(f"held-out accuracy {classifier_accuracy(network, images[1200:], labels[1200:]):.3f}")

# %%
# One row per image and position
# ------------------------------
# ``conv2`` gives maps of 24 channels over the 8 x 8 pixels: 64 rows per image. Row ``i``
# of the features (and of the coefficients) is image ``i // n_positions_``, position
# ``i % n_positions_`` of the grid ``position_grid_``. The pipeline fits the archetypes
# on the positions of 400 images.
pipe = Pipeline([
    ("features", TorchLayerFeatures(network, "conv2", pooling="positions")),
    ("aa", ArchetypalAnalysis(n_archetypes=5, random_state=0)),
])
coefficients = pipe.fit_transform(images[:400])
features = pipe.named_steps["features"]
print(f"{features.n_positions_} positions per image on a grid {features.position_grid_}: "
      f"{coefficients.shape[0]} rows of {coefficients.shape[1]} coefficients")

# %%
# Where each archetype lies
# -------------------------
# Each row: a digit, then one heatmap per archetype over it (bright: the positions that
# archetype describes). The coefficients of a position sum to one over the archetypes,
# so the heatmaps of one image split its positions between the concepts.
plot_position_heatmaps(images[:400], coefficients, features, n_images=6,
                       title="Archetypes of conv2's positions over six digits")

# %%
# Which positions make an archetype
# ---------------------------------
# The positions with the largest coefficient of each archetype, shown as the digits they
# come from: the concept is the same part (a stroke's edge, a background corner ...)
# in different digits.
n_positions = features.n_positions_
top = np.argsort(-coefficients, axis=0)[:6].T  # (n_archetypes, 6) rows of positions
plot_exemplars(images[:400], top // n_positions,
               title="Digits holding each archetype's most typical positions")

# %%
# New images, same archetypes
# ---------------------------
# The fitted pipeline maps the positions of unseen digits onto the same archetypes.
held_out = pipe.transform(images[1200:1206])
plot_position_heatmaps(images[1200:1206], held_out, features,
                       title="The same archetypes over six held-out digits")
torch.set_num_threads(threads)
