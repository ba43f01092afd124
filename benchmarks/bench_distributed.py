"""Bytes and time per iteration of distributed archetypal analysis, P processes on gloo.

Each of P processes (one torch thread each) holds an equal shard of one data set and runs
the solver for a fixed number of iterations (``tol=0``), counting what it sends to and
receives from the collectives. The one-process row without a process group is the
ordinary solver. On a machine with fewer cores than P the processes share cores: the
times then measure contention, not scaling (say so when quoting them).

    python benchmarks/bench_distributed.py --n-samples 20000 --n-features 128 -P 1 2 4
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skarchetype._solvers import CentredRows, fit_archetypes
from skarchetype._solvers._distributed import DistributedRows, Traffic
from skarchetype._solvers._init import furthest_sum
from skarchetype.datasets import make_archetypal_data


def _solve(data, args):
    """Time the solver after its initialisation; count the collectives of its iterations."""
    rows = furthest_sum(data, args.n_archetypes, np.random.RandomState(0))
    traffic = getattr(data, "traffic", Traffic())  # none without a process group
    before = Traffic(traffic.bytes, traffic.calls)
    start = time.perf_counter()
    fit = fit_archetypes(data, rows, max_iter=args.iterations, tol=0.0)
    seconds = time.perf_counter() - start
    return dict(
        seconds_per_iter=seconds / fit.n_iter,
        bytes_per_iter=(traffic.bytes - before.bytes) / fit.n_iter,
        calls_per_iter=(traffic.calls - before.calls) / fit.n_iter,
        working_set=len(fit.working_set), sse=fit.sse,
    )


def _worker(rank, world, init_file, out, args):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    X = _data(args)
    shard = np.array_split(X, world)[rank]
    result = _solve(DistributedRows(shard, torch.device("cpu"), torch.float32), args)
    with open(os.path.join(out, f"{rank}.pkl"), "wb") as file:
        pickle.dump(result, file)
    dist.destroy_process_group()


def _data(args):
    X, _, _ = make_archetypal_data(args.n_samples, args.n_features, args.n_archetypes,
                                   random_state=0)
    return X.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=128)
    parser.add_argument("--n-archetypes", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("-P", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    single = _solve(CentredRows(_data(args), torch.device("cpu"), torch.float32), args)
    print(f"N={args.n_samples} D={args.n_features} K={args.n_archetypes} float32, "
          f"{args.iterations} iterations, {os.cpu_count()} cores")
    print(f"{'P':>4} {'ms/iter (slowest rank)':>24} {'bytes/iter/rank':>16} "
          f"{'collectives/iter':>17} {'|W|':>5} {'SSE':>12}")
    print(f"{'none':>4} {1e3 * single['seconds_per_iter']:24.2f} {0:16d} {0:17d} "
          f"{single['working_set']:5d} {single['sse']:12.6g}")
    for world in args.P:
        with tempfile.TemporaryDirectory() as out:
            mp.spawn(_worker, args=(world, os.path.join(out, "init"), out, args), nprocs=world)
            results = [pickle.load(open(os.path.join(out, f"{r}.pkl"), "rb"))
                       for r in range(world)]
        slowest = max(result["seconds_per_iter"] for result in results)
        print(f"{world:4d} {1e3 * slowest:24.2f} {results[0]['bytes_per_iter']:16.0f} "
              f"{results[0]['calls_per_iter']:17.1f} {results[0]['working_set']:5d} "
              f"{results[0]['sse']:12.6g}")


if __name__ == "__main__":
    main()
