"""skarchetype: explain what trained neural networks have learned, the scikit-learn way."""

from ._archetypal import ArchetypalAnalysis, archetypal_analysis

__version__ = "0.1.0"

__all__ = ["ArchetypalAnalysis", "archetypal_analysis"]
