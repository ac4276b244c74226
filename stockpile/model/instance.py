"""Stage 2 of the flow: validated config -> indexed numpy arrays.

Dimensions are labelled by position in ``participants`` (p), ``minerals`` (m),
``scenarios`` (s) and periods (t = 0..T-1 internally, 1..T for users). Every
later stage works on these arrays only; nothing after this module reads the
config's pydantic objects.

The feasibility of the first stage is decided here, before any model is built:
second-stage recourse is always feasible (unmet demand absorbs any shortfall),
and all first-stage limits are monotone in the number of lots, so the config is
feasible exactly when the smallest admissible holding of every (participant,
mineral) fits each participant's budget and storage.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stockpile.config import Config
from stockpile.errors import ConfigError, Problem
from stockpile.jsontypes import JSON
from stockpile.model.labels import Axes

INF = math.inf
DAYS_PER_YEAR = 365.0
# lots are counted in floating point; this absorbs rounding in ceil/floor of ratios
LOT_ROUNDING = 1e-9


@dataclass(frozen=True, eq=False)
class Instance:
    """All model data as arrays over (s, p, m, t), with the labels of each axis."""

    name: str
    participants: tuple[str, ...]
    minerals: tuple[str, ...]
    scenarios: tuple[str, ...]
    prob: np.ndarray  # (S,)
    periods: int
    period_days: float
    holding_years: int
    price: np.ndarray  # (M,) USD/t
    holding_cost: np.ndarray  # (M,) USD/t/yr of storage
    lot: np.ndarray  # (M,) t
    # damage curves: segment ends (up_to_share, increasing to 1) and costs (USD/t, never decreasing),
    # padded to the longest curve with zero-width segments at 1.0
    seg_upto: np.ndarray  # (P, M, J)
    seg_cost: np.ndarray  # (P, M, J)
    salvage_share: np.ndarray  # (M,) share of the last build year's price a tonne fetches after year K
    release_cost: np.ndarray  # (M,) USD/t leaving a store (release or lending)
    consumption: np.ndarray  # (P, M) t/yr
    initial: np.ndarray  # (P, M) t
    fixed_cost: np.ndarray  # (P, M) USD
    max_acquisition: np.ndarray  # (P, M) t, inf = none
    min_days: np.ndarray  # (P, M) days
    budget: np.ndarray  # (P,) USD, inf = none
    storage: np.ndarray  # (P,) t, inf = none
    release_rate: np.ndarray  # (P,) share per period
    reserve_floor: np.ndarray  # (P,) share
    arc_from: np.ndarray  # (A,) participant index
    arc_to: np.ndarray  # (A,)
    arc_share: np.ndarray  # (A,)
    arc_cost: np.ndarray  # (A,) USD/t
    arc_minerals: np.ndarray  # (A, M) bool: mineral may be lent on the arc
    shortfall: np.ndarray  # (S, P, M, T) tonnes of supply lost, g
    # the state of a disruption already under way (respond.py); zero for a plan made before it
    drawn: np.ndarray  # (P, M) t of the holding already released or lent before period 1
    arc_lent: np.ndarray  # (A, M) t already lent on each arc (counts against max_share)
    # allied projects offering offtake at a floor price (available in year 1)
    projects: tuple[str, ...]
    proj_m: np.ndarray  # (J,) mineral
    proj_cap: np.ndarray  # (J,) t/yr
    proj_gap: np.ndarray  # (J,) USD/t/yr: max(floor - price, 0), the subsidy per tonne
    proj_fixed: np.ndarray  # (J,) USD per agreement
    proj_lot: np.ndarray  # (J,) t/yr per unit of offtake (1: any amount)
    proj_integer: np.ndarray  # (J,) offtake in whole lots
    # the build-up over fiscal years (horizon.years Y; Y = 1: every lot bought at once). The one-year
    # fields above are then the whole build-up's view: price of year 1, budget and max_acquisition
    # summed over the years, min_days the largest yearly target, storage the last year's.
    # Every year faces every scenario of the config: over a build-up the scenarios are repeated
    # for each build year (NAME@yY), each drawing on that year's holding.
    years: int
    discount: np.ndarray  # (Y,) delta_y = (1 + r)^-(y-1)
    year_weight: np.ndarray  # (Y,) W_y: delta_y for y < Y; sum_{k=Y..K} delta_k for the finished stock
    salvage_discount: float  # delta_{K+1}: resale of what is left after the years protected
    scen_year: np.ndarray  # (S,) 0-based build year whose holding each scenario draws on
    carryover: np.ndarray  # (P,) unspent budget carries over
    price_path: np.ndarray  # (M, Y) USD/t
    budget_path: np.ndarray  # (P, Y) USD, inf = none
    storage_path: np.ndarray  # (P, Y) t, inf = none
    acquisition_path: np.ndarray  # (P, M, Y) t, inf = none
    min_days_path: np.ndarray  # (P, M, Y) days
    shared_periods: int = 0  # the first periods' orders are the same in every scenario (non-anticipative)
    cvar_alpha: float = 0.9
    cvar_weight: float = 0.0
    solver: JSON = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "participants": len(self.participants),
            "minerals": len(self.minerals),
            "scenarios": len(self.scenarios),
            "periods": self.periods,
            "lending_arcs": int(self.arc_from.size),
        } | ({"years": self.years} if self.years > 1 else {})

    @property
    def scen_weight(self) -> np.ndarray:
        """(S,) what one dollar of a scenario's recourse weighs in the objective, before pi_s: the
        discounted count of years drawing on its build year's holding, W_{y(s)}."""
        return np.asarray(self.year_weight[self.scen_year])

    @property
    def exposure_years(self) -> int:
        """K = horizon.years + horizon.holding_years - 1: the years the stock protects."""
        return self.years + self.holding_years - 1

    @property
    def risk_years(self) -> float:
        """sum_{k=1..K} delta_k: the discounted years the stock protects (a yearly flow's weight)."""
        return float(self.year_weight.sum())

    @property
    def net_cost_per_t(self) -> np.ndarray:
        """(M,) what a tonne bought in year 1 and kept costs over the horizon: price, plus storage in
        every year protected, less the discounted resale after year K."""
        resale = self.salvage_discount * self.salvage_share * self.price_path[:, -1]
        return np.asarray(self.price_path[:, 0] + self.holding_cost * self.risk_years - resale)

    @property
    def year_share(self) -> np.ndarray:
        """(S,) pi_s W_{y(s)} / sum_y W_y: a scenario's share of the years' risk (sums to 1), the
        weights of a per-year expectation."""
        return np.asarray(self.prob * self.scen_weight / self.risk_years)

    @property
    def per_period(self) -> np.ndarray:
        """(P, M) consumption per period, q_pm: the depth of a shortage is unmet tonnes over q."""
        return np.asarray(self.consumption * self.period_days / DAYS_PER_YEAR)

    @property
    def segmented(self) -> np.ndarray:
        """(P, M) whether the damage curve has more than one segment (the model then splits unmet)."""
        return np.asarray((self.seg_upto < 1.0).any(axis=-1))

    @property
    def top_cost(self) -> float:
        """The largest damage per tonne of any curve (the CVaR rows' unit)."""
        return float(self.seg_cost.max(initial=0.0))

    def segment_bounds(self, p: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C, J) tonnes of a period where each segment of a cell's curve starts and ends,
        w_{j-1} q_pm and w_j q_pm, the last one unbounded above (zero-width padding: lo = hi)."""
        q = self.per_period[p, m][:, None]
        upto = self.seg_upto[p, m]
        lo = np.concatenate([np.zeros((upto.shape[0], 1)), upto[:, :-1]], axis=1) * q
        hi = np.concatenate([upto[:, :-1] * q, np.full((upto.shape[0], 1), np.inf)], axis=1)
        return lo, hi

    def damage(self, p: np.ndarray, m: np.ndarray, unmet: np.ndarray) -> np.ndarray:
        """Each cell's damage of `unmet` tonnes in one period, on its participant's curve: the
        segments filled cheapest (shallowest) first, the last one unbounded above."""
        lo, hi = self.segment_bounds(p, m)
        pieces = np.clip(np.asarray(unmet, dtype=float)[:, None], lo, hi) - lo
        return np.asarray((pieces * self.seg_cost[p, m]).sum(axis=1))

    def holding_by_year(self, bought: np.ndarray) -> np.ndarray:
        """x_pmy = initial_t + lot_t * sum_{y' <= y} n_pmy' (P, M, Y) from lots bought each year (P, M, Y)."""
        return np.asarray(self.initial[:, :, None] + self.lot[None, :, None] * np.cumsum(bought, axis=-1))

    @property
    def arc_names(self) -> tuple[str, ...]:
        """Each lending arc as FROM->TO, the way limits.csv and explain name it."""
        return tuple(f"{self.participants[f]}->{self.participants[t]}" for f, t in zip(self.arc_from, self.arc_to))

    @property
    def axes(self) -> Axes:
        """Sizes of the labelled dimensions s, p, m, t, a (lending arc), j (project)."""
        return Axes(
            {
                "s": len(self.scenarios),
                "p": len(self.participants),
                "m": len(self.minerals),
                "t": self.periods,
                "a": int(self.arc_from.size),
                "j": len(self.projects),
                "y": self.years,
                "d": self.seg_upto.shape[-1],
            }
        )

    @property
    def min_holding(self) -> np.ndarray:
        """Holding required by min_days, (P, M) tonnes."""
        return np.asarray(self.min_days * self.consumption / DAYS_PER_YEAR)

    @property
    def budget_limit(self) -> np.ndarray:
        """(P, Y) the budget each year's spend must fit: that year's appropriation, or with
        budget_carryover every appropriation so far (against the spend so far)."""
        return np.where(self.carryover[:, None], np.cumsum(self.budget_path, axis=-1), self.budget_path)

    def budget_use(self, bought: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, Y) what a plan (lots bought each year, (P, M, Y)) spends each year, programme costs in
        year 1 (with budget_carryover: so far), and budget_limit."""
        spend = (bought * self.lot[None, :, None] * self.price_path[None]).sum(axis=1)
        spend[:, 0] += np.where(bought.sum(axis=-1) > 0, self.fixed_cost, 0.0).sum(axis=1)
        return np.where(self.carryover[:, None], np.cumsum(spend, axis=-1), spend), self.budget_limit

    def yearly_requirement(self) -> np.ndarray:
        """(P, M, Y) lots that must be bought by the end of each build-up year: the min_days of that
        year or any before it (holdings only grow), ceil((min_days_y c / 365 - initial_t) / lot_t)."""
        need = self.min_days_path * self.consumption[..., None] / DAYS_PER_YEAR - self.initial[..., None]
        lots = np.ceil(np.maximum(need, 0.0) / self.lot[None, :, None] - LOT_ROUNDING) + 0.0
        return np.maximum.accumulate(lots, axis=-1)

    def lot_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest admissible lots from min_days and the acquisition ceiling.

        n_min = ceil((min_holding - initial) / lot), n_cap = floor(max_acquisition / lot).
        """
        need = np.maximum(self.min_holding - self.initial, 0.0) / self.lot
        n_min = np.ceil(need - LOT_ROUNDING) + 0.0  # + 0.0 turns -0.0 into 0.0
        with np.errstate(invalid="ignore"):
            n_cap = np.floor(self.max_acquisition / self.lot + LOT_ROUNDING)
        return n_min, n_cap


def without_lending(inst: Instance, keep: np.ndarray | None = None) -> Instance:
    """The instance with only the lending arcs in keep (default: none): each participant alone."""
    arcs = np.zeros(inst.arc_from.size, dtype=bool) if keep is None else keep
    return dataclasses.replace(
        inst,
        arc_from=inst.arc_from[arcs],
        arc_to=inst.arc_to[arcs],
        arc_share=inst.arc_share[arcs],
        arc_cost=inst.arc_cost[arcs],
        arc_minerals=inst.arc_minerals[arcs],
        arc_lent=inst.arc_lent[arcs],
    )


# a first-stage plan given rather than optimised: {participant: {mineral: lots}}, and its offtake
# as {"offtake": {participant: {project: t/yr}}} beside them
OFFTAKE_KEY = "offtake"


def lots_to_hold(inst: Instance, tonnes: np.ndarray) -> np.ndarray:
    """Lots that bring each holding up to tonnes (P, M), rounded up: ceil((tonnes - initial) / lot)."""
    need = np.maximum(tonnes - inst.initial, 0.0) / inst.lot
    return np.asarray(np.ceil(need - LOT_ROUNDING) + 0.0)


def day_rule_lots(inst: Instance, days: float) -> np.ndarray:
    """allocation: days: every participant holds `days` of its own consumption of every mineral."""
    return lots_to_hold(inst, days * inst.consumption / DAYS_PER_YEAR)


def prorata_lots(inst: Instance, total: np.ndarray) -> np.ndarray:
    """allocation: prorata: the total tonnes of each mineral (M,) split by consumption share."""
    use = inst.consumption.sum(axis=0)
    share = np.divide(
        inst.consumption, use, out=np.full_like(inst.consumption, 1.0 / inst.consumption.shape[0]), where=use > 0
    )
    return lots_to_hold(inst, share * total[None, :])


MAX_MEMORY_ENV = "STOCKPILE_MAX_MEMORY_GB"
DEFAULT_MAX_MEMORY_GB = 8.0
# bytes per (s, p, m, t) cell at worst: shortfall arrays, and variables, rows and
# nonzeros when every cell is disrupted and lent on every arc (measured build peaks are lower)
BYTES_PER_CELL = 128
BYTES_PER_CELL_ARC = 96


def estimated_bytes(cfg: Config) -> int:
    """Upper estimate of the memory a config's model needs, from its dimensions alone."""
    S, P, M, T = (
        len(cfg.scenario_list) * cfg.horizon.years,
        len(cfg.participants),
        len(cfg.minerals),
        cfg.horizon.periods,
    )
    return int(S * P * M * T * (BYTES_PER_CELL + BYTES_PER_CELL_ARC * len(cfg.lending) / max(P, 1)))


def check_size(cfg: Config) -> None:
    """Refuse up front a config whose model would not fit, naming the limit to raise."""
    try:
        limit = float(os.environ.get(MAX_MEMORY_ENV, DEFAULT_MAX_MEMORY_GB)) * 1e9
    except ValueError:
        limit = DEFAULT_MAX_MEMORY_GB * 1e9
    need = estimated_bytes(cfg)
    if need > limit:
        dims = (
            f"{len(cfg.scenario_list):,} scenarios x {len(cfg.participants)} participants x "
            f"{len(cfg.minerals)} minerals x {cfg.horizon.periods} periods"
        )
        raise ConfigError(
            [
                Problem(
                    ("scenarios",),
                    f"the model would need about {need / 1e9:,.1f} GB ({dims}); "
                    f"the limit is {limit / 1e9:g} GB: reduce the size or raise "
                    f"{MAX_MEMORY_ENV}",
                )
            ]
        )


def damage_curves(cfg: Config, P: list[str], M: list[str]) -> np.ndarray:
    """(P, M, J, 2): each participant's curve of each mineral, (up_to_share, usd_per_t) per
    segment, padded to the longest with zero-width segments at 1.0 of the last cost."""
    curves = [[cfg.minerals[m].curve(p) for m in M] for p in P]
    J = max((len(c) for row in curves for c in row), default=1)
    out = np.zeros((len(P), len(M), J, 2))
    for i, row in enumerate(curves):
        for k, c in enumerate(row):
            out[i, k, : len(c)] = c
            out[i, k, len(c) :] = (1.0, c[-1][1])
    return out


def build_instance(cfg: Config) -> Instance:
    """Index a validated config into arrays (after checking it fits in memory)."""
    check_size(cfg)
    P, M = list(cfg.participants), list(cfg.minerals)
    p_of = {p: i for i, p in enumerate(P)}
    m_of = {m: j for j, m in enumerate(M)}
    mins = [cfg.minerals[m] for m in M]
    T = cfg.horizon.periods

    Y = cfg.horizon.years

    def per_pm(key: str, default: float) -> np.ndarray:
        """(P, M, Y): a per-participant field, each value spread over the years (yearly fields)."""
        cols = [[by_year(v, Y) for v in cfg.per_participant(getattr(mn, key), default)] for mn in mins]
        return np.array(cols, dtype=float).transpose(1, 0, 2).reshape(len(P), len(M), Y)

    consumption = per_pm("consumption_t_per_year", 0.0)[..., 0]

    parts = [cfg.participants[p] for p in P]
    price = np.array([by_year(mn.price_usd_per_t, Y) for mn in mins], dtype=float).reshape(len(M), Y)
    budget = np.array([by_year(INF if q.budget_usd is None else q.budget_usd, Y) for q in parts], dtype=float)
    storage = np.array(
        [by_year(INF if q.storage_capacity_t is None else q.storage_capacity_t, Y) for q in parts], dtype=float
    )
    acquisition, min_days = per_pm("max_acquisition_t", INF), per_pm("min_days", 0.0)
    arcs = cfg.lending
    arc_minerals = np.zeros((len(arcs), len(M)), dtype=bool)
    for a, arc in enumerate(arcs):
        if arc.minerals is None:
            arc_minerals[a, :] = True
        else:
            arc_minerals[a, [m_of[m] for m in arc.minerals]] = True

    curves = damage_curves(cfg, P, M)
    names = [sc.name for sc in cfg.scenario_list]
    shortfall = _shortfall(cfg, p_of, m_of, consumption * cfg.horizon.period_days / DAYS_PER_YEAR)
    return Instance(
        name=cfg.name,
        participants=tuple(P),
        minerals=tuple(M),
        scenarios=tuple(exposure_names(names, Y)),
        prob=np.tile(np.array([sc.probability for sc in cfg.scenario_list], dtype=float), Y),
        periods=T,
        period_days=float(cfg.horizon.period_days),
        holding_years=cfg.horizon.holding_years,
        price=price[:, 0],
        holding_cost=np.array([mn.holding_cost_usd_per_t_year for mn in mins], dtype=float),
        lot=np.array([mn.lot_t for mn in mins], dtype=float),
        seg_upto=curves[..., 0],
        seg_cost=curves[..., 1],
        salvage_share=np.array([mn.salvage_share for mn in mins], dtype=float),
        release_cost=np.array([mn.release_cost_usd_per_t for mn in mins], dtype=float),
        consumption=consumption,
        initial=per_pm("initial_t", 0.0)[..., 0],
        fixed_cost=per_pm("fixed_cost_usd", 0.0)[..., 0],
        max_acquisition=acquisition.sum(axis=-1),
        min_days=min_days.max(axis=-1),
        budget=budget.sum(axis=-1),
        storage=storage[:, -1],
        release_rate=np.array([q.release_rate_max for q in parts], dtype=float),
        reserve_floor=np.array([q.reserve_floor for q in parts], dtype=float),
        arc_from=np.array([p_of[a.from_] for a in arcs], dtype=np.int64),
        arc_to=np.array([p_of[a.to] for a in arcs], dtype=np.int64),
        arc_share=np.array([a.max_share for a in arcs], dtype=float),
        arc_cost=np.array([a.cost_usd_per_t for a in arcs], dtype=float),
        arc_minerals=arc_minerals,
        shortfall=np.tile(shortfall, (Y, 1, 1, 1)),
        drawn=np.zeros((len(P), len(M))),
        arc_lent=np.zeros((len(arcs), len(M))),
        **_projects(cfg, m_of),
        years=Y,
        discount=np.array(cfg.horizon.discounts(Y)),
        year_weight=np.array(cfg.horizon.year_weights()),
        salvage_discount=cfg.horizon.salvage_discount,
        scen_year=np.repeat(np.arange(Y), len(names)),
        carryover=np.array([q.budget_carryover for q in parts], dtype=bool),
        price_path=price,
        budget_path=budget,
        storage_path=storage,
        acquisition_path=acquisition,
        min_days_path=min_days,
        cvar_alpha=cfg.risk.cvar_alpha,
        cvar_weight=cfg.risk.cvar_weight,
        solver=cfg.solver.model_dump(),
    )


def exposure_names(names: list[str], years: int) -> list[str]:
    """The instance's scenarios: the config's, repeated for each build year as NAME@yY when there
    are several (year-major), since each year draws on its own holding."""
    return names if years == 1 else [f"{n}@y{y + 1}" for y in range(years) for n in names]


def by_year(value: float | list[float], years: int) -> list[float]:
    """A yearly field's value for each of the years: a scalar is the same every year."""
    return [float(v) for v in value] if isinstance(value, list) else [float(value)] * years


def _projects(cfg: Config, m_of: dict[str, int]) -> dict[str, Any]:
    """The projects producing in year 1 (the model's one-year horizon) as arrays."""
    live = [pr for pr in cfg.projects if pr.available_from_year <= 1]
    price = np.array([by_year(cfg.minerals[pr.mineral].price_usd_per_t, 1)[0] for pr in live], dtype=float)
    return {
        "projects": tuple(pr.name for pr in live),
        "proj_m": np.array([m_of[pr.mineral] for pr in live], dtype=np.int64),
        "proj_cap": np.array([pr.capacity_t_per_year for pr in live], dtype=float),
        "proj_gap": np.maximum(np.array([pr.floor_price_usd_per_t for pr in live], dtype=float) - price, 0.0),
        "proj_fixed": np.array([pr.fixed_cost_usd for pr in live], dtype=float),
        "proj_lot": np.array([pr.offtake_lot_t or 1.0 for pr in live], dtype=float),
        "proj_integer": np.array([pr.offtake_lot_t is not None for pr in live], dtype=bool),
    }


def _shortfall(cfg: Config, p_of: dict[str, int], m_of: dict[str, int], q: np.ndarray) -> np.ndarray:
    """g[s,p,m,t] = min(1, sum of overlapping shock losses) * consumption per period.

    Every (shock, period) it covers becomes one row of index arrays, and one
    scatter-add applies them all: exact (no cumulative-sum round-off where shocks
    end), and no Python loop over periods or participants.
    """
    S, P, M, T = len(cfg.scenario_list), len(p_of), len(m_of), cfg.horizon.periods
    share = np.zeros((S, P, M, T))
    shocks = [
        (s, m_of[sh.mineral], sh.start - 1, min(sh.start - 1 + sh.periods, T), cfg.per_participant(sh.loss, 0.0))
        for s, sc in enumerate(cfg.scenario_list)
        for sh in sc.shocks
    ]
    if shocks:
        s, m, start, end = (np.array([x[i] for x in shocks], dtype=np.int64) for i in range(4))
        loss = np.array([x[4] for x in shocks], dtype=float)  # (shocks, P)
        length = end - start  # >= 1: starts lie inside the horizon (validated)
        k = np.repeat(np.arange(len(shocks)), length)  # shock of each shock-period
        t = start[k] + np.arange(k.size) - np.repeat(np.cumsum(length) - length, length)
        np.add.at(share, (s[k][:, None], np.arange(P)[None, :], m[k][:, None], t[:, None]), loss[k])
    np.minimum(share, 1.0, out=share)
    return np.asarray(share * q[None, :, :, None])


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.4g}"


def check_feasible(inst: Instance) -> list[str]:
    """Explain in the config's terms why no plan exists; empty when one does.

    Exact, not heuristic: the cheapest and smallest first stage takes n_min lots
    of each (participant, mineral), so the config is feasible iff n_min <= n_cap
    everywhere, the budget pays for n_min and the storage holds it.
    """
    if inst.years > 1:
        return _check_feasible_years(inst)
    reasons: list[str] = []
    n_min, n_cap = inst.lot_range()
    need = inst.min_holding
    for p, m in zip(*np.nonzero(n_min > n_cap)):
        P, M = inst.participants[p], inst.minerals[m]
        top = inst.initial[p, m] + n_cap[p, m] * inst.lot[m]
        days = top * DAYS_PER_YEAR / inst.consumption[p, m]
        reasons.append(
            f"{P} min_days for {M} needs {_fmt(need[p, m])} t; initial_t plus max_acquisition_t "
            f"allow at most {_fmt(top)} t: raise minerals.{M}.max_acquisition_t.{P} to "
            f"{_fmt(need[p, m] - inst.initial[p, m])} or lower minerals.{M}.min_days.{P} to "
            f"{math.floor(days)}"
        )
    spend = n_min * inst.lot * inst.price + np.where(n_min > 0, inst.fixed_cost, 0.0)
    for p in np.nonzero(spend.sum(axis=1) > inst.budget * (1 + 1e-12))[0]:
        P = inst.participants[p]
        buys = np.nonzero(spend[p] > 0)[0]
        parts = [f"{inst.minerals[m]} {_fmt(n_min[p, m] * inst.lot[m])} t for {_fmt(spend[p, m])} USD" for m in buys]
        lower = []
        for m in buys:  # the min_days of this mineral alone that the budget could pay for
            room = inst.budget[p] - (spend[p].sum() - spend[p, m]) - inst.fixed_cost[p, m]
            lots = np.floor(room / (inst.price[m] * inst.lot[m]) + LOT_ROUNDING) if room > 0 else -1
            if lots >= 0 and inst.consumption[p, m] > 0:
                days = (inst.initial[p, m] + lots * inst.lot[m]) * DAYS_PER_YEAR / inst.consumption[p, m]
                lower.append(f"minerals.{inst.minerals[m]}.min_days.{P} to {math.floor(days)}")
        alternative = f" or lower {' or '.join(lower)}" if lower else " or lower the min_days targets"
        reasons.append(
            f"{P} min_days targets cost {_fmt(spend[p].sum())} USD to buy ({', '.join(parts)}); "
            f"{P} budget_usd is {_fmt(inst.budget[p])}: raise participants.{P}.budget_usd by "
            f"{_fmt(spend[p].sum() - inst.budget[p])}{alternative}"
        )
    held = inst.initial + n_min * inst.lot
    for p in np.nonzero(held.sum(axis=1) > inst.storage * (1 + 1e-12))[0]:
        P = inst.participants[p]
        reasons.append(
            f"{P} must hold at least {_fmt(held[p].sum())} t (initial_t plus min_days targets); "
            f"{P} storage_capacity_t is {_fmt(inst.storage[p])}: raise "
            f"participants.{P}.storage_capacity_t by {_fmt(held[p].sum() - inst.storage[p])} "
            "or lower min_days / initial_t"
        )
    return reasons


def _check_feasible_years(inst: Instance) -> list[str]:
    """Why a build-up over horizon.years > 1 has no plan, from three necessary conditions, each
    exact on its own: every year's min_days fits the acquisition ceilings of the years so far, the
    storage of that year, and the budgets so far at the cheapest price so far. When all three hold
    and the yearly limits together still admit no schedule, the solver says so (api.solve)."""
    reasons: list[str] = []
    lot = inst.lot[None, :, None]
    req = inst.yearly_requirement()
    with np.errstate(invalid="ignore"):
        cap = np.cumsum(np.floor(inst.acquisition_path / lot + LOT_ROUNDING), axis=-1)
    for p, m, y in zip(*np.nonzero(req > cap)):
        if y > 0 and req[p, m, y - 1] > cap[p, m, y - 1]:
            continue  # named at its first year
        P, M = inst.participants[p], inst.minerals[m]
        top = inst.initial[p, m] + cap[p, m, y] * inst.lot[m]
        reasons.append(
            f"{P} min_days for {M} needs {_fmt(inst.initial[p, m] + req[p, m, y] * inst.lot[m])} t by year {y + 1}; "
            f"initial_t plus max_acquisition_t of years 1..{y + 1} allow at most {_fmt(top)} t: raise "
            f"minerals.{M}.max_acquisition_t.{P} in those years or lower minerals.{M}.min_days.{P} for year {y + 1}"
        )
    held = inst.initial[..., None] + req * lot  # (P, M, Y)
    for p, y in zip(*np.nonzero(held.sum(axis=1) > inst.storage_path * (1 + 1e-12))):
        P = inst.participants[p]
        reasons.append(
            f"{P} must hold at least {_fmt(held[p, :, y].sum())} t in year {y + 1} (initial_t plus that year's "
            f"min_days targets); participants.{P}.storage_capacity_t is {_fmt(inst.storage_path[p, y])} that year"
        )
    cheapest = np.minimum.accumulate(inst.price_path, axis=-1)[None] * lot  # (1, M, Y) a lot at the best price so far
    fixed = np.where(req[..., -1] > 0, inst.fixed_cost, 0.0).sum(axis=1)
    spend = (req * cheapest).sum(axis=1) + fixed[:, None]  # (P, Y) the least the targets so far can cost
    money = np.cumsum(inst.budget_path, axis=-1)
    for p in range(len(inst.participants)):
        short = np.nonzero(spend[p] > money[p] * (1 + 1e-12))[0]
        if short.size:
            y = int(short[0])
            P = inst.participants[p]
            reasons.append(
                f"{P} min_days targets of years 1..{y + 1} cost at least {_fmt(spend[p, y])} USD; the budgets of "
                f"those years add up to {_fmt(money[p, y])}: raise participants.{P}.budget_usd or lower or "
                "postpone the min_days targets"
            )
    return reasons
