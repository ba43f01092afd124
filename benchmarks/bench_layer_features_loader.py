"""TorchLayerFeatures fed by a DataLoader or a memory map: throughput and peak memory.

``throughput``: a ViT-B-sized Hugging Face ViT (hidden 768, 12 layers, 12 heads, patches of
16, 224 px, random initialisation) reads ``(image, label)`` batches of 64 from one
DataLoader, either in a bare loop (``model(pixel_values=images)`` under
``torch.inference_mode()``, output discarded) or through ``TorchLayerFeatures.transform``
recording the CLS token of the 12 layers. Runs alternate, the order flipping every repeat;
the table gives each side's median rows per second and the median of the paired ratios.
The target is at least 95 %.

``memory``: a uint8 memory map of N images (3 x 224 x 224, a file of N x 150 KB in
``--folder``, deleted afterwards) goes through a cheap module (a 16 x 16 patch convolution
to 8 channels and their spatial means) with a ``preprocess`` that converts and normalises
each batch. Each N runs in a fresh process; it reports the peak anonymous memory
(RssAnon, the memory the process owns, sampled after each batch's conversion and after the
convolution, when the most is alive) and the peak resident set (VmHWM, which also counts
the pages of the mapped file that the kernel keeps cached and may drop at any time).

Run from the repository root, e.g.
``python benchmarks/bench_layer_features_loader.py throughput --images 128 --repeats 3``
and ``python benchmarks/bench_layer_features_loader.py memory --sizes 5000 20000``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import torch
from _timing import alternating_times
from torch.utils.data import DataLoader, TensorDataset

from skarchetype import TorchLayerFeatures

_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def vit_base():
    """A randomly initialised ViT-B/16 at 224 px, in eval mode."""
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072,
    )
    return transformers.ViTModel(config).eval()


def throughput(n_images: int, batch_size: int, repeats: int) -> None:
    model = vit_base()
    images = torch.randn(n_images, 3, 224, 224)
    loader = DataLoader(TensorDataset(images, torch.arange(n_images)), batch_size=batch_size)
    layers = tuple(f"layers.{index}" for index in range(12))
    features = TorchLayerFeatures(model, layers, pooling="cls").fit(loader)

    def bare():
        with torch.inference_mode():
            for batch, _ in loader:
                model(pixel_values=batch)

    times = alternating_times({"bare": bare, "transform": lambda: features.transform(loader)},
                              repeats)
    ratios = times["bare"] / times["transform"]
    print(f"ViT-B/16, {n_images} images in batches of {batch_size}, {repeats} repeats, "
          f"{torch.get_num_threads()} threads")
    for name, values in times.items():
        print(f"  {name:9s}: {n_images / np.median(values):6.2f} images/s "
              f"(times {np.round(values, 1).tolist()} s)")
    print(f"  transform / bare throughput: median {np.median(ratios):.1%} "
          f"(range {ratios.min():.1%} to {ratios.max():.1%})")


def _status(field: str) -> int:
    """A field of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _memory_run(path: str, n_images: int, batch_size: int, queue) -> None:
    torch.set_num_threads(1)
    memmap = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_images, 3, 224, 224))
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    peak_anon = [_status("RssAnon")]

    def preprocess(batch):
        normalised = (batch / 255 - _MEAN) / _STD
        peak_anon.append(_status("RssAnon"))  # the raw and the converted batch both alive
        return normalised

    module[0].register_forward_hook(lambda *_: peak_anon.append(_status("RssAnon")))

    start = time.perf_counter()
    out = TorchLayerFeatures(
        module, "2", batch_size=batch_size, preprocess=preprocess
    ).fit_transform(memmap)
    elapsed = time.perf_counter() - start
    queue.put((max(peak_anon), _status("VmHWM"), elapsed, out.shape))


def memory(sizes: list[int], batch_size: int, folder: str) -> None:
    path = os.path.join(folder, "skarchetype_bench_images.u8")
    rng = np.random.default_rng(0)
    image_bytes = 3 * 224 * 224
    try:
        with open(path, "wb") as file:  # the largest size; smaller N read its first images
            for start in range(0, max(sizes), 500):
                file.write(rng.bytes(image_bytes * min(500, max(sizes) - start)))
        print(f"uint8 memory map {path}: {os.path.getsize(path) / 2**30:.2f} GiB, "
              f"batches of {batch_size}, preprocess converting and normalising")
        context = multiprocessing.get_context("spawn")
        for n_images in sizes:
            queue = context.Queue()
            process = context.Process(target=_memory_run,
                                      args=(path, n_images, batch_size, queue))
            process.start()
            anon, hwm, elapsed, shape = queue.get()
            process.join()
            print(f"  N={n_images:6d}: peak RssAnon {anon / 1024:7.1f} MiB, peak VmHWM "
                  f"{hwm / 1024:7.1f} MiB, {n_images / elapsed:6.0f} images/s, output {shape}")
    finally:
        if os.path.exists(path):
            os.remove(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("throughput")
    speed.add_argument("--images", type=int, default=128)
    speed.add_argument("--batch-size", type=int, default=64)
    speed.add_argument("--repeats", type=int, default=3)
    peak = commands.add_parser("memory")
    peak.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    peak.add_argument("--batch-size", type=int, default=256)
    peak.add_argument("--folder", default="/tmp")
    args = parser.parse_args()
    if args.command == "throughput":
        throughput(args.images, args.batch_size, args.repeats)
    else:
        memory(args.sizes, args.batch_size, args.folder)


if __name__ == "__main__":
    main()
