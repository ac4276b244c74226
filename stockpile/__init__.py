"""stockpile: allied critical-mineral stockpile optimizer.

>>> from stockpile import load_config, solve
>>> result = solve(load_config("configs/us_japan.yaml"))
"""

__version__ = "0.1.0"

from .api import export_model, solve  # noqa: E402
from .config import Config, ConfigError, load_config  # noqa: E402
from .results import Result  # noqa: E402

__all__ = ["Config", "ConfigError", "Result", "export_model", "load_config", "solve", "__version__"]
