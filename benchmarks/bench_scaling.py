"""How skarchetype's fit time and memory grow with the number of rows (relu1m prefixes).

The data set is generated once, in a child process of its own, and saved as a float
``.npy`` file (generation needs several times the size of X; that is not the fit's cost).
Each size N then runs in a fresh child process, which

* in-memory mode: reads the first N rows into an ordinary array (``np.fromfile``, no
  mapping, so X is counted once), or
* ``--memmap`` mode: opens the file read-only with ``np.load(mmap_mode="r")`` and fits
  ``ArchetypalAnalysis(batch_size=...)`` on the first N rows of the map,

warms up on 2000 rows, times ``fit`` with ``time.perf_counter`` and measures memory:

* ``peak RSS``: the child's ``ru_maxrss`` (everything: interpreter, torch, X, the fit;
  in memmap mode also the file pages the kernel keeps mapped, which it may drop);
* ``fit peak``: the highest anonymous resident memory (``RssAnon`` of
  ``/proc/self/status``, sampled every 10 ms) during ``fit``, minus the same figure after
  the imports. In-memory mode it includes X; in memmap mode X is file-backed and not in it,
  so it is the fit's own working memory, to compare with the file size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _scoring import explained_variance

from skarchetype import ArchetypalAnalysis
from skarchetype.datasets import BENCHMARK_SETS, load_benchmark_data

MIB = 2**20
WARM_UP_ROWS = 2000
DEFAULT_SIZES = (125_000, 250_000, 500_000, 1_000_000)
RESULTS = Path(__file__).resolve().parent / "results"


def _anonymous_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no RssAnon line (Linux only).")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


class AnonymousMemoryPeak:
    """Highest ``RssAnon`` seen while the ``with`` block runs, sampled by a thread."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_mib = max(self.peak_mib, _anonymous_rss_mib())

    def __enter__(self):
        self.peak_mib = _anonymous_rss_mib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, _anonymous_rss_mib())


def _read_rows(path: str, n_rows: int) -> np.ndarray:
    """The first ``n_rows`` rows of a .npy file read into anonymous memory, without a map."""
    header = np.load(path, mmap_mode="r")  # pages untouched: only the shape and offset
    n_features, dtype, offset = header.shape[1], header.dtype, header.offset
    del header
    rows = np.fromfile(path, dtype=dtype, count=n_rows * n_features, offset=offset)
    return rows.reshape(n_rows, n_features)


def _fit_rows(connection, job: dict) -> None:
    """Child process: fit the first ``job['n_rows']`` rows and report time and memory."""
    try:
        params = {"n_archetypes": job["n_archetypes"], "random_state": job["seed"],
                  "device": job["device"]}
        if job["memmap"]:
            if "batch_size" not in ArchetypalAnalysis().get_params():
                raise TypeError("awaits ArchetypalAnalysis's batch_size parameter")
            params["batch_size"] = job["batch_size"]
        baseline = _anonymous_rss_mib()
        X = (np.load(job["path"], mmap_mode="r")[: job["n_rows"]] if job["memmap"]
             else _read_rows(job["path"], job["n_rows"]))
        ArchetypalAnalysis(**params).fit(np.array(X[:WARM_UP_ROWS]))
        model = ArchetypalAnalysis(**params)
        with AnonymousMemoryPeak() as memory:
            start = time.perf_counter()
            model.fit(X)
            seconds = time.perf_counter() - start
        connection.send({
            "status": "ok", "fit_seconds": seconds, "peak_rss_mib": _peak_rss_mib(),
            "fit_peak_mib": memory.peak_mib - baseline, "n_iter": int(model.n_iter_),
            "ev": explained_variance(X, model.coefficients_, model.archetypes_),
        })
    except Exception as error:  # reported as the row of this size
        connection.send({"status": "failed", "error": f"{type(error).__name__}: {error}"})
    finally:
        connection.close()


def _generate(connection, name: str, dtype: str, path: str) -> None:
    """Child process: write the data set to ``path`` (its memory is not the fit's)."""
    X, _ = load_benchmark_data(name, dtype=np.dtype(dtype), random_state=0)
    np.save(path, X)
    connection.send(_peak_rss_mib())
    connection.close()


def _in_child(target, *args):
    """Run ``target(connection, *args)`` in a fresh process; return what it sends."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(sender, *args))
    child.start()
    sender.close()
    try:
        return receiver.recv()
    except EOFError:  # the child died without a word
        return {"status": "crashed", "error": "crashed (out of memory?)"}
    finally:
        child.join()
        receiver.close()


def _data_file(name: str, dtype: str, directory: Path) -> Path:
    path = directory / f"{name}_{dtype}.npy"
    if path.exists():
        print(f"Using {path}", file=sys.stderr)
        return path
    start = time.perf_counter()
    peak = _in_child(_generate, name, dtype, str(path))
    print(f"Generated {path} in {time.perf_counter() - start:.0f} s "
          f"(generator peak {peak:.0f} MiB)", file=sys.stderr)
    return path


def _table(rows: list[dict], n_features: int, itemsize: int, memmap: bool) -> None:
    size_label = "file size" if memmap else "size(X)"
    columns = ("N", f"{size_label} MiB", "fit s", "ms per 1k rows", "peak RSS MiB",
               "fit peak MiB", f"fit peak / {size_label}", "EV", "n_iter", "note")
    lines = []
    for row in rows:
        size = row["n_rows"] * n_features * itemsize / MIB
        if row["status"] != "ok":
            lines.append([str(row["n_rows"]), f"{size:.0f}"] + ["-"] * 7 + [row["error"]])
            continue
        lines.append([str(row["n_rows"]), f"{size:.0f}", f"{row['fit_seconds']:.3g}",
                      f"{1e6 * row['fit_seconds'] / row['n_rows']:.3g}",
                      f"{row['peak_rss_mib']:.0f}", f"{row['fit_peak_mib']:.0f}",
                      f"{row['fit_peak_mib'] / size:.2f}", f"{row['ev']:.5f}",
                      str(row["n_iter"]), ""])
    widths = [max(len(line[i]) for line in [list(columns), *lines]) for i in range(len(columns))]
    for cells in [list(columns), ["-" * width for width in widths], *lines]:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        print("| " + " | ".join(padded) + " |")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="relu1m", choices=sorted(BENCHMARK_SETS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="skarchetype's device parameter")
    parser.add_argument("--memmap", action="store_true",
                        help="fit a read-only np.memmap of the file by row blocks")
    parser.add_argument("--batch-size", type=int, default=65_536,
                        help="rows per block in --memmap mode")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the .npy file is kept and reused (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--json", type=Path, default=None,
                        help="per-size figures (default: benchmarks/results/scaling.json, "
                             "scaling_memmap.json with --memmap)")
    return parser.parse_args(argv)


def run(args, directory: Path) -> list[dict]:
    path = _data_file(args.data, args.dtype, directory)
    n_available, n_features = np.load(path, mmap_mode="r").shape
    if max(args.sizes) > n_available:
        raise SystemExit(f"--sizes asks for {max(args.sizes)} rows; {args.data} has {n_available}.")
    rows = []
    for n_rows in args.sizes:
        job = {"path": str(path), "n_rows": n_rows, "memmap": args.memmap, "seed": args.seed,
               "batch_size": args.batch_size, "device": args.device,
               "n_archetypes": BENCHMARK_SETS[args.data]["n_archetypes"]}
        rows.append({"n_rows": n_rows, **_in_child(_fit_rows, job)})
        print(f"  N={n_rows}: {rows[-1]}", file=sys.stderr, flush=True)
    mode = f"memmap, batch_size={args.batch_size}" if args.memmap else "in memory"
    print(f"\n### {args.data} prefixes, {n_features} features, {args.dtype}, "
          f"K={BENCHMARK_SETS[args.data]['n_archetypes']}, {mode}, "
          f"{len(os.sched_getaffinity(0))} cores\n")
    _table(rows, n_features, np.dtype(args.dtype).itemsize, args.memmap)
    return rows


def main(argv=None) -> None:
    args = parse_arguments(argv)
    if args.data_dir is None:
        with tempfile.TemporaryDirectory(prefix="skarchetype-scaling-") as directory:
            rows = run(args, Path(directory))
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        rows = run(args, args.data_dir)
    if args.json is None:
        args.json = RESULTS / ("scaling_memmap.json" if args.memmap else "scaling.json")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    arguments = {key: str(value) if isinstance(value, Path) else value
                 for key, value in vars(args).items()}
    args.json.write_text(json.dumps({"arguments": arguments, "rows": rows}, indent=1))
    print(f"\nPer-size figures: {args.json}")


if __name__ == "__main__":
    main()
