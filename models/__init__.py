"""FCN architectures, weights records and the model registry (no Ray here)."""

from .fusion import fold_batchnorm
from .registry import WEIGHTS, get_model, list_models, list_weights
from .shift_stitch import shift_and_stitch
from .vgg_fcn import convolutionalize
from .weights import Weights, WeightsError

__all__ = [
    "WEIGHTS",
    "Weights",
    "WeightsError",
    "convolutionalize",
    "fold_batchnorm",
    "get_model",
    "list_models",
    "list_weights",
    "shift_and_stitch",
]
