"""Throughput of TorchLayerFeatures with several layers against the bare forward pass.

For each network, the bare pass feeds numpy batches to the module under
``torch.inference_mode()`` in eval mode and discards the output; TorchLayerFeatures does
the same with forward hooks on several layers, pools them and writes the features into
its output array. Both use the same batch size; runs alternate and the best of
``--repeats`` is kept (a busy machine only ever slows a run down). The target is a ratio
of at least 90 %.

Run from the repository root: ``python benchmarks/bench_layer_features.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

from skarchetype import TorchLayerFeatures
from skarchetype._torch import batch_slices
from skarchetype.demo._digits_models import DigitsCNN, DigitsViT


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class SmallConvNet(nn.Module):
    """A CIFAR-sized CNN: four conv stages on (3, 32, 32) images, global pooling, a head."""

    def __init__(self):
        super().__init__()
        self.stages = nn.Sequential(
            _stage(3, 32), _stage(32, 64), _stage(64, 128), _stage(128, 256)
        )
        self.head = nn.Linear(256, 10)

    def forward(self, images):
        return self.head(self.stages(images).mean(dim=(2, 3)))


CASES = {
    # name: (network factory, sample shape, layers requested together)
    "cnn-32x32": (SmallConvNet, (3, 32, 32), ("stages.1", "stages.2", "stages.3", "head")),
    "digits-cnn": (DigitsCNN, (1, 8, 8), ("conv1", "conv2", "conv3", "head")),
    "digits-vit": (
        lambda: DigitsViT(dim=64, depth=4),
        (1, 8, 8),
        ("blocks.0", "blocks.1", "blocks.2", "blocks.3", "head"),
    ),
}


def bare_forward(module: nn.Module, X: np.ndarray, batch_size: int) -> None:
    module.eval()
    with torch.inference_mode():
        for rows in batch_slices(len(X), batch_size):
            module(torch.from_numpy(X[rows]))


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(name: str, n_samples: int, batch_size: int, repeats: int) -> dict:
    factory, sample_shape, layers = CASES[name]
    torch.manual_seed(0)
    module = factory()
    X = np.random.default_rng(0).random((n_samples, *sample_shape), dtype=np.float32)
    features = TorchLayerFeatures(module, layers, batch_size=batch_size, device="cpu").fit(X)
    bare_forward(module, X[:batch_size], batch_size)  # warm-up: allocator, kernels
    features.transform(X[:batch_size])
    bare, hooked = [], []
    for _ in range(repeats):
        bare.append(seconds(lambda: bare_forward(module, X, batch_size)))
        hooked.append(seconds(lambda: features.transform(X)))
    return {
        "network": name,
        "layers": len(layers),
        "n_features": features.transform(X[:1]).shape[1],
        "bare": n_samples / min(bare),
        "hooked": n_samples / min(hooked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--n-samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{os.getloadavg()[0]:.1f}; {args.n_samples} samples, batch {args.batch_size}, "
        f"best of {args.repeats}"
    )
    print(f"{'network':<12} {'layers':>6} {'features':>8} {'bare (samples/s)':>17} "
          f"{'hooked (samples/s)':>19} {'ratio':>7}")
    for name in args.networks:
        row = measure(name, args.n_samples, args.batch_size, args.repeats)
        print(f"{row['network']:<12} {row['layers']:>6} {row['n_features']:>8} "
              f"{row['bare']:>17.0f} {row['hooked']:>19.0f} {row['hooked'] / row['bare']:>7.1%}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
