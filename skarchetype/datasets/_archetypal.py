"""Data with planted archetypes, the benchmark protocol's synthetic sets."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

BENCHMARK_SETS = {
    "synth20k": dict(n_samples=20_000, n_features=128, n_archetypes=12, concentration=0.5,
                     noise=0.05),
    "relu50k": dict(n_samples=50_000, n_features=512, n_archetypes=20, concentration=0.5,
                    noise=0.1, relu=True),
    "relu30k": dict(n_samples=30_000, n_features=96, n_archetypes=10, concentration=0.5,
                    noise=0.1, relu=True),
    "planted": dict(n_samples=20_000, n_features=64, n_archetypes=8, concentration=0.1,
                    noise=0.01, plant=True),
    "relu1m": dict(n_samples=1_000_000, n_features=512, n_archetypes=20, concentration=0.5,
                   noise=0.1, relu=True),
}


def make_archetypal_data(
    n_samples: int = 1000,
    n_features: int = 16,
    n_archetypes: int = 4,
    *,
    concentration: float = 0.5,
    noise: float = 0.05,
    relu: bool = False,
    plant: bool = False,
    dtype=np.float64,
    random_state=None,
):
    """Samples that are noisy convex combinations of random archetypes.

    The archetypes are ``Z ~ N(0, I)``; each sample's weights are
    ``Dirichlet(concentration * 1)``; ``X = W Z + N(0, noise^2)``.

    Parameters
    ----------
    n_samples, n_features, n_archetypes : int
        Shape of ``X`` and the number of true archetypes.
    concentration : float, default=0.5
        Dirichlet concentration; small values put samples near the archetypes.
    noise : float, default=0.05
        Standard deviation of the additive Gaussian noise.
    relu : bool, default=False
        Apply ``max(0, .)`` after the noise (non-negative data like pooled CNN features).
    plant : bool, default=False
        Replace the first ``n_archetypes`` rows of ``X`` by the exact archetypes.
    dtype : {np.float64, np.float32}, default=np.float64
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    archetypes : ndarray of shape (n_archetypes, n_features)
        The true archetypes ``Z``.
    weights : ndarray of shape (n_samples, n_archetypes)
        The true mixing weights ``W`` (one-hot for planted rows).

    Examples
    --------
    >>> from skarchetype.datasets import make_archetypal_data
    >>> X, Z, W = make_archetypal_data(100, 5, 3, random_state=0)
    >>> X.shape, Z.shape, W.shape
    ((100, 5), (3, 5), (100, 3))
    """
    rng = check_random_state(random_state)
    archetypes = rng.standard_normal((n_archetypes, n_features))
    weights = rng.dirichlet(np.full(n_archetypes, concentration), size=n_samples)
    X = weights @ archetypes
    X += noise * rng.standard_normal(X.shape)
    if relu:
        np.maximum(X, 0.0, out=X)
    if plant:
        X[:n_archetypes] = archetypes
        weights[:n_archetypes] = np.eye(n_archetypes)
    return X.astype(dtype, copy=False), archetypes, weights


def load_benchmark_data(name: str, *, dtype=np.float64, random_state=0):
    """One of the benchmark protocol's synthetic sets by name (see ``BENCHMARK_SETS``).

    ``"digits"`` returns scikit-learn's raw 0-16 digits pixels with no true archetypes.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    archetypes : ndarray of shape (n_archetypes, n_features) or None
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(dtype), None
    if name not in BENCHMARK_SETS:
        raise ValueError(
            f"Unknown benchmark data set {name!r}; choose 'digits' or one of "
            f"{sorted(BENCHMARK_SETS)}."
        )
    X, archetypes, _ = make_archetypal_data(
        **BENCHMARK_SETS[name], dtype=dtype, random_state=random_state
    )
    return X, archetypes
