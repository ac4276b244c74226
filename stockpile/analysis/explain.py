"""What each limit is worth and what planning for uncertainty is worth (``stockpile explain``).

Reads a finished run folder and answers, from re-solves of its ``config.resolved.yaml``:

* ``limits.csv``: every limit the config sets (``limits.limit_table``) with
  ``dual_usd_per_unit``, the LP dual with the run's lots fixed (dollars saved per unit the
  limit is relaxed: release_rate_max, reserve_floor and lending_max_share act on the
  continuous recourse; budgets, storage, acquisition ceilings and min_days act only on whole
  lots, where an LP dual means nothing, so it is left empty), and ``delta_objective_usd``,
  the optimum with only this limit relaxed by ``step`` minus the run's objective (negative:
  relaxing it saves), solved to the run's gap;
* ``explain.json``: RP, WS, EVPI, EV, EEV and VSS as defined in docs/model.md.

Every re-solve is a study case (``explain/cases/<name>``), run in parallel by the study
runner, so an interrupted explain keeps what it finished and resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpile.analysis.runner import Case, Progress, Results, run_cases
from stockpile.config import Config, apply_overrides, validate
from stockpile.enums import has_plan
from stockpile.errors import OptionError
from stockpile.jsontypes import JSON
from stockpile.model.instance import DAYS_PER_YEAR, Instance, build_instance
from stockpile.results.limits import LIMIT_COLUMNS, Limit
from stockpile.results.outputs import CONFIG_FILE, write_csv, write_json
from stockpile.results.runs import read_run_config, run_lots

log = logging.getLogger(__name__)

EXPLAIN_DIR = "explain"
LIMITS_FILE = "limits.csv"
EXPLAIN_FILE = "explain.json"
EXPLAIN_COLUMNS = [*LIMIT_COLUMNS, "dual_usd_per_unit", "step", "relaxed_value", "delta_objective_usd", "override"]

# relaxing step per limit kind: (size, relative?) -- relative steps are a share of the value
DEFAULT_STEPS: dict[str, tuple[float, bool]] = {
    Limit.BUDGET: (0.10, True),
    Limit.STORAGE: (0.10, True),
    Limit.ACQUISITION: (0.10, True),
    Limit.RATE: (0.10, True),
    Limit.MIN_DAYS: (0.10, True),
    Limit.FLOOR: (0.05, False),
    Limit.LENDING: (0.10, False),
    Limit.CAPACITY: (0.10, True),
    Limit.FLOOR_PRICE: (0.10, True),
}
# limits that are lower bounds: relaxing them lowers the value
LOWER_LIMITS = (Limit.MIN_DAYS, Limit.FLOOR, Limit.FLOOR_PRICE)
# shares cannot leave [0, 1]
SHARE_LIMITS = (Limit.RATE, Limit.FLOOR, Limit.LENDING)


def parse_steps(texts: tuple[str, ...] | list[str]) -> dict[str, tuple[float, bool]]:
    """``--step KIND=VALUE``: VALUE in the limit's unit, or a share of it with '%' (``budget_usd=20%``)."""
    steps = dict(DEFAULT_STEPS)
    for text in texts:
        kind, _, raw = text.partition("=")
        kind, raw = kind.strip(), raw.strip()
        if kind not in DEFAULT_STEPS:
            raise OptionError(f"--step {text}: unknown limit {kind!r}; expected one of {', '.join(DEFAULT_STEPS)}")
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(%?)", raw)
        if not m or float(m.group(1)) <= 0:
            raise OptionError(f"--step {text}: expected a positive number, or a percentage like 10%")
        value = float(m.group(1))
        steps[kind] = (value / 100, True) if m.group(2) else (value, False)
    return steps


@dataclass
class Relaxation:
    """One limit instance relaxed by its step: the case that solves it and the override that sets it."""

    row: int  # index in the limits table
    step: float  # signed, in the limit's unit
    relaxed: float
    key: str
    value: Any

    @property
    def override(self) -> str:
        return f"{self.key}={json.dumps(self.value)}"


def relaxations(inst: Instance, limits: pd.DataFrame, steps: dict[str, tuple[float, bool]]) -> list[Relaxation]:
    """The override that relaxes each limit instance by its step (every other limit unchanged).

    Per-participant mineral keys become a mapping listing every participant's value, so the
    others keep theirs whether the config gave a scalar or a mapping.
    """
    out = []
    for i, r in enumerate(limits.itertuples()):
        size, relative = steps[r.limit]
        step = size * r.value if relative else size
        lower = r.limit in LOWER_LIMITS
        relaxed = r.value - step if lower else r.value + step
        if r.limit in SHARE_LIMITS:
            relaxed = min(max(relaxed, 0.0), 1.0)
        if relaxed == r.value:
            continue  # nothing to relax (a share already at its end)
        p = inst.participants.index(r.participant) if r.participant else -1
        year = None if pd.isna(r.year) or r.year == "" else int(r.year) - 1
        if year is not None:  # a yearly limit of a build-up: that year's value moves, the others stay
            key, value = yearly_relaxation(inst, r.limit, p, r.mineral, year, relaxed - r.value)
        elif r.limit in (Limit.BUDGET, Limit.STORAGE, Limit.RATE, Limit.FLOOR):
            key, value = f"participants.{r.participant}.{r.limit}", relaxed
        elif r.limit == Limit.LENDING:
            key, value = f"lending.{inst.arc_names.index(r.arc)}.max_share", relaxed
        elif r.limit in (Limit.CAPACITY, Limit.FLOOR_PRICE):
            key, value = f"projects.{r.project}.{r.limit}", relaxed
        else:
            m = inst.minerals.index(r.mineral)
            table = inst.max_acquisition if r.limit == Limit.ACQUISITION else inst.min_days
            current = {name: float(table[j, m]) for j, name in enumerate(inst.participants) if np.isfinite(table[j, m])}
            key, value = f"minerals.{r.mineral}.{r.limit}", {**current, inst.participants[p]: relaxed}
        out.append(Relaxation(i, relaxed - r.value, relaxed, key, value))
    return out


def yearly_relaxation(inst: Instance, limit: str, p: int, mineral: str, year: int, step: float) -> tuple[str, Any]:
    """The override that moves one year's value of a yearly limit by step: the whole list of that
    participant's (and mineral's) values by year, the others' kept. A budget carried over moves by
    the same step (its limit is the budgets so far)."""
    name = inst.participants[p]
    if limit in (Limit.BUDGET, Limit.STORAGE):
        path = (inst.budget_path if limit == Limit.BUDGET else inst.storage_path)[p].copy()
        path[year] += step
        return f"participants.{name}.{limit}", [float(v) for v in path]
    m = inst.minerals.index(mineral)
    table = inst.acquisition_path if limit == Limit.ACQUISITION else inst.min_days_path
    current = {
        q: [float(v) for v in table[j, m]] for j, q in enumerate(inst.participants) if np.isfinite(table[j, m]).all()
    }
    mine = table[p, m].copy()
    mine[year] += step
    return f"minerals.{mineral}.{limit}", {**current, name: [float(v) for v in mine]}


def limit_case_name(row: Any) -> str:
    where = (
        row.arc.replace("->", "_to_")
        if row.arc
        else row.project or ".".join(x for x in (row.participant, row.mineral) if x)
    )
    year = "" if pd.isna(row.year) or row.year == "" else f".y{int(row.year)}"
    return f"limit.{row.limit}.{where}{year}"


def mean_scenarios(inst: Instance) -> list[dict[str, Any]]:
    """The EV problem's scenarios: the shortfall replaced by its probability-weighted mean, one shock
    of one period per (mineral, period) with a loss, of probability 1 (every year faces the same
    one-year distribution, so a build-up's years share it)."""
    q = inst.consumption * inst.period_days / DAYS_PER_YEAR  # (P, M) per period
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(q[None, :, :, None] > 0, inst.shortfall / q[None, :, :, None], 0.0)
    sel = inst.scen_year == 0
    mean = np.einsum("s,spmt->pmt", inst.prob[sel], share[sel])
    mean = np.where(mean >= 1e-9, np.minimum(mean, 1.0), 0.0)  # below the schema's smallest share
    shocks = []
    for m, t in zip(*np.nonzero(mean.any(axis=0))):
        loss = {name: float(mean[p, m, t]) for p, name in enumerate(inst.participants)}
        shocks.append({"mineral": inst.minerals[m], "start": int(t) + 1, "periods": 1, "loss": loss})
    return [{"name": "expected_value", "probability": 1.0, "shocks": shocks}]


def _case(name: str, resolved: JSON, overrides: list[tuple[str, Any]], source: str, lots: JSON | None = None) -> Case:
    data = apply_overrides(resolved, overrides + [("solver.threads", 1)], source=f"explain {name}")
    cfg = validate(data, f"explain case {name}")
    cfg._provenance = {"source": source, "explain": name, "overrides": [[k, v] for k, v in overrides]}
    return Case(name, dict(overrides), cfg, lots)


def duals(
    cfg: Config, inst: Instance, lots: np.ndarray, limits: pd.DataFrame, offtake: np.ndarray | None = None
) -> np.ndarray:
    """dual_usd_per_unit of each limit row: the LP with the run's lots (and offtake) fixed, its row
    duals lambda = dObj/d(bound) mapped to the limit: saving per unit = -sum_rows lambda *
    d(bound)/d(limit), where d(bound)/d(limit) is the holding x_pm the row scales (rate, floor,
    lending share). A floor price saves Y * (tonnes taken) per dollar lower while it is above the
    market price (the derivative of the subsidy); a capacity acts on the first stage: no LP dual."""
    from stockpile.model.core import Row
    from stockpile.model.families import build_model
    from stockpile.solver.backends import solve_lp

    lm = build_model(inst, lots, offtake)
    lm.integer = np.zeros_like(lm.integer)
    none, empty = np.zeros(0, np.int64), np.zeros(0)
    _, lam, _ = solve_lp(lm, none, empty, none, empty)
    x = inst.holding_by_year(lots if lots.ndim == 3 else lots[..., None])  # (P, M, Y)
    out = np.full(len(limits), np.nan)

    def saving(block: str, giver: np.ndarray, select: np.ndarray) -> float:
        """The rows scale the holding of the year their scenario strikes in."""
        b = lm.row_blocks[block]
        m, y = b.coords["m"][select], inst.scen_year[b.coords["s"][select]]
        return float(-(lam[b.start : b.start + b.size][select] * x[giver[select], m, y]).sum())

    for i, r in enumerate(limits.itertuples()):
        if r.limit in (Limit.RATE, Limit.FLOOR):
            b = lm.row_blocks[Row.RATE if r.limit == Limit.RATE else Row.FLOOR]
            p = b.coords["p"]
            out[i] = saving(b.name, p, p == inst.participants.index(r.participant))
        elif r.limit == Limit.LENDING:
            b = lm.row_blocks[Row.LEND_CAP]
            a = b.coords["a"]
            out[i] = saving(b.name, inst.arc_from[a], a == inst.arc_names.index(r.arc))
        elif r.limit == Limit.FLOOR_PRICE:
            j = inst.projects.index(r.project)
            out[i] = inst.risk_years * float(r.used) if inst.proj_gap[j] > 0 else 0.0
    return out + 0.0


def explain_cases_count(run_dir: str | Path, steps: dict[str, tuple[float, bool]]) -> int:
    """How many re-solves explain_run makes (for a progress bar): relaxed limits, one per scenario, EV, EEV."""
    run_dir = Path(run_dir)
    cfg, _ = read_run_config(run_dir)
    inst = build_instance(cfg)
    return len(relaxations(inst, _read_limits(run_dir), steps)) + len(cfg.scenario_list) + 2


def _read_limits(run_dir: Path) -> pd.DataFrame:
    """limits.csv as the solve wrote it (explain's own columns dropped)."""
    text = {"limit": str, "participant": str, "mineral": str, "arc": str, "project": str, "year": "Int64"}
    return pd.read_csv(run_dir / LIMITS_FILE, keep_default_na=False, dtype=text)[LIMIT_COLUMNS]


@dataclass(frozen=True)
class Measures:
    """explain.json (in this order): the plan's cost (RP) against perfect information (WS, EVPI) and
    against planning for the average disruption (EV, EEV, VSS)."""

    rp_usd: float
    ws_usd: float
    evpi_usd: float
    ev_usd: float | None  # None when the average-disruption problem has no plan (ev_status says why)
    ev_status: str
    eev_usd: float | None
    vss_usd: float | None
    relative_gap: float
    ws_by_scenario_usd: dict[str, float | None]
    note: str = (
        "each figure is an optimum solved to the run's relative_gap, so EVPI and VSS are exact "
        "only to about relative_gap x rp_usd"
    )
    ev_reasons: list[str] | None = None

    def to_dict(self) -> JSON:
        out = asdict(self)
        if self.ev_reasons is None:
            del out["ev_reasons"]
        return out


def explain_run(
    run_dir: str | Path,
    steps: dict[str, tuple[float, bool]] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, Measures]:
    """Write limits.csv (with duals and deltas) and explain.json into a finished run folder."""
    run_dir = Path(run_dir)
    cfg, summary = read_run_config(run_dir)
    steps = steps or dict(DEFAULT_STEPS)
    inst = build_instance(cfg)
    resolved = cfg.resolved_dict()
    source = str(run_dir / CONFIG_FILE)
    limits = _read_limits(run_dir)
    rp = float(summary["objective_usd"])
    lots = run_lots(run_dir)
    from stockpile.api import lot_array, offtake_array

    lot_arr = lot_array(inst, lots)

    relax = relaxations(inst, limits, steps)
    cases = [_case(limit_case_name(limits.iloc[r.row]), resolved, [(r.key, r.value)], source) for r in relax]
    ws_names = [f"ws.{sc['name']}" for sc in resolved["scenarios"]]
    for name, sc in zip(ws_names, resolved["scenarios"]):
        cases.append(_case(name, resolved, [("scenarios", [{**sc, "probability": 1.0}])], source))
    cases.append(_case("ev", resolved, [("scenarios", mean_scenarios(inst))], source))
    results: Results = {}
    out = run_dir / EXPLAIN_DIR
    run_cases(cases, out, results, workers, scheduler, progress)
    ev, ev_error = results.get("ev", (None, "not solved"))
    eev = None
    if ev is not None and has_plan(ev.get("status")):
        ev_lots = run_lots(out / "cases" / "ev")
        eev_case = _case("eev", resolved, [], source, ev_lots)
        run_cases([eev_case], out, results, workers, scheduler, progress)
        eev, _ = results.get("eev", (None, None))

    def objective(name: str) -> float:
        s, _ = results.get(name, (None, None))
        return float(s["objective_usd"]) if s and has_plan(s.get("status")) else math.nan

    table = limits.copy()
    table["dual_usd_per_unit"] = duals(cfg, inst, lot_arr, limits, offtake_array(inst, lots))
    table["step"] = math.nan
    table["relaxed_value"] = math.nan
    table["delta_objective_usd"] = math.nan
    table["override"] = ""
    for r, case in zip(relax, cases):
        table.loc[r.row, ["step", "relaxed_value", "delta_objective_usd"]] = (
            r.step,
            r.relaxed,
            objective(case.name) - rp,
        )
        table.loc[r.row, "override"] = r.override
    table = table[EXPLAIN_COLUMNS]
    write_csv(table, run_dir / LIMITS_FILE)

    ws_each = {sc.name: objective(n) for sc, n in zip(cfg.scenario_list, ws_names)}
    ws = float(sum(sc.probability * ws_each[sc.name] for sc in cfg.scenario_list))
    ev_ok = ev is not None and has_plan(ev.get("status"))
    eev_ok = eev is not None and has_plan(eev.get("status"))
    ev_reasons = None
    if not ev_ok:
        ev_reasons = (ev or {}).get("reasons") or ([ev_error] if ev_error else [])
    measures = Measures(
        rp_usd=rp,
        ws_usd=ws,
        evpi_usd=rp - ws,
        ev_usd=objective("ev") if ev_ok else None,
        ev_status=(ev or {}).get("status", "error") if ev_error is None else "error",
        eev_usd=objective("eev") if eev_ok else None,
        vss_usd=objective("eev") - rp if eev_ok else None,
        relative_gap=cfg.solver.relative_gap,
        ws_by_scenario_usd={k: (None if math.isnan(v) else v) for k, v in ws_each.items()},
        ev_reasons=ev_reasons,
    )
    write_json(measures.to_dict(), run_dir / EXPLAIN_FILE)
    log.info("explain: %d limits, %d re-solves", len(table), len(results))
    return table, measures
