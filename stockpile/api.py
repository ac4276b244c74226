"""The Python API: config -> instance -> model -> solve -> Result, timed and recorded.

``solve(load_config(path))`` is what ``stockpile solve`` runs; the CLI adds only
argument parsing, terminal output and exit codes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stockpile.config import Config
from stockpile.enums import Allocation, Status
from stockpile.errors import InfeasibleConfig
from stockpile.fmt import money
from stockpile.model.core import LinearModel
from stockpile.model.families import build_model
from stockpile.model.instance import (
    LOT_ROUNDING,
    OFFTAKE_KEY,
    Instance,
    build_instance,
    check_feasible,
    day_rule_lots,
    prorata_lots,
    without_lending,
)
from stockpile.model.plan import flows, plan_from_solution, scenario_recourse, yearly_var_cvar
from stockpile.results.limits import coverage_notes, holding_notes, limit_table
from stockpile.results.tables import (
    Result,
    Summary,
    acquisitions_table,
    check_objective,
    costs,
    coverage_table,
    expected_coverage,
    holdings_table,
    lending_flows_table,
    lending_table,
    offtake_table,
    participant_costs,
    reporting_shift,
    schedule_table,
)
from stockpile.solver.backends import relative_gap
from stockpile.solver.benders import Progress
from stockpile.solver.run import solve_instance
from stockpile.version import __version__

log = logging.getLogger(__name__)


def _summary(cfg: Config, sizes: dict[str, int], status: Status, solver: str, **fields: Any) -> Summary:
    prov = cfg.provenance
    return Summary(
        status=status,
        config_name=cfg.name,
        config_hash=cfg.hash(),
        source=prov.get("source"),
        overrides=prov.get("overrides", []),
        stockpile_version=__version__,
        sizes=sizes,
        solver=solver,
        exposure_years=cfg.horizon.exposure_years,
        year_weights=[round(d, 12) for d in cfg.horizon.discounts(cfg.horizon.exposure_years)],
        **fields,
    )


def solve(cfg: Config, progress: Progress | None = None, lots: dict[str, dict[str, int]] | None = None) -> Result:
    """Solve a validated config and return its result tables.

    An infeasible config returns a Result with status ``infeasible`` and the
    limits that conflict in ``summary["reasons"]``; it does not raise.
    progress(phase, best cost, lower bound) is called as the decomposition iterates.
    lots ({participant: {mineral: lots}}, absent: 0): evaluate this first-stage plan instead of
    optimising one; its recourse is still optimal per scenario (EEV, out-of-sample costs).
    """
    t0 = time.perf_counter()
    inst = build_instance(cfg)
    fixed = None if lots is None else lot_array(inst, lots)
    taken = None if lots is None else offtake_array(inst, lots)
    reasons: list[str] = []
    if fixed is None:
        inst, fixed, reasons = allocate(cfg, inst, progress)
    if not reasons:
        reasons = check_feasible(inst) if fixed is None else plan_problems(inst, fixed, taken)
    if reasons:
        log.info("%s: the limits admit no plan", cfg.name)
        summary = _summary(cfg, inst.sizes, Status.INFEASIBLE, str(cfg.solver.name), reasons=reasons)
        return Result(summary, config=cfg.resolved_dict())
    lm = build_model(inst, fixed, taken)
    build_seconds = time.perf_counter() - t0
    log.info("%s: model built", cfg.name)
    solved = solve_instance(inst, lm, cfg.solver, progress)
    out = solved.outcome
    timing = {
        "solver_version": out.solver_version,
        "method": str(solved.method),
        "build_seconds": round(build_seconds, 4),
        "solve_seconds": round(out.seconds, 4),
        "iterations": solved.iterations,
        "fixed_lots": lots,
    }
    sizes = {**inst.sizes, **lm.sizes}
    if solved.x is None or out.objective is None:
        reason = _no_solution_reason(out.status, cfg.solver.time_limit_s, out.detail, inst.years)
        summary = _summary(
            cfg, sizes, out.status, str(out.solver), best_bound_usd=out.bound, reasons=[reason], **timing
        )
        return Result(summary, config=cfg.resolved_dict())
    summary = _summary(cfg, sizes, out.status, str(out.solver), **timing)
    return assemble(cfg, inst, lm, solved.x, out.objective, out.bound, summary, solved.saving)


def allocate(cfg: Config, inst: Instance, progress: Progress | None) -> tuple[Instance, np.ndarray | None, list[str]]:
    """The instance and fixed lots of the config's allocation rule (lots None: optimised), or why the
    rule has no plan. prorata splits the optimised plan's total of each mineral, so it solves that first."""
    rule = cfg.allocation
    if rule == Allocation.ALONE:
        return without_lending(inst), None, []
    n_min, _ = inst.lot_range()  # a participant's min_days is its regulation under any arrangement
    if rule == Allocation.DAYS:
        return inst, np.maximum(day_rule_lots(inst, cfg.allocation_days), n_min), []
    if rule == Allocation.PRORATA:
        base = solve(cfg.model_copy(update={"allocation": Allocation.OPTIMISED}), progress)
        if not base.has_solution:
            why = "; ".join(base.summary.reasons or [base.status])
            return inst, None, [f"the optimised plan that prorata splits has none: {why}"]
        total = base.holdings.groupby("mineral").holding_t.sum().reindex(list(inst.minerals)).to_numpy()
        return inst, np.maximum(prorata_lots(inst, total), n_min), []
    return inst, None, []


RULE_NOTES = {
    Allocation.DAYS: "allocation rule: {days:g} days of own consumption (or min_days if more), rounded up to lots",
    Allocation.PRORATA: "allocation rule: the optimised total split by consumption (or min_days if more), "
    "rounded up to lots",
}


def assemble(
    cfg: Config,
    inst: Instance,
    lm: LinearModel,
    x: np.ndarray,
    solver_objective: float,
    bound: float | None,
    summary: Summary,
    schedule_saving: float = 0.0,
) -> Result:
    """Tables, costs (from the model's objective terms) and the solver's bound and gap for a solution.

    schedule_saving: what the canonical schedule lowered the solver's cost by (canonical.py).
    Raises ObjectiveMismatch when the solver's objective, less that saving, and the breakdown disagree.
    """
    plan = plan_from_solution(lm, x, inst)
    by_participant, shared = participant_costs(lm, plan, inst)
    cost = costs(by_participant, shared)
    objective = sum(cost.values())
    check_objective(solver_objective - schedule_saving, objective, reporting_shift(lm, x, plan))
    f = flows(inst, plan)
    coverage = coverage_table(inst, f)
    limits = limit_table(inst, plan, f)
    held = holding_notes(inst, plan, limits)
    if cfg.allocation in RULE_NOTES and summary.fixed_lots is None:  # the rule, not the model, chose them
        held = dict.fromkeys(held, RULE_NOTES[cfg.allocation].format(days=cfg.allocation_days))
    holdings = holdings_table(inst, plan, f, held)
    lent = lending_flows_table(inst, plan)
    expected = expected_coverage(inst, coverage)
    expected["note"] = coverage_notes(expected, lent, holdings, held)
    q = scenario_recourse(inst, plan)
    summary.expected_recourse_usd = float(inst.year_share @ q)
    summary.var_recourse_usd, summary.cvar_recourse_usd = yearly_var_cvar(inst, q)
    summary.objective_usd = objective
    if bound is not None and bound > objective and bound - objective <= schedule_saving + 1e-6 * abs(objective):
        # what the tidying after the solve saved (an idle programme's fixed cost, a lending fee) lies
        # within the solver's tolerance of its bound; a bound above a plan in hand bounds nothing
        log.info("bound %.9g above the tidied plan's %.9g: the plan's cost is the bound", bound, objective)
        bound = objective
    summary.best_bound_usd = bound
    summary.gap = relative_gap(objective, bound)
    summary.solver_objective_usd = solver_objective
    summary.costs = cost
    summary.costs_by_participant = by_participant
    summary.holding_t_by_participant = {
        p: float(v) for p, v in holdings.groupby("participant", sort=False).holding_t.sum().items()
    }
    if len(expected):
        w = expected.disruption_probability
        summary.expected_coverage_share = float((w * expected.expected_coverage_share).sum() / w.sum())
    summary.expected_coverage_days = {
        p: {r.mineral: float(r.expected_coverage_days) for r in g.itertuples()}
        for p, g in expected.groupby("participant", sort=False)
    }
    return Result(
        summary,
        holdings,
        schedule_table(inst, f),
        coverage,
        expected,
        lending_table(inst, plan),
        lent,
        limits,
        cfg.resolved_dict(),
        offtake_table(inst, plan),
        acquisitions_table(inst, plan, f),
    )


def lot_array(inst: Instance, lots: dict[str, dict[str, Any]]) -> np.ndarray:
    """A {participant: {mineral: lots}} plan as a (P, M, Y) array of the lots bought each build-up
    year (a list per mineral, one value per year; a number: all in year 1); unknown names are refused."""
    out = np.zeros((len(inst.participants), len(inst.minerals), inst.years))
    for p, per in lots.items():
        if p == OFFTAKE_KEY:
            continue
        for m, n in per.items():
            if p not in inst.participants or m not in inst.minerals:
                raise ValueError(f"the plan names {p}/{m}, which the config does not have")
            by_year = list(n) if isinstance(n, (list, tuple)) else [n]
            if len(by_year) > inst.years:
                raise ValueError(f"the plan buys {p}/{m} in {len(by_year)} years; the config has {inst.years}")
            out[inst.participants.index(p), inst.minerals.index(m), : len(by_year)] = by_year
    return out


def offtake_array(inst: Instance, lots: dict[str, dict[str, Any]]) -> np.ndarray:
    """A plan's offtake ({participant: {project: t/yr}} under "offtake") as (P, J) units."""
    out = np.zeros((len(inst.participants), len(inst.projects)))
    for p, per in lots.get(OFFTAKE_KEY, {}).items():
        for j, t in per.items():
            if p not in inst.participants or j not in inst.projects:
                raise ValueError(f"the plan's offtake names {p}/{j}, which the config does not offer")
            k = inst.projects.index(j)
            out[inst.participants.index(p), k] = t / inst.proj_lot[k]
    return out


def plan_problems(inst: Instance, lots: np.ndarray, offtake: np.ndarray | None = None) -> list[str]:
    """Why a given first-stage plan (lots (P, M, Y) bought each year) breaks the config's first-stage
    limits; empty when it fits. Over a build-up every limit is checked in every year."""
    bought = lots if lots.ndim == 3 else lots[..., None]

    def year(y: int | np.integer[Any]) -> str:
        return f" in year {y + 1}" if inst.years > 1 else ""

    held = inst.holding_by_year(bought)  # (P, M, Y)
    need = inst.initial[..., None] + inst.yearly_requirement() * inst.lot[None, :, None]
    cap = np.floor(inst.acquisition_path / inst.lot[None, :, None] + LOT_ROUNDING)
    spent, budget = inst.budget_use(bought)
    stored = held.sum(axis=1)
    out = []
    for p, name in enumerate(inst.participants):
        for m, y in zip(*np.nonzero(held[p] < need[p] - 1e-9)):
            out.append(
                f"{name} {inst.minerals[m]}: {held[p, m, y]:,.4g} t held{year(y)}, fewer than minerals."
                f"{inst.minerals[m]}.min_days.{name} needs ({need[p, m, y]:,.4g} t)"
            )
        for m, y in zip(*np.nonzero(bought[p] > cap[p] + 1e-9)):
            out.append(
                f"{name} {inst.minerals[m]}: {bought[p, m, y] * inst.lot[m]:,.0f} t bought{year(y)}, over minerals."
                f"{inst.minerals[m]}.max_acquisition_t.{name} {inst.acquisition_path[p, m, y]:,.0f}"
            )
        for y in np.nonzero(spent[p] > budget[p] * (1 + 1e-9))[0]:
            out.append(
                f"{name}: the plan spends {money(spent[p, y])}{year(y)}, over participants.{name}.budget_usd "
                f"{money(budget[p, y])} by {money(spent[p, y] - budget[p, y])}"
            )
        for y in np.nonzero(stored[p] > inst.storage_path[p] * (1 + 1e-9))[0]:
            out.append(
                f"{name}: the plan holds {stored[p, y]:,.0f} t{year(y)}, over participants.{name}.storage_capacity_t "
                f"{inst.storage_path[p, y]:,.0f} by {stored[p, y] - inst.storage_path[p, y]:,.0f}"
            )
    if offtake is not None:
        for j in np.nonzero((offtake * inst.proj_lot).sum(axis=0) > inst.proj_cap * (1 + 1e-9) + 1e-9)[0]:
            out.append(f"project {inst.projects[j]}: the plan takes more than its capacity_t_per_year")
    return out


def _no_solution_reason(status: Status, limit: float, detail: str, years: int = 1) -> str:
    if status == Status.INFEASIBLE and years > 1:
        return (
            "no build-up schedule meets every year's budget_usd, max_acquisition_t, storage_capacity_t and "
            "min_days together, although each target fits the ceilings, storage and budgets so far: a year's "
            "budget lapses before the purchases that a later target needs can be made; raise the early years' "
            f"budget_usd, set budget_carryover, or postpone min_days targets (the solver: {detail})"
        )
    if status == Status.INFEASIBLE:
        return f"the solver proved the model infeasible ({detail})"
    return f"no plan found within the time limit of {limit:g} s ({detail}); raise solver.time_limit_s"


@dataclass(frozen=True)
class Sizes:
    """What ``stockpile validate`` and a study's dry run show of a config, without solving it: the
    instance's sizes and, when its limits admit a plan, the model's; else why they admit none."""

    counts: dict[str, int]
    reasons: list[str]

    @property
    def has_model(self) -> bool:
        return not self.reasons


def _instance_and_model(cfg: Config) -> tuple[Instance, LinearModel | None, list[str]]:
    inst = build_instance(cfg)
    reasons = check_feasible(inst)
    return inst, None if reasons else build_model(inst), reasons


def sizes(cfg: Config) -> Sizes:
    """The config's sizes (instance, then model) and the reasons its limits admit no plan."""
    inst, lm, reasons = _instance_and_model(cfg)
    return Sizes({**inst.sizes, **(lm.sizes if lm is not None else {})}, reasons)


def export_model(cfg: Config, path: str | Path) -> Path:
    """Write the model as LP or MPS (by extension) without solving it."""
    from stockpile.model.core import export_names
    from stockpile.results.outputs import atomic_write_text
    from stockpile.solver.backends import to_model_builder

    inst, lm, reasons = _instance_and_model(cfg)
    if lm is None:
        raise InfeasibleConfig(reasons)
    helper = to_model_builder(lm, export_names(lm, inst))
    path = Path(path)
    text = helper.export_to_lp_string() if path.suffix.lower() == ".lp" else helper.export_to_mps_string()
    atomic_write_text(path, text)
    return path
