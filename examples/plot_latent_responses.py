"""
Latent responses of a VAE and a plain autoencoder on procedural sprites
=======================================================================

The interventional assays of Leeb et al. (NeurIPS 2022, "Exploring the Latent Space of
Autoencoders with Interventional Assays"). The latent response ``r(z) = e(g(z))`` decodes a
latent code and encodes the result back. Intervening on one latent coordinate at a time
and watching ``r`` move tells us, with no labels:

- which latent dimensions the model uses (the diagonal of the response matrix),
- which dimensions drive others through the decoder (the off-diagonal entries),
- where the learned manifold lies (the response maps: the field ``r(z) - z``).

With ground-truth factors, the conditioned response matrix and the causal disentanglement
score (CDS) say how cleanly each latent follows one factor. Last, archetypal analysis of the
latent space finds the extreme sprites the model has learned.

Both models are trained from scratch on :func:`skarchetype.datasets.make_sprites` in well
under a minute each on a laptop CPU. Pass your own ``encode``/``decode`` to
:class:`skarchetype.LatentResponse` and the same code runs unchanged.
"""

# %%
# Sprites with known factors, and two small autoencoders
# ------------------------------------------------------

# sphinx_gallery_thumbnail_number = 3
# sphinx_gallery_multi_image = "single"
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.pipeline import Pipeline

from skarchetype import ArchetypalAnalysis, LatentResponse
from skarchetype.datasets import make_sprites
from skarchetype.demo._sprite_models import SpriteAutoencoder, SpriteVAE, train_autoencoder
from skarchetype.plotting import (
    plot_conditioned_response_matrix,
    plot_response_maps,
    plot_response_matrix,
)

sprites = make_sprites(image_size=16)
images, factors = sprites.images, sprites.factors
print(f"{len(images)} sprites of {images.shape[2:]} pixels; factors: {sprites.factor_names}")

# The networks and their latent space are tiny: splitting such small products over several
# threads costs more than it saves, and on a busy machine the threads wait on each other
# (minutes instead of seconds). One thread, restored at the end.
threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.manual_seed(0)
models = {
    "VAE (beta=2)": (SpriteVAE(image_size=16, n_latent=6, hidden=(128, 64)), 2.0),
    "plain AE": (SpriteAutoencoder(image_size=16, n_latent=6, hidden=(128, 64)), 0.0),
}
for name, (model, beta) in models.items():
    start = time.perf_counter()
    train_autoencoder(model, images, epochs=40, batch_size=128, lr=3e-3, beta=beta,
                      random_state=0)
    print(f"{name}: trained in {time.perf_counter() - start:.1f} s, "
          f"final loss {model.loss_curve_[-1]:.1f}")

# %%
# Response matrices: which dimensions are used
# --------------------------------------------
# Row ``j`` is the intervened dimension, column ``i`` the responding one. A perfect
# identity on unit-variance codes reads sqrt(2) ~ 1.41 on the diagonal. The VAE switches
# off the dimensions it does not need (zero rows: the decoder ignores them), while the
# plain AE spreads the data over all of them and entangles them (off-diagonal mass).
assays = {}
for name, (model, _) in models.items():
    assay = LatentResponse(model.encode, model.decode, n_samples=2048, random_state=0)
    assays[name] = assay.fit(images)
    print(f"{name}: reconstruction explains {assay.score(images):.1%} of the pixel variance")
    print(np.round(assay.response_matrix_, 2))

fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for ax, (name, assay) in zip(axes, assays.items(), strict=True):
    plot_response_matrix(assay.response_matrix_, ax=ax, title=f"{name}: response matrix")

# %%
# Conditioned response matrices and causal disentanglement
# --------------------------------------------------------
# A traversal of one factor changes that factor only; the conditioned matrix shows how
# much each latent responds along such traversals. The CDS is 1 when each latent answers
# to a single factor and 1/5 when all answer to all five alike.
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for ax, (name, assay) in zip(axes, assays.items(), strict=True):
    conditioned = assay.conditioned_response_matrix(images, factors)
    score = assay.causal_disentanglement_score(images, factors)
    print(f"{name}: causal disentanglement score {score:.3f}")
    plot_conditioned_response_matrix(conditioned, sprites.factor_names, ax=ax,
                                     title=f"{name}: CDS {score:.2f}")

# %%
# Response maps: the learned manifold
# -----------------------------------
# On the slice through the two most used latent dimensions, the response field
# ``r(z) - z`` is small where the model is consistent, it contracts (negative divergence)
# towards the region the data occupies, and the mean curvature of its level sets traces
# that region's outline.
for name, assay in assays.items():
    a, b = np.argsort(np.diag(assay.response_matrix_))[::-1][:2]
    extent = 2.5 * assay.latent_std_[[a, b]].max()
    response_map = assay.response_map(dims=(a, b), extent=extent, n_grid=64)
    axes = plot_response_maps(response_map, assay.latents_)
    axes[0].figure.suptitle(f"{name}: response maps on (z{a}, z{b})")

# %%
# Archetypes of the latent space
# ------------------------------
# ``LatentResponse`` is a transformer (images in, posterior means out), so it chains with
# :class:`skarchetype.ArchetypalAnalysis` in a pipeline. Decoding the archetypes shows the
# extreme sprites every other sprite's code is a convex mixture of.
vae = models["VAE (beta=2)"][0]
pipeline = Pipeline([
    ("lr", LatentResponse(vae.encode, vae.decode, random_state=0)),
    ("aa", ArchetypalAnalysis(n_archetypes=6, random_state=0)),
]).fit(images)
print(f"archetypes explain {pipeline['aa'].explained_variance_:.1%} of the latent variance")
decoded = pipeline["lr"].inverse_transform(pipeline["aa"].archetypes_)

fig, axes = plt.subplots(1, len(decoded), figsize=(1.6 * len(decoded), 2), layout="constrained")
for index, (ax, archetype) in enumerate(zip(axes, decoded, strict=True)):
    ax.imshow(archetype[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"archetype {index}")
    ax.axis("off")
fig.suptitle("Decoded archetypes of the VAE's latent space")
torch.set_num_threads(threads)
plt.show()
