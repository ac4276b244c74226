"""One solve of a built model: the method, the backend or the decomposition, and the tidying of
the solution into its canonical form. ``api.solve`` and ``respond`` both solve through here, so a
plan is tidied the same way wherever it comes from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from stockpile.config import Solver
from stockpile.enums import Method
from stockpile.model.core import LinearModel
from stockpile.model.instance import Instance
from stockpile.solver.backends import SolveOutcome, solve_model
from stockpile.solver.benders import Progress, solve_benders
from stockpile.solver.canonical import canonical_schedule, exact_cvar, idle_programmes

log = logging.getLogger(__name__)

# A requested gap of 0 means "as close as floating point allows": both methods stop here.
MIN_RELATIVE_GAP = 1e-9
# Above this many variables the decomposition wins (docs/performance.md).
AUTO_BENDERS_VARIABLES = 2_000


@dataclass(frozen=True)
class Solved:
    """A built model solved: the backend's outcome, the method used, the decomposition's counts
    (None for the extensive form), and the tidied solution (None without one) with what tidying
    lowered the solver's cost by."""

    outcome: SolveOutcome
    method: Method
    iterations: dict[str, int] | None
    x: np.ndarray | None
    saving: float


def choose_method(method: Method, lm: LinearModel) -> Method:
    """auto: the extensive form for tiny models, the decomposition beyond."""
    if method != Method.AUTO:
        return Method(method)
    return Method.BENDERS if lm.c.size > AUTO_BENDERS_VARIABLES else Method.EXTENSIVE


def optimise(
    lm: LinearModel, method: Method, opts: Solver, progress: Progress | None = None
) -> tuple[SolveOutcome, dict[str, int] | None]:
    """Solve a built model by the chosen method; the decomposition's iteration counts (else None)."""
    gap = max(opts.relative_gap, MIN_RELATIVE_GAP)
    if method == Method.BENDERS:
        out, stats = solve_benders(lm, opts.time_limit_s, gap, opts.threads, progress)
        return out, {"lp_phase": stats.lp_iterations, "mip_phase": stats.iterations, "cuts": stats.cuts}
    return solve_model(lm, opts.name, opts.time_limit_s, gap), None


def solve_instance(inst: Instance, lm: LinearModel, opts: Solver, progress: Progress | None = None) -> Solved:
    """Solve by the configured method and tidy the solution: idle programmes closed, the schedule
    canonical (canonical.py), the CVaR epigraph exact. Each step only lowers the cost."""
    method = choose_method(opts.method, lm)
    log.info("%s variables, %s rows; solving with the %s method", f"{lm.c.size:,}", f"{lm.A.shape[0]:,}", method)
    out, iterations = optimise(lm, method, opts, progress)
    if out.x is None or out.objective is None:
        return Solved(out, method, iterations, None, 0.0)
    x, idle = idle_programmes(inst, lm, out.x)
    x, saving = canonical_schedule(inst, lm, x)
    x, tail = exact_cvar(inst, lm, x)
    return Solved(out, method, iterations, x, idle + saving + tail)
