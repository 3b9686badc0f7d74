"""FCN architectures, weights records and the model registry (no Ray here).

The names below load on first use, so ``models.names`` (and the command line's ``--help``) start
without importing torch.
"""

import importlib

_EXPORTS = {
    "WEIGHTS": "registry",
    "Weights": "weights",
    "WeightsError": "weights",
    "convolutionalize": "vgg_fcn",
    "fold_batchnorm": "fusion",
    "get_model": "registry",
    "list_models": "registry",
    "list_weights": "registry",
    "shift_and_stitch": "shift_stitch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    try:  # a submodule not imported yet: models.registry, models.weights, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'models' has no attribute {name!r}") from None
