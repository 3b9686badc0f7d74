"""FCN architectures, weights records and the model registry (no Ray here)."""

from .registry import WEIGHTS, get_model, list_models, list_weights
from .shift_stitch import shift_and_stitch
from .vgg_fcn import convolutionalize
from .weights import Weights, WeightsError

__all__ = [
    "WEIGHTS",
    "Weights",
    "WeightsError",
    "convolutionalize",
    "get_model",
    "list_models",
    "list_weights",
    "shift_and_stitch",
]
