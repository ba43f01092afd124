"""Whether archetypes found on one data set describe another one."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.base import clone
from sklearn.utils.validation import _num_features

from .._archetypal import ArchetypalAnalysis
from ._stability import ArchetypeMatching, match_archetypes, soft_nmi


@dataclass
class DatasetIndependence:
    """How well the archetypes of data set A describe data set B.

    Attributes
    ----------
    explained_variance_own : float
        Centred explained variance of B by its own archetypes, EV(B | Z_B).
    explained_variance_transferred : float
        Centred explained variance of B projected on A's archetypes, EV(B | Z_A).
    nmi : float
        Soft NMI between B's coefficients on A's archetypes and on its own.
    matching : ArchetypeMatching
        Hungarian matching of A's archetypes to B's, with their cosines.
    """

    explained_variance_own: float
    explained_variance_transferred: float
    nmi: float
    matching: ArchetypeMatching

    @property
    def explained_variance_ratio(self) -> float:
        """EV(B | Z_A) / EV(B | Z_B): near 1 when A's archetypes serve B as well as B's own."""
        return self.explained_variance_transferred / self.explained_variance_own


def dataset_independence(X_a, X_b, estimator=None) -> DatasetIndependence:
    """Fit archetypes on A and on B, project B on A's, and compare with B's own fit.

    Parameters
    ----------
    X_a : array-like of shape (n_samples_a, n_features)
        Features of the first data set.
    X_b : array-like of shape (n_samples_b, n_features)
        Features of the second data set, in the same feature space.
    estimator : ArchetypalAnalysis, optional
        Unfitted template, cloned for each data set. Defaults to ``ArchetypalAnalysis()``.

    Returns
    -------
    DatasetIndependence
    """
    if _num_features(X_a) != _num_features(X_b):
        raise ValueError(
            f"X_a and X_b must share their features, got {_num_features(X_a)} and "
            f"{_num_features(X_b)} columns; pass the same features of both data sets."
        )
    template = ArchetypalAnalysis() if estimator is None else estimator
    model_a = clone(template).fit(X_a)
    model_b = clone(template).fit(X_b)
    return DatasetIndependence(
        explained_variance_own=float(model_b.score(X_b)),
        explained_variance_transferred=float(model_a.score(X_b)),
        nmi=soft_nmi(model_a.transform(X_b), model_b.transform(X_b)),
        matching=match_archetypes(model_a.archetypes_, model_b.archetypes_),
    )
