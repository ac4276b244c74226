"""The loop: a phase on the master's LP relaxation, then the master MIP, each round evaluating the
master's plan and adding its cuts, until the gap closes (confirmed by a second backend on extreme
masters), the time runs out, or the master repeats a plan.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from stockpile.enums import SolverName, Status
from stockpile.model.core import LinearModel
from stockpile.solver.backends import SolveOutcome, ortools_version, relative_gap
from stockpile.solver.benders.batches import Recourse
from stockpile.solver.benders.master import Cuts, Master
from stockpile.solver.benders.structure import Structure

log = logging.getLogger(__name__)


# On a master whose coefficients, in the unit of money its solver sees (Master.solve), reach
# CONFIRM_COEFFICIENT a bound that closes the gap is confirmed by the other backend, and the lower of
# the two stands: each has returned a wrong "optimal" on masters whose cuts carry coefficients near
# 1e10 (tests/data/master_numerics_*.yaml, scip_bound.yaml: 1.35e10), never both on the same master.
# HiGHS sees cuts in its master's unit (near 1e4), so it is confirmed only where first-stage rows are
# extreme; SCIP on the large benchmark with damage curves took 222 s to confirm a HiGHS bound that
# HiGHS proved in 8 s (docs/numerics.md).
def master_solver(st: Structure) -> SolverName:
    """HiGHS (in a unit of money near the master's scale: Master.solve), or SCIP where the master
    carries CVaR's epigraph thetas. Measured (docs/numerics.md): once every year faces every
    scenario SCIP's master stalled on the large benchmark with holding_years 5 (gap 0.37 after
    600 s; HiGHS optimal in 19 s) and on a generated build-up, while on a CVaR instance
    (3 x 8 x 400 x 24, cvar_weight 0.1) HiGHS took 256 s and SCIP 50 s."""
    return SolverName.SCIP if st.thetas > st.primary else SolverName.HIGHS


OTHER_SOLVER = {SolverName.SCIP: SolverName.HIGHS, SolverName.HIGHS: SolverName.SCIP}


CONFIRM_COEFFICIENT = 1e9


RELAXATION_ROUNDS = 50  # at most this many cut rounds on the master's LP relaxation


RELAXATION_GAP_SHARE = 0.1  # the relaxation phase stops at this share of the requested gap


MASTER_GAP_SHARE = 0.5  # the master MIP is solved to this share of the requested gap, or of the
# decomposition's gap at the time where that is wider: a master to 2.5e-5 took HiGHS 12.5 s where
# 1e-4 took 0.7 s (the large benchmark with three-segment damage curves, 4th integer master), and
# far from the optimum the bound is not held back by the master's own gap


# The solvers' feasibility tolerance: a repeated master plan ends the loop as optimal
# only while the gap left is within it.
REPEAT_GAP = 1e-6


MIN_MASTER_SECONDS = 0.01


@dataclass
class BendersStats:
    iterations: int = 0
    lp_iterations: int = 0
    cuts: int = 0


Progress = Callable[[str, float, float], None]  # (phase, best plan's cost, lower bound)


def solve_benders(
    lm: LinearModel,
    time_limit_s: float,
    gap: float,
    threads: int | None = None,
    progress: Progress | None = None,
) -> tuple[SolveOutcome, BendersStats]:
    """Run the L-shaped method to the relative gap; returns the full solution vector of lm.

    threads: recourse batches solved at once (None: every core). The master MIP goes to
    SCIP, the LPs to GLOP.
    """
    threads = threads or os.cpu_count() or 1
    start = time.perf_counter()
    deadline = start + time_limit_s
    st = Structure.of(lm)
    rec = Recourse.of(st)
    # a theta is at least 0 where recourse costs are (an epigraph's always: h max(0, .))
    blocks = st.lm.col_key >= 0
    floor = 0.0 if (st.lm.c[blocks] >= 0).all() and (st.weights.data >= 0).all() else -np.inf
    master = Master(st, np.r_[np.full(st.primary, floor), np.zeros(st.thetas - st.primary)])
    F = st.first_cols
    stats = BendersStats()
    cuts = Cuts()
    seen: set[bytes] = set()  # every point evaluated
    pool = ThreadPoolExecutor(threads) if threads > 1 and rec.lp_keys.size > 1 else None

    best: tuple[float, np.ndarray | None] = (np.inf, None)

    def evaluate(z: np.ndarray) -> float:
        """Add the cuts at z and keep it as the best plan when it is one; its total cost
        (inf when the time limit stopped the evaluation)."""
        nonlocal best
        evaluated = rec.evaluate(z, pool, deadline)
        if evaluated is None:
            return np.inf
        Q, grad, values = evaluated
        cuts.add(z, Q, grad, master.theta_lb, st.primary)
        stats.cuts = len(cuts)
        value = master.cost(z) + float(Q.sum())
        seen.add(z.tobytes())
        integral = np.array_equal(z[lm.integer[F]], np.rint(z[lm.integer[F]]))
        if value < best[0] and integral and master.feasible(z):
            best = (value, values)  # the plan and its recourse, kept: no re-solve at the end
        return value

    def left() -> float:
        return deadline - time.perf_counter()

    lb = lb_relaxed = -np.inf
    repeated = False

    def checked(lb: float) -> float:
        """A lower bound above the cost of a plan in hand is no bound: SCIP has returned such dual
        bounds on masters whose cuts carry coefficients near 1e11 (tests/test_benders.py keeps one).
        Then the master is solved again exactly by the other backend, and its bound stands only
        if it is below that plan; otherwise the LP relaxation's bound, which the cuts prove."""
        if not lb > best[0] * (1 + 1e-9) + 1e-6:
            return lb
        log.info("the master's bound %.9g is above a plan costing %.9g: solving the master again", lb, best[0])
        exact = master.solve(cuts, SolverName.HIGHS, max(left(), MIN_MASTER_SECONDS), 0.0)
        fair = exact.bound if exact.status == Status.OPTIMAL else None
        return fair if fair is not None and fair <= best[0] * (1 + 1e-9) + 1e-6 else lb_relaxed

    tight = False  # solve the master to the share of the requested gap from now on

    def master_gap() -> float:
        """MASTER_GAP_SHARE of the decomposition's gap so far, at least of the requested one."""
        now = relative_gap(best[0], lb)
        if tight or now is None:
            return gap * MASTER_GAP_SHARE
        return float(min(max(now, gap), 1e-2) * MASTER_GAP_SHARE)

    def solve_master(solver: SolverName, master_gap: float) -> SolveOutcome:
        hint = None if best[1] is None else np.r_[best[1][F], cuts.theta(best[1][F], master.theta_lb)]
        return master.solve(cuts, solver, max(left(), MIN_MASTER_SECONDS), master_gap, hint)

    first = master_solver(st)
    try:
        # the smallest plan: a first cut, and a plan where it is feasible; inf when the limit passed first
        started = np.isfinite(evaluate(lm.lb[F].copy()))
        # phase 1: cuts from the LP relaxation of the master; its first round always runs (a tiny LP),
        # so even a run stopped at once reports a proven bound
        while started and stats.lp_iterations < RELAXATION_ROUNDS:
            out = master.solve(cuts, first, max(left(), MIN_MASTER_SECONDS), 0.0, relax=True)
            if out.x is None or out.objective is None:
                break
            if out.status == Status.OPTIMAL:  # the relaxed master's optimum bounds the true one from below
                lb = lb_relaxed = max(lb, out.objective)
            if left() <= 0:
                break
            upper = evaluate(out.x[: F.size])
            stats.lp_iterations += 1
            if progress:
                progress(f"relaxation {stats.lp_iterations}", best[0], lb)
            relaxed_gap = relative_gap(upper, out.objective)
            if relaxed_gap is not None and relaxed_gap <= gap * RELAXATION_GAP_SHARE:
                break
        # phase 2: integer master, warm-started from the best plan so far
        solver = first
        first_coefficient = float(np.abs(st.A_first.data).max(initial=0.0))
        while started and left() > 0:
            used = master_gap()
            out = solve_master(solver, used)
            if out.x is None:
                break
            if out.bound is not None:
                lb = max(lb, out.bound)
            z = np.where(lm.integer[F], np.rint(out.x[: F.size]), out.x[: F.size])
            repeated = z.tobytes() in seen and out.status == Status.OPTIMAL
            if repeated and used > gap * MASTER_GAP_SHARE:  # a looser master proposes it again: solve it tight
                tight, repeated = True, False
            if z.tobytes() not in seen:  # a plan seen before has its cuts already
                evaluate(z)
            lb = checked(lb)
            stats.iterations += 1
            g = relative_gap(best[0], lb)
            if progress:
                progress(f"iteration {stats.iterations}", best[0], lb)
            closed = g is not None and (g <= gap or (repeated and g <= REPEAT_GAP))
            # confirmed where the master's largest coefficient as its solver sees it (its first-stage rows'
            # or a cut's, in the master's unit of money) is extreme
            if closed and master.largest_coefficient(cuts, solver, first_coefficient) >= CONFIRM_COEFFICIENT:
                # a bound that ends the run is the lower of both backends' bounds on this master
                other = solve_master(OTHER_SOLVER[solver], gap * MASTER_GAP_SHARE)
                if other.bound is not None and other.bound < lb:
                    log.info("%s bounds the master at %.9g, below %s's %.9g", other.solver, other.bound, solver, lb)
                    lb = other.bound
                    g = relative_gap(best[0], lb)
                    closed = g is not None and (g <= gap or (repeated and g <= REPEAT_GAP))
                    if not closed:  # the other backend masters from here, starting from its plan
                        solver = OTHER_SOLVER[solver]
                        if other.x is not None:
                            evaluate(np.where(lm.integer[F], np.rint(other.x[: F.size]), other.x[: F.size]))
                        continue
            if closed:
                break
            if repeated:
                log.warning("the master repeats a plan with gap %.2e left: stopping", g)
                break
    finally:
        if pool:
            pool.shutdown()
    detail = f"{stats.lp_iterations} LP and {stats.iterations} MIP master iterations"
    value, values = best
    g = relative_gap(value, lb) if values is not None else None
    if values is None:
        status = Status.NO_SOLUTION
    elif g is not None and (g <= gap * (1 + 1e-9) or (repeated and g <= REPEAT_GAP)):
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE
    log.info("decomposition: %s, %d cuts, gap %s", detail, stats.cuts, "-" if g is None else f"{g:.2e}")
    return SolveOutcome(
        status,
        values,
        None if values is None else value,
        lb if np.isfinite(lb) else None,
        f"{first.value}+glop",
        f"L-shaped: {'HiGHS' if first is SolverName.HIGHS else 'SCIP'} master, GLOP recourse, OR-tools {ortools_version()}",
        time.perf_counter() - start,
        detail,
    ), stats
