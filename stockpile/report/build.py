"""The report of a folder: the page of its kind, written as report.html, and its charts as PNG and
SVG for slides (``--figures DIR``, by vl-convert).
"""

from __future__ import annotations

from pathlib import Path

from stockpile.report.coalition import coalition_page
from stockpile.report.compare import compare_page
from stockpile.report.page import Page, render
from stockpile.report.response import response_page
from stockpile.report.saa import saa_page
from stockpile.report.solve import solve_page
from stockpile.report.study import study_page
from stockpile.results.outputs import atomic_write_text
from stockpile.results.runs import folder_kind


def build_report(folder: str | Path) -> Page:
    folder = Path(folder)
    kind = folder_kind(folder)
    pages = {"solve": solve_page, "study": study_page, "coalition": coalition_page, "saa": saa_page}
    return (pages | {"compare": compare_page, "response": response_page})[kind](folder)


def write_report(folder: str | Path, figures: str | Path | None = None) -> Path:
    """Write report.html into the folder (and each chart as PNG and SVG into figures)."""
    folder = Path(folder)
    page = build_report(folder)
    out = folder / "report.html"
    atomic_write_text(out, render(page))
    if figures:
        fig_dir = Path(figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, chart in page.charts.items():
            chart.save(str(fig_dir / f"{name}.svg"))
            chart.save(str(fig_dir / f"{name}.png"), scale_factor=2)
    return out
