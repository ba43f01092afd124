"""The ``skarchetype`` command line: the demo, and archetypal analysis of one's own data.

Every command either succeeds or leaves no output behind: files are written to a
temporary name in the destination folder and renamed into place only when complete.
User mistakes (a missing file, a table that is not 2-D, text where numbers should be,
an unreadable model) end with exit status 2 and one message on stderr that names the
file and says what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from ._io import atomic_output, atomic_outputs, check_output_path

TABLE_SUFFIXES = (".npy", ".csv", ".npz")
OUTPUT_SUFFIXES = (".npy", ".csv")


class CommandError(Exception):
    """A mistake in the command's input that the user can fix; reported without a traceback."""


# --------------------------------------------------------------------------- files


def check_suffix(path: Path, allowed: Sequence[str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise CommandError(
            f"{path}: {what} must end in one of {', '.join(allowed)}, got {suffix or 'no suffix'!r}"
        )
    return suffix


def save_table(array: np.ndarray, path: Path) -> None:
    """Write a 2-D array as ``.npy`` or ``.csv`` (chosen by the suffix), atomically."""
    suffix = check_suffix(path, OUTPUT_SUFFIXES, "the output")
    with atomic_output(path) as handle:
        if suffix == ".npy":
            np.save(handle, array, allow_pickle=False)
        else:
            np.savetxt(handle, array, delimiter=",", fmt="%.9g")


# --------------------------------------------------------------------------- input files


def load_table(path: str | os.PathLike, *, key: str | None = None) -> np.ndarray:
    """Read a finite numeric 2-D table from ``.npy``, ``.npz`` or ``.csv``.

    Raises
    ------
    CommandError
        When the file is missing or unreadable, not 2-D, not numeric, or not finite.
    """
    path = _existing_file(path, "data file", "check the path")
    suffix = check_suffix(path, TABLE_SUFFIXES, "the data file")
    if key is not None and suffix != ".npz":
        raise CommandError(
            f"--key {key!r} chooses an array of an .npz file, but {path} is {suffix}"
        )
    try:
        if suffix == ".csv":
            table = _read_csv(path)
        elif suffix == ".npz":
            table = _read_npz(path, key)
        else:
            table = np.load(path, allow_pickle=False)
    except CommandError:
        raise
    except (ValueError, OSError, EOFError) as error:
        message = f"{path} could not be read as {suffix} ({error}); {_NUMERIC_HINT}"
        raise CommandError(message) from None
    return _as_numeric_matrix(table, path)


def _existing_file(path: str | os.PathLike, what: str, hint: str) -> Path:
    """``path`` as a Path, refused when it is a folder or does not exist."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{path} is a folder, not a {what}; give the file inside it")
    if not path.is_file():
        raise CommandError(f"{path}: no such file; {hint} (working folder: {Path.cwd()})")
    return path


_NUMERIC_HINT = "the data must be a numeric table, one row per sample and one column per feature"


def _read_csv(path: Path) -> np.ndarray:
    """A comma-separated table of numbers, with an optional header line of column names.

    UTF-8, with or without the byte-order mark that spreadsheet programs write.
    """
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not any(_is_number(field) for field in lines[0].split(",")):
        lines = lines[1:]
    if not lines:
        raise CommandError(f"{path} holds no rows of data; {_NUMERIC_HINT}")
    return np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None:
            if len(names) != 1:
                raise CommandError(
                    f"{path} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                    "choose one with --key NAME"
                )
            key = names[0]
        if key not in names:
            raise CommandError(
                f"{path} has no array named {key!r}; it holds: {', '.join(names) or 'none'}"
            )
        return archive[key]


def _as_numeric_matrix(table: np.ndarray, path: Path) -> np.ndarray:
    if table.dtype.kind not in "biuf":
        raise CommandError(f"{path} holds {table.dtype} data, not numbers; {_NUMERIC_HINT}")
    if table.ndim != 2:
        raise CommandError(
            f"{path} holds an array of shape {table.shape}; {_NUMERIC_HINT} (2-D). "
            "Reshape it first, e.g. X.reshape(len(X), -1)"
        )
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise CommandError(f"{path} holds an empty table of shape {table.shape}")
    if table.dtype.kind != "f":
        table = table.astype(np.float64)
    if not np.isfinite(table).all():
        rows = np.flatnonzero(~np.isfinite(table).all(axis=1))
        raise CommandError(
            f"{path} contains NaN or infinite values in {len(rows)} row(s) (first: row {rows[0]}); "
            "remove or impute them first"
        )
    return table


def load_model(path: str | os.PathLike):
    """A fitted estimator saved by ``skarchetype fit`` (joblib; load only files you trust)."""
    import joblib
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    path = _existing_file(path, "model file", "create one with `skarchetype fit`")
    try:
        model = joblib.load(path)
    except Exception as error:  # unpickling can fail in many ways, all meaning "not a model"
        raise CommandError(
            f"{path} could not be read as a saved model ({type(error).__name__}: {error}); "
            "create it with `skarchetype fit ... --out model.joblib`"
        ) from None
    try:
        if not hasattr(model, "transform"):
            raise TypeError
        check_is_fitted(model)
    except (TypeError, NotFittedError):
        raise CommandError(
            f"{path} holds a {type(model).__name__}, not a fitted model with a transform method; "
            "create it with `skarchetype fit`"
        ) from None
    return model


# --------------------------------------------------------------------------- commands


def run_fit(args: argparse.Namespace) -> None:
    from ._archetypal import ArchetypalAnalysis

    output = check_output_path(args.out)
    _check_not_an_input(output, args.data)
    X = load_table(args.data, key=args.key)
    _check_at_most_samples(args.n_archetypes, "--n-archetypes", X, args.data)
    model = ArchetypalAnalysis(
        n_archetypes=args.n_archetypes,
        max_iter=args.max_iter,
        device=args.device,
        random_state=args.seed,
        verbose=args.verbose,
    )
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    _dump_model(model, output)
    print(
        f"fitted {args.n_archetypes} archetypes to {X.shape[0]} x {X.shape[1]} data "
        f"in {seconds:.1f} s ({model.n_iter_} iterations): "
        f"explained variance {model.explained_variance_:.4f}\n"
        f"saved the model to {output}"
    )


def _check_at_most_samples(n_archetypes: int, option: str, X: np.ndarray, path) -> None:
    if n_archetypes > X.shape[0]:
        raise CommandError(
            f"{path} has {X.shape[0]} rows, fewer than {option} {n_archetypes}; "
            "choose a smaller number of archetypes"
        )


def _check_not_an_input(output: Path, *inputs) -> None:
    """Refuse an output that would replace one of the command's own input files."""
    for path in inputs:
        if Path(path).is_file() and output.exists() and output.samefile(path):
            raise CommandError(
                f"--out {output} would overwrite the input {path}; choose another file"
            )


def _dump_model(model, path: Path) -> None:
    import joblib

    with atomic_output(path) as handle:
        joblib.dump(model, handle)


def run_transform(args: argparse.Namespace) -> None:
    output = Path(args.out)
    check_suffix(output, OUTPUT_SUFFIXES, "the output")
    check_output_path(output)
    _check_not_an_input(output, args.data, args.model)
    model = load_model(args.model)
    X = load_table(args.data, key=args.key)
    expected = getattr(model, "n_features_in_", X.shape[1])
    if X.shape[1] != expected:
        raise CommandError(
            f"{args.data} has {X.shape[1]} columns but the model in {args.model} was fitted on "
            f"{expected}; transform data with the same features as the fit"
        )
    coefficients = np.asarray(model.transform(X))
    save_table(coefficients, output)
    print(f"wrote the {coefficients.shape[0]} x {coefficients.shape[1]} coefficients to {output}")


SWEEP_FILES = ("sweep.csv", "sweep.png")


def run_sweep(args: argparse.Namespace) -> None:
    from ._archetypal import ArchetypalAnalysis
    from .inspection import select_n_archetypes

    _k_candidates(args.k)  # its syntax, before any file is read
    folder = Path(args.out) if args.out is not None else None
    if folder is not None:
        _check_output_folder(folder, SWEEP_FILES)
    X = load_table(args.data, key=args.key)
    ks = parse_k_range(args.k, max_k=X.shape[0], data=args.data)
    _check_sweep_memory(X.shape, ks, args.seeds)
    template = ArchetypalAnalysis(max_iter=args.max_iter, device=args.device)
    selection = select_n_archetypes(
        X,
        ks,
        estimator=template,
        n_seeds=args.seeds,
        random_state=args.seed,
        verbose=args.verbose,
    )
    print(format_sweep_table(selection))
    if folder is not None:
        _save_sweep(selection, folder)


def _check_output_folder(folder: Path, names: Sequence[str]) -> None:
    """Fail early when the files ``names`` cannot be written in ``folder`` (created if missing)."""
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"--out {folder} is a file; give a folder for {', '.join(names)}")
    for name in names:
        check_output_path(folder / name, create_folder=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(
            'the figures need matplotlib: pip install "skarchetype[plots]"'
        ) from None


def _check_sweep_memory(shape: tuple[int, int], ks: list[int], n_seeds: int) -> None:
    """Refuse a sweep whose fitted models (all kept until the end) cannot fit in memory."""
    n_samples, n_features = shape
    needed = 8 * (n_samples + n_features) * sum(ks) * n_seeds
    available = _physical_memory()
    if available is not None and needed > available // 2:
        raise CommandError(
            f"--k with {len(ks)} values up to {max(ks)} and --seeds {n_seeds} would keep about "
            f"{needed / 2**30:.0f} GiB of coefficients for {n_samples} samples, more than half "
            f"of this machine's {available / 2**30:.0f} GiB; sweep fewer or smaller K "
            "(e.g. --k 2:20) or fewer --seeds"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no bound to check
        return None


def parse_k_range(text: str, max_k: int | None = None, data=None) -> list[int]:
    """``"2:20"`` (inclusive), ``"2:20:2"`` or ``"2,4,8"`` as a sorted list of distinct Ks.

    With ``max_k`` (the number of rows of the file ``data``), a K above it is refused
    before the list is made, so that a huge range costs nothing.
    """
    ks = _k_candidates(text)
    if max_k is not None and ks[-1] > max_k:
        raise CommandError(
            f"--k {text!r} asks for up to {ks[-1]} archetypes, but {data} has only {max_k} "
            f"rows; choose K of at most {max_k}"
        )
    return list(ks)


def _k_candidates(text: str) -> range | list[int]:
    """The Ks of ``--k``, increasing and distinct; a range is not listed (it may be huge)."""
    try:
        if ":" in text:
            bounds = [int(part) for part in text.split(":")]
            if len(bounds) not in (2, 3):
                raise ValueError
            start, stop, step = (*bounds, 1) if len(bounds) == 2 else bounds
            ks = range(start, stop + (1 if step > 0 else -1), step)
            ks = ks if step > 0 else ks[::-1]
        else:
            ks = sorted({int(part) for part in text.split(",")})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise CommandError(
            f"--k {text!r} is not a range of positive numbers of archetypes; "
            "use START:STOP (inclusive), START:STOP:STEP or a list such as 2,4,8"
        )
    return ks


SWEEP_COLUMNS = ("n_archetypes", "explained_variance_mean", "explained_variance_std",
                 "stability_nmi", "matched_cosine")


def format_sweep_table(selection) -> str:
    """The sweep as aligned text columns, the elbow marked."""
    lines = [f"{'K':>4}  {'explained variance':>18}  {'NMI':>6}  {'cosine':>6}"]
    for k, ev_mean, ev_std, nmi, cosine in sweep_rows(selection):
        mark = "  <- elbow" if k == selection.best_n_archetypes else ""
        lines.append(
            f"{k:>4.0f}  {ev_mean:>9.4f} ± {ev_std:.4f}  {nmi:>6.3f}  {cosine:>6.3f}{mark}"
        )
    if selection.explained_variance.shape[1] < 2:
        lines.append("(stability needs --seeds 2 or more)")
    return "\n".join(lines)


def sweep_rows(selection) -> np.ndarray:
    """One row per K with the columns of :data:`SWEEP_COLUMNS`."""
    return np.column_stack([
        selection.n_archetypes,
        selection.explained_variance.mean(axis=1),
        selection.explained_variance.std(axis=1),
        selection.stability,
        selection.matched_cosine,
    ])


def _save_sweep(selection, folder: Path) -> None:
    """Write sweep.csv and sweep.png together, only once both are ready."""
    import matplotlib.pyplot as plt

    figure = _sweep_figure(selection)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_outputs(*(folder / name for name in SWEEP_FILES)) as (table, image):
            np.savetxt(table, sweep_rows(selection), delimiter=",",
                       header=",".join(SWEEP_COLUMNS), comments="", fmt="%.6g")
            figure.savefig(image, format="png", dpi=120)
    finally:
        plt.close(figure)
    print(f"saved {folder / 'sweep.csv'} and {folder / 'sweep.png'}")


def _sweep_figure(selection):
    from .plotting import plot_selection

    return plot_selection(selection, title="Explained variance and stability against K")


def run_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo as demo

    _check_output_folder(Path(args.out), ("index.html",))
    report = demo(args.out, quick=args.quick, device=args.device, random_state=args.seed)
    print(f"the report is at {report.resolve()}; open it in a browser")


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skarchetype",
        description="Explain what trained neural networks have learned: archetypal analysis "
        "and latent responses. Start with `skarchetype demo`.",
    )
    parser.add_argument("--version", action="version", version=f"skarchetype {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train small networks on built-in data and write an HTML report explaining them",
    )
    demo.add_argument("--out", default="demo-report", help="report folder (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a smaller version in under a minute")
    _add_common_options(demo, verbose=False)
    demo.set_defaults(run=run_demo)

    fit = commands.add_parser("fit", help="fit archetypes to a table and save the model")
    _add_data_argument(fit)
    fit.add_argument("--n-archetypes", "-k", type=_positive_int, required=True, metavar="K")
    fit.add_argument("--out", required=True, help="where to save the model (e.g. model.joblib)")
    fit.add_argument("--max-iter", type=_positive_int, default=1000, help="(default: %(default)s)")
    _add_common_options(fit)
    fit.set_defaults(run=run_fit)

    transform = commands.add_parser(
        "transform",
        help="the archetype coefficients of each row of a table, from a saved model",
    )
    transform.add_argument(
        "model", help="a model saved by `skarchetype fit` (load only files you trust)"
    )
    _add_data_argument(transform)
    transform.add_argument("--out", required=True, help="coefficients file, .npy or .csv")
    transform.set_defaults(run=run_transform)

    sweep = commands.add_parser(
        "sweep", help="explained variance and stability against the number of archetypes"
    )
    _add_data_argument(sweep)
    sweep.add_argument(
        "--k", default="2:12", help="START:STOP, START:STOP:STEP or 2,4,8 (default: %(default)s)"
    )
    sweep.add_argument(
        "--seeds", type=_positive_int, default=3, help="fits per K (default: %(default)s)"
    )
    sweep.add_argument("--out", help="folder for sweep.csv and sweep.png (default: print only)")
    sweep.add_argument("--max-iter", type=_positive_int, default=1000,
                       help="(default: %(default)s)")
    _add_common_options(sweep)
    sweep.set_defaults(run=run_sweep)
    return parser


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="a 2-D numeric table: .npy, .csv (optional header) or .npz")
    parser.add_argument("--key", help="which array of an .npz file (needed if it holds several)")


def _add_common_options(parser: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--seed", type=_seed, default=0, help="random seed, 0 to 2**32 - 1 (default: %(default)s)"
    )
    if verbose:
        parser.add_argument("--verbose", "-v", action="count", default=0, help="show progress")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"expected an integer seed from 0 to {2**32 - 1}, got {text!r}"
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    0 on success, 2 for a usage or input error, 1 when writing the output failed.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        _check_device(args.__dict__.get("device", "auto"))
        args.run(args)
    # ValueError: input the library refused (OutputPathError among them), in its own words
    except (CommandError, ValueError) as error:
        print(f"skarchetype {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine's fault (disk full, no permission), not the input's
        print(f"skarchetype {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _check_device(device: str) -> None:
    import torch

    from ._torch import resolve_device

    try:
        resolved = resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise CommandError(f"--device {device!r}: {error}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise CommandError(
            f"--device {device!r}: the command line computes on auto, cpu, cuda or cuda:N, "
            f"not on {resolved.type!r} devices"
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise CommandError(
            f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
            "device(s); use cuda:0 to cuda:N-1, or auto"
        )
