"""Batch what-if studies: the study file, its cases, and study.csv.

A study file names a base config, a ``sweep`` (cartesian product of dotted keys)
and extra ``cases`` (overrides, or a YAML fragment deep-merged onto the base).
Every case is validated before any solve starts; the cases are solved by
``runner.run_cases`` (parallel, resumable: its docstring says who writes what).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError

from stockpile.analysis.runner import Case, Progress, Results, finished_summary, run_cases
from stockpile.config import (
    ConfigError,
    Problem,
    StrictModel,
    apply_overrides,
    deep_merge,
    problems_from,
    read_yaml,
    validate,
    with_bases,
)
from stockpile.enums import COST_KEYS
from stockpile.jsontypes import JSON
from stockpile.results.outputs import atomic_write_bytes, write_csv

CASE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class CaseSpec(StrictModel):
    """A named case: overrides and/or a fragment file applied to the base config."""

    name: str = Field(pattern=CASE_NAME, description="Case name, also its folder name.")
    set: dict[str, Any] = Field(default_factory=dict, description="Dotted-key overrides.")
    set_file: str | None = Field(
        None, description="YAML fragment deep-merged onto the base, path relative to the study file."
    )


class StudySpec(StrictModel):
    """A study: base config, sweep and extra cases."""

    base: str = Field(description="Base config, path relative to the study file.")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted key -> values; cases are their cartesian product."
    )
    cases: list[CaseSpec] = Field(default_factory=list, description="Extra named cases.")


def load_study(path: str | Path, overrides: Iterable[tuple[str, Any]] = ()) -> list[Case]:
    """Resolve and validate every case of a study file; one bad case fails it, named."""
    path = Path(path)
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem((), "expected a mapping with base, sweep and cases")], str(path))
    try:
        spec = StudySpec.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, doc, StudySpec), str(path)) from None
    base_path = path.parent / spec.base
    base_data, _ = with_bases(read_yaml(base_path))  # the config with its own base files under it
    if not isinstance(base_data, dict):
        raise ConfigError([Problem(("base",), f"{base_path} is not a config mapping")], str(path))
    extra = list(overrides) + [("solver.threads", 1)]  # one solver thread per worker
    keys = list(spec.sweep)
    combos = list(itertools.product(*spec.sweep.values())) if keys else [()]
    cases: list[tuple[str, JSON, JSON]] = []
    if keys or not spec.cases:
        width = max(3, len(str(len(combos))))
        for i, values in enumerate(combos):
            cases.append((f"sweep_{i + 1:0{width}d}" if keys else "base", dict(zip(keys, values)), base_data))
    for i, c in enumerate(spec.cases):
        raw = base_data
        if c.set_file:
            frag, _ = with_bases(read_yaml(path.parent / c.set_file))
            if not isinstance(frag, dict):
                raise ConfigError([Problem(("cases", i, "set_file"), "the fragment must be a mapping")], str(path))
            raw = deep_merge(raw, frag)
        cases.append((c.name, dict(c.set), raw))
    names = [c[0] for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError([Problem(("cases",), f"duplicate case names: {', '.join(dup)}")], str(path))
    out = []
    for name, sets, raw in cases:
        try:
            data = apply_overrides(raw, list(sets.items()) + extra, source=f"case {name}")
            cfg = validate(data, f"{path} case {name}")
        except ConfigError as exc:
            raise ConfigError(
                exc.problems, exc.source if exc.source and "case" in exc.source else f"{path} case {name}"
            ) from None
        cfg._provenance = {
            "source": str(base_path),
            "study": str(path),
            "case": name,
            "overrides": [[k, v] for k, v in sets.items()],
        }
        out.append(Case(name, sets, cfg))
    try:
        base_hash = validate(apply_overrides(base_data, extra), str(base_path)).hash()
    except ConfigError:
        base_hash = None  # a base that is incomplete on its own: only its cases are configs
    for case in out:
        case.is_base = case.hash == base_hash
    return out


# ----------------------------------------------------------------------------
# Rows


def study_row(case: Case, summary: JSON | None, error: str | None = None) -> JSON:
    """One study.csv row: the case, its overrides, status, costs, holdings and coverage."""
    row: dict[str, Any] = {"case": case.name}
    for k, v in case.overrides.items():
        row[k] = v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v)
    s = summary or {}
    row["status"] = s.get("status", "error")
    row["objective_usd"] = s.get("objective_usd")
    for k in COST_KEYS:
        row[k] = (s.get("costs") or {}).get(k)
    for p, v in (s.get("holding_t_by_participant") or {}).items():
        row[f"holding_t.{p}"] = v
    for p, per in (s.get("expected_coverage_days") or {}).items():
        for m, v in per.items():
            row[f"coverage_days.{p}.{m}"] = v
    for key in ("expected_recourse_usd", "var_recourse_usd", "cvar_recourse_usd", "expected_coverage_share"):
        row[key] = s.get(key)
    row["base"] = case.is_base
    row["gap"] = s.get("gap")
    row["solve_seconds"] = s.get("solve_seconds")
    if error or s.get("reasons"):
        row["message"] = error or "; ".join(s.get("reasons", []))
    return row


def write_table(out: Path, rows: list[JSON], name: str = "study") -> Path:
    df = pd.DataFrame(rows)
    write_csv(df, out / f"{name}.csv")
    buf = io.BytesIO()
    df.astype({c: "string" for c in df.columns if df[c].dtype == object}).to_parquet(buf, index=False)
    atomic_write_bytes(out / f"{name}.parquet", buf.getvalue())
    return out / f"{name}.csv"


# ----------------------------------------------------------------------------
# Running a study


def run_study(
    cases: list[Case],
    out: Path,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run a study and write study.csv and study.parquet; interrupted runs keep
    every finished case and rewrite the table before leaving."""
    results: Results = {}
    try:
        run_cases(cases, out, results, workers, scheduler, progress)
    finally:
        # a worker writes its case folder before the parent hears of it: an interrupt in between
        # leaves a finished case on disk that results do not hold yet, and it belongs in the table
        for c in cases:
            if c.name not in results and (done := finished_summary(out, c)) is not None:
                results[c.name] = (done, None)
        rows = [study_row(c, *results[c.name]) for c in cases if c.name in results]
        if rows:
            write_table(out, rows)
    return pd.DataFrame(rows)
