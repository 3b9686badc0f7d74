"""The Ray Data segmentation pipeline: sources, stages, sinks, run config, resume."""

from .config import ConfigError, RunConfig, load_config
from .run import preflight, run

__all__ = ["ConfigError", "RunConfig", "load_config", "preflight", "run"]
