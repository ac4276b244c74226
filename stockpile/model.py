"""Stage 3 of the flow: indexed instance -> sparse mixed-integer model.

The extensive form of the two-stage stochastic program (docs/model.md). Every
family of variables or constraints is added by one ``define_*`` function over all
its indices at once, from numpy index arrays; the matrix is assembled once as
scipy CSR. No Python loop runs over (scenario, participant, mineral, period).

Two exact reductions keep the model small (both proven in docs/model.md):

* Second-stage variables exist only on *cells* (s, p, m, t) with shortfall
  g > 0; elsewhere release, lending in and unmet are forced to zero anyway.
* Inventory I_t = x - cumulative outflow is non-increasing, so the reserve floor
  I_t >= floor * x holds in every period iff it holds in the last; inventory is
  therefore computed from the solution (results stage) instead of modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .instance import Instance

FEAS_TOL = 1e-9


@dataclass
class Block:
    """A family of variables or rows: its position and labelled coordinates."""

    name: str
    start: int
    size: int
    coords: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def index(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)


@dataclass
class LinearModel:
    """min c x + offset  s.t.  row_lb <= A x <= row_ub,  lb <= x <= ub,  x_j integer where flagged."""

    c: np.ndarray
    offset: float
    A: sp.csr_matrix
    row_lb: np.ndarray
    row_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    var_blocks: dict[str, Block]
    row_blocks: dict[str, Block]

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "variables": int(self.c.size),
            "integer_variables": int(self.integer.sum()),
            "constraints": int(self.A.shape[0]),
            "nonzeros": int(self.A.nnz),
        }


class _Builder:
    """Collects variables, rows and COO terms, then assembles one CSR matrix."""

    def __init__(self) -> None:
        self.n_vars = 0
        self.n_rows = 0
        self.cols: dict[str, list[np.ndarray]] = {"c": [], "lb": [], "ub": [], "int": []}
        self.rows: dict[str, list[np.ndarray]] = {"lb": [], "ub": []}
        self.terms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.var_blocks: dict[str, Block] = {}
        self.row_blocks: dict[str, Block] = {}

    def add_vars(self, name: str, coords: dict[str, np.ndarray], *, lb, ub, cost, integer=False) -> np.ndarray:
        size = len(next(iter(coords.values())))
        block = Block(name, self.n_vars, size, coords)
        self.var_blocks[name] = block
        for key, value in (("c", cost), ("lb", lb), ("ub", ub)):
            self.cols[key].append(np.broadcast_to(np.asarray(value, dtype=float), (size,)))
        self.cols["int"].append(np.full(size, bool(integer)))
        self.n_vars += size
        return block.index

    def add_rows(self, name: str, coords: dict[str, np.ndarray], *, lb, ub) -> np.ndarray:
        size = len(next(iter(coords.values())))
        block = Block(name, self.n_rows, size, coords)
        self.row_blocks[name] = block
        self.rows["lb"].append(np.broadcast_to(np.asarray(lb, dtype=float), (size,)))
        self.rows["ub"].append(np.broadcast_to(np.asarray(ub, dtype=float), (size,)))
        self.n_rows += size
        return block.index

    def add_terms(self, rows: np.ndarray, cols: np.ndarray, vals) -> None:
        vals = np.broadcast_to(np.asarray(vals, dtype=float), rows.shape)
        self.terms.append((rows, cols, vals))

    def build(self, offset: float) -> LinearModel:
        cat = lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dtype=dt)  # noqa: E731
        rows = cat([t[0] for t in self.terms], np.int64)
        cols = cat([t[1] for t in self.terms], np.int64)
        vals = cat([t[2] for t in self.terms])
        keep = vals != 0
        A = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(self.n_rows, self.n_vars))
        A.sum_duplicates()
        A.sort_indices()
        return LinearModel(
            c=cat(self.cols["c"]), offset=float(offset), A=A,
            row_lb=cat(self.rows["lb"]), row_ub=cat(self.rows["ub"]),
            lb=cat(self.cols["lb"]), ub=cat(self.cols["ub"]), integer=cat(self.cols["int"], bool),
            var_blocks=self.var_blocks, row_blocks=self.row_blocks,
        )


# ----------------------------------------------------------------------------
# Bounds on lots


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
    P, M = inst.consumption.shape
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
    n_useful = np.ceil(np.maximum(useful_holding(inst) - inst.initial, 0.0) / lot - 1e-9)
    n_max = np.minimum.reduce([n_cap, n_budget, n_store, np.maximum(n_useful, n_min)])
    n_max = np.maximum(np.where(np.isfinite(n_max), n_max, 0.0), 0.0)
    return n_min, np.maximum(n_max, n_min)


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


# ----------------------------------------------------------------------------
# Variables


def define_first_stage(b: _Builder, inst: Instance, n_min: np.ndarray, n_max: np.ndarray) -> None:
    """Lots n_pm (integer) and program binaries y_pm.

    x_pm = initial_t + lot_t * n_pm;  n_min_pm <= n_pm <= N_pm (see lot_bounds).
    Cost: (price_usd_per_t + holding_cost_usd_per_t_year * holding_years) * lot_t * n_pm
    + fixed_cost_usd * y_pm; y_pm exists only where fixed_cost_usd > 0 and N_pm > 0.
    """
    P, M = inst.consumption.shape
    p, m = np.divmod(np.arange(P * M), M)
    unit = inst.price + inst.holding_cost * inst.holding_years
    b.add_vars("n", {"p": p, "m": m}, lb=n_min.ravel(), ub=n_max.ravel(),
               cost=(unit * inst.lot)[m], integer=True)
    has_y = (inst.fixed_cost.ravel() > 0) & (n_max.ravel() > 0)
    yp, ym = p[has_y], m[has_y]
    b.add_vars("y", {"p": yp, "m": ym}, lb=(n_min[yp, ym] > 0).astype(float), ub=1.0,
               cost=inst.fixed_cost[yp, ym], integer=True)


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


def find_cells(inst: Instance) -> Cells:
    """Cells with g > 0, and for each lending arc the receiver's cells it may serve."""
    s, p, m, t = np.nonzero(inst.shortfall > 0)
    cells, arcs = [], []
    for a in range(inst.arc_from.size):  # arcs are few: one vectorised mask each
        idx = np.nonzero((p == inst.arc_to[a]) & inst.arc_minerals[a][m])[0]
        cells.append(idx)
        arcs.append(np.full(idx.size, a))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
    return Cells(s, p, m, t, inst.shortfall[s, p, m, t], cat(cells), cat(arcs))


def define_recourse(b: _Builder, inst: Instance, cells: Cells) -> None:
    """Release r, unmet u on each cell, and lending l on each (arc, receiving cell).

    0 <= r, u <= g;  0 <= l <= g of the receiver.
    Expected cost: pi_s * shortfall_cost_usd_per_t * u + pi_s * cost_usd_per_t * l.
    """
    coords = {"s": cells.s, "p": cells.p, "m": cells.m, "t": cells.t}
    b.add_vars("r", coords, lb=0.0, ub=cells.g, cost=0.0)
    b.add_vars("u", coords, lb=0.0, ub=cells.g, cost=inst.prob[cells.s] * inst.shortfall_cost[cells.m])
    c = cells.lend_cell
    b.add_vars("l", {"cell": c, "a": cells.lend_arc}, lb=0.0, ub=cells.g[c],
               cost=inst.prob[cells.s[c]] * inst.arc_cost[cells.lend_arc])


# ----------------------------------------------------------------------------
# Constraints


def define_demand(b: _Builder, cells: Cells) -> None:
    """Every tonne of shortfall is released, borrowed or unmet.

    r_spmt + sum_p' l_{s,p'->p,m,t} + u_spmt = g_spmt   (g from scenarios.*.shocks)
    """
    n = cells.g.size
    rows = b.add_rows("demand", {"cell": np.arange(n)}, lb=cells.g, ub=cells.g)
    r, u, l = (b.var_blocks[k].index for k in "rul")
    b.add_terms(rows, r, 1.0)
    b.add_terms(rows, u, 1.0)
    b.add_terms(rows[cells.lend_cell], l, 1.0)


def _outflow_keys(inst: Instance, cells: Cells) -> np.ndarray:
    """Key (s, p, m, t) of the giver of each outflow variable: own releases, then lending."""
    P, M, T = len(inst.participants), len(inst.minerals), inst.periods
    c = cells.lend_cell
    giver = inst.arc_from[cells.lend_arc]
    key_r = ((cells.s * P + cells.p) * M + cells.m) * T + cells.t
    key_l = ((cells.s[c] * P + giver) * M + cells.m[c]) * T + cells.t[c]
    return np.concatenate([key_r, key_l])


def define_release_limits(b: _Builder, inst: Instance, cells: Cells) -> None:
    """Release-rate cap per period and reserve floor, on the giver's holding x_pm.

    rate:  r_spmt + sum_p' l_{s,p->p',m,t} <= release_rate_max_p * x_pm
           (only where release_rate_max_p < 1 - reserve_floor_p; otherwise implied)
    floor: sum_t (r_spmt + sum_p' l_{s,p->p',m,t}) <= (1 - reserve_floor_p) * x_pm,
           equivalent to I_spmt >= reserve_floor_p * x_pm for every t since I is non-increasing.
    With x_pm = initial_t + lot_t * n_pm the holding's variable part moves left.
    """
    P, M, T = len(inst.participants), len(inst.minerals), inst.periods
    keys = _outflow_keys(inst, cells)
    outflow_vars = np.concatenate([b.var_blocks["r"].index, b.var_blocks["l"].index])
    uniq, inv = np.unique(keys, return_inverse=True)
    spm, t = np.divmod(uniq, T)
    sp_, m = np.divmod(spm, M)
    s, p = np.divmod(sp_, P)
    n_var = b.var_blocks["n"].start + p * M + m

    rate = inst.release_rate[p]
    tight = rate < 1.0 - inst.reserve_floor[p] - FEAS_TOL
    rows = b.add_rows("rate", {"s": s[tight], "p": p[tight], "m": m[tight], "t": t[tight]},
                      lb=-np.inf, ub=(rate * inst.initial[p, m])[tight])
    row_of = np.full(uniq.size, -1)
    row_of[tight] = rows
    sel = row_of[inv] >= 0
    b.add_terms(row_of[inv][sel], outflow_vars[sel], 1.0)
    b.add_terms(rows, n_var[tight], -(rate * inst.lot[m])[tight])

    spm_u, inv2 = np.unique(spm, return_inverse=True)
    sp2, m2 = np.divmod(spm_u, M)
    s2, p2 = np.divmod(sp2, P)
    out = 1.0 - inst.reserve_floor[p2]
    rows2 = b.add_rows("floor", {"s": s2, "p": p2, "m": m2}, lb=-np.inf, ub=out * inst.initial[p2, m2])
    b.add_terms(rows2[inv2[inv]], outflow_vars, 1.0)
    b.add_terms(rows2, b.var_blocks["n"].start + p2 * M + m2, -out * inst.lot[m2])


def define_lending_caps(b: _Builder, inst: Instance, cells: Cells) -> None:
    """Total lent on an arc in a scenario is a share of the lender's holding.

    sum_t l_{s,p->p',m,t} <= max_share * x_pm   (lending.*.max_share)
    Rows only where max_share < 1 - reserve_floor of the lender (otherwise implied by the floor).
    """
    A, M = inst.arc_from.size, len(inst.minerals)
    c, a = cells.lend_cell, cells.lend_arc
    giver = inst.arc_from[a]
    need = inst.arc_share[a] < 1.0 - inst.reserve_floor[giver] - FEAS_TOL
    keys = (cells.s[c] * A + a) * M + cells.m[c]
    uniq, inv = np.unique(keys[need], return_inverse=True)
    sa, m = np.divmod(uniq, M)
    s, arc = np.divmod(sa, A)
    share, frm = inst.arc_share[arc], inst.arc_from[arc]
    rows = b.add_rows("lend_cap", {"s": s, "a": arc, "m": m}, lb=-np.inf, ub=share * inst.initial[frm, m])
    b.add_terms(rows[inv], b.var_blocks["l"].index[need], 1.0)
    b.add_terms(rows, b.var_blocks["n"].start + frm * M + m, -share * inst.lot[m])


def define_program(b: _Builder, inst: Instance, n_max: np.ndarray) -> None:
    """A fixed program cost is paid when any lot is bought: n_pm <= N_pm * y_pm."""
    M = len(inst.minerals)
    yb = b.var_blocks["y"]
    p, m = yb.coords["p"], yb.coords["m"]
    rows = b.add_rows("program", {"p": p, "m": m}, lb=-np.inf, ub=0.0)
    b.add_terms(rows, b.var_blocks["n"].start + p * M + m, 1.0)
    b.add_terms(rows, yb.index, -n_max[p, m])


def define_budget(b: _Builder, inst: Instance) -> None:
    """sum_m (price_usd_per_t * lot_t * n_pm + fixed_cost_usd * y_pm) <= budget_usd_p."""
    (ps,) = np.nonzero(np.isfinite(inst.budget))
    rows = b.add_rows("budget", {"p": ps}, lb=-np.inf, ub=inst.budget[ps])
    row_of = np.full(len(inst.participants), -1)
    row_of[ps] = rows
    nb = b.var_blocks["n"]
    sel = row_of[nb.coords["p"]] >= 0
    b.add_terms(row_of[nb.coords["p"]][sel], nb.index[sel], (inst.price * inst.lot)[nb.coords["m"]][sel])
    yb = b.var_blocks["y"]
    sel = row_of[yb.coords["p"]] >= 0
    b.add_terms(row_of[yb.coords["p"]][sel], yb.index[sel],
                inst.fixed_cost[yb.coords["p"], yb.coords["m"]][sel])


def define_storage(b: _Builder, inst: Instance) -> None:
    """sum_m x_pm <= storage_capacity_t_p, i.e. sum_m lot_t * n_pm <= capacity - sum_m initial_t."""
    (ps,) = np.nonzero(np.isfinite(inst.storage))
    rows = b.add_rows("storage", {"p": ps}, lb=-np.inf, ub=inst.storage[ps] - inst.initial[ps].sum(axis=1))
    row_of = np.full(len(inst.participants), -1)
    row_of[ps] = rows
    nb = b.var_blocks["n"]
    sel = row_of[nb.coords["p"]] >= 0
    b.add_terms(row_of[nb.coords["p"]][sel], nb.index[sel], inst.lot[nb.coords["m"]][sel])


def build_model(inst: Instance) -> LinearModel:
    """The extensive form: every scenario's recourse in one MIP."""
    n_min, n_max = lot_bounds(inst)
    cells = find_cells(inst)
    b = _Builder()
    define_first_stage(b, inst, n_min, n_max)
    define_recourse(b, inst, cells)
    define_demand(b, cells)
    define_release_limits(b, inst, cells)
    define_lending_caps(b, inst, cells)
    define_program(b, inst, n_max)
    define_budget(b, inst)
    define_storage(b, inst)
    offset = float((inst.holding_cost * inst.holding_years * inst.initial).sum())
    return b.build(offset)


def names(lm: LinearModel, inst: Instance) -> tuple[list[str], list[str]]:
    """Readable variable and row names for LP/MPS export, e.g. r(drc_ban,US,cobalt,3)."""
    label = {
        "s": np.array([_safe(x) for x in inst.scenarios], dtype=object),
        "p": np.array([_safe(x) for x in inst.participants], dtype=object),
        "m": np.array([_safe(x) for x in inst.minerals], dtype=object),
        "a": np.array([f"{_safe(inst.participants[f])}>{_safe(inst.participants[t])}"
                       for f, t in zip(inst.arc_from, inst.arc_to)], dtype=object),
    }
    cell = lm.var_blocks["r"].coords

    def block_names(block: Block) -> list[str]:
        coords = dict(block.coords)
        if "cell" in coords:  # lending variables and demand rows are labelled by their cell
            c = coords.pop("cell")
            coords = {**{k: cell[k][c] for k in "spmt"}, **coords}
        parts = [label[k][v] if k in label else (v + 1).astype(str).astype(object)
                 for k, v in coords.items()]
        if not parts:
            return []
        joined = parts[0]
        for extra in parts[1:]:
            joined = joined + "," + extra
        return [f"{block.name}({j})" for j in joined]

    var = [n for b in lm.var_blocks.values() for n in block_names(b)]
    row = [n for b in lm.row_blocks.values() for n in block_names(b)]
    return var, row


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in text)
