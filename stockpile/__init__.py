"""stockpile: allied critical-mineral stockpile optimizer.

>>> from stockpile import load_config, solve
>>> result = solve(load_config("configs/us_japan.yaml"))

The names below load on first use, so ``stockpile --help`` does not pay for
pandas, scipy and the solvers.
"""

from __future__ import annotations

import importlib
from typing import Any

from stockpile.version import __version__

_LAZY = {
    "Config": "config",
    "ConfigError": "config",
    "load_config": "config",
    "solve": "api",
    "export_model": "api",
    "Result": "results.tables",
}
__all__ = ["Config", "ConfigError", "Result", "export_model", "load_config", "solve", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"stockpile.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'stockpile' has no attribute {name!r}")
