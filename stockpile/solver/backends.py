"""Stage 4 of the flow: solve a :class:`LinearModel` with an OR-tools backend.

All solver-specific code sits behind :func:`solve_model`. Backends, chosen from
what the ortools 9.15 wheel solves correctly on this model:

* ``highs`` — HiGHS through MathOpt. MathOpt reports HiGHS's true dual bound
  and keeps the incumbent at a time limit; model_builder's HiGHS does neither
  in 9.15, so it is not offered. The default (fastest correct; docs/solvers.md).
* ``scip`` — SCIP through model_builder, which reports an honest bound. Always
  single-threaded: multi-threaded SCIP in OR-tools has returned ABNORMAL.

CP-SAT is not offered: it scales continuous variables to integers and returns
wrong "optimal" answers on this model.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.enums import SolverName, Status
from stockpile.model.core import LinearModel

log = logging.getLogger(__name__)


@dataclass
class SolveOutcome:
    """What a backend found, in backend-neutral terms."""

    status: Status
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    solver: str
    solver_version: str
    seconds: float
    detail: str = ""

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """(objective - bound) / max(|objective|, 1): the proven relative gap, or None."""
    if objective is None or bound is None or not np.isfinite(bound):
        return None
    return max(0.0, (objective - bound) / max(abs(objective), 1.0))


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence C-level prints to fd 1 (HiGHS 1.12 prints a debug line from its MIP solver)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable stdout: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def ortools_version() -> str:
    from importlib.metadata import version

    return version("ortools")


def solve_model(
    lm: LinearModel, name: SolverName | str, time_limit_s: float, relative_gap: float, hint: np.ndarray | None = None
) -> SolveOutcome:
    """Solve with the named backend; honours the time limit and the relative gap.

    hint: a feasible solution to start the MIP search from (a warm start).

    The model goes to the solver in its natural units (tonnes, USD); docs/numerics.md
    says why (internal scaling made HiGHS slower or its bounds wrong). A model without integer variables goes to GLOP, the fastest LP solver on
    this model's LPs, whichever MIP solver is named.
    """
    name = SolverName(name)
    log.debug("solving %s with %s (time limit %.3g s, gap %.3g)", lm.sizes, name, time_limit_s, relative_gap)
    if not lm.integer.any():
        return _solve_mathopt(lm, "glop", time_limit_s, relative_gap)
    if name == SolverName.HIGHS:
        return _solve_mathopt(lm, "highs", time_limit_s, relative_gap, hint)
    return _solve_scip(lm, time_limit_s, relative_gap, hint)


# ----------------------------------------------------------------------------
# MathOpt (HiGHS)


def to_mathopt_proto(lm: LinearModel) -> Any:
    """Fill a MathOpt ModelProto straight from the arrays (no per-variable Python calls)."""
    from ortools.math_opt import model_pb2

    proto = model_pb2.ModelProto(name="stockpile")
    n, m = lm.c.size, lm.A.shape[0]
    v = proto.variables
    v.ids.extend(np.arange(n, dtype=np.int64))
    v.lower_bounds.extend(lm.lb)
    v.upper_bounds.extend(lm.ub)
    v.integers.extend(lm.integer.tolist())
    proto.objective.offset = lm.offset
    nz = np.nonzero(lm.c)[0]
    proto.objective.linear_coefficients.ids.extend(nz)
    proto.objective.linear_coefficients.values.extend(lm.c[nz])
    rows = proto.linear_constraints
    rows.ids.extend(np.arange(m, dtype=np.int64))
    rows.lower_bounds.extend(lm.row_lb)
    rows.upper_bounds.extend(lm.row_ub)
    coo = lm.A.tocoo()  # CSR with sorted indices: row-major order, as MathOpt requires
    mat = proto.linear_constraint_matrix
    mat.row_ids.extend(coo.row.astype(np.int64))
    mat.column_ids.extend(coo.col.astype(np.int64))
    mat.coefficients.extend(coo.data)
    return proto


def _solve_mathopt(
    lm: LinearModel, name: str, time_limit_s: float, gap: float, hint: np.ndarray | None = None
) -> SolveOutcome:
    """HiGHS (MIP) or GLOP (LP) through MathOpt. HiGHS takes no per-solve thread count there."""
    from ortools.math_opt import parameters_pb2, result_pb2
    from ortools.math_opt.core.python import solver
    from ortools.math_opt.python import callback, init_arguments, model_parameters, parameters
    from pybind11_abseil.status import StatusNotOk

    mip = bool(lm.integer.any())
    params = parameters.SolveParameters(
        time_limit=datetime.timedelta(seconds=time_limit_s),
        relative_gap_tolerance=gap if mip else None,
        absolute_gap_tolerance=0.0 if mip else None,
        random_seed=1,
    )
    kind = parameters_pb2.SOLVER_TYPE_HIGHS if name == "highs" else parameters_pb2.SOLVER_TYPE_GLOP
    model_params = model_parameters.ModelSolveParameters().to_proto()
    if hint is not None:
        values = model_params.solution_hints.add().variable_values
        values.ids.extend(np.arange(hint.size, dtype=np.int64))
        values.values.extend(hint)
    version = f"{'HiGHS' if name == 'highs' else 'GLOP'} via OR-tools MathOpt {ortools_version()}"
    start = time.perf_counter()
    try:
        with quiet_stdout():
            res = solver.solve(
                to_mathopt_proto(lm),
                kind,
                init_arguments.StreamableSolverInitArguments().to_proto(),
                params.to_proto(),
                model_params,
                None,
                callback.CallbackRegistration().to_proto(),
                None,
                None,
            )
    except StatusNotOk as exc:
        return SolveOutcome(
            Status.NO_SOLUTION, None, None, None, name, version, time.perf_counter() - start, f"solver error: {exc}"
        )
    seconds = time.perf_counter() - start
    term = res.termination
    R = result_pb2
    x = obj = None
    if res.solutions and res.solutions[0].HasField("primal_solution"):
        ps = res.solutions[0].primal_solution
        if ps.feasibility_status == 1 or term.reason in (R.TERMINATION_REASON_OPTIMAL, R.TERMINATION_REASON_FEASIBLE):
            x = np.zeros(lm.c.size)
            x[np.asarray(ps.variable_values.ids, dtype=np.int64)] = np.asarray(ps.variable_values.values)
            obj = float(ps.objective_value)
    bound = float(term.objective_bounds.dual_bound)
    if term.reason == R.TERMINATION_REASON_OPTIMAL and x is not None:
        status = Status.OPTIMAL
    elif x is not None:
        status = Status.FEASIBLE
    elif term.reason == R.TERMINATION_REASON_INFEASIBLE:
        status = Status.INFEASIBLE
    else:
        status = Status.NO_SOLUTION
    return SolveOutcome(
        status,
        x,
        obj,
        bound if np.isfinite(bound) else None,
        name,
        version,
        seconds,
        term.detail or R.TerminationReasonProto.Name(term.reason),
    )


# ----------------------------------------------------------------------------
# model_builder (SCIP)


def to_model_builder(lm: LinearModel, names: tuple[list[str], list[str]] | None = None) -> Any:
    """Load the arrays into a model_builder helper in one call, plus integrality and names."""
    from ortools.linear_solver.python import model_builder_helper as mbh

    helper = mbh.ModelBuilderHelper()
    helper.fill_model_from_sparse_data(lm.lb, lm.ub, lm.c, lm.row_lb, lm.row_ub, lm.A)  # type: ignore[arg-type]
    for col in np.nonzero(lm.integer)[0].tolist():  # integer variables are the few first-stage lots
        helper.set_var_integrality(col, True)
    helper.set_objective_offset(lm.offset)
    if names is not None:
        for j, nm in enumerate(names[0]):
            helper.set_var_name(j, nm)
        for i, nm in enumerate(names[1]):
            helper.set_constraint_name(i, nm)
    return helper


def _solve_scip(lm: LinearModel, time_limit_s: float, gap: float, hint: np.ndarray | None = None) -> SolveOutcome:
    from ortools.linear_solver.python import model_builder_helper as mbh

    helper = to_model_builder(lm)
    if hint is not None:
        for j, v in enumerate(hint):  # the master is small: one call per variable is fine
            helper.add_hint(j, float(v))
    solver = mbh.ModelSolverHelper("scip")
    solver.set_time_limit_in_seconds(time_limit_s)
    solver.set_solver_specific_parameters(
        f"limits/gap = {gap!r}\nlimits/absgap = 0\nparallel/maxnthreads = 1\nrandomization/randomseedshift = 0\n"
    )
    start = time.perf_counter()
    solver.solve(helper)
    seconds = time.perf_counter() - start
    st = solver.status()
    S = mbh.SolveStatus
    x = obj = bound = None
    if st in (S.OPTIMAL, S.FEASIBLE) and solver.has_solution():
        x = np.asarray(solver.variable_values(), dtype=float)
        obj = float(solver.objective_value())
        bound = float(solver.best_objective_bound())
    status = {S.OPTIMAL: Status.OPTIMAL, S.FEASIBLE: Status.FEASIBLE, S.INFEASIBLE: Status.INFEASIBLE}.get(
        st, Status.NO_SOLUTION
    )
    if status.has_plan and x is None:
        status = Status.NO_SOLUTION
    return SolveOutcome(
        status,
        x,
        obj,
        bound,
        SolverName.SCIP,
        f"SCIP via OR-tools model_builder {ortools_version()}",
        seconds,
        solver.status_string() or st.name,
    )


def solve_lp(
    lm: LinearModel, lower_rows: np.ndarray, lower: np.ndarray, upper_rows: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """An LP with some row bounds set anew, solved from scratch: primal values, row duals
    (dObj/dbound) and objective. GLOP through model_builder, loaded straight from the arrays:
    no per-element protobuf (MathOpt's way cost 2.3x the time on recourse batches) and no solver
    kept between solves (warm MathOpt solvers held twice the memory of the whole model at 10,000
    scenarios and saved no time with a theta per mineral: docs/performance.md)."""
    from ortools.linear_solver.python import model_builder_helper as mbh

    row_lb, row_ub = lm.row_lb.copy(), lm.row_ub.copy()
    row_lb[lower_rows], row_ub[upper_rows] = lower, upper
    helper = mbh.ModelBuilderHelper()
    helper.fill_model_from_sparse_data(lm.lb, lm.ub, lm.c, row_lb, row_ub, lm.A)  # type: ignore[arg-type]
    solver = mbh.ModelSolverHelper("glop")
    # primal simplex, no preprocessing: with GLOP's preprocessing on, recourse batches of the large
    # benchmark came back ABNORMAL; dual simplex from scratch took 1.75x the time at 10,000 sampled scenarios
    solver.set_solver_specific_parameters("use_preprocessing: false")
    solver.solve(helper)
    if solver.status() != mbh.SolveStatus.OPTIMAL:
        raise RuntimeError(f"LP not solved: {solver.status().name} {solver.status_string()}")
    x = np.asarray(solver.variable_values(), dtype=float)
    return x, np.asarray(solver.dual_values(), dtype=float), float(solver.objective_value())
