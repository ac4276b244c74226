"""Stage 3 of the flow: indexed instance -> sparse mixed-integer model.

The extensive form of the two-stage stochastic program (docs/model.md). Every
family of variables or constraints is added by one ``define_*`` function over all
its indices at once, from numpy index arrays; the matrix is assembled once as
scipy CSR. No Python loop runs over (scenario, participant, mineral, period).

The model is the single statement of the problem. Each family declares where it is
defined:

* its **stage**: first stage (decided before the scenario is known) or second
  stage with its **decomposition key**, the labelled dimensions of one recourse
  block (today every second-stage family is keyed by (scenario, mineral));
* for variables, its **cost terms** by kind (acquisition, fixed, holding,
  shortfall, lending). The objective vector is their sum, and the reported cost
  breakdown is computed from the same terms, so the two cannot drift apart.

The decomposition (``solver/benders``) cuts the model along these declarations, and
:meth:`Builder.build` (``core.py``) refuses a model whose rows cross them.

Two exact reductions keep the model small (both proven in docs/model.md):

* Second-stage variables exist only on *cells* (s, p, m, t) with shortfall
  g > 0; elsewhere release, lending in and unmet are forced to zero anyway.
* Inventory I_t = x - cumulative outflow is non-increasing, so the reserve floor
  I_t >= floor * x holds in every period iff it holds in the last; inventory is
  therefore computed from the solution (results stage) instead of modelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from stockpile.model.core import EPIGRAPH, FEAS_TOL, FIRST, PAIR, Builder, CostKind, LinearModel, Row, Var
from stockpile.model.instance import DAYS_PER_YEAR, LOT_ROUNDING, Instance

log = logging.getLogger(__name__)


def lot_bounds(inst: Instance) -> tuple[np.ndarray, np.ndarray]:
    """Tight bounds n_min <= n_pm <= N_pm on lots, each keeping an optimal plan.

    n_min: the min_days target. N_pm is the smallest of the acquisition ceiling
    (max_acquisition_t), what the budget can pay after the other minerals'
    minimum spend and this mineral's fixed cost (budget_usd), what the storage
    holds after the other minerals' minimum holding (storage_capacity_t), and
    the *useful* holding: beyond x_useful = max over scenarios of
    max(total / (1 - floor), peak / rate, lent_a / max_share_a), where total and
    peak are the shortfall p could serve (its own plus its borrowers'), every
    release schedule of a larger holding is still feasible, so extra lots only
    add cost (prices and holding costs are non-negative).
    """
    n_min, n_cap = inst.lot_range()
    lot, price = inst.lot, inst.price
    spend_min = n_min * lot * price + np.where(n_min > 0, inst.fixed_cost, 0.0)
    others = spend_min.sum(axis=1, keepdims=True) - spend_min
    with np.errstate(divide="ignore", invalid="ignore"):
        room = inst.budget[:, None] - others - inst.fixed_cost
        n_budget = np.where(price * lot > 0, np.floor(room / (price * lot) + 1e-9), np.inf)
        n_budget = np.where(np.isinf(room), np.inf, n_budget)
        held_min = inst.initial + n_min * lot
        space = inst.storage[:, None] - (held_min.sum(axis=1, keepdims=True) - held_min) - inst.initial
        n_store = np.floor(space / lot + 1e-9)
    n_useful = useful_lots(inst)
    n_max = np.minimum.reduce([n_cap, n_budget, n_store, np.maximum(n_useful, n_min)])
    n_max = np.maximum(np.where(np.isfinite(n_max), n_max, 0.0), 0.0)
    return n_min, np.maximum(n_max, n_min)


def useful_lots(inst: Instance) -> np.ndarray:
    """(P, M) lots beyond which no scenario could use the holding (see useful_holding)."""
    return np.asarray(np.ceil(np.maximum(useful_holding(inst) - inst.initial, 0.0) / inst.lot - 1e-9))


def year_bounds(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds (P, M, Y) on the lots bought each year, and the total each programme may buy (P, M).

    Y = 1: lot_bounds. Y > 1: a year buys 0 .. the least of its acquisition ceiling
    (max_acquisition_t of the year), what that year's budget (with budget_carryover: every budget
    so far) pays at that year's price, what that year's storage holds beyond the initial stock,
    and the useful holding (or the last min_days requirement, if more); the yearly min_days
    targets are rows (define_min_days), not bounds.
    """
    if inst.years == 1:
        n_min, n_max = lot_bounds(inst)
        return n_min[..., None], n_max[..., None], n_max
    lot = inst.lot[None, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.floor(inst.acquisition_path / lot + LOT_ROUNDING)
        cost = inst.price_path[None] * lot
        n_budget = np.where(cost > 0, np.floor(inst.budget_limit[:, None, :] / cost + 1e-9), np.inf)
        space = inst.storage_path - inst.initial.sum(axis=1, keepdims=True)
        n_store = np.floor(space[:, None, :] / lot + 1e-9)
    total = np.maximum(useful_lots(inst), inst.yearly_requirement()[..., -1])
    n_max = np.minimum.reduce([cap, n_budget, n_store, np.broadcast_to(total[..., None], cap.shape)])
    n_max = np.maximum(np.where(np.isfinite(n_max), n_max, 0.0), 0.0)
    return np.zeros_like(n_max), n_max, np.minimum(total, n_max.sum(axis=-1))


def useful_holding(inst: Instance) -> np.ndarray:
    """Largest holding (P, M) that any release or lending schedule could use."""
    g = inst.shortfall  # (S, P, M, T)
    serve = g.copy()
    need_share = np.zeros(g.shape[1:3])
    for a in range(inst.arc_from.size):
        allowed = inst.arc_minerals[a][None, :, None]
        recv = g[:, inst.arc_to[a]] * allowed  # (S, M, T)
        serve[:, inst.arc_from[a]] += recv
        if inst.arc_share[a] > 0:
            lent = recv.sum(axis=-1).max(axis=0) / inst.arc_share[a]
            need_share[inst.arc_from[a]] = np.maximum(need_share[inst.arc_from[a]], lent)
    total = serve.sum(axis=-1).max(axis=0)
    peak = serve.max(axis=-1).max(axis=0)
    out = 1.0 - inst.reserve_floor[:, None]
    rate = inst.release_rate[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_total = np.where(out > 0, total / out, 0.0)
        x_peak = np.where(rate > 0, peak / rate, 0.0)
    usable = (out > 0) & (rate > 0)
    return np.where(usable, np.maximum.reduce([x_total, x_peak, need_share]), 0.0)


@dataclass
class Cells:
    """Second-stage cells (s, p, m, t) with shortfall, and lending options on them."""

    s: np.ndarray
    p: np.ndarray
    m: np.ndarray
    t: np.ndarray
    g: np.ndarray
    lend_cell: np.ndarray  # receiving cell of each lending variable
    lend_arc: np.ndarray  # its arc

    @property
    def coords(self) -> dict[str, np.ndarray]:
        return {"s": self.s, "p": self.p, "m": self.m, "t": self.t}


def find_cells(inst: Instance) -> Cells:
    """Cells with g > 0, and for each lending arc the receiver's cells it may serve."""
    s, p, m, t = np.nonzero(inst.shortfall > 0)
    cells, arcs = [], []
    for a in range(inst.arc_from.size):  # arcs are few: one vectorised mask each
        idx = np.nonzero((p == inst.arc_to[a]) & inst.arc_minerals[a][m])[0]
        cells.append(idx)
        arcs.append(np.full(idx.size, a))

    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)

    return Cells(s, p, m, t, inst.shortfall[s, p, m, t], cat(cells), cat(arcs))


def _each_up_to(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For element e repeated count[e] times: (e, 0), (e, 1), ..., (e, count[e] - 1), as two
    arrays: each row's terms over the years up to its own."""
    k = np.repeat(np.arange(count.size), count)
    return k, np.arange(k.size) - np.repeat(np.cumsum(count) - count, count)


@dataclass
class Context:
    """What every define_* function may read: the instance, its cells and the lot bounds."""

    inst: Instance
    cells: Cells
    n_min: np.ndarray  # (P, M, Y) lots bought in each year
    n_max: np.ndarray
    n_total: np.ndarray  # (P, M) the most lots a programme buys over all years
    offtake: np.ndarray | None = None  # (P, J) units of offtake fixed by a given plan (None: optimised)

    @property
    def flat_damage(self) -> np.ndarray:
        """Per cell the unit cost of unmet on u itself: the curve's one segment, 0 where define_damage
        splits u into priced pieces."""
        inst, c = self.inst, self.cells
        return np.where(inst.segmented[c.p, c.m], 0.0, inst.seg_cost[c.p, c.m, 0])

    def add_holding(
        self, b: Builder, rows: np.ndarray, p: np.ndarray, m: np.ndarray, year: np.ndarray, coef: ArrayLike
    ) -> None:
        """Add coef * n_pmy' for every year y' <= year to each row: coef / lot_t times the variable
        part of the holding x_{p,m,year} = initial_t + lot_t sum_{y' <= year} n_pmy' (one term when Y = 1)."""
        k, y = _each_up_to(np.asarray(year, dtype=np.int64) + 1)
        cols = b.var_blocks[Var.LOTS].start + self.inst.axes.key({"p": p[k], "m": m[k], "y": y}, ("p", "m", "y"))
        b.add_terms(rows[k], cols, np.broadcast_to(np.asarray(coef, dtype=float), rows.shape)[k])


def define_first_stage(b: Builder, ctx: Context) -> None:
    """Lots n_pmy (integer), bought at the start of build-up year y, and programme binaries y_pm.

    x_pmy = initial_t + lot_t * sum_{y' <= y} n_pmy';  bounds n_min <= n_pmy <= N_pmy (year_bounds).
    B = horizon.years, H = horizon.holding_years, K = B + H - 1 the years protected,
    delta_k = (1 + discount_rate)^-(k-1); year k holds x_min(k,B). Cost of a lot bought in year y:
        delta_y price_usd_per_t[y] lot_t                                   (acquisition)
      + holding_cost_usd_per_t_year lot_t sum_{k=y..K} delta_k             (holding: storage, paid at
                                                                            the start of each year held)
      - delta_{K+1} salvage_share price_usd_per_t[B] lot_t                 (salvage: resold after year K)
    and fixed_cost_usd * y_pm (fixed, year 1). The initial stock's storage and salvage are constants.
    y_pm exists only where fixed_cost_usd > 0 and some lot may be bought. B = H = 1, sigma = 0 is the
    one-shot model: price * lot * n + holding_cost * x + fixed_cost * y.
    """
    inst, n_min, n_max = ctx.inst, ctx.n_min, ctx.n_max
    pmy = inst.axes.grid(("p", "m", "y"))
    m, y = pmy["m"], pmy["y"]
    d = inst.discount
    # storage of a tonne bought at the start of year y: every year from y to K, discounted
    stored = np.cumsum(inst.year_weight[::-1])[::-1]
    resale = inst.salvage_discount * inst.salvage_share * inst.price_path[:, -1]  # (M,) per tonne
    costs = {
        CostKind.ACQUISITION: inst.price_path[m, y] * inst.lot[m] * d[y],
        CostKind.HOLDING: inst.holding_cost[m] * stored[y] * inst.lot[m],
    }
    if resale.any():
        costs[CostKind.SALVAGE] = -resale[m] * inst.lot[m]
        b.add_offset(CostKind.SALVAGE, -(resale * inst.initial).sum(axis=1))
    b.add_vars(Var.LOTS, pmy, FIRST, lb=n_min.ravel(), ub=n_max.ravel(), integer=True, costs=costs)
    b.add_offset(CostKind.HOLDING, (inst.holding_cost * stored[0] * inst.initial).sum(axis=1))
    pm = inst.axes.grid(("p", "m"))
    has_y = (inst.fixed_cost.ravel() > 0) & (ctx.n_total.ravel() > 0)
    yp, ym = pm["p"][has_y], pm["m"][has_y]
    b.add_vars(
        Var.PROGRAMME,
        {"p": yp, "m": ym},
        FIRST,
        lb=((n_min.sum(axis=-1) > 0) | (inst.yearly_requirement()[..., -1] > 0))[yp, ym].astype(float),
        ub=1.0,
        integer=True,
        costs={CostKind.FIXED: inst.fixed_cost[yp, ym]},
    )


def recourse_costs(inst: Instance, s: np.ndarray, unit: np.ndarray, kind: CostKind) -> dict[CostKind, np.ndarray]:
    """The objective's terms of a recourse variable of unit cost `unit` in scenarios s:
    pi_s W_{y(s)} unit (expected over the years drawing on that holding), and with
    risk.cvar_weight w > 0 also -w times that (risk premium), so that with define_cvar the
    objective is first stage + sum_y W_y [(1 - w) E Q + w CVaR_alpha Q]."""
    cost = inst.prob[s] * inst.scen_weight[s] * unit
    w = inst.cvar_weight
    return {kind: cost} | ({CostKind.RISK: -w * cost} if w > 0 else {})


def define_recourse(b: Builder, ctx: Context) -> None:
    """Release r, unmet u on each cell, and lending l on each (arc, receiving cell).

    0 <= r, u <= g;  0 <= l <= g of the receiver. Lending is labelled by the receiver's
    cell (s, p, m, t) and its arc a; the receiver pays its fee, the lender's mineral its
    release cost. Unit costs (recourse_costs weighs them): shortfall_cost_usd_per_t on u
    (shortfall) where the participant's curve has one segment (define_damage prices the others),
    release_cost_usd_per_t on r (release), cost_usd_per_t + release_cost_usd_per_t on l (lending,
    release).
    """
    inst, cells = ctx.inst, ctx.cells
    rel = inst.release_cost[cells.m]
    b.add_vars(
        Var.RELEASE,
        cells.coords,
        PAIR,
        lb=0.0,
        ub=cells.g,
        costs=recourse_costs(inst, cells.s, rel, CostKind.RELEASE) if rel.any() else {},
    )
    b.add_vars(
        Var.UNMET,
        cells.coords,
        PAIR,
        lb=0.0,
        ub=cells.g,
        costs=recourse_costs(inst, cells.s, ctx.flat_damage, CostKind.SHORTFALL),
    )
    c = cells.lend_cell
    s, m = cells.s[c], cells.m[c]
    costs = recourse_costs(inst, s, inst.arc_cost[cells.lend_arc], CostKind.LENDING)
    if inst.release_cost[m].any():
        extra = recourse_costs(inst, s, inst.release_cost[m], CostKind.RELEASE)
        costs = {CostKind.LENDING: costs[CostKind.LENDING], CostKind.RELEASE: extra[CostKind.RELEASE]} | (
            {CostKind.RISK: costs[CostKind.RISK] + extra[CostKind.RISK]} if CostKind.RISK in costs else {}
        )
    b.add_vars(
        Var.LENT,
        {**{k: v[c] for k, v in cells.coords.items()}, "a": cells.lend_arc},
        PAIR,
        lb=0.0,
        ub=cells.g[c],
        costs=costs,
    )


def define_damage(b: Builder, ctx: Context) -> None:
    """Damage curves (minerals.M.shortfall_cost_usd_per_t as segments, or minerals.M.damage): on each
    cell whose participant's curve has several segments, unmet splits into pieces u_j,

        u_spmt = sum_j u_spmtj,   0 <= u_spmtj <= (w_j - w_{j-1}) q_pm   (the last piece up to g),

    w_j = up_to_share, q_pm the consumption per period, at cost pi_s W_y(s) b_j u_spmtj (shortfall;
    risk as recourse_costs). The curve is convex (b_j never decreases), so the cheapest pieces fill
    first and the cost is the curve's damage of u. One-segment cells keep b on u itself.
    """
    inst, cells = ctx.inst, ctx.cells
    seg = inst.segmented[cells.p, cells.m]
    if not seg.any():
        return
    c = np.nonzero(seg)[0]
    lo, hi = inst.segment_bounds(cells.p[c], cells.m[c])  # (C, J) tonnes
    J = lo.shape[1]
    cap = hi - lo
    cc, j = np.nonzero(cap > 0)  # zero-width padding has no piece
    cell = c[cc]
    ub = np.minimum(cap[cc, j], cells.g[cell])
    pieces = b.add_vars(
        Var.DAMAGE,
        {**{k: v[cell] for k, v in cells.coords.items()}, "d": j},
        PAIR,
        lb=0.0,
        ub=ub,
        costs=recourse_costs(inst, cells.s[cell], inst.seg_cost[cells.p[cell], cells.m[cell], j], CostKind.SHORTFALL),
    )
    rows = b.add_rows(Row.DAMAGE, {k: v[c] for k, v in cells.coords.items()}, PAIR, lb=0.0, ub=0.0)
    b.add_terms(rows, b.var_blocks[Var.UNMET].index[c], 1.0)
    row_of = np.full(cells.g.size, -1)
    row_of[c] = rows
    b.add_terms(row_of[cell], pieces, -1.0)
    log.debug("damage curves: %d pieces on %d cells (up to %d segments)", pieces.size, c.size, J)


def define_demand(b: Builder, ctx: Context) -> None:
    """Every tonne of shortfall is released, borrowed or unmet.

    r_spmt + sum_p' l_{s,p'->p,m,t} + u_spmt = g_spmt   (g from scenarios.*.shocks)
    """
    cells = ctx.cells
    rows = b.add_rows(Row.DEMAND, cells.coords, PAIR, lb=cells.g, ub=cells.g)
    r, u, lend = (b.var_blocks[k].index for k in (Var.RELEASE, Var.UNMET, Var.LENT))
    b.add_terms(rows, r, 1.0)
    b.add_terms(rows, u, 1.0)
    b.add_terms(rows[cells.lend_cell], lend, 1.0)


def _outflows(b: Builder, ctx: Context) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Giver's (s, p, m, t) and column of every outflow variable: own releases, then lending."""
    inst = ctx.inst
    r, lend = b.var_blocks[Var.RELEASE], b.var_blocks[Var.LENT]
    giver = {**lend.coords, "p": inst.arc_from[lend.coords["a"]]}
    coords = {k: np.concatenate([r.coords[k], giver[k]]) for k in "spmt"}
    return coords, np.concatenate([r.index, lend.index])


def define_release_limits(b: Builder, ctx: Context) -> None:
    """Release-rate cap per period and reserve floor, on the giver's holding x_pm.

    rate:  r_spmt + sum_p' l_{s,p->p',m,t} <= release_rate_max_p * x_pm
           (only where release_rate_max_p < 1 - reserve_floor_p; otherwise implied)
    floor: sum_t (r_spmt + sum_p' l_{s,p->p',m,t}) <= (1 - reserve_floor_p) * x_pm - D_pm,
           equivalent to I_spmt >= reserve_floor_p * x_pm for every t since I is non-increasing;
           D_pm: what a disruption under way has drawn already (respond STATE inventory: D = x - I_k).
    x_pm is the holding of the year the scenario strikes in, x_{p,m,year_s}; with
    x = initial_t + lot_t * (lots bought by then) the holding's variable part moves left.
    """
    inst, axes = ctx.inst, ctx.inst.axes
    coords, outflow_vars = _outflows(b, ctx)
    spmt, inv = axes.unique(coords, ("s", "p", "m", "t"))
    s, p, m, t = (spmt[k] for k in "spmt")
    rate = inst.release_rate[p]
    tight = rate < 1.0 - inst.reserve_floor[p] - FEAS_TOL
    rows = b.add_rows(
        Row.RATE,
        {"s": s[tight], "p": p[tight], "m": m[tight], "t": t[tight]},
        PAIR,
        lb=-np.inf,
        ub=(rate * inst.initial[p, m])[tight],
    )
    row_of = np.full(s.size, -1)
    row_of[tight] = rows
    sel = row_of[inv] >= 0
    b.add_terms(row_of[inv][sel], outflow_vars[sel], 1.0)
    ctx.add_holding(b, rows, p[tight], m[tight], inst.scen_year[s[tight]], -(rate * inst.lot[m])[tight])

    spm, inv2 = axes.unique(spmt, ("s", "p", "m"))
    s2, p2, m2 = (spm[k] for k in "spm")
    out = 1.0 - inst.reserve_floor[p2]
    rows2 = b.add_rows(Row.FLOOR, spm, PAIR, lb=-np.inf, ub=out * inst.initial[p2, m2] - inst.drawn[p2, m2])
    b.add_terms(rows2[inv2[inv]], outflow_vars, 1.0)
    ctx.add_holding(b, rows2, p2, m2, inst.scen_year[s2], -out * inst.lot[m2])


def define_lending_caps(b: Builder, ctx: Context) -> None:
    """Total lent on an arc in a scenario is a share of the lender's holding.

    sum_t l_{s,p->p',m,t} <= max_share * x_{p,m,year_s} - L_am   (lending.*.max_share; L: lent already in a
    disruption under way, respond STATE lent_so_far)
    Rows only where max_share < 1 - reserve_floor of the lender (otherwise implied by the floor,
    also with L: what is lent is part of what is drawn, L_am <= D_pm).
    """
    inst = ctx.inst
    lb_ = b.var_blocks[Var.LENT]
    a = lb_.coords["a"]
    need = inst.arc_share[a] < 1.0 - inst.reserve_floor[inst.arc_from[a]] - FEAS_TOL
    sam, inv = inst.axes.unique({k: v[need] for k, v in lb_.coords.items()}, ("s", "a", "m"))
    arc, m = sam["a"], sam["m"]
    share, frm = inst.arc_share[arc], inst.arc_from[arc]
    rows = b.add_rows(Row.LEND_CAP, sam, PAIR, lb=-np.inf, ub=share * inst.initial[frm, m] - inst.arc_lent[arc, m])
    b.add_terms(rows[inv], lb_.index[need], 1.0)
    ctx.add_holding(b, rows, frm, m, inst.scen_year[sam["s"]], -share * inst.lot[m])


def define_program(b: Builder, ctx: Context) -> None:
    """A fixed program cost is paid when any lot is bought: sum_y n_pmy <= N_pm * y_pm (N: the most
    the programme may buy, year_bounds)."""
    yb = b.var_blocks[Var.PROGRAMME]
    p, m = yb.coords["p"], yb.coords["m"]
    rows = b.add_rows(Row.PROGRAMME, {"p": p, "m": m}, FIRST, lb=-np.inf, ub=0.0)
    ctx.add_holding(b, rows, p, m, np.full(rows.size, ctx.inst.years - 1), 1.0)
    b.add_terms(rows, yb.index, -ctx.n_total[p, m])


def _yearly_rows(b: Builder, name: str, limit: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One row per (participant, year) with a finite limit (P, Y): the rows and their (p, y)."""
    ps, ys = np.nonzero(np.isfinite(limit))
    return b.add_rows(name, {"p": ps, "y": ys}, FIRST, lb=-np.inf, ub=limit[ps, ys]), {"p": ps, "y": ys}


def define_budget(b: Builder, ctx: Context) -> None:
    """What each year's purchases cost fits that year's appropriation:

        sum_m price_usd_per_t[y] * lot_t * n_pmy + [y = 1] sum_m fixed_cost_usd * y_pm <= budget_usd_p[y]

    with participants.P.budget_carryover, unspent money carries over: the spend of years 1..y fits
    the budgets of years 1..y (sum over y' <= y on both sides; programme costs are in every row).
    Undiscounted: appropriations are nominal. Y = 1: sum_m (price * lot * n_pm + fixed_cost * y_pm) <= budget_usd_p.
    """
    inst = ctx.inst
    M = len(inst.minerals)
    rows, at = _yearly_rows(b, Row.BUDGET, inst.budget_limit)
    # the years whose spend each row counts: its own, or every year up to it with carryover
    carry = inst.carryover[at["p"]]
    k, i = _each_up_to(np.where(carry, at["y"] + 1, 1))
    spent = np.where(carry[k], i, at["y"][k])
    km, m = np.repeat(k, M), np.tile(np.arange(M), k.size)
    ym = np.repeat(spent, M)
    cols = b.var_blocks[Var.LOTS].start + inst.axes.key({"p": at["p"][km], "m": m, "y": ym}, ("p", "m", "y"))
    b.add_terms(rows[km], cols, inst.price_path[m, ym] * inst.lot[m])
    # programme costs are year 1's spend: in year 1's row, and with carryover in every later row too
    yb = b.var_blocks[Var.PROGRAMME]
    counts_year_one = (at["y"] == 0) | carry
    r_of, v_of = np.nonzero(at["p"][counts_year_one][:, None] == yb.coords["p"][None, :])
    yp, ym = yb.coords["p"][v_of], yb.coords["m"][v_of]
    b.add_terms(rows[counts_year_one][r_of], yb.index[v_of], inst.fixed_cost[yp, ym])


def define_storage(b: Builder, ctx: Context) -> None:
    """sum_m x_pmy <= storage_capacity_t_p[y] in every year y, i.e.
    sum_m lot_t * sum_{y' <= y} n_pmy' <= capacity_y - sum_m initial_t."""
    inst = ctx.inst
    M = len(inst.minerals)
    rows, at = _yearly_rows(b, Row.STORAGE, inst.storage_path - inst.initial.sum(axis=1, keepdims=True))
    k, m = np.repeat(np.arange(rows.size), M), np.tile(np.arange(M), rows.size)
    ctx.add_holding(b, rows[k], at["p"][k], m, at["y"][k], inst.lot[m])


def define_min_days(b: Builder, ctx: Context) -> None:
    """The min_days target of each build-up year, only when horizon.years > 1 (Y = 1: lot bounds):

        x_pmy >= min_days_pm[y] * consumption / 365, i.e. sum_{y' <= y} n_pmy' >= R_pmy
    with R the lots required by the end of year y (yearly_requirement). A row only where R grows:
    holdings never shrink, so a year whose requirement equals the year before's is already met.
    """
    inst = ctx.inst
    if inst.years == 1:
        return
    need = inst.yearly_requirement()
    before = np.concatenate([np.zeros_like(need[..., :1]), need[..., :-1]], axis=-1)
    p, m, y = np.nonzero(need > before)
    rows = b.add_rows(Row.MIN_DAYS, {"p": p, "m": m, "y": y}, FIRST, lb=need[p, m, y], ub=np.inf)
    ctx.add_holding(b, rows, p, m, y, 1.0)


def cvar_unit(inst: Instance) -> float:
    """Dollars per unit of eta and v: the largest shortfall cost, so that the CVaR row's
    coefficients lie in (0, 1] (dollars next to tonnes made GLOP's recourse LPs imprecise)."""
    return float(max(1.0, inst.top_cost, inst.arc_cost.max(initial=1.0)))


def define_cvar(b: Builder, ctx: Context) -> None:
    """CVaR of each year's recourse cost, as a transform of the model (Rockafellar-Uryasev), only for w > 0.

    One eta_y per build year y (first stage, >= 0: recourse costs are; one, unlabelled, when
    horizon.years = 1) and v_s >= 0 per scenario with shortfall, both in units of U = cvar_unit
    dollars:
        v_s + eta_{y(s)} - Q_s / U >= 0,   Q_s = sum over s's recourse variables of unit cost x value
    where the unit costs are the recourse families' own (their non-risk costs over pi_s W_y(s)).
    Cost (risk premium): w U W_y eta_y + w U W_y(s) pi_s / (1 - alpha) v_s, with w = risk.cvar_weight,
    alpha = risk.cvar_alpha and W_y the discounted years drawing on build year y's holding. At the
    optimum U eta_y is the alpha-quantile (VaR) of a year's Q and U (eta_y + sum_s pi_s v_s / (1 - alpha))
    its CVaR_alpha: the objective is first stage + sum_y W_y [(1 - w) E Q + w CVaR_alpha Q].
    Calm scenarios (Q_s = 0) need no v_s. v_s and its row are keyed by scenario, so the
    decomposition's blocks become whole scenarios and eta is one more master variable: no method
    needs to know about CVaR.
    """
    inst = ctx.inst
    w, alpha = inst.cvar_weight, inst.cvar_alpha
    if w <= 0:
        return
    unit = cvar_unit(inst)
    years = np.arange(inst.years)
    eta = b.add_vars(
        Var.ETA,
        {"y": years} if inst.years > 1 else {},
        FIRST,
        lb=0.0,
        ub=np.inf,
        costs={CostKind.RISK: w * unit * inst.year_weight},
    )
    scen = np.unique(ctx.cells.s)
    weight = inst.prob * inst.scen_weight
    v = b.add_vars(
        Var.EXCESS,
        {"s": scen},
        EPIGRAPH,
        lb=0.0,
        ub=np.inf,
        costs={CostKind.RISK: w * unit * weight[scen] / (1 - alpha)},
    )
    rows = b.add_rows(Row.CVAR, {"s": scen}, EPIGRAPH, lb=0.0, ub=np.inf)
    b.add_terms(rows, v, 1.0)
    b.add_terms(rows, eta[inst.scen_year[scen]], 1.0)
    row_of = np.full(len(inst.scenarios), -1)
    row_of[scen] = rows
    for blk in list(b.var_blocks.values()):
        if blk.stage != PAIR or not blk.costs:
            continue
        s = blk.coords["s"]
        per_unit = sum(c for k, c in blk.costs.items() if k is not CostKind.RISK) / weight[s]
        keep = per_unit != 0
        b.add_terms(row_of[s[keep]], blk.index[keep], -per_unit[keep] / unit)


def define_offtake(b: Builder, ctx: Context) -> None:
    """Offtake from allied projects (`projects`), first stage, only when the config has projects.

    o_pj >= 0: units of offtake participant p commits to take from project j each year; a unit
    is offtake_lot_t tonnes (integer units) or 1 t (any amount). With u_j the unit,
        capacity:  sum_p u_j o_pj <= capacity_t_per_year_j
        agreement: u_j o_pj <= capacity_j z_pj,  z_pj binary (only where fixed_cost_usd_j > 0)
    Cost (offtake): (sum_{k=1..K} delta_k) max(floor_price_usd_per_t_j - price_usd_per_t_m, 0) u_j o_pj,
    the price-gap subsidy of every year protected (K = horizon.years + holding_years - 1, discounted),
    + fixed_cost_usd_j z_pj. Not charged to budget_usd (a separate appropriation).
    """
    inst = ctx.inst
    J = len(inst.projects)
    if J == 0:
        return
    pj = inst.axes.grid(("p", "j"))
    p, j = pj["p"], pj["j"]
    unit = inst.proj_lot[j]
    most = np.where(inst.proj_integer[j], np.floor(inst.proj_cap[j] / unit + 1e-9), inst.proj_cap[j] / unit)
    given = None if ctx.offtake is None else ctx.offtake.ravel()
    o = b.add_vars(
        Var.OFFTAKE,
        {"p": p, "j": j},
        FIRST,
        lb=0.0 if given is None else given,
        ub=most if given is None else given,
        integer=inst.proj_integer[j],
        costs={CostKind.OFFTAKE: inst.risk_years * inst.proj_gap[j] * unit},
    )
    rows = b.add_rows(Row.CAPACITY, {"j": np.arange(J)}, FIRST, lb=-np.inf, ub=inst.proj_cap)
    b.add_terms(rows[j], o, unit)
    has_z = inst.proj_fixed[j] > 0
    zp, zj = p[has_z], j[has_z]
    z = b.add_vars(
        Var.AGREED,
        {"p": zp, "j": zj},
        FIRST,
        lb=0.0 if given is None else (given[has_z] > 0).astype(float),
        ub=1.0,
        integer=True,
        costs={CostKind.OFFTAKE: inst.proj_fixed[zj]},
    )
    agree = b.add_rows(Row.AGREEMENT, {"p": zp, "j": zj}, FIRST, lb=-np.inf, ub=0.0)
    b.add_terms(agree, o[has_z], unit[has_z])
    b.add_terms(agree, z, -inst.proj_cap[zj])


def define_offtake_use(b: Builder, ctx: Context) -> None:
    """Offtake serves shortfall in every scenario: it comes from an allied source, so no shock
    cuts it. On every cell of a mineral some project produces, f_spmt >= 0 is the taker's own
    use; on the lending arcs that may carry the mineral, e_{s,a,m,t} >= 0 lends offtake onward
    (labelled, like lending, by the receiver's cell and the arc; the receiver pays the arc's fee):
        r + sum l_in + sum e_in + f + u = g                        (terms of the demand row)
        f_spmt + sum_{a from p} e_{s,a,m,t} <= (Delta / 365) sum_{j of m} u_j o_pj   (offtake row)
        f <= g;  e <= g of the receiver
    Offtake lent onward is not stock: it moves neither the lender's floor, rate nor max_share.
    """
    inst, cells = ctx.inst, ctx.cells
    if len(inst.projects) == 0:
        return
    served = np.zeros(len(inst.minerals), dtype=bool)
    served[inst.proj_m] = True
    idx = np.nonzero(served[cells.m])[0]
    own = {k: v[idx] for k, v in cells.coords.items()}
    demand = b.row_blocks[Row.DEMAND].index
    f = b.add_vars(Var.OFFTAKE_USED, own, PAIR, lb=0.0, ub=cells.g[idx])
    b.add_terms(demand[idx], f, 1.0)
    keep = served[cells.m[cells.lend_cell]]
    c, arc = cells.lend_cell[keep], cells.lend_arc[keep]
    e = b.add_vars(
        Var.OFFTAKE_LENT,
        {**{k: v[c] for k, v in cells.coords.items()}, "a": arc},
        PAIR,
        lb=0.0,
        ub=cells.g[c],
        costs=recourse_costs(inst, cells.s[c], inst.arc_cost[arc], CostKind.LENDING),
    )
    b.add_terms(demand[c], e, 1.0)
    giver = {"s": cells.s[c], "p": inst.arc_from[arc], "m": cells.m[c], "t": cells.t[c]}
    both = {k: np.concatenate([own[k], giver[k]]) for k in "spmt"}
    keys, inv = inst.axes.unique(both, ("s", "p", "m", "t"))
    rows = b.add_rows(Row.OFFTAKE, keys, PAIR, lb=-np.inf, ub=0.0)
    b.add_terms(rows[inv], np.concatenate([f, e]), 1.0)
    o = b.var_blocks[Var.OFFTAKE]
    for jj in range(len(inst.projects)):  # projects are few: one vectorised term set each
        mine = np.nonzero(keys["m"] == inst.proj_m[jj])[0]
        col = o.start + inst.axes.key({"p": keys["p"][mine], "j": np.full(mine.size, jj)}, ("p", "j"))
        b.add_terms(rows[mine], col, -inst.period_days / DAYS_PER_YEAR * inst.proj_lot[jj])


def define_orders(b: Builder, ctx: Context) -> None:
    """Non-anticipative orders of a disruption under way (respond.py), only when shared_periods > 0.

    The orders of the first K = shared_periods periods are decided before anyone knows which
    continuation (scenario) follows, so they are first-stage variables, the same in all:
        r_spmt = o_pmt               (release order; t < K)
        l_{s,p,m,t,a} = o^l_{amt}    (lending order on arc a; t < K; and e, offtake lent onward)
    Every continuation shares the known shortfall of those periods (the history), so each
    (p, m, t < K) with a cell has one in every scenario. No cost: r, u and l keep theirs.
    The orders are one more family of the master; no method needs to know about them.
    """
    K = ctx.inst.shared_periods
    if K <= 0:
        return
    axes = ctx.inst.axes
    for var, dims in ((Var.RELEASE, ("p", "m", "t")), (Var.LENT, ("a", "m", "t")), (Var.OFFTAKE_LENT, ("a", "m", "t"))):
        if var not in b.var_blocks:
            continue
        blk = b.var_blocks[var]
        early = blk.coords["t"] < K
        keys, inv = axes.unique({k: v[early] for k, v in blk.coords.items()}, dims)
        orders = b.add_vars(f"order_{var}", keys, FIRST, lb=0.0, ub=np.inf)
        coords = {k: v[early] for k, v in blk.coords.items()}
        rows = b.add_rows(f"same_{var}", coords, PAIR, lb=0.0, ub=0.0)
        b.add_terms(rows, blk.index[early], 1.0)
        b.add_terms(rows, orders[inv], -1.0)


Family = Callable[[Builder, Context], None]


# The model, family by family, in the order the columns and rows are laid out. A new
# family is one more define_* here; its stage and cost kinds travel with it.
FAMILIES: tuple[Family, ...] = (
    define_first_stage,
    define_recourse,
    define_damage,
    define_demand,
    define_release_limits,
    define_lending_caps,
    define_program,
    define_budget,
    define_storage,
    define_min_days,
    define_offtake,
    define_offtake_use,
    define_cvar,
    define_orders,
)


def build_model(inst: Instance, lots: np.ndarray | None = None, offtake: np.ndarray | None = None) -> LinearModel:
    """The extensive form: every scenario's recourse in one MIP.

    lots (P, M), or (P, M, Y) by build-up year: a first-stage plan to evaluate rather than optimise:
    the expected cost of a given plan with its recourse re-optimised per scenario; offtake
    (P, J, units), with lots: that plan's offtake (absent: none).
    """
    if lots is None:
        n_min, n_max, n_total = year_bounds(inst)
    else:
        n_min = n_max = (lots if lots.ndim == 3 else lots[..., None]).astype(float)
        n_total = n_max.sum(axis=-1)
        if offtake is None:
            offtake = np.zeros((len(inst.participants), len(inst.projects)))
    ctx = Context(inst, find_cells(inst), n_min, n_max, n_total, offtake)
    b = Builder(inst.axes)
    for define in FAMILIES:
        define(b, ctx)
    lm = b.build()
    log.debug("model: %s", lm.sizes)
    return lm
