"""skarchetype: explain what trained neural networks have learned, the scikit-learn way."""

from ._archetypal import ArchetypalAnalysis, archetypal_analysis
from ._latent_response import LatentResponse
from ._layer_features import TorchLayerFeatures

__version__ = "0.1.0"

__all__ = ["ArchetypalAnalysis", "LatentResponse", "archetypal_analysis", "TorchLayerFeatures"]
