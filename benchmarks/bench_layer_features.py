"""Throughput of TorchLayerFeatures with several layers against the bare forward pass.

For each network, all sides see the same float32 numpy array in batches of the same size,
with the module in eval mode under ``torch.inference_mode()``:

- the bare pass wraps each batch slice with ``torch.from_numpy`` (no copy), calls the
  module and discards the output;
- ``TorchLayerFeatures.transform`` does the same work through its public path: once per
  call it validates the input (NaN and infinity included) and saves and restores the
  module's train/eval modes; per batch it copies the slice (so that a module with in-place
  operations cannot write into the caller's array), records several layers through forward
  hooks, pools them and writes them into the batch's rows of the output array;
- "by hand" is the least that reading layers through hooks costs, for reference: hooks that
  pool as ``pooling="auto"`` does and one ``cat`` per batch into a preallocated array, with
  no copy, check or restore (its features are checked to equal the transformer's);
- "hooks only" registers the same hooks but they do nothing: what hooking the layers costs
  before any pooling, so that the pooling's own share is the gap to "by hand".

Everything the other sides do beyond the bare forward pass counts as their overhead. Runs
alternate, the order flipping every repeat, and the ratio of throughput within each pair of
neighbouring runs cancels the slow drifts of a shared machine. On a small network that
ratio is stable within a process but not across processes (on the 2-core machine of
2026-11-23 the same command gave 62 % in one process and 133 % in the next, with the bare
pass alone varying twofold), so each network is measured in several fresh processes: the
table gives the median over processes of each one's median paired ratio, with the lowest
and highest, and the same median for the hooks by hand and for the hooks alone. The target
is at least 90 %.

Most of that spread between processes is page faults. glibc's ``malloc`` returns large freed
blocks to the kernel, so a process that frees and reallocates activations every batch maps
fresh pages every batch (tens of thousands per transform of the tiny ViT), on either side,
depending on the state of its heap rather than on its work. ``--allocator retain`` starts the
processes with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set so that freed
memory stays in the process: both sides then do only their own work. By default each network
is measured both ways.

Run from the repository root: ``python benchmarks/bench_layer_features.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
from unittest import mock

import numpy as np
import torch
from _timing import alternating_times
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


def _pool_auto(output) -> torch.Tensor:
    output = output[0] if isinstance(output, tuple) else output
    if output.ndim == 4:
        return output.mean(dim=(2, 3))
    return output[:, 0] if output.ndim == 3 else output


def hand_written_hooks(module: nn.Module, layers, X: np.ndarray, batch_size: int,
                       out: np.ndarray | None = None) -> None:
    """The least that reading layers through forward hooks costs: each layer pooled in its
    hook as ``pooling="auto"`` does, a batch's features written into ``out`` with one
    ``cat``, nothing copied, checked or restored. Without ``out`` the hooks run and do
    nothing: the cost of hooking the layers alone, without pooling."""
    pooled = []

    def hook(submodule, inputs, output):
        if out is not None:
            pooled.append(_pool_auto(output))

    handles = [module.get_submodule(layer).register_forward_hook(hook) for layer in layers]
    module.eval()
    features = None if out is None else torch.from_numpy(out)
    try:
        with torch.inference_mode():
            for rows in batch_slices(len(X), batch_size):
                pooled.clear()
                module(torch.from_numpy(X[rows]))
                if features is not None:
                    torch.cat(pooled, dim=1, out=features[rows])
    finally:
        for handle in handles:
            handle.remove()


def minor_page_faults(function) -> int:
    """Fresh pages the process mapped during one call of ``function``."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    function()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def measure(name: str, n_samples: int, batch_size: int, repeats: int, threads=None) -> dict:
    """One process's figures for one network."""
    if threads is not None:
        torch.set_num_threads(threads)
    factory, sample_shape, layers = CASES[name]
    torch.manual_seed(0)
    module = factory()
    X = np.random.default_rng(0).random((n_samples, *sample_shape), dtype=np.float32)
    features = TorchLayerFeatures(module, layers, batch_size=batch_size, device="cpu").fit(X)
    by_hand = np.empty((n_samples, features.transform(X[:1]).shape[1]), dtype=np.float32)
    hand_written_hooks(module, layers, X, batch_size, by_hand)  # warm-up: allocator, kernels
    np.testing.assert_allclose(features.transform(X), by_hand, rtol=1e-5, atol=1e-6)
    bare_forward(module, X, batch_size)
    times = alternating_times({
        "bare": lambda: bare_forward(module, X, batch_size),
        "by hand": lambda: hand_written_hooks(module, layers, X, batch_size, by_hand),
        "hooked": lambda: features.transform(X),
        "hooks only": lambda: hand_written_hooks(module, layers, X, batch_size),
    }, repeats)
    bare, by_hand_times, hooked = times["bare"], times["by hand"], times["hooked"]
    return {
        "bare faults": minor_page_faults(lambda: bare_forward(module, X, batch_size)),
        "hooked faults": minor_page_faults(lambda: features.transform(X)),
        "layers": len(layers),
        "n_features": by_hand.shape[1],
        "bare": n_samples / np.median(bare),
        "hooked": n_samples / np.median(hooked),
        "paired": float(np.median(bare / hooked)),
        "by hand": float(np.median(bare / by_hand_times)),
        "hooks only": float(np.median(bare / times["hooks only"])),
    }


# glibc settings under which freed memory stays in the process (no fresh page faults)
RETAINING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def measure_in_processes(name: str, allocator: str, args) -> dict:
    """:func:`measure` in ``args.processes`` fresh processes, one after another, started
    with this process's ``malloc`` settings or with :data:`RETAINING_MALLOC`."""
    job = (name, args.n_samples, args.batch_size, args.repeats, args.threads)
    settings = RETAINING_MALLOC if allocator == "retain" else {}
    # a spawned process starts with the parent's environment, which glibc reads at start-up
    with mock.patch.dict(os.environ, settings), \
            multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        runs = [pool.apply(measure, job) for _ in range(args.processes)]
    paired = np.array([run["paired"] for run in runs])
    keys = ("bare", "hooked", "by hand", "hooks only", "bare faults", "hooked faults")
    medians = {key: np.median([run[key] for run in runs]) for key in keys}
    return {**runs[0], **medians, "network": name,
            "paired": float(np.median(paired)), "lowest": paired.min(), "highest": paired.max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--n-samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--allocator", nargs="+", choices=("default", "retain"),
                        default=["default", "retain"],
                        help="glibc malloc settings of the measuring processes (default: both)")
    args = parser.parse_args()
    threads = torch.get_num_threads() if args.threads is None else args.threads
    print(
        f"torch {torch.__version__}, {threads} threads, load average "
        f"{os.getloadavg()[0]:.1f}; {args.n_samples} samples, batch {args.batch_size}, "
        f"{args.repeats} repeats in each of {args.processes} processes"
    )
    print(f"{'network':<12} {'malloc':>7} {'layers':>6} {'features':>8} {'bare (samples/s)':>17} "
          f"{'hooked (samples/s)':>19} {'ratio (paired)':>15} {'lowest':>7} {'highest':>8} "
          f"{'by hand':>8} {'hooks only':>10} {'faults/run bare, hooked':>24}")
    for name in args.networks:
        for allocator in args.allocator:
            row = measure_in_processes(name, allocator, args)
            print(f"{row['network']:<12} {allocator:>7} {row['layers']:>6} {row['n_features']:>8} "
                  f"{row['bare']:>17.0f} {row['hooked']:>19.0f} {row['paired']:>15.1%} "
                  f"{row['lowest']:>7.1%} {row['highest']:>8.1%} {row['by hand']:>8.1%} "
                  f"{row['hooks only']:>10.1%} "
                  f"{row['bare faults']:>12.0f}, {row['hooked faults']:>9.0f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
