"""Stage 8: the command line, a thin layer over the Python API.

The console script is ``stockpile.cli:main``.
"""

from stockpile.cli.commands import cli, main

__all__ = ["cli", "main"]
