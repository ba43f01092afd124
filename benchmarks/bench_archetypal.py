"""Archetypal analysis tools side by side: time, explained variance, feasibility, recovery.

Every fit (one tool, one data set, one seed) runs in a fresh child process, one at a
time, so that a crash or a run past the time budget costs only that fit and the child's
memory high-water mark belongs to that fit alone. Each child loads the data, warms the
tool up on the first rows (one-off library start-up is not the algorithm's cost), times
the tool's fit call with ``time.perf_counter`` and scores the result with the one scorer
of ``_scoring.py``.

Run ``python benchmarks/bench_archetypal.py --help`` for the options; the protocol is in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
from _peers import REFERENCE_TOOL, TOOLS, fit_tool, skip_reason
from _scoring import score_fit

from skarchetype.datasets import BENCHMARK_SETS, load_benchmark_data

DATA_SETS = ("digits", "synth20k", "relu50k", "relu30k", "planted")
N_ARCHETYPES = {"digits": 10,
                **{name: spec["n_archetypes"] for name, spec in BENCHMARK_SETS.items()}}
# The warm-up fits the first rows, at least this many and enough for this many entries:
# skarchetype fits data of at most 2**18 entries in float64 throughout, so a smaller
# warm-up left its float32 search cold (synth20k float64: 0.45-0.50 s a fit after 256
# rows, 0.23-0.27 s after 3000, in fresh processes)
WARM_UP_ROWS, WARM_UP_ENTRIES = 256, 2**19
# Loading, warming up and scoring happen in the child too; allow them this long on top.
CHILD_OVERHEAD_SECONDS = 120
# Warnings about library versions say nothing about the fit; the rest are reported.
_API_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "archetypal.json"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def _fit_and_score(connection, job: dict) -> None:
    """Child process: one tool, one seed; sends back the figures or the error."""
    try:
        X = np.load(job["data_path"])
        rss_with_data = _peak_rss_mib()
        warm_up_rows = max(WARM_UP_ROWS, -(-WARM_UP_ENTRIES // X.shape[1]))
        fit_tool(job["tool"], X[:warm_up_rows], job["n_archetypes"], job["seed"], **job["params"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            factors = fit_tool(job["tool"], X, job["n_archetypes"], job["seed"], **job["params"])
        fit_memory = _peak_rss_mib() - rss_with_data
        del X
        reference_X = np.load(job["reference_path"], mmap_mode="r")
        truth = None if job["truth_path"] is None else np.load(job["truth_path"])
        scores = score_fit(reference_X, factors.coefficients, factors.archetype_weights,
                           factors.archetypes, truth)
        connection.send({"status": "ok", "fit_seconds": factors.fit_seconds,
                         "fit_memory_mib": fit_memory, **scores,
                         "warnings": sorted({warning.category.__name__ for warning in caught
                                             if not issubclass(warning.category, _API_WARNINGS)})})
    except Exception as error:  # the parent reports any failure of a peer as a table row
        connection.send({"status": "failed", "error": f"{type(error).__name__}: {error}"})
    finally:
        connection.close()


def _run_in_child(job: dict, budget_seconds: float) -> dict:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_fit_and_score, args=(sender, job))
    child.start()
    sender.close()
    finished = receiver.poll(budget_seconds + CHILD_OVERHEAD_SECONDS)
    try:
        result = receiver.recv() if finished else {
            "status": "timeout", "error": f"killed: over {budget_seconds:g} s"}
    except EOFError:  # the child died without a word
        result = None
    if not finished:
        child.kill()
    child.join()
    receiver.close()
    return result or {"status": "crashed", "error": f"crashed (exit code {child.exitcode})"}


def _store_data(name: str, dtypes: set, directory: Path) -> dict:
    """Write the data set in each dtype (and its true archetypes) to .npy files."""
    paths = {}
    for dtype in dtypes | {"float64"}:
        X, truth = load_benchmark_data(name, dtype=np.dtype(dtype), random_state=0)
        paths[dtype] = directory / f"{name}_{dtype}.npy"
        np.save(paths[dtype], X)
    paths["truth"] = None
    # After max(0, .) the vertices of the data are no longer the generating archetypes.
    if truth is not None and not BENCHMARK_SETS[name].get("relu", False):
        paths["truth"] = directory / f"{name}_truth.npy"
        np.save(paths["truth"], truth)
    paths["shape"] = X.shape
    return paths


def _run_seed(tool, dtype, name, paths, seed, args) -> dict:
    """One tool on one data set with one seed, in a child process."""
    params = {"device": args.device} if tool == "skarchetype" else {}
    job = {"tool": tool, "seed": seed, "n_archetypes": N_ARCHETYPES[name], "params": params,
           "data_path": str(paths[dtype]), "reference_path": str(paths["float64"]),
           "truth_path": None if paths["truth"] is None else str(paths["truth"])}
    run = {"data": name, "tool": tool, "dtype": dtype, "seed": seed,
           **_run_in_child(job, args.budget)}
    print(f"  {tool} ({dtype}) seed {seed}: {_one_line(run)}", file=sys.stderr, flush=True)
    return run


def _runs_by_tool(variants, name, paths, args) -> dict:
    """Every seed of every (tool, dtype), ``args.repeats`` times, seed by seed: all tools
    run one seed before any runs the next, so a drift of the machine's speed affects them
    alike. A tool stops after a fit past the budget."""
    runs = {}
    for tool, dtype in variants:
        reason = skip_reason(tool, paths["shape"][0])
        runs[tool, dtype] = [] if reason is None else [
            {"data": name, "tool": tool, "dtype": dtype, "seed": None, "status": "skipped",
             "error": reason}]
    running = [variant for variant in variants if not runs[variant]]
    for seed in args.seeds:
        for _ in range(args.repeats):
            for tool, dtype in list(running):
                run = _run_seed(tool, dtype, name, paths, seed, args)
                runs[tool, dtype].append(run)
                if run["status"] == "timeout" or run.get("fit_seconds", 0) > args.budget:
                    running.remove((tool, dtype))
    return runs


def _one_line(run: dict) -> str:
    if run["status"] != "ok":
        return run["error"]
    return f"{run['fit_seconds']:.3g} s, EV {run['ev']:.5f}"


def _format(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _grouped_by_seed(seeds_and_messages) -> list[str]:
    """``["message (seeds 0, 2)", ...]``: each message once, with the seeds it came from."""
    seeds = {}
    for seed, message in seeds_and_messages:
        seeds.setdefault(message, []).append(seed)
    return [message if seeds_of_message == [None]
            else f"{message} (seeds {', '.join(map(str, seeds_of_message))})"
            for message, seeds_of_message in seeds.items()]


def _summary(runs: list[dict], reference: dict | None, args) -> dict:
    """Medians and worst cases over the seeds of one tool, against the reference tool."""
    done = [run for run in runs if run["status"] == "ok"]
    notes = _grouped_by_seed([(run["seed"], run["error"]) for run in runs if run["status"] != "ok"]
                             + [(run["seed"], name) for run in done for name in run["warnings"]])
    if not done:
        return {"note": "; ".join(notes)}
    if len(runs) < len(args.seeds) * args.repeats and len(done) == len(runs):
        notes.append(f"stopped after {len(done)} fit(s): over {args.budget:g} s")
    seconds = statistics.median(run["fit_seconds"] for run in done)  # over seeds and repeats
    evs = [run["ev"] for run in done]
    recoveries = [run["recovery"] for run in done if run["recovery"] is not None]
    summary = {
        "seeds": len({run["seed"] for run in done}), "seconds": seconds,
        "ev_median": statistics.median(evs),
        "ev_min": min(evs), "simplex": "yes" if all(r["simplex_ok"] for r in done) else "NO",
        "recovery": statistics.median(recoveries) if recoveries else None,
        "memory": max(run["fit_memory_mib"] for run in done), "note": "; ".join(notes),
    }
    if reference is not None and "seconds" in reference:
        summary["speedup"] = reference["seconds"] / seconds
        summary["delta_median"] = summary["ev_median"] - reference["ev_median"]
        summary["delta_worst"] = summary["ev_min"] - reference["ev_median"]
        # the unexplained variance (SSE) against the reference's: the protocol's quality
        reference_sse = max(1 - reference["ev_median"], 1e-300)
        summary["sse_median"] = (1 - summary["ev_median"]) / reference_sse
        summary["sse_worst"] = (1 - summary["ev_min"]) / reference_sse
    return summary


COLUMNS = ("tool", "X dtype", "seeds", "fit s (median)", "speed-up vs py_pcha", "EV median",
           "EV min", "ΔEV median", "ΔEV worst", "SSE / py_pcha (median)", "SSE / py_pcha (worst)",
           "simplex", "recovery", "fit MiB", "note")


def _table_row(tool: str, dtype: str, summary: dict) -> list[str]:
    if "seconds" not in summary:
        return [tool, dtype] + ["-"] * (len(COLUMNS) - 3) + [summary["note"]]
    return [tool, dtype, str(summary["seeds"]), _format(summary["seconds"], ".3g"),
            _format(summary.get("speedup"), ".2f"), _format(summary["ev_median"], ".5f"),
            _format(summary["ev_min"], ".5f"), _format(summary.get("delta_median"), "+.5f"),
            _format(summary.get("delta_worst"), "+.5f"), _format(summary.get("sse_median"), ".5f"),
            _format(summary.get("sse_worst"), ".5f"), summary["simplex"],
            _format(summary["recovery"], ".4f"), _format(summary["memory"], ".0f"),
            summary["note"]]


def _print_table(title: str, rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells):
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    print(f"\n### {title}\n")
    print(line(COLUMNS))
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        print(line(row))


def _tool_variants(tools, dtypes):
    """(tool, dtype) pairs: peers in float64, skarchetype in every dtype asked."""
    for tool in tools:
        for dtype in (dtypes if tool == "skarchetype" else ["float64"]):
            yield tool, dtype


def benchmark_data_set(name: str, args, directory: Path) -> list[dict]:
    """Run every tool on one data set, print its table, return the per-seed runs."""
    paths = _store_data(name, set(args.dtype), directory)
    n_samples, n_features = paths["shape"]
    print(f"{name}: {n_samples} x {n_features}, K={N_ARCHETYPES[name]}", file=sys.stderr)
    tools = sorted(args.tools, key=lambda tool: tool != REFERENCE_TOOL)  # reference first
    runs = _runs_by_tool(list(_tool_variants(tools, args.dtype)), name, paths, args)
    summaries = {}
    for variant, variant_runs in runs.items():
        summaries[variant] = _summary(variant_runs, summaries.get((REFERENCE_TOOL, "float64")),
                                      args)
    title = f"{name} ({n_samples} x {n_features}, K={N_ARCHETYPES[name]})"
    _print_table(title, [_table_row(tool, dtype, summary)
                         for (tool, dtype), summary in summaries.items()])
    return [run for variant_runs in runs.values() for run in variant_runs]


def machine_description(device: str) -> dict:
    """Cores, library versions and BLAS threading of this machine."""
    import torch
    from threadpoolctl import threadpool_info

    versions = {}
    for package in ("numpy", "torch", "scipy", "scikit-learn", "skarchetype", "py_pcha",
                    "archetypes", "spams-bin"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "skarchetype_device": device,
        "blas": sorted({f"{pool['internal_api']} ({pool['num_threads']} threads)"
                        for pool in threadpool_info()}),
        "versions": versions,
    }


def _print_machine(machine: dict) -> None:
    print(f"Machine: {machine['usable_cores']} usable cores (cpu_count {machine['cpu_count']}), "
          f"{machine['processor']}, Python {machine['python']}, "
          f"torch threads {machine['torch_threads']}, CUDA: {machine['cuda']}, "
          f"skarchetype device={machine['skarchetype_device']!r}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))
    print("BLAS: " + ", ".join(machine["blas"]))
    _print_load(machine["usable_cores"])


def _print_load(cores: int) -> None:
    """Load average: on a busy machine BLAS threads wait on each other and times mean little."""
    load = os.getloadavg()[0]
    warning = f" -- busier than its {cores} cores: times are not reliable" if load > cores else ""
    print(f"Load average (1 min): {load:.2f}{warning}")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(DATA_SETS),
                        choices=["digits", *BENCHMARK_SETS])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=1,
                        help="fits per tool and seed, each in a fresh process; times are the "
                             "median over all of them")
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"], help="dtypes of X for skarchetype")
    parser.add_argument("--device", default="auto", help="skarchetype's device parameter")
    parser.add_argument("--budget", type=float, default=180.0,
                        help="seconds per fit; a tool past it is not run on further seeds")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="per-seed figures")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_arguments(argv)
    machine = machine_description(args.device)
    _print_machine(machine)
    runs = []
    with tempfile.TemporaryDirectory(prefix="skarchetype-bench-") as directory:
        for name in args.data:
            runs += benchmark_data_set(name, args, Path(directory))
    _print_load(machine["usable_cores"])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nPeak memory: this process {_peak_rss_mib():.0f} MiB, "
          f"largest child {children:.0f} MiB (ru_maxrss)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "arguments": vars(args) | {
        "json": str(args.json)}, "runs": runs}, indent=1))
    print(f"Per-seed figures: {args.json}")


if __name__ == "__main__":
    main()
