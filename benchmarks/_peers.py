"""One small adapter per archetypal-analysis tool, all with the same face.

``fit_tool(tool, X, n_archetypes, seed)`` runs one tool with its own default stopping
rule and returns a :class:`Factors` in one layout for all: coefficients S
(n_samples x n_archetypes), archetype weights C (n_archetypes x n_samples, dense or
scipy sparse) and archetypes Z (n_archetypes x n_features), plus the wall time of the
tool's fit call alone (layout changes before and after it are not timed).

Peers are float64 tools and receive float64 data; skarchetype receives ``X`` in the
dtype it is given. Every peer is optional: :func:`skip_reason` says why a tool cannot
run here (not installed, or its memory would not fit) instead of failing.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

TOOLS = ("py_pcha", "spams", "archetypes_pgd", "archetypes_nnls", "skarchetype")
REFERENCE_TOOL = "py_pcha"
_MODULES = {
    "py_pcha": "py_pcha",
    "spams": "spams",
    "archetypes_pgd": "archetypes",
    "archetypes_nnls": "archetypes",
    "skarchetype": "skarchetype",
}


@dataclass
class Factors:
    """``X ~ coefficients @ archetypes`` with ``archetypes = archetype_weights @ X``."""

    coefficients: np.ndarray
    archetype_weights: np.ndarray | sp.spmatrix
    archetypes: np.ndarray
    fit_seconds: float


def _import(module_name: str):
    # archetypes prints a banner on import; keep the benchmark's output a table.
    with contextlib.redirect_stdout(io.StringIO()):
        module = __import__(module_name)
    if module_name == "py_pcha" and not hasattr(np, "mat"):
        # py_pcha 0.1.3 calls np.mat, which NumPy 2 removed.
        np.mat = np.asmatrix  # noqa: NPY201
    return module


def _gram_matrix_fits(n_samples: int) -> bool:
    """Whether an n_samples x n_samples float64 matrix and one temporary fit in half the RAM."""
    physical_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 2 * 8 * n_samples**2 <= physical_bytes / 2


def skip_reason(tool: str, n_samples: int) -> str | None:
    """Why ``tool`` cannot run on ``n_samples`` rows here, or None when it can."""
    if tool not in TOOLS:
        raise ValueError(f"Unknown tool {tool!r}; choose among {TOOLS}.")
    try:
        _import(_MODULES[tool])
    except ImportError:
        return "not installed"
    if tool == "archetypes_pgd" and not _gram_matrix_fits(n_samples):
        return "skipped (N x N memory)"
    return None


@contextlib.contextmanager
def _c_stdout_silenced():
    """Send file descriptor 1 to /dev/null: SPAMS prints from C, past ``sys.stdout``."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C buffers must drain into /dev/null, not later.
        os.dup2(saved, 1)
        os.close(saved)


def _fit_py_pcha(X, n_archetypes, seed):
    py_pcha = _import("py_pcha")
    # py_pcha draws its start and its initial S from NumPy's global generator.
    np.random.seed(seed)  # noqa: NPY002
    features_by_samples = np.asarray(X, dtype=np.float64).T
    start = time.perf_counter()
    archetypes, coefficients, weights, _, _ = py_pcha.PCHA(features_by_samples, noc=n_archetypes)
    seconds = time.perf_counter() - start
    return Factors(np.asarray(coefficients).T, np.asarray(weights).T,
                   np.asarray(archetypes).T, seconds)


def _fit_spams(X, n_archetypes, seed):
    # SPAMS' default initialisation is deterministic: the seed does not change its run.
    spams = _import("spams")
    features_by_samples = np.asfortranarray(np.asarray(X, dtype=np.float64).T)
    with _c_stdout_silenced():
        start = time.perf_counter()
        archetypes, coefficients, weights = spams.archetypalAnalysis(
            features_by_samples, p=n_archetypes, returnAB=True
        )
        seconds = time.perf_counter() - start
    return Factors(coefficients.T.toarray(), weights.T.tocsr(), np.asarray(archetypes).T, seconds)


def _fit_archetypes(X, n_archetypes, seed, method):
    archetypes = _import("archetypes")
    model = archetypes.AA(n_archetypes=n_archetypes, method=method, random_state=seed)
    data = np.asarray(X, dtype=np.float64)
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    return Factors(model.coefficients_, model.arch_coefficients_, model.archetypes_, seconds)


def _fit_skarchetype(X, n_archetypes, seed, **params):
    skarchetype = _import("skarchetype")
    model = skarchetype.ArchetypalAnalysis(n_archetypes=n_archetypes, random_state=seed, **params)
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    return Factors(model.coefficients_, model.archetype_weights_, model.archetypes_, seconds)


def fit_tool(tool: str, X, n_archetypes: int, seed: int, **skarchetype_params) -> Factors:
    """Fit ``tool`` on ``X`` (n_samples x n_features) with ``n_archetypes`` and ``seed``.

    ``skarchetype_params`` (e.g. ``device``) go to ``ArchetypalAnalysis`` only.
    """
    if tool == "py_pcha":
        return _fit_py_pcha(X, n_archetypes, seed)
    if tool == "spams":
        return _fit_spams(X, n_archetypes, seed)
    if tool == "archetypes_pgd":
        return _fit_archetypes(X, n_archetypes, seed, method="pgd")
    if tool == "archetypes_nnls":
        return _fit_archetypes(X, n_archetypes, seed, method="nnls")
    if tool == "skarchetype":
        return _fit_skarchetype(X, n_archetypes, seed, **skarchetype_params)
    raise ValueError(f"Unknown tool {tool!r}; choose among {TOOLS}.")
