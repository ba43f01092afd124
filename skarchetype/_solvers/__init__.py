"""The numerics of archetypal analysis, free of estimators: plain functions on tensors."""

from ._alternating import ArchetypeFit, carry_over, fit_archetypes, squared_error
from ._init import INITIALISATIONS
from ._rows import CentredRows
from ._simplex import simplex_least_squares

__all__ = [
    "INITIALISATIONS",
    "ArchetypeFit",
    "CentredRows",
    "carry_over",
    "fit_archetypes",
    "simplex_least_squares",
    "squared_error",
]
