"""Choosing the number of archetypes: explained variance and stability against K."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import _num_samples

from .._archetypal import ArchetypalAnalysis
from .._torch import to_numpy
from ._checks import is_integer
from ._parallel import fit_estimators
from ._stability import seed_stability


def elbow(n_archetypes, scores) -> int:
    """The K where an increasing, flattening curve bends most (the "kneedle" point).

    Both axes are scaled to [0, 1]; the elbow is the point furthest above the chord from
    the first point to the last. The pairs are taken in increasing K, whatever their order.

    Parameters
    ----------
    n_archetypes : array-like of shape (n_candidates,)
        Distinct integer candidate values of K, in any order.
    scores : array-like of shape (n_candidates,)
        A finite score that grows with K, such as the explained variance.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When the arrays differ in length, a K is repeated or not an integer, or a score
        is NaN or infinite (drop failed fits first).
    """
    n_archetypes = np.asarray(to_numpy(n_archetypes))
    scores = np.asarray(to_numpy(scores), dtype=np.float64)
    if n_archetypes.shape != scores.shape or n_archetypes.ndim != 1 or len(n_archetypes) == 0:
        raise ValueError(
            "elbow expects two 1-D arrays of the same non-zero length, got shapes "
            f"{n_archetypes.shape} and {scores.shape}."
        )
    if n_archetypes.dtype.kind not in "iu":
        raise ValueError(f"n_archetypes must hold integers, got {n_archetypes.tolist()!r}.")
    if len(np.unique(n_archetypes)) != len(n_archetypes):
        raise ValueError(f"n_archetypes must be distinct, got {n_archetypes.tolist()!r}.")
    if not np.isfinite(scores).all():
        raise ValueError(
            f"scores must be finite, got {scores.tolist()!r}; drop the candidates whose score "
            "is NaN or infinite (failed fits) first."
        )
    order = np.argsort(n_archetypes, kind="stable")
    n_archetypes, scores = n_archetypes[order].astype(np.float64), scores[order]
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


@validate_params(
    {
        "n_seeds": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
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
        Candidate values of K, each from 1 to the number of samples.
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

    Raises
    ------
    ValueError
        When a candidate K is not an integer from 1 to the number of samples, before any fit.
    """
    candidates = _candidates(n_archetypes, _num_samples(X))
    n_seeds = int(n_seeds)
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


def _candidates(n_archetypes, n_samples: int) -> np.ndarray:
    """The distinct candidate Ks, sorted; read one by one, so that a huge range stops early."""
    if isinstance(n_archetypes, str) or not isinstance(n_archetypes, Iterable):
        raise ValueError(
            f"n_archetypes must be an iterable of integers such as range(2, 13), got "
            f"{n_archetypes!r}."
        )
    candidates = set()
    for k in n_archetypes:
        if not is_integer(k) or not 1 <= k <= n_samples:
            raise ValueError(
                f"n_archetypes must hold integers from 1 to the number of samples "
                f"({n_samples}), got {k!r}."
            )
        candidates.add(int(k))
    if not candidates:
        raise ValueError("n_archetypes is empty; pass candidate values of K such as range(2, 13).")
    return np.array(sorted(candidates))


@dataclass
class SearchSelection:
    """The scores of a grid search over the number of archetypes, per K.

    Attributes
    ----------
    n_archetypes : ndarray of shape (n_candidates,)
    mean_score, std_score : ndarray of shape (n_candidates,)
        Cross-validated score per K (the best over the search's other parameters); NaN
        for a K whose every fit failed (``error_score=np.nan``).
    best_n_archetypes : int
        The elbow of ``mean_score`` over the Ks with a finite score.
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

    Raises
    ------
    NotFittedError
        When ``search`` is not fitted.
    ValueError
        When ``param`` is not in its grid, or every fit failed.
    """
    results = getattr(search, "cv_results_", None)
    if results is None:
        raise NotFittedError(
            f"This {type(search).__name__} has no cv_results_; fit it before reading its scores."
        )
    if f"param_{param}" not in results:
        available = sorted(k[6:] for k in results if k.startswith("param_"))
        raise ValueError(f"search has no results for param={param!r}; pass one of {available}.")
    values = np.asarray(results[f"param_{param}"], dtype=np.float64)
    means = np.asarray(results["mean_test_score"], dtype=np.float64)
    candidates = np.unique(values)
    best = [_best_index(values == k, means) for k in candidates]
    mean_score = means[best]
    scored = np.isfinite(mean_score)
    if not scored.any():
        raise ValueError("every fit of the search failed (its scores are NaN); nothing to select.")
    candidates = candidates.astype(int)
    return SearchSelection(
        n_archetypes=candidates,
        mean_score=mean_score,
        std_score=np.asarray(results["std_test_score"], dtype=np.float64)[best],
        best_n_archetypes=elbow(candidates[scored], mean_score[scored]),
    )


def _best_index(rows: np.ndarray, means: np.ndarray) -> int:
    """The row of ``rows`` with the best finite mean score (the first if none is finite)."""
    indices = np.flatnonzero(rows)
    finite = np.isfinite(means[indices])
    if not finite.any():
        return int(indices[0])
    return int(indices[finite][np.argmax(means[indices][finite])])
