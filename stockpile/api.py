"""The Python API: config -> instance -> model -> solve -> Result, timed and recorded.

``solve(load_config(path))`` is what ``stockpile solve`` runs; the CLI adds only
argument parsing, terminal output and exit codes.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import __version__
from .backends import relative_gap, solve_model
from .benders import Progress, solve_benders
from .config import Config
from .instance import InfeasibleConfig, Instance, build_instance, check_feasible
from .model import LinearModel, build_model
from .results import (
    COST_KEYS,
    Result,
    coverage_table,
    costs,
    expected_coverage,
    flows,
    holdings_table,
    lending_table,
    participant_costs,
    plan_from_solution,
    schedule_table,
)


def _base_summary(cfg: Config, inst: Instance) -> dict:
    prov = cfg.provenance
    return {
        "config_name": cfg.name,
        "config_hash": cfg.hash(),
        "source": prov.get("source"),
        "overrides": prov.get("overrides", []),
        "stockpile_version": __version__,
        "sizes": inst.sizes,
    }


def solve(cfg: Config, progress: Progress | None = None) -> Result:
    """Solve a validated config and return its result tables.

    An infeasible config returns a Result with status ``infeasible`` and the
    limits that conflict in ``summary["reasons"]``; it does not raise.
    progress(phase, best cost, lower bound) is called as the decomposition iterates.
    """
    t0 = time.perf_counter()
    inst = build_instance(cfg)
    summary = _base_summary(cfg, inst)
    reasons = check_feasible(inst)
    if reasons:
        summary.update(status="infeasible", reasons=reasons, objective_usd=None, best_bound_usd=None,
                       gap=None, solver=cfg.solver.name)
        return Result(summary, config=cfg.resolved_dict())
    lm = build_model(inst)
    build_seconds = time.perf_counter() - t0
    opts = cfg.solver
    method = choose_method(opts.method, lm)
    if method == "benders":
        out, stats = solve_benders(inst, lm, opts.time_limit_s, opts.relative_gap, opts.threads, progress)
        summary["iterations"] = {"lp_phase": stats.lp_iterations, "mip_phase": stats.iterations,
                                 "cuts": stats.cuts}
    else:
        out = solve_model(lm, opts.name, opts.time_limit_s, opts.relative_gap)
    summary.update(solver=out.solver, solver_version=out.solver_version, method=method,
                   build_seconds=round(build_seconds, 4), solve_seconds=round(out.seconds, 4))
    summary["sizes"] = {**summary["sizes"], **lm.sizes}
    if out.x is None:
        summary.update(status=out.status, objective_usd=None, best_bound_usd=out.bound, gap=None,
                       reasons=[_no_solution_reason(out.status, opts.time_limit_s, out.detail)])
        return Result(summary, config=cfg.resolved_dict())
    return assemble(cfg, inst, lm, out.x, out.status, out.objective, out.bound, summary)


def assemble(cfg: Config, inst: Instance, lm: LinearModel, x, status: str, solver_objective: float,
             bound: float | None, summary: dict) -> Result:
    """Tables, costs and the honest bound and gap for a solution vector."""
    plan = plan_from_solution(lm, x, inst)
    by_participant = participant_costs(inst, plan)
    cost = costs(by_participant)
    objective = sum(cost[k] for k in COST_KEYS)
    if bound is not None:
        bound = min(bound, objective)
    gap = relative_gap(objective, bound)
    f = flows(inst, plan)
    coverage = coverage_table(inst, f)
    holdings = holdings_table(inst, plan)
    expected = expected_coverage(inst, coverage)
    summary.update(
        status=status,
        objective_usd=objective,
        best_bound_usd=bound,
        gap=gap,
        solver_objective_usd=solver_objective,
        costs=cost,
        costs_by_participant=by_participant,
        holding_t_by_participant={p: float(v) for p, v in
                                  holdings.groupby("participant", sort=False).holding_t.sum().items()},
        expected_coverage_days={p: {r.mineral: float(r.expected_coverage_days) for r in g.itertuples()}
                                for p, g in expected.groupby("participant", sort=False)},
    )
    return Result(summary, holdings, schedule_table(inst, f), coverage, expected,
                  lending_table(inst, plan), cfg.resolved_dict())


# Above this many second-stage variables the decomposition wins (docs/performance.md).
AUTO_BENDERS_VARIABLES = 2_000


def choose_method(method: str, lm: LinearModel) -> str:
    """auto: the extensive form for tiny models, the decomposition beyond."""
    if method != "auto":
        return method
    return "benders" if lm.c.size > AUTO_BENDERS_VARIABLES else "extensive"


def _no_solution_reason(status: str, limit: float, detail: str) -> str:
    if status == "infeasible":
        return f"the solver proved the model infeasible ({detail})"
    return f"no plan found within the time limit of {limit:g} s ({detail}); raise solver.time_limit_s"


def export_model(cfg: Config, path: str | Path) -> Path:
    """Write the model as LP or MPS (by extension) without solving it."""
    from .backends import to_model_builder
    from .model import names
    from .outputs import atomic_write_text

    inst = build_instance(cfg)
    reasons = check_feasible(inst)
    if reasons:
        raise InfeasibleConfig(reasons)
    lm = build_model(inst)
    helper = to_model_builder(lm, names(lm, inst))
    path = Path(path)
    text = helper.export_to_lp_string() if path.suffix.lower() == ".lp" else helper.export_to_mps_string()
    atomic_write_text(path, text)
    return path
