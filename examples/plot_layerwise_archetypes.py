"""
Layer-wise archetypes of a CNN and a tiny vision transformer
============================================================

Archetypal analysis of the activations of a trained network, layer by layer, after
Wedenborg et al. (NLDL 2026). Each layer's activations are written as convex mixtures of
K archetypes, which are themselves convex mixtures of real inputs. We ask, for every
layer:

- how much of the layer's variance K archetypes explain, and which K to pick;
- whether the archetypes come back from other random seeds (soft NMI across 5 seeds);
- which classes each archetype gathers, and how that purity changes with depth;
- whether the archetypes of one half of the data describe the other half;
- why one input is represented as it is: its mixture of archetypes.

The two networks are trained from scratch on :func:`sklearn.datasets.load_digits` in
seconds. Nothing below depends on them: pass your own trained module and the names of its
layers (see ``module.named_modules()``) and the same code runs unchanged.
"""

# %%
# Two small networks, trained from scratch
# ----------------------------------------

# sphinx_gallery_thumbnail_number = 7
# sphinx_gallery_multi_image = "single"
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.pipeline import Pipeline

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype.demo._digits_models import (
    DigitsCNN,
    DigitsViT,
    classifier_accuracy,
    load_digit_images,
    train_classifier,
)
from skarchetype.inspection import (
    archetype_purity,
    class_composition,
    dataset_independence,
    explain_sample,
    nearest_samples,
    select_n_archetypes,
)
from skarchetype.plotting import (
    plot_class_composition,
    plot_depth_profile,
    plot_exemplars,
    plot_explanation,
    plot_selection,
    plot_simplex,
)

# The networks are small: splitting their products over several threads costs more than it
# saves, and on a busy machine the threads wait on each other (minutes instead of seconds).
# One thread, restored at the end.
threads = torch.get_num_threads()
torch.set_num_threads(1)

images, labels = load_digit_images()
rng = np.random.default_rng(0)
order = rng.permutation(len(images))
train, held_out = order[: len(order) * 3 // 4], order[len(order) * 3 // 4 :]

torch.manual_seed(0)
networks = {
    "CNN": (DigitsCNN(), ("conv1", "conv2", "conv3", "head")),
    "ViT": (DigitsViT(), ("patch_embedding", "blocks.0", "blocks.1", "blocks.2", "head")),
}
for name, (network, _) in networks.items():
    start = time.perf_counter()
    train_classifier(network, images[train], labels[train], epochs=15, random_state=0)
    accuracy = classifier_accuracy(network, images[held_out], labels[held_out])
    print(f"{name}: trained in {time.perf_counter() - start:.1f} s, "
          f"held-out accuracy {accuracy:.3f}")

# %%
# Every layer's features from one forward pass
# --------------------------------------------
# :class:`~skarchetype.TorchLayerFeatures` hooks all requested layers at once. Conv maps
# are averaged over space, token sequences give their CLS token (the ViT has a learned
# class token; sequences of models without one give their mean), 2-D outputs stay as
# they are; ``layer_slices_`` says which columns belong to which layer, and
# ``layer_poolings_`` which pooling each layer got.
layer_features = {}
for name, (network, layers) in networks.items():
    features = TorchLayerFeatures(network, layers).fit(images)
    activations = features.transform(images)
    for layer, columns in features.layer_slices_.items():
        layer_features[name, layer] = activations[:, columns]
        print(f"{name} {layer:<16} {features.layer_output_shapes_[layer]} -> "
              f"{columns.stop - columns.start} features")

# %%
# Explained variance and stability against K
# ------------------------------------------
# Five seeds for each K, each fit run to convergence (the default ``tol``). The explained
# variance rises with K; the elbow (star) is the suggested K. The soft NMI between the
# seeds' coefficients says whether the same archetypes come back.
candidate_ks = (2, 4, 6, 8, 10, 12)
selections = {}
print(f"K = {', '.join(map(str, candidate_ks))}: mean EV | soft NMI across seeds | elbow K")
for (name, layer), X in layer_features.items():
    selections[name, layer] = select_n_archetypes(
        X, candidate_ks, n_seeds=5, random_state=0, n_jobs=2
    )
    selection = selections[name, layer]
    explained = " ".join(f"{ev:.2f}" for ev in selection.mean_explained_variance)
    stability = " ".join(f"{nmi:.2f}" for nmi in selection.stability)
    print(f"{name} {layer:<16} {explained} | {stability} | {selection.best_n_archetypes}")

for network_name in networks:
    plot_selection(
        {layer: s for (name, layer), s in selections.items() if name == network_name},
        title=f"{network_name}: explained variance and stability across 5 seeds",
    )

# %%
# Class purity against depth
# --------------------------
# The same K = 10 at every layer, so that layers compare. Purity is 1 when the 10 inputs
# closest to an archetype share one digit, 0 when their digits are uniform.
n_archetypes = 10
models, purity = {}, {name: {} for name in networks}
for (name, layer), X in layer_features.items():
    models[name, layer] = ArchetypalAnalysis(n_archetypes, random_state=0).fit(X)
    purity[name][layer] = archetype_purity(models[name, layer].coefficients_, labels).mean()
    print(f"{name} {layer:<16} mean purity {purity[name][layer]:.3f}")

plot_depth_profile(purity, ylabel="mean archetype purity (10 nearest inputs)",
                   title="Class purity of archetypes against depth (K = 10)")

for network_name, (_, layers) in networks.items():
    plot_class_composition(
        {layer: class_composition(models[network_name, layer].coefficients_, labels)[0]
         for layer in layers},
        title=f"{network_name}: mean coefficient of each archetype per digit",
    )

# %%
# What the archetypes of the last hidden layer look like
# -------------------------------------------------------
# Each row: the inputs closest to one archetype of the CNN's ``conv3``; then all inputs on
# the archetype simplex, coloured by digit.
last = models["CNN", "conv3"]
closest, _ = nearest_samples(last.coefficients_, n_samples=8)
plot_exemplars(images, closest, title="CNN conv3: the 8 inputs closest to each archetype")
plot_simplex(last.coefficients_, labels=labels, title="CNN conv3: inputs on the 10-gon")

# %%
# Dataset independence between two disjoint halves
# -------------------------------------------------
# Fit on half A, project half B on A's archetypes and compare with B's own fit. A ratio
# of explained variances near 1 means A's archetypes describe B as well as B's own do.
halves = rng.permutation(len(images))
half_a, half_b = halves[::2], halves[1::2]
ratio = {name: {} for name in networks}
for (name, layer), X in layer_features.items():
    result = dataset_independence(
        X[half_a], X[half_b], ArchetypalAnalysis(n_archetypes, random_state=0)
    )
    ratio[name][layer] = result.explained_variance_ratio
    print(f"{name} {layer:<16} EV(B|own) {result.explained_variance_own:.3f} "
          f"EV(B|A) {result.explained_variance_transferred:.3f} NMI {result.nmi:.2f} "
          f"matched cosine {result.matching.mean_cosine:.3f}")

plot_depth_profile(ratio, ylabel="EV(B | archetypes of A) / EV(B | own archetypes)",
                   title="Dataset independence between two halves (K = 10)")

# %%
# Why one input is represented as it is
# -------------------------------------
# A pipeline from images to archetype coefficients; the explanation runs the input
# through it and lists its top archetypes with their closest training inputs.
cnn = networks["CNN"][0]
pipe = Pipeline([
    ("features", TorchLayerFeatures(cnn, "conv3")),
    ("aa", ArchetypalAnalysis(n_archetypes, random_state=0)),
]).fit(images)
index = int(held_out[0])
explanation = explain_sample(pipe, images[index : index + 1], n_top=3, n_exemplars=6)
print(f"input #{index} (digit {labels[index]}): top archetypes {explanation.top_archetypes}, "
      f"coefficients {np.round(explanation.top_coefficients, 2)}")
print(f"relative residual {explanation.relative_residual:.3f}")
plot_explanation(explanation, title=f"Input #{index} (digit {labels[index]}) as a mixture")
plot_exemplars(images, explanation.exemplars,
               row_labels=[f"A{k}" for k in explanation.top_archetypes],
               title=f"Closest training inputs of the top archetypes of input #{index}")

torch.set_num_threads(threads)
plt.show()
