"""Wall-clock timing shared by the throughput benchmarks."""

from __future__ import annotations

import time

import numpy as np


def seconds(function) -> float:
    """Wall time of one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def alternating_times(runs: dict, repeats: int) -> dict[str, np.ndarray]:
    """Time each of ``runs`` (name -> callable) ``repeats`` times, alternating between them.

    The order flips every repeat, so that neither side always runs first after the other
    (a warm cache, a CPU that just sped up). Returns each run's times in seconds.
    """
    times = {name: [] for name in runs}
    for repeat in range(repeats):
        for name in sorted(runs, reverse=repeat % 2 == 1):
            times[name].append(seconds(runs[name]))
    return {name: np.array(values) for name, values in times.items()}
