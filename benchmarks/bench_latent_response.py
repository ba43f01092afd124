"""Throughput of LatentResponse's response matrix against bare decode+encode passes.

A response matrix on N base points of a d-dimensional latent space needs N * (d + 1)
decode+encode evaluations (each base point and its d single-coordinate interventions).
The bare pass decodes and re-encodes that many random latents in batches of the same size
under ``torch.inference_mode()`` and discards the output. ``LatentResponse.fit`` is timed
whole: it also encodes the N inputs, validates them and draws the interventions, all of
which count against it. Runs alternate, the order flipping every repeat, and the best of
``--repeats`` is kept (a busy machine only ever slows a run down). The target is a ratio
of at least 80 %.

``--spatial`` times instead the response matrix of a convolutional VAE with a spatial
``(4, 8, 8)`` latent (256 coordinates) with every coordinate intervened on, against
``dims="channels"`` (4 interventions), on the same base points.

Run from the repository root: ``python benchmarks/bench_latent_response.py``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from _timing import alternating_times
from torch import nn

from skarchetype import LatentResponse
from skarchetype._torch import batch_slices
from skarchetype.demo._sprite_models import SpriteAutoencoder, SpriteVAE


class ConvAutoencoder(nn.Module):
    """A small convolutional autoencoder on (1, 32, 32) images."""

    def __init__(self, n_latent: int = 10):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 8 * 8, n_latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(n_latent, 64 * 8 * 8), nn.ReLU(), nn.Unflatten(1, (64, 8, 8)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )

    def encode(self, images):
        return self.encoder(images)

    def decode(self, latents):
        return self.decoder(latents)


class SpatialConvVAE(nn.Module):
    """A convolutional VAE from (1, 32, 32) images to a (4, 8, 8) latent, with BatchNorm."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 2 * channels, 4, stride=2, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32),
            nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )

    def encode(self, images):
        mean, log_scale = self.encoder(images).chunk(2, dim=1)
        return torch.distributions.Normal(mean, log_scale.exp())

    def decode(self, latents):
        return self.decoder(latents)


CASES = {
    # name: (model factory, sample shape, latent dimension)
    "sprite-vae-16": (lambda: SpriteVAE(16, n_latent=6, hidden=(128, 64)), (1, 16, 16), 6),
    "sprite-ae-32": (lambda: SpriteAutoencoder(32, n_latent=10), (1, 32, 32), 10),
    "conv-ae-32": (lambda: ConvAutoencoder(n_latent=10), (1, 32, 32), 10),
}


def bare_decode_encode(model, Z: np.ndarray, batch_size: int) -> None:
    with torch.inference_mode():
        for rows in batch_slices(len(Z), batch_size):
            output = model.encode(model.decode(torch.from_numpy(Z[rows])))
            getattr(output, "mean", output)


def measure(name: str, n_samples: int, batch_size: int, repeats: int) -> dict:
    factory, sample_shape, n_latent = CASES[name]
    torch.manual_seed(0)
    model = factory().eval()
    X = np.random.default_rng(0).random((n_samples, *sample_shape), dtype=np.float32)
    Z = np.random.default_rng(1).standard_normal((n_samples * (n_latent + 1), n_latent),
                                                 dtype=np.float32)
    assay = LatentResponse(model.encode, model.decode, n_samples=n_samples,
                           batch_size=batch_size, device="cpu", random_state=0)
    bare_decode_encode(model, Z[:batch_size], batch_size)  # warm-up: allocator, kernels
    assay.fit(X[:batch_size])
    times = alternating_times({
        "bare": lambda: bare_decode_encode(model, Z, batch_size),
        "assay": lambda: assay.fit(X),
    }, repeats)
    return {"model": name, "latent": n_latent, "evaluations": len(Z),
            "bare": len(Z) / times["bare"].min(), "assay": len(Z) / times["assay"].min()}


def measure_spatial(n_samples: int, batch_size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = SpatialConvVAE().train()  # the assay switches it to eval mode by itself
    X = np.random.default_rng(0).random((n_samples, 1, 32, 32), dtype=np.float32)
    assays = {
        dims: LatentResponse(model.encode, model.decode, dims=dims, n_samples=n_samples,
                             batch_size=batch_size, device="cpu", random_state=0)
        for dims in ("channels", None)
    }
    assays["channels"].fit(X[:batch_size])  # warm-up
    times = alternating_times({str(dims): lambda a=assay: a.fit(X)
                               for dims, assay in assays.items()}, repeats)
    return {name: values.min() for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--n-samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spatial", action="store_true",
                        help="time a (4, 8, 8) latent: every coordinate against channels")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}; {args.n_samples} base points, batch {args.batch_size}, "
        f"best of {args.repeats}"
    )
    if args.spatial:
        best = measure_spatial(args.n_samples, args.batch_size, args.repeats)
        print(f"conv VAE, (4, 8, 8) latent: all 256 coordinates {best['None']:.2f} s, "
              f"dims='channels' {best['channels']:.3f} s "
              f"({best['None'] / best['channels']:.0f} times faster)")
        return
    print(f"{'model':<14} {'d':>3} {'evaluations':>11} {'bare (eval/s)':>14} "
          f"{'response matrix (eval/s)':>25} {'ratio':>7}")
    for name in args.models:
        row = measure(name, args.n_samples, args.batch_size, args.repeats)
        print(f"{row['model']:<14} {row['latent']:>3} {row['evaluations']:>11} "
              f"{row['bare']:>14.0f} {row['assay']:>25.0f} {row['assay'] / row['bare']:>7.1%}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
