"""Stage 8: the command line, a thin layer over the Python API.

The console script is ``stockpile.cli:main``.
"""

from stockpile.cli.app import cli as cli
from stockpile.cli.commands import main as main  # importing the commands registers them on cli

__all__ = ["cli", "main"]
