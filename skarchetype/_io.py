"""Output files written all or none: what the command line and the demo's report share.

A file is written to a hidden temporary name in its destination folder and renamed
into place (:func:`os.replace`, atomic on one file system) only once complete; several
files are renamed together only once all of them are complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


class OutputPathError(ValueError):
    """An output path that cannot be written; raised before any work is done."""


def check_output_path(path: str | os.PathLike, *, create_folder: bool = False) -> Path:
    """Fail early, before any long work, when ``path`` cannot be written.

    Parameters
    ----------
    path : path-like
        A file to be written (replaced if it exists).
    create_folder : bool, default=False
        Whether a missing folder will be created first (``mkdir -p``): then the nearest
        existing folder above it must be writable instead.

    Returns
    -------
    Path

    Raises
    ------
    OutputPathError
        When ``path`` is a folder, its folder is missing (and not to be created), a file,
        or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give a file name, e.g. {path / 'out.npy'}")
    folder = path.parent
    if not folder.is_dir():
        if not create_folder:
            raise OutputPathError(
                f"cannot write {path}: the folder {folder} does not exist; create it first "
                f"(mkdir -p {folder})"
            )
        folder = _nearest_existing(folder)
        if not folder.is_dir():
            raise OutputPathError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: no permission to write in {folder}")
    return path


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing so that it appears only once complete.

    The data goes to a hidden temporary file in the same folder, removed if the body
    raises; an existing file at ``path`` is then left as it was.
    """
    with atomic_outputs(path) as (handle,):
        yield handle


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[tuple[BinaryIO, ...]]:
    """Open several files for binary writing; all appear once the body has finished.

    If the body raises, none of them is written and existing files are left as they were.
    """
    paths = [check_output_path(path) for path in paths]
    temporaries = [path.with_name(f".{path.name}.{os.getpid()}.part") for path in paths]
    try:
        with contextlib.ExitStack() as stack:
            handles = tuple(stack.enter_context(open(part, "xb")) for part in temporaries)
            yield handles
        for part, path in zip(temporaries, paths, strict=True):
            os.replace(part, path)
    finally:
        for part in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
