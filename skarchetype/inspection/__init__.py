"""Analyses of fitted archetypes: stability, choice of K, dataset independence, interpretation.

Every function takes plain arrays or fitted estimators and returns arrays or small
documented dataclasses.
"""

from ._explanation import LocalExplanation, explain_sample
from ._independence import DatasetIndependence, dataset_independence
from ._interpretation import (
    archetype_purity,
    class_composition,
    generating_samples,
    nearest_samples,
)
from ._selection import (
    ArchetypeSelection,
    SearchSelection,
    elbow,
    select_n_archetypes,
    selection_from_search,
)
from ._stability import (
    ArchetypeMatching,
    SeedStability,
    match_archetypes,
    seed_stability,
    soft_nmi,
)

__all__ = [
    "ArchetypeMatching",
    "ArchetypeSelection",
    "DatasetIndependence",
    "LocalExplanation",
    "SearchSelection",
    "SeedStability",
    "archetype_purity",
    "class_composition",
    "dataset_independence",
    "elbow",
    "explain_sample",
    "generating_samples",
    "match_archetypes",
    "nearest_samples",
    "seed_stability",
    "select_n_archetypes",
    "selection_from_search",
    "soft_nmi",
]
