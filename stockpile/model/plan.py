"""A solution read back by family: the plan (first stage and recourse on their cells), its flows
per cell, and the per-scenario recourse cost that the risk measures and the verifier read.

It is the model's own reading of a solution vector, so the solver's tidying (``solver/canonical``)
and the result tables (``results/tables``) both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stockpile.model.core import LinearModel, Var
from stockpile.model.instance import Instance

ZERO = 1e-9


@dataclass
class Plan:
    """First- and second-stage decisions in instance coordinates, read through the model's blocks."""

    x: np.ndarray  # the reported solution vector: noise cleaned, integer columns rounded
    bought: np.ndarray  # (P, M, Y) integer lots bought in each build-up year
    release: np.ndarray  # per cell
    unmet: np.ndarray  # per cell
    lend: np.ndarray  # per lending variable
    cells: dict[str, np.ndarray]  # s, p, m, t of each cell
    lending: dict[str, np.ndarray]  # s, p (receiver), m, t, a of each lending variable
    offtake: np.ndarray  # per cell: the shortfall offtake serves (0 where no project produces)
    offtake_units: np.ndarray  # (P, J) units of offtake committed
    onward: np.ndarray  # per onward variable: offtake lent on an arc
    onward_coords: dict[str, np.ndarray]  # s, p (receiver), m, t, a of each

    @property
    def lots(self) -> np.ndarray:
        """(P, M) lots bought over the whole build-up: the finished holding's."""
        return np.asarray(self.bought.sum(axis=-1))

    def held(self, inst: Instance, pairs_s: np.ndarray, pairs_m: np.ndarray) -> np.ndarray:
        """(D, P) the holding each (scenario, mineral) pair draws on: that of the year it strikes in."""
        return inst.holding_by_year(self.bought)[:, pairs_m, inst.scen_year[pairs_s]].T

    def damage(self, inst: Instance) -> np.ndarray:
        """Per cell the damage of its unmet shortfall, on the participant's curve (one year's, unweighted)."""
        return inst.damage(self.cells["p"], self.cells["m"], self.unmet)

    def value_per_t(self, inst: Instance) -> np.ndarray:
        """Per cell what a tonne served saves on average: (D(g) - D(u)) / (g - u), the curve's damage
        avoided (shortfall_cost_usd_per_t itself on a one-segment curve); 0 where nothing is served."""
        c = self.cells
        g = inst.shortfall[c["s"], c["p"], c["m"], c["t"]]
        served = g - self.unmet
        avoided = inst.damage(c["p"], c["m"], g) - self.damage(inst)
        return np.asarray(np.divide(avoided, served, out=np.zeros_like(served), where=served > ZERO))

    def all_lending(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Stock lent and offtake lent onward together: what the receivers get and pay fees on."""
        c = {k: np.concatenate([self.lending[k], self.onward_coords[k]]) for k in self.lending}
        return c, np.concatenate([self.lend, self.onward])


def plan_from_solution(lm: LinearModel, x: np.ndarray, inst: Instance) -> Plan:
    """Cut the solution vector into labelled decisions; integer columns are rounded."""
    x = clean(np.where(lm.integer, np.rint(x), x))
    vb = lm.var_blocks
    bought = vb[Var.LOTS].values(x).reshape(inst.axes.shape(("p", "m", "y")))
    cells = {k: vb[Var.RELEASE].coords[k] for k in "spmt"}
    served = np.zeros(vb[Var.RELEASE].size)
    units = np.zeros((len(inst.participants), len(inst.projects)))
    onward, onward_coords = np.zeros(0), {k: v[:0] for k, v in vb[Var.LENT].coords.items()}
    if Var.OFFTAKE_USED in vb:  # f lies on a subset of the cells, in the same (key) order
        keys = inst.axes.key(cells, tuple("spmt"))
        served[np.searchsorted(keys, inst.axes.key(vb[Var.OFFTAKE_USED].coords, tuple("spmt")))] = vb[
            Var.OFFTAKE_USED
        ].values(x)
        units = vb[Var.OFFTAKE].values(x).reshape(units.shape)
        onward, onward_coords = vb[Var.OFFTAKE_LENT].values(x), vb[Var.OFFTAKE_LENT].coords
    return Plan(
        x,
        bought,
        vb[Var.RELEASE].values(x),
        vb[Var.UNMET].values(x),
        vb[Var.LENT].values(x),
        cells,
        vb[Var.LENT].coords,
        served,
        units,
        onward,
        onward_coords,
    )


def clean(values: np.ndarray) -> np.ndarray:
    """Zero out solver noise so tables and hashes are stable."""
    out = np.where(np.abs(values) < ZERO, 0.0, values)
    return out + 0.0  # turns -0.0 into 0.0


def scenario_recourse(inst: Instance, plan: Plan) -> np.ndarray:
    """Q_s per scenario: one year's cost of its unmet shortfall, its releases (release_cost_usd_per_t
    of the stock released or lent) and its lending fees, neither weighted by pi_s nor discounted."""
    c, (lc, lent) = plan.cells, plan.all_lending()
    S = len(inst.scenarios)
    rc = inst.release_cost
    q = np.bincount(c["s"], plan.damage(inst) + rc[c["m"]] * plan.release, S)
    q += np.bincount(plan.lending["s"], rc[plan.lending["m"]] * plan.lend, S)
    return np.asarray(q + np.bincount(lc["s"], inst.arc_cost[lc["a"]] * lent, S))


def yearly_var_cvar(inst: Instance, q: np.ndarray) -> tuple[float, float]:
    """VaR and CVaR_alpha of a year's recourse cost Q, as the objective weighs them: the CVaR of
    each build year's scenarios, weighted by W_y / sum W (one year when horizon.years = 1)."""
    out = np.zeros(2)
    for y in range(inst.years):
        sel = inst.scen_year == y
        out += np.array(var_cvar(q[sel], inst.prob[sel], inst.cvar_alpha)) * inst.year_weight[y]
    return float(out[0] / inst.risk_years), float(out[1] / inst.risk_years)


def var_cvar(q: np.ndarray, prob: np.ndarray, alpha: float) -> tuple[float, float]:
    """VaR (the alpha-quantile: the smallest value with P(Q <= value) >= alpha) and
    CVaR_alpha(Q) = VaR + sum_s pi_s max(Q_s - VaR, 0) / (1 - alpha) of a discrete distribution."""
    order = np.argsort(q, kind="stable")
    cum = np.cumsum(prob[order])
    var = float(q[order][min(int(np.searchsorted(cum, alpha * cum[-1] - 1e-12)), q.size - 1)])
    return var, var + float(prob @ np.maximum(q - var, 0.0)) / (1.0 - alpha)


@dataclass
class Flows:
    """Dense (D, P, T) flows over the disrupted (scenario, mineral) pairs."""

    pairs_s: np.ndarray
    pairs_m: np.ndarray
    shortfall: np.ndarray
    release: np.ndarray
    lent: np.ndarray
    borrowed: np.ndarray
    unmet: np.ndarray
    inventory: np.ndarray
    offtake: np.ndarray  # own use of offtake
    offtake_lent: np.ndarray  # offtake lent onward (not stock: the inventory does not move)


def flows(inst: Instance, plan: Plan) -> Flows:
    """Scatter cell and lending values onto the disrupted (scenario, mineral) pairs."""
    axes = inst.axes
    c, lc = plan.cells, plan.lending
    pairs, d = axes.unique(c, ("s", "m"))
    keys = axes.key(pairs, ("s", "m"))
    dl = np.searchsorted(keys, axes.key(lc, ("s", "m")))  # every lending variable sits on a cell
    shape = (keys.size, len(inst.participants), inst.periods)
    short, rel, lent, bor, unmet, off, off_lent = (np.zeros(shape) for _ in range(7))
    short[d, c["p"], c["t"]] = inst.shortfall[c["s"], c["p"], c["m"], c["t"]]
    rel[d, c["p"], c["t"]] = plan.release
    unmet[d, c["p"], c["t"]] = plan.unmet
    off[d, c["p"], c["t"]] = plan.offtake
    oc = plan.onward_coords
    de = np.searchsorted(keys, axes.key(oc, ("s", "m")))
    np.add.at(bor, (de, oc["p"], oc["t"]), plan.onward)
    np.add.at(off_lent, (de, inst.arc_from[oc["a"]], oc["t"]), plan.onward)
    np.add.at(bor, (dl, lc["p"], lc["t"]), plan.lend)
    np.add.at(lent, (dl, inst.arc_from[lc["a"]], lc["t"]), plan.lend)
    stock = plan.held(inst, pairs["s"], pairs["m"]) - inst.drawn[:, pairs["m"]].T  # (D, P) at the start
    inv = clean(stock[:, :, None] - np.cumsum(rel + lent, axis=-1))
    return Flows(pairs["s"], pairs["m"], short, rel, lent, bor, unmet, inv, off, off_lent)


def early_cover_gaps(inst: Instance, plan: Plan, f: Flows, tol: float = 1e-6) -> np.ndarray:
    """(D, P, T) tonnes by which a schedule breaks the canonical rule (docs/model.md): unmet
    shortfall in a period while the participant's stock after it is above its floor, its
    release-rate headroom is positive, and it releases or lends that mineral later in the
    scenario. Each gap is the most that could move to the earlier period at the same cost;
    values under tol x max(1, holding) are zero. In the shared (non-anticipative) periods of a
    response, "later" is what every continuation releases or lends later.
    """
    held = plan.held(inst, f.pairs_s, f.pairs_m)[:, :, None]  # (D, P, 1)
    out = f.release + f.lent
    later = np.cumsum(out[..., ::-1], axis=-1)[..., ::-1] - out  # outflow after t
    K = inst.shared_periods  # an order can move earlier only as far as every continuation allows
    later[..., :K] = same_in_every_continuation(later[..., :K], f.pairs_m)
    room = np.minimum.reduce(
        [
            f.unmet,
            f.inventory - inst.reserve_floor[None, :, None] * held,
            inst.release_rate[None, :, None] * held - out,
            later,
        ]
    )
    # on a damage curve of several segments a tonne moved between periods changes the cost: the
    # schedule is the cost's, and the rule does not apply
    room[inst.segmented[:, f.pairs_m].T] = 0.0
    return np.where(room > tol * np.maximum(1.0, held), room, 0.0)


def same_in_every_continuation(values: np.ndarray, minerals: np.ndarray) -> np.ndarray:
    """values (D, ...) over (scenario, mineral) pairs, each replaced by the least over the pairs
    of its mineral: what holds in every scenario (continuation) of a non-anticipative order."""
    out = values.copy()
    for m in np.unique(minerals):
        sel = minerals == m
        out[sel] = values[sel].min(axis=0)
    return out
