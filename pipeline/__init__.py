"""The Ray Data segmentation pipeline: sources, stages, sinks, run config, resume.

The names below load on first use, so light tools (the report) start without Ray and torch.
"""

import importlib

_EXPORTS = {
    "ConfigError": "config",
    "RunConfig": "config",
    "load_config": "config",
    "preflight": "run",
}  # the run function lives in pipeline.run (a name the submodule takes once imported)

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
