"""Stage 7: reports people look at: one self-contained HTML page per run folder of any kind.

Reads only the files a run wrote (CSV, JSON, the resolved config), never the optimizer. ``page``
is the shell (sections, HTML, shared tables), ``charts`` the Altair specifications, and one module
per page kind (``solve``, ``study``, ``response``, ``compare``, ``coalition``, ``saa``) composes
them; ``build`` picks the page for a folder's kind.
"""

from stockpile.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
