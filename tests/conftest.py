"""Shared fixtures and markers."""

import os

# scikit-learn's array API check runs only when SciPy's array API support is switched on,
# which must happen before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
import torch

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
