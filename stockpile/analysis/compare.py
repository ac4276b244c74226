"""The optimised arrangement against the rules countries use today (``stockpile compare``).

Each allocation rule (``allocation``: optimised, days, prorata, alone) is one case of the same
config, solved by the study runner (parallel, resumable). The value of complementarity of a
rule is its expected cost minus the optimised arrangement's, for the same budgets and limits:
never negative, since every rule's plan is one the optimised model could have chosen (alone
drops lending, the others fix the lots). A rule the limits cannot afford is infeasible, and
its row says which limit breaks and by how much.

compare.csv: rule, status, objective_usd, complementarity_value_usd, each cost part of
summary.json's costs, cost_usd.<participant>, coverage_days.<participant>.<mineral>
(expected, given a disruption), worst_coverage_share.<participant>.<mineral>, reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from stockpile.analysis.runner import Case
from stockpile.config import Config, validate
from stockpile.enums import COST_KEYS, Allocation, has_plan, values
from stockpile.jsontypes import JSON

RULES = values(Allocation)
# the rules that fix one holding: over a build-up (horizon.years > 1) they do not say when to buy it
ONE_HOLDING = (Allocation.DAYS, Allocation.PRORATA)
NOT_OVER_YEARS = (
    "a rule that fixes one holding (days, prorata) does not say in which years to buy it: not defined over a "
    "build-up (horizon.years > 1)"
)


def compare_cases(cfg: Config) -> list[Case]:
    """One case per allocation rule of the same config (one solver thread each: they run in parallel);
    over a build-up only optimised and alone."""
    resolved = cfg.resolved_dict()
    resolved["solver"] = {**resolved["solver"], "threads": 1}
    cases = []
    for rule in RULES:
        if cfg.horizon.years > 1 and rule in ONE_HOLDING:
            continue
        sub = validate({**resolved, "allocation": rule}, f"allocation {rule}")
        sub._provenance = {**cfg.provenance, "allocation": rule}
        cases.append(Case(rule, {"allocation": rule}, sub, is_base=rule == Allocation.OPTIMISED))
    return cases


def compare_table(out: Path, summaries: dict[str, JSON | None]) -> pd.DataFrame:
    """compare.csv's rows, in rule order, from each case's summary and expected coverage."""
    rows = []
    for rule in RULES:
        if rule not in summaries and rule in ONE_HOLDING:
            rows.append({"rule": rule, "status": "not_defined", "reasons": NOT_OVER_YEARS})
            continue
        s = summaries.get(rule) or {}
        row: dict[str, Any] = {
            "rule": rule,
            "status": s.get("status", "error"),
            "objective_usd": s.get("objective_usd"),
        }
        row.update({k: (s.get("costs") or {}).get(k) for k in COST_KEYS})
        for p, c in (s.get("costs_by_participant") or {}).items():
            row[f"cost_usd.{p}"] = c["total_usd"]
        for p, per in (s.get("expected_coverage_days") or {}).items():
            for m, days in per.items():
                row[f"coverage_days.{p}.{m}"] = days
        expected = out / "cases" / rule / "expected_coverage.csv"
        if has_plan(s.get("status")) and expected.is_file():
            for r in pd.read_csv(expected, keep_default_na=False).itertuples():
                row[f"worst_coverage_share.{r.participant}.{r.mineral}"] = r.worst_coverage_share
        row["reasons"] = "; ".join(s.get("reasons") or [])
        rows.append(row)
    table = pd.DataFrame(rows)
    best = table.objective_usd[table.rule == Allocation.OPTIMISED].iloc[0]
    table.insert(3, "complementarity_value_usd", table.objective_usd - best)
    return table


def headline(table: pd.DataFrame) -> dict[str, Any]:
    """What complementarity is worth against each rule, in one mapping (compare.json)."""
    out: dict[str, Any] = {}
    for r in table.itertuples():
        feasible = has_plan(r.status)
        out[r.rule] = {
            "status": r.status,
            "objective_usd": r.objective_usd if feasible else None,
            "complementarity_value_usd": r.complementarity_value_usd if feasible else None,
            "reasons": r.reasons,
        }
    return out


def write_compare(out: Path, table: pd.DataFrame) -> None:
    from stockpile.results.outputs import write_csv, write_json

    write_csv(table, out / "compare.csv")
    write_json(headline(table), out / "compare.json")
