"""Stage 4 of the flow, after the solve: among optimal second-stage plans, the one that covers
earlier periods first.

A recourse block's optimum is often degenerate: a tonne released in period 2 or in
period 5 costs the same, and a solver may report unmet shortfall in period 2 while the
same stock goes out in period 5. That is not advice. For every (scenario, mineral) block
whose schedule breaks the rule (``results.early_cover_gaps``), this re-solves the block's
LP with the first stage fixed and its cost held equal to the solver's, minimising unmet
shortfall weighted towards early periods; the objective does not change.

Why this removes every break: moving delta tonnes of a later own release or zero-fee
lending to the unmet period keeps the cost (shortfall costs are per mineral, not per
period) and lowers sum_t w_t u_t when w_t falls with t; so no break survives the re-solve.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .backends import solve_model
from .enums import SolverName, Status
from .instance import Instance
from .model import FEAS_TOL, LinearModel
from .results import early_cover_gaps, flows, plan_from_solution

log = logging.getLogger(__name__)

# the reported objective may move by at most this (relative) when a schedule is made canonical
SAME_COST = 1e-9
TIME_LIMIT_S = 60.0


def canonical_schedule(inst: Instance, lm: LinearModel, x: np.ndarray) -> np.ndarray:
    """x with the recourse of each block that breaks the rule replaced by the canonical one.

    sub-LP per batch of broken blocks b: min sum_t w_t u_t, w_t = (T - t) / T (t = 0..T-1)
    s.t. the blocks' rows with the first stage fixed at the reported plan, and
    c_b . y_b <= c_b . x_b for each block (its expected recourse cost no higher; the total is
    then checked to be unchanged to SAME_COST).
    """
    plan = plan_from_solution(lm, x, inst)
    f = flows(inst, plan)
    gaps = early_cover_gaps(inst, plan, f)
    broken = gaps.any(axis=(1, 2))
    if not broken.any():
        return x
    axes = inst.axes
    keys = axes.key({"s": f.pairs_s[broken], "m": f.pairs_m[broken]}, lm.key_dims)
    cols = np.nonzero(np.isin(lm.col_key, keys))[0]
    rows = np.nonzero(np.isin(lm.row_key, keys))[0]
    first = lm.first_cols
    sub = lm.A[rows]
    shift = sub[:, first] @ plan.x[first]
    block = np.searchsorted(keys, lm.col_key[cols])
    cost = lm.c[cols]
    # each cost row scaled to a largest coefficient of 1: dollars next to tonnes made GLOP imprecise
    scale = np.zeros(keys.size)
    np.maximum.at(scale, block, np.abs(cost))
    scale = np.where(scale > 0, scale, 1.0)
    cost_rows = sp.csr_matrix((cost / scale[block], (block, np.arange(cols.size))), shape=(keys.size, cols.size))
    target = np.bincount(block, cost * x[cols], keys.size) / scale
    target += (
        SAME_COST / 10 * np.abs(target) + FEAS_TOL
    )  # GLOP calls a row held exactly at the solver's cost infeasible
    weight = np.zeros(lm.c.size)
    u = lm.var_blocks["u"]
    weight[u.index] = (inst.periods - u.coords["t"]) / inst.periods
    lp = LinearModel(
        c=weight[cols],
        offset=0.0,
        A=sp.vstack([sub[:, cols], cost_rows]).tocsr(),
        row_lb=np.r_[lm.row_lb[rows] - shift, np.full(keys.size, -np.inf)],
        row_ub=np.r_[lm.row_ub[rows] - shift, target],
        lb=lm.lb[cols],
        ub=lm.ub[cols],
        integer=np.zeros(cols.size, dtype=bool),
        var_blocks={},
        row_blocks={},
    )
    out = solve_model(lp, SolverName.HIGHS, TIME_LIMIT_S, 0.0)
    if out.status != Status.OPTIMAL or out.x is None:
        log.warning("canonical schedule: the tie-break LP ended %s; the solver's schedule is kept", out.status)
        return x
    new = x.copy()
    new[cols] = np.clip(out.x, lm.lb[cols], lm.ub[cols])
    before, after = float(lm.c @ x), float(lm.c @ new)
    if abs(after - before) > SAME_COST * max(1.0, abs(before) + lm.offset):
        log.warning("canonical schedule moved the cost by %.3g; the solver's schedule is kept", after - before)
        return x
    plan_new = plan_from_solution(lm, new, inst)
    left = early_cover_gaps(inst, plan_new, flows(inst, plan_new))
    log.info(
        "canonical schedule: %d of %d disrupted (scenario, mineral) blocks re-ordered; %d breaks left",
        int(broken.sum()),
        broken.size,
        int((left > 0).sum()),
    )
    return new
