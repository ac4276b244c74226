"""The one reader of an output folder: which kind it is, and a run's config and plan.

``outputs`` writes a run folder; the commands that take one (explain, evaluate, saa, simulate,
respond, report, check) read it back through here, so a file's name and meaning are stated once.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from stockpile.config import Config, read_yaml, validate
from stockpile.enums import has_plan
from stockpile.errors import OptionError
from stockpile.jsontypes import JSON
from stockpile.model.instance import OFFTAKE_KEY
from stockpile.results.outputs import CONFIG_FILE, FINISHED_FILE

log = logging.getLogger(__name__)

STATE_FILE = "state.resolved.yaml"  # a response folder's state, as resolved (stockpile respond)


class FolderKind(StrEnum):
    """The kinds of output folder, each told by the file only it has."""

    COALITION = "coalition"  # coalitions.csv
    COMPARE = "compare"  # compare.csv
    RESPONSE = "response"  # state.resolved.yaml
    SAA = "saa"  # saa.json
    STUDY = "study"  # study.csv
    SOLVE = "solve"  # summary.json with holdings.csv


_MARKS = (
    (FolderKind.COALITION, "coalitions.csv"),
    (FolderKind.COMPARE, "compare.csv"),
    (FolderKind.RESPONSE, STATE_FILE),
    (FolderKind.SAA, "saa.json"),
    (FolderKind.STUDY, "study.csv"),
)


def folder_kind(folder: Path) -> FolderKind:
    """Which kind of output folder this is (the first mark found, in _MARKS order)."""
    for kind, mark in _MARKS:
        if (folder / mark).exists():
            return kind
    if (folder / FINISHED_FILE).exists() and (folder / "holdings.csv").exists():
        return FolderKind.SOLVE
    raise FileNotFoundError(
        f"{folder} is not a solve, study or coalition output folder (nor a compare, SAA or respond one) "
        "(no summary.json with holdings.csv, study.csv or coalitions.csv)"
    )


def read_run_config(run_dir: Path) -> tuple[Config, JSON]:
    """The run's resolved config (validated) and its summary; a folder that is not a finished run is refused."""
    if not (run_dir / FINISHED_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise OptionError(f"{run_dir} is not a finished run folder (no {FINISHED_FILE} or {CONFIG_FILE})")
    summary = json.loads((run_dir / FINISHED_FILE).read_text())
    if not has_plan(summary.get("status")):
        raise OptionError(f"{run_dir}: the run has no plan (status {summary.get('status')}); nothing to explain")
    doc = read_yaml(run_dir / CONFIG_FILE)
    cfg = validate(doc.data, str(run_dir / CONFIG_FILE))
    return cfg, summary


def run_lots(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A run's first-stage plan: {participant: {mineral: lots}} (over a build-up, a list of the lots of
    each year) and, if it takes any, its offtake
    under "offtake": {participant: {project: t/yr}} (``api.offtake_array``)."""
    if (run_dir / "acquisitions.csv").exists():  # a build-up: the lots of each year, in year order
        acq = pd.read_csv(run_dir / "acquisitions.csv", keep_default_na=False).sort_values("year", kind="stable")
        plan: dict[str, dict[str, Any]] = {
            p: {m: [int(n) for n in gm.lots] for m, gm in g.groupby("mineral", sort=False)}
            for p, g in acq.groupby("participant", sort=False)
        }
    else:
        hold = pd.read_csv(run_dir / "holdings.csv", keep_default_na=False)
        plan = {p: {m: int(n) for m, n in zip(g.mineral, g.lots)} for p, g in hold.groupby("participant", sort=False)}
    if (run_dir / "offtake.csv").exists():
        off = pd.read_csv(run_dir / "offtake.csv", keep_default_na=False)
        plan[OFFTAKE_KEY] = {
            p: dict(zip(g.project, g.offtake_t_per_year.astype(float)))
            for p, g in off.groupby("participant", sort=False)
        }
    return plan
