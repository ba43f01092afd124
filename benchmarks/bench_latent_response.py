"""Throughput of LatentResponse's response matrix against bare decode+encode passes.

A response matrix on N base points of a d-dimensional latent space needs N * (d + 1)
decode+encode evaluations (each base point and its d single-coordinate interventions).
The bare pass decodes and re-encodes that many random latents in batches of the same size
under ``torch.inference_mode()`` and discards the output. ``LatentResponse.fit`` is timed
whole: it also encodes the N inputs, validates them and draws the interventions, all of
which count against it. Runs alternate, the order flipping every repeat, and the best of
``--repeats`` is kept (a busy machine only ever slows a run down). The target is a ratio
of at least 80 %.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--n-samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}; {args.n_samples} base points, batch {args.batch_size}, "
        f"best of {args.repeats}"
    )
    print(f"{'model':<14} {'d':>3} {'evaluations':>11} {'bare (eval/s)':>14} "
          f"{'response matrix (eval/s)':>25} {'ratio':>7}")
    for name in args.models:
        row = measure(name, args.n_samples, args.batch_size, args.repeats)
        print(f"{row['model']:<14} {row['latent']:>3} {row['evaluations']:>11} "
              f"{row['bare']:>14.0f} {row['assay']:>25.0f} {row['assay'] / row['bare']:>7.1%}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
