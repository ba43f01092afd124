"""Choosing the number of archetypes: explained variance and stability against K."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from .._archetypal import ArchetypalAnalysis
from ._parallel import fit_estimators
from ._stability import seed_stability


def elbow(n_archetypes, scores) -> int:
    """The K where an increasing, flattening curve bends most (the "kneedle" point).

    Both axes are scaled to [0, 1]; the elbow is the point furthest above the chord from
    the first point to the last.

    Parameters
    ----------
    n_archetypes : array-like of shape (n_candidates,)
        Increasing candidate values of K.
    scores : array-like of shape (n_candidates,)
        A score that grows with K, such as the explained variance.

    Returns
    -------
    int
    """
    n_archetypes = np.asarray(n_archetypes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if n_archetypes.shape != scores.shape or n_archetypes.ndim != 1 or len(n_archetypes) == 0:
        raise ValueError(
            "elbow expects two 1-D arrays of the same non-zero length, got shapes "
            f"{n_archetypes.shape} and {scores.shape}."
        )
    if len(n_archetypes) < 3 or np.ptp(scores) == 0:
        return int(n_archetypes[np.argmax(scores)])
    x = (n_archetypes - n_archetypes[0]) / np.ptp(n_archetypes)
    y = (scores - scores.min()) / np.ptp(scores)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(n_archetypes[np.argmax(y - chord)])


@dataclass
class ArchetypeSelection:
    """Explained variance and stability of archetypal analysis for each candidate K.

    Attributes
    ----------
    n_archetypes : ndarray of shape (n_candidates,)
        The candidate values of K.
    explained_variance : ndarray of shape (n_candidates, n_seeds)
        Centred explained variance of each fit (``explained_variance_``).
    stability : ndarray of shape (n_candidates,)
        Mean pairwise soft NMI between the seeds' coefficients (NaN with one seed).
    matched_cosine : ndarray of shape (n_candidates,)
        Mean cosine of Hungarian-matched archetypes over pairs of seeds (NaN with one seed).
    best_n_archetypes : int
        The elbow of the mean explained variance.
    """

    n_archetypes: np.ndarray
    explained_variance: np.ndarray
    stability: np.ndarray
    matched_cosine: np.ndarray
    best_n_archetypes: int

    @property
    def mean_explained_variance(self) -> np.ndarray:
        """Explained variance averaged over seeds, shape (n_candidates,)."""
        return self.explained_variance.mean(axis=1)


def select_n_archetypes(
    X,
    n_archetypes=range(2, 13),
    *,
    estimator=None,
    n_seeds: int = 5,
    random_state=None,
    n_jobs=None,
    verbose: int = 0,
) -> ArchetypeSelection:
    """Fit archetypal analysis for every K and seed; explained variance, stability and elbow.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features, e.g. the output of :class:`~skarchetype.TorchLayerFeatures`.
    n_archetypes : iterable of int, default=range(2, 13)
        Candidate values of K.
    estimator : ArchetypalAnalysis, optional
        Template whose other parameters every fit uses; ``n_archetypes`` and
        ``random_state`` are set per fit. Defaults to ``ArchetypalAnalysis()``.
    n_seeds : int, default=5
        Fits per K, from different seeds; stability needs at least 2.
    random_state : int, RandomState instance or None, default=None
        Draws the seeds (the same seeds for every K).
    n_jobs : int, default=None
        Fits run in parallel (joblib), each worker single-threaded.
    verbose : int, default=0
        joblib's progress messages.

    Returns
    -------
    ArchetypeSelection
    """
    candidates = np.array(sorted(set(int(k) for k in n_archetypes)))
    if len(candidates) == 0 or candidates[0] < 1:
        raise ValueError(
            f"n_archetypes must hold positive integers, got {list(n_archetypes)!r}."
        )
    if not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}.")
    template = ArchetypalAnalysis() if estimator is None else estimator
    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=n_seeds)
    unfitted = [
        clone(template).set_params(n_archetypes=int(k), random_state=int(seed))
        for k in candidates
        for seed in seeds
    ]
    fitted = fit_estimators(unfitted, X, n_jobs=n_jobs, verbose=verbose)
    by_k = [fitted[i * n_seeds : (i + 1) * n_seeds] for i in range(len(candidates))]
    explained_variance = np.array([[m.explained_variance_ for m in models] for models in by_k])
    stabilities = [seed_stability(models) if n_seeds > 1 else None for models in by_k]
    return ArchetypeSelection(
        n_archetypes=candidates,
        explained_variance=explained_variance,
        stability=np.array([s.mean_nmi if s else np.nan for s in stabilities]),
        matched_cosine=np.array([s.mean_cosine if s else np.nan for s in stabilities]),
        best_n_archetypes=elbow(candidates, explained_variance.mean(axis=1)),
    )


@dataclass
class SearchSelection:
    """The scores of a grid search over the number of archetypes, per K.

    Attributes
    ----------
    n_archetypes : ndarray of shape (n_candidates,)
    mean_score, std_score : ndarray of shape (n_candidates,)
        Cross-validated score per K (the best over the search's other parameters).
    best_n_archetypes : int
        The elbow of ``mean_score``.
    """

    n_archetypes: np.ndarray
    mean_score: np.ndarray
    std_score: np.ndarray
    best_n_archetypes: int


def selection_from_search(search, param: str = "aa__n_archetypes") -> SearchSelection:
    """Read the scores per K from a fitted :class:`~sklearn.model_selection.GridSearchCV`.

    Parameters
    ----------
    search : fitted GridSearchCV or RandomizedSearchCV
        Its parameter grid varies the number of archetypes.
    param : str, default="aa__n_archetypes"
        The name of that parameter in the grid (``"n_archetypes"`` when the search wraps an
        :class:`~skarchetype.ArchetypalAnalysis` directly).

    Returns
    -------
    SearchSelection
    """
    results = getattr(search, "cv_results_", None)
    if results is None or f"param_{param}" not in results:
        available = sorted(k[6:] for k in (results or {}) if k.startswith("param_"))
        raise ValueError(
            f"search has no results for param={param!r}; fit it first or pass one of "
            f"{available}."
        )
    values = np.asarray(results[f"param_{param}"], dtype=np.float64)
    means = np.asarray(results["mean_test_score"], dtype=np.float64)
    candidates = np.unique(values)
    best = [np.flatnonzero(values == k)[np.argmax(means[values == k])] for k in candidates]
    mean_score = means[best]
    return SearchSelection(
        n_archetypes=candidates.astype(int),
        mean_score=mean_score,
        std_score=np.asarray(results["std_test_score"], dtype=np.float64)[best],
        best_n_archetypes=elbow(candidates, mean_score),
    )
