"""Stage 4 of the flow, after the solve: among optimal second-stage plans, the one that covers
earlier periods first.

A recourse block's optimum is often degenerate: a tonne released in period 2 or in period 5
costs the same, so a solver may report unmet shortfall in period 2 while the same stock goes
out in period 5. That is not advice. The rule (docs/model.md): no period shows unmet shortfall
for a participant while its stock after the period is above its floor, its release-rate
headroom is positive, and it releases or lends that mineral later in the scenario.

The repair is exact and needs no solver. Sweeping periods forward, each participant's unmet
shortfall in period t is covered by moving outflow from later periods to an own release in t,
as far as the release-rate headroom in t allows: first its own later releases (latest first),
then its later lending. Moving an own release keeps the cost (the shortfall cost is per
mineral, not per period); moving lending saves its fee, which can only happen where the
solver's recourse was not optimal for its plan. Stock between the two periods stays above the
floor (inventory falls monotonically to an unchanged final level), lending caps only loosen,
and a move creates unmet shortfall only in a later period, which the sweep reaches after, so
no break survives. The repaired schedule is kept only if it meets every row of the model (a
family added later may forbid a move); otherwise the solver's schedule stands.
"""

from __future__ import annotations

import logging

import numpy as np

from stockpile.model.core import LinearModel, Var
from stockpile.model.families import cvar_unit
from stockpile.model.instance import DAYS_PER_YEAR, Instance
from stockpile.model.plan import (
    ZERO,
    clean,
    early_cover_gaps,
    flows,
    plan_from_solution,
    same_in_every_continuation,
    scenario_recourse,
    var_cvar,
)

log = logging.getLogger(__name__)

# a repaired schedule must meet every row of the model to this (relative)
FEASIBLE = 1e-9


def canonical_schedule(inst: Instance, lm: LinearModel, x: np.ndarray) -> tuple[np.ndarray, float]:
    """x with every break of the rule repaired, and what the repair lowered the cost by (the fees
    of lending moved; 0 when the solver's recourse was optimal for its plan)."""
    x = offtake_first(inst, lm, x)
    plan = plan_from_solution(lm, x, inst)
    f = flows(inst, plan)
    if not early_cover_gaps(inst, plan, f).any():
        return x, 0.0
    axes = inst.axes
    cells, lc = plan.cells, plan.lending
    keys = axes.key({"s": f.pairs_s, "m": f.pairs_m}, ("s", "m"))
    D, P, T = f.release.shape
    # dense (D, P, T) -> cell column of r and u (-1 where no shortfall)
    cell_of = np.full((D, P, T), -1, dtype=np.int64)
    cd = np.searchsorted(keys, axes.key(cells, ("s", "m")))
    cell_of[cd, cells["p"], cells["t"]] = np.arange(cells["p"].size)
    ld = np.searchsorted(keys, axes.key(lc, ("s", "m")))
    giver = inst.arc_from[lc["a"]]
    rel, unmet, lend = f.release.copy(), f.unmet.copy(), plan.lend.copy()
    lent = f.lent.copy()
    held = plan.held(inst, f.pairs_s, f.pairs_m)  # (D, P)
    cap = inst.release_rate[None, :] * held
    tol = 1e-9 * np.maximum(1.0, held)
    # the lending variables of each (pair, giver, period), to cut when that giver's lending moves earlier
    slot = np.ravel_multi_index((ld, giver, lc["t"]), (D, P, T))
    order = np.argsort(slot, kind="stable")
    starts = np.searchsorted(slot[order], np.arange(D * P * T + 1))
    for t in range(T - 1):
        room = np.minimum(unmet[:, :, t], cap - rel[:, :, t] - lent[:, :, t])
        if t < inst.shared_periods:  # an order is the same in every continuation: move what all can
            room = same_in_every_continuation(np.minimum(room, (rel + lent)[:, :, t + 1 :].sum(axis=-1)), f.pairs_m)
        for later in range(T - 1, t, -1):  # own releases, latest first
            mv = np.where(room > tol, np.minimum(room, rel[:, :, later]), 0.0)
            rel[:, :, t] += mv
            unmet[:, :, t] -= mv
            rel[:, :, later] -= mv
            unmet[:, :, later] += mv
            room -= mv
        for later in range(T - 1, t, -1):  # then lending, latest first: the borrower's unmet rises then
            mv = np.where(room > tol, np.minimum(room, lent[:, :, later]), 0.0)
            for d, p in zip(*np.nonzero(mv > 0)):
                rel[d, p, t] += mv[d, p]
                unmet[d, p, t] -= mv[d, p]
                lent[d, p, later] -= mv[d, p]
                left = mv[d, p]
                k = np.ravel_multi_index((d, p, later), (D, P, T))
                for j in order[starts[k] : starts[k + 1]]:
                    take = min(left, lend[j])
                    lend[j] -= take
                    unmet[d, lc["p"][j], later] += take
                    left -= take
                    if left <= 0:
                        break
            room -= mv
    new = x.copy()
    has = cell_of >= 0
    r, u, lb = lm.var_blocks[Var.RELEASE], lm.var_blocks[Var.UNMET], lm.var_blocks[Var.LENT]
    new[r.start + cell_of[has]] = clean(rel[has])
    new[u.start + cell_of[has]] = clean(np.maximum(unmet[has], 0.0))
    new[lb.start : lb.start + lb.size] = clean(lend)
    if f"order_{Var.RELEASE}" in lm.var_blocks:  # the orders are the shared periods' releases
        ob = lm.var_blocks[f"order_{Var.RELEASE}"]
        by_m = np.argsort(f.pairs_m, kind="stable")
        d = by_m[np.searchsorted(f.pairs_m[by_m], ob.coords["m"])]  # any continuation: they agree
        new[ob.index] = clean(rel[d, ob.coords["p"], ob.coords["t"]])
    # the repair knows release, unmet and lending; a family it does not know may forbid a move,
    # so the model's own rows decide whether the repaired schedule stands
    act, was = lm.A @ new, lm.A @ x

    def excess(a: np.ndarray) -> np.ndarray:
        return np.asarray(np.maximum(lm.row_lb - a, a - lm.row_ub))

    grew = excess(act) - np.maximum(excess(was), 0.0)
    # judged against the row's terms, not its activity (a tight CVaR row, v_s = t_s - eta, sums
    # terms of thousands to 0), and allowing the values clean() zeroes (below ZERO each)
    worse = np.nonzero(grew > FEASIBLE)[0]
    A_abs = abs(lm.A[worse])
    slack = FEASIBLE * np.maximum(1.0, A_abs @ np.maximum(np.abs(new), np.abs(x))) + ZERO * A_abs.sum(axis=1).A1
    if np.any(grew[worse] > slack):
        log.warning("canonical schedule: the repair breaks a row of the model; the solver's schedule is kept")
        return x, 0.0
    before, after = float(lm.c @ x), float(lm.c @ new)
    saving = max(before - after, 0.0)
    plan_new = plan_from_solution(lm, new, inst)
    left = early_cover_gaps(inst, plan_new, flows(inst, plan_new))
    log.info(
        "canonical schedule: %d (scenario, mineral) blocks re-ordered, cost %+.6g USD, %d breaks left",
        int(np.any(rel != f.release, axis=(1, 2)).sum()),
        after - before,
        int((left > 0).sum()),
    )
    return new, saving


def offtake_first(inst: Instance, lm: LinearModel, x: np.ndarray) -> np.ndarray:
    """Offtake serves the shortfall before any release: where a cell releases stock while the
    offtake committed for it (Delta / 365 sum_j u_j o_pj) is not used up, the release moves to
    offtake. Same cost, the same demand met, and stock is only kept (floor and rate rows loosen)."""
    if "f" not in lm.var_blocks:
        return x
    fb, ob, rb = lm.var_blocks[Var.OFFTAKE_USED], lm.var_blocks[Var.OFFTAKE], lm.var_blocks[Var.RELEASE]
    units = x[ob.index].reshape(len(inst.participants), len(inst.projects))
    of_mineral = np.zeros((len(inst.projects), len(inst.minerals)))
    of_mineral[np.arange(len(inst.projects)), inst.proj_m] = inst.proj_lot * inst.period_days / DAYS_PER_YEAR
    per_period = units @ of_mineral  # (P, M) tonnes a period
    p, m = fb.coords["p"], fb.coords["m"]
    r_col = rb.start + np.searchsorted(inst.axes.key(rb.coords, tuple("spmt")), inst.axes.key(fb.coords, tuple("spmt")))
    served = x[fb.index]
    eb = lm.var_blocks[Var.OFFTAKE_LENT]  # offtake lent onward from the same (s, p, m, t) uses it up too
    giver = {**eb.coords, "p": inst.arc_from[eb.coords["a"]]}
    spmt = tuple("spmt")
    own_keys = inst.axes.key(fb.coords, spmt)
    order = np.argsort(own_keys)
    at = np.searchsorted(own_keys[order], inst.axes.key(giver, spmt))
    found = (at < own_keys.size) & (own_keys[order][np.minimum(at, own_keys.size - 1)] == inst.axes.key(giver, spmt))
    lent_on = np.zeros(fb.size)
    np.add.at(lent_on, order[at[found]], x[eb.index][found])
    move = np.clip(np.minimum(x[r_col], per_period[p, m] - served - lent_on), 0.0, None)
    out = x.copy()
    out[fb.index] = served + move
    out[r_col] = x[r_col] - move
    return out


def idle_programmes(inst: Instance, lm: LinearModel, x: np.ndarray) -> tuple[np.ndarray, float]:
    """A programme binary y_pm = 1 with no lot bought, or an agreement z_pj = 1 with no offtake,
    pays its fixed cost for nothing: a solver stopped within its gap may leave one. Closed here
    (the rows it sits in only loosen); returns the plan and what that saved."""
    new = x.copy()
    for flag, amount, dims in ((Var.PROGRAMME, Var.LOTS, ("p", "m")), (Var.AGREED, Var.OFFTAKE, ("p", "j"))):
        if flag not in lm.var_blocks or not lm.var_blocks[flag].size:
            continue
        fb, ab = lm.var_blocks[flag], lm.var_blocks[amount]
        # what each programme or agreement buys: lots summed over the build-up years, offtake units
        total = np.zeros(inst.axes.shape(dims))
        np.add.at(total, tuple(ab.coords[d] for d in dims), np.abs(ab.values(x)))
        bought = total[tuple(fb.coords[d] for d in dims)]
        idle = (bought < 0.5 if ab.name == Var.LOTS else bought <= 1e-9) & (lm.lb[fb.index] < 0.5)
        new[fb.index[idle]] = 0.0
    return new, max(float(lm.c @ x) - float(lm.c @ new), 0.0)


def exact_cvar(inst: Instance, lm: LinearModel, x: np.ndarray) -> tuple[np.ndarray, float]:
    """With a CVaR objective (define_cvar), eta_y and v_s set to their exact optimum for the plan's
    scenario costs: eta_y = VaR_alpha of build year y's Q, v_s = max(Q_s - eta_y(s), 0); and what that lowered the cost by.
    A solver stopped at its gap may leave them above it; the risk premium then reads exactly
    w (CVaR - E[Q])."""
    if "eta" not in lm.var_blocks:
        return x, 0.0
    plan = plan_from_solution(lm, x, inst)
    q = scenario_recourse(inst, plan)
    years = [inst.scen_year == y for y in range(inst.years)]
    var = np.array([var_cvar(q[sel], inst.prob[sel], inst.cvar_alpha)[0] for sel in years])
    eta, v = lm.var_blocks[Var.ETA], lm.var_blocks[Var.EXCESS]
    new = x.copy()
    unit = cvar_unit(inst)
    new[eta.index] = var / unit
    s = v.coords["s"]
    new[v.index] = np.maximum(q[s] - var[inst.scen_year[s]], 0.0) / unit
    before, after = float(lm.c @ x), float(lm.c @ new)
    return new, max(before - after, 0.0)
