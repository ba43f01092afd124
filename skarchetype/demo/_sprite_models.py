"""Small autoencoders for the procedural sprites, and the loop that trains them on a CPU."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, Normal, kl_divergence

from .._torch import as_tensor, batch_slices, resolve_device


class SpriteAutoencoder(nn.Module):
    """A deterministic MLP autoencoder for ``(n, 1, size, size)`` images in ``[0, 1]``.

    Parameters
    ----------
    image_size : int, default=32
    n_latent : int, default=6
    hidden : tuple of int, default=(256, 128)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    """

    def __init__(self, image_size: int = 32, n_latent: int = 6, hidden: tuple = (256, 128)):
        super().__init__()
        self.image_size = image_size
        self.n_latent = n_latent
        self.encoder_network = _mlp([image_size**2, *hidden, self._n_encoder_outputs()])
        self.decoder_network = _mlp([n_latent, *reversed(hidden), image_size**2])

    def _n_encoder_outputs(self) -> int:
        return self.n_latent

    def encode(self, images: torch.Tensor):
        """Latent codes, shape (n, n_latent)."""
        return self.encoder_network(images.flatten(1))

    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixel logits, shape (n, 1, size, size)."""
        return self.decoder_network(latents).reshape(-1, 1, self.image_size, self.image_size)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images (pixel means in [0, 1]), shape (n, 1, size, size)."""
        return torch.sigmoid(self.decode_logits(latents))


class SpriteVAE(SpriteAutoencoder):
    """The variational counterpart: ``encode`` returns a diagonal Normal posterior."""

    def _n_encoder_outputs(self) -> int:
        return 2 * self.n_latent

    def encode(self, images: torch.Tensor) -> Normal:
        mean, raw_scale = self.encoder_network(images.flatten(1)).chunk(2, dim=1)
        return Normal(mean, nn.functional.softplus(raw_scale) + 1e-4)


def _mlp(widths: list) -> nn.Sequential:
    layers = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ELU()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


def train_autoencoder(
    model: SpriteAutoencoder,
    images,
    *,
    epochs: int = 60,
    batch_size: int = 64,
    lr: float = 2e-3,
    beta: float = 1.0,
    random_state: int = 0,
    device="auto",
    verbose: int = 0,
) -> SpriteAutoencoder:
    """Train ``model`` on ``images`` with Adam; return it in eval mode.

    The loss per image is the Bernoulli negative log-likelihood of the pixels, plus
    ``beta`` times the KL divergence to N(0, I) when ``encode`` returns a distribution
    (sampled with the reparametrisation trick). The mean loss of each epoch is kept in
    ``model.loss_curve_``.

    Parameters
    ----------
    model : SpriteAutoencoder or SpriteVAE
    images : ndarray or Tensor of shape (n, 1, size, size), values in [0, 1]
    epochs, batch_size : int
    lr : float
        Adam's learning rate.
    beta : float
        Weight of the KL term (ignored by deterministic encoders).
    random_state : int
        Seeds the shuffling and the posterior samples (the global torch generator is left
        as it was).
    device : {"auto", "cpu", "cuda"} or torch.device
    verbose : int
        Print the loss every tenth epoch.

    Returns
    -------
    model
    """
    device = resolve_device(device, images)
    model.to(device).train()
    data = as_tensor(images, device, torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.loss_curve_ = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        for epoch in range(epochs):
            order = torch.randperm(len(data), device=device)
            total = 0.0
            for rows in batch_slices(len(data), batch_size):
                batch = data[order[rows]]
                loss = _loss(model, batch, beta)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            model.loss_curve_.append(total / len(data))
            if verbose and (epoch + 1) % 10 == 0:
                print(f"[skarchetype] epoch {epoch + 1}/{epochs}: loss {model.loss_curve_[-1]:.2f}")
    return model.eval()


def _loss(model: SpriteAutoencoder, batch: torch.Tensor, beta: float) -> torch.Tensor:
    posterior = model.encode(batch)
    if isinstance(posterior, Distribution):
        latents = posterior.rsample()
        prior = Normal(torch.zeros_like(latents), torch.ones_like(latents))
        kl = kl_divergence(posterior, prior).sum(dim=1).mean()
    else:
        latents, kl = posterior, 0.0
    logits = model.decode_logits(latents)
    reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, batch, reduction="none")
    return reconstruction.flatten(1).sum(dim=1).mean() + beta * kl

