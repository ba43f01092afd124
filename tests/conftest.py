"""Shared fixtures, markers and reference solvers."""

import contextlib
import itertools
import os

# scikit-learn's array API check runs only when SciPy's array API support is switched on,
# which must happen before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# Property-based tests (test_properties.py): the same budget everywhere, drawn from a fixed
# seed in CI (reproducible, no example database) and at random elsewhere.
_BUDGET = {
    "max_examples": 20,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, **_BUDGET)
settings.register_profile("dev", **_BUDGET)
settings.register_profile("thorough", **{**_BUDGET, "max_examples": 500})
if settings.get_current_profile_name() == "default":  # unless --hypothesis-profile chose one
    settings.load_profile("ci" if os.environ.get("CI") else "dev")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@contextlib.contextmanager
def float32_search():
    """Fit data of any size as ArchetypalAnalysis fits large data: float32 data in
    float32, float64 data's starts in float32 under ``precision="mixed"`` (data of at
    most ``_FLOAT64_MAX_ENTRIES`` entries are fitted in float64 throughout)."""
    from skarchetype import _archetypal

    saved = _archetypal._FLOAT64_MAX_ENTRIES
    _archetypal._FLOAT64_MAX_ENTRIES = 0
    try:
        yield
    finally:
        _archetypal._FLOAT64_MAX_ENTRIES = saved


@pytest.fixture
def as_large_data():
    """:func:`float32_search` for the test."""
    with float32_search():
        yield


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def brute_force_simplex_least_squares(x, Z):
    """The exact optimum of ``min ||x - Z^T s||`` on the simplex, by trying every support."""
    best, best_error = None, np.inf
    for size in range(1, len(Z) + 1):
        for support in itertools.combinations(range(len(Z)), size):
            Zs = Z[list(support)]
            # KKT system of the equality-constrained least squares on this support
            kkt = np.block([[Zs @ Zs.T, np.ones((size, 1))], [np.ones((1, size)), 0]])
            solution = np.linalg.lstsq(kkt, np.append(Zs @ x, 1), rcond=None)[0][:size]
            if solution.min() < 0:
                continue
            error = ((x - solution @ Zs) ** 2).sum()
            if error < best_error:
                best, best_error = np.zeros(len(Z)), error
                best[list(support)] = solution
    return best
