"""
Latent responses of a convolutional VAE with a spatial latent
=============================================================

The VAEs of latent diffusion models encode an image into a *spatial* latent: a small
image of latent channels, ``(c, h, w)`` per sample. :class:`skarchetype.LatentResponse`
takes such latents as they are. Its assays run over the flattened coordinates
(``latent_shape_`` records the shape), and ``dims`` chooses what is intervened on: every
coordinate (one decode+encode pass per coordinate and base point), a few chosen ones, or
whole channels (``dims="channels"``: one pass per channel).

A small convolutional VAE with a ``(4, 4, 4)`` latent is trained for a few seconds on the
procedural sprites of :func:`skarchetype.datasets.make_sprites`. The model uses batch
normalisation and dropout and is left in train mode on purpose: the assay runs it in eval
mode and gives the mode back afterwards.
"""

# %%
# A convolutional VAE on sprites
# ------------------------------

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from skarchetype import LatentResponse
from skarchetype.datasets import make_sprites
from skarchetype.plotting import plot_response_maps, plot_response_matrix

sprites = make_sprites(image_size=16)
images = torch.as_tensor(sprites.images)

# A tiny network on a tiny latent: one thread avoids the cost of splitting small products
# (restored at the end).
threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.manual_seed(0)


class ConvVAE(nn.Module):
    """(n, 1, 16, 16) sprites to a (4, 4, 4) latent and back."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ELU(), nn.Dropout(0.1),
            nn.Conv2d(32, 2 * channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, 32, 1), nn.ELU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ELU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),
        )

    def encode(self, x):
        mean, log_scale = self.encoder(x).chunk(2, dim=1)
        return torch.distributions.Normal(mean, log_scale.clamp(-6, 2).exp())

    def decode_logits(self, z):
        return self.decoder(z)

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))


vae = ConvVAE()
optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
start = time.perf_counter()
for _ in range(8):  # epochs
    for batch in images[torch.randperm(len(images))].split(64):
        posterior = vae.encode(batch)
        z = posterior.rsample()
        reconstruction = nn.functional.binary_cross_entropy_with_logits(
            vae.decode_logits(z), batch, reduction="sum") / len(batch)
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        kl = torch.distributions.kl_divergence(posterior, prior).sum() / len(batch)
        optimizer.zero_grad()
        (reconstruction + kl).backward()
        optimizer.step()
loss = (reconstruction + kl).item()
print(f"trained in {time.perf_counter() - start:.1f} s; loss of the last batch {loss:.1f}")
print(f"the model is still in train mode: {vae.training}")

# %%
# Channels as groups
# ------------------
# With ``dims="channels"`` each intervention replaces a whole channel of the latent by the
# same channel of another sprite's code: 4 interventions per base point instead of 64.
# The response matrix has a row per channel and a column per latent coordinate; the RMS
# over each channel's 16 coordinates gives a channel-by-channel summary.
start = time.perf_counter()
by_channel = LatentResponse(vae.encode, vae.decode, dims="channels", n_samples=512,
                            random_state=0).fit(images)
channel_seconds = time.perf_counter() - start
print(f"latent shape {by_channel.latent_shape_}, response matrix "
      f"{by_channel.response_matrix_.shape}, {channel_seconds:.2f} s")
print(f"the model is back in train mode: {vae.training}")

n_channels = by_channel.latent_shape_[0]
channel_matrix = np.sqrt(
    np.square(by_channel.response_matrix_).reshape(n_channels, n_channels, -1).mean(axis=2))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained",
                         gridspec_kw=dict(width_ratios=[1, 2.5]))
channels = [f"c{c}" for c in range(n_channels)]
plot_response_matrix(channel_matrix, labels=channels, ax=axes[0],
                     title="channel to channel (RMS)")
plot_response_matrix(by_channel.response_matrix_, row_labels=channels, ax=axes[1],
                     title="channel to every coordinate")

# %%
# Every coordinate, or a chosen few
# ---------------------------------
# Intervening on all 64 coordinates one at a time costs 65 passes per base point. ``dims``
# can instead name the coordinates of interest, e.g. the four channels at the latent's
# centre pixel (``numpy.ravel_multi_index`` turns ``(channel, y, x)`` into a flat index).
start = time.perf_counter()
every = LatentResponse(vae.encode, vae.decode, n_samples=512, random_state=0).fit(images)
every_seconds = time.perf_counter() - start
print(f"all coordinates: {every.response_matrix_.shape} in {every_seconds:.2f} s, "
      f"{every_seconds / channel_seconds:.0f} times the channel assay")

centre = [np.ravel_multi_index((c, 2, 2), by_channel.latent_shape_) for c in range(n_channels)]
chosen = LatentResponse(vae.encode, vae.decode, dims=centre, n_samples=512,
                        random_state=0).fit(images)
print("responses of the centre pixel's channels to each other:")
print(np.round(chosen.response_matrix_[:, centre], 2))

# %%
# A response map across two channels of one pixel
# -----------------------------------------------
# Like many VAEs, this one leaves some channels unused (near-zero rows above: the decoder
# ignores them). Response maps take any two coordinates, here as ``(channel, y, x)``
# multi-indices: the slice through the mean code along the two most used channels at the
# centre pixel. Where the encoded sprites lie, the response field contracts (negative
# divergence).
first, second = np.argsort(np.diag(channel_matrix))[::-1][:2]
a, b = (first, 2, 2), (second, 2, 2)
response_map = by_channel.response_map(dims=(a, b), extent=3.0, n_grid=48)
axes = plot_response_maps(response_map, by_channel.latents_)
axes[0].figure.suptitle(f"Response maps on channels {first} and {second} of the centre pixel")
torch.set_num_threads(threads)
plt.show()
