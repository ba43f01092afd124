"""
Archetypes of a network's features, across processes
====================================================

Not run by the gallery: start it with ``torchrun``, one process per shard::

    torchrun --nproc_per_node=2 examples/distributed_archetypes.py

or across machines (run on every node, with ``--node_rank`` 0, 1, ...)::

    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=0 \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST0:29500 examples/distributed_archetypes.py

Every process takes its own shard of the images, extracts its features with
:class:`~skarchetype.TorchLayerFeatures`, and fits one
:class:`~skarchetype.ArchetypalAnalysis` with ``distributed=True``: the features are never
gathered. Each process then projects its own images on the archetypes (``transform``
is local), and rank 0 prints a report. On GPUs, use the ``nccl`` backend and
``device=f"cuda:{local_rank}"``.
"""

import os

import numpy as np
import torch
import torch.distributed as dist

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype.demo._digits_models import DigitsCNN, load_digit_images, train_classifier

N_ARCHETYPES = 6

dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE and the rendezvous
rank, world = dist.get_rank(), dist.get_world_size()
torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))

# The trained network: rank 0 trains it, the others receive its weights.
images, labels = load_digit_images()
network = DigitsCNN()
if rank == 0:
    train_classifier(network, images, labels, epochs=8, random_state=0)
state = [network.state_dict()]
dist.broadcast_object_list(state, src=0)
network.load_state_dict(state[0])
network.eval()

# This process's shard: contiguous rows, so that rank order is image order (a
# DistributedSampler's indices, or a shard of files, serve as well).
mine = np.array_split(np.arange(len(images)), world)[rank]
features = TorchLayerFeatures(network, "conv3").fit_transform(images[mine])

aa = ArchetypalAnalysis(N_ARCHETYPES, distributed=True, random_state=0).fit(features)
coefficients = aa.transform(features)  # local: this shard's images only

# Which digits each archetype holds: counts summed over the shards (K x 10 numbers).
counts = torch.zeros(N_ARCHETYPES, 10, dtype=torch.int64)
np.add.at(counts.numpy(), (coefficients.argmax(axis=1), labels[mine]), 1)
dist.all_reduce(counts)

if rank == 0:
    print(f"{world} processes, {aa.archetype_weights_.shape[1]} images in all, {len(mine)} "
          f"on rank 0; conv3 features {features.shape[1]} wide")
    print(f"explained variance {aa.explained_variance_:.3f} after {aa.n_iter_} iterations")
    weights = aa.archetype_weights_.toarray()  # columns: images in rank order = image order
    for k in range(N_ARCHETYPES):
        top = np.argsort(weights[k])[::-1][:3]
        made_of = ", ".join(f"image {i} (digit {labels[i]}, {weights[k, i]:.2f})" for i in top
                            if weights[k, i] > 0)
        dominant = counts[k].numpy()
        print(f"archetype {k}: made of {made_of}; closest for {dominant.sum()} images, "
              f"mostly digits {np.argsort(dominant)[::-1][:2].tolist()}")
dist.destroy_process_group()
