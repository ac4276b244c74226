"""Stage 5 of the flow: how much of each regulatory limit a plan uses, and whether it binds.

One row per limit instance (a participant's budget, a participant-mineral's
acquisition ceiling, a lending arc's share...), in the limit's own unit. A limit
*binds* when its slack is smaller than one lot's worth in that unit: the next lot
the plan could want does not fit. ``explain.py`` adds what relaxing each one is worth.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from stockpile.fmt import money
from stockpile.model.instance import DAYS_PER_YEAR, Instance
from stockpile.model.plan import Flows, Plan, clean

log = logging.getLogger(__name__)

LIMIT_COLUMNS = ["limit", "participant", "mineral", "arc", "project", "year", "value", "used", "slack", "binds"]
# slack in tonnes below this share of a holding is solver noise, not room
NOISE = 1e-7


class Limit:
    """The limit kinds, named by their config keys (lending_max_share is lending.*.max_share)."""

    BUDGET = "budget_usd"
    STORAGE = "storage_capacity_t"
    ACQUISITION = "max_acquisition_t"
    MIN_DAYS = "min_days"
    RATE = "release_rate_max"
    FLOOR = "reserve_floor"
    LENDING = "lending_max_share"
    CAPACITY = "capacity_t_per_year"  # an allied project's offtake capacity
    FLOOR_PRICE = "floor_price_usd_per_t"  # its floor price (a lower price is the relaxation)


def limit_table(inst: Instance, plan: Plan, f: Flows) -> pd.DataFrame:
    """value, used, slack (room left, in the limit's unit) and binds for every limit the config sets.

    budget_usd: used = acquisition + fixed spend; binds when the slack is below the price of one
    more lot of some mineral still under its ceiling. storage_capacity_t: the same in tonnes.
    max_acquisition_t: used = acquired tonnes; binds when slack < one lot. min_days (a lower
    limit): used = days held, slack = used - value; binds when slack < one lot's days.
    release_rate_max: used = the largest share of a holding released and lent in one period;
    reserve_floor: used = the smallest share kept at the end of a scenario; lending_max_share:
    used = the largest share of the lender's holding lent over a scenario. These three bind
    when, in some scenario where the holding moves, the room left is under one lot of tonnes.
    capacity_t_per_year (per project): used = offtake taken, binds when under one offtake unit
    (or 1e-7 of the capacity) is left. floor_price_usd_per_t: used = the tonnes a year it is
    paid on; it binds (costs) whenever offtake is taken at a floor above the market price.
    """
    rows: list[tuple[Any, ...]] = []
    P, M = inst.consumption.shape
    lot, n = inst.lot, plan.lots
    acquired = n * lot
    x = inst.initial + acquired
    _, n_cap = inst.lot_range()
    can_buy = n < n_cap  # another lot is within the acquisition ceiling
    spend = (acquired * inst.price).sum(axis=1) + np.where(n > 0, inst.fixed_cost, 0.0).sum(axis=1)
    lot_price = np.where(can_buy, lot * inst.price, 0.0)
    for p in range(P if inst.years == 1 else 0):  # over a build-up: by year (yearly_limits)
        name = inst.participants[p]
        if np.isfinite(inst.budget[p]):
            slack = inst.budget[p] - spend[p]
            rows.append((Limit.BUDGET, name, "", "", "", inst.budget[p], spend[p], slack, slack < lot_price[p].max()))
        if np.isfinite(inst.storage[p]):
            used = x[p].sum()
            slack = inst.storage[p] - used
            rows.append(
                (Limit.STORAGE, name, "", "", "", inst.storage[p], used, slack, slack < lot[can_buy[p]].max(initial=0))
            )
    one_year = inst.years == 1
    for p, m in zip(*np.nonzero(np.isfinite(inst.max_acquisition) & one_year)):
        slack = inst.max_acquisition[p, m] - acquired[p, m]
        rows.append(
            (
                Limit.ACQUISITION,
                inst.participants[p],
                inst.minerals[m],
                "",
                "",
                inst.max_acquisition[p, m],
                acquired[p, m],
                slack,
                slack < lot[m] - NOISE,
            )
        )
    for p, m in zip(*np.nonzero((inst.min_days > 0) & (inst.consumption > 0) & one_year)):
        days_per_t = DAYS_PER_YEAR / inst.consumption[p, m]
        held = x[p, m] * days_per_t
        slack = held - inst.min_days[p, m]
        rows.append(
            (
                Limit.MIN_DAYS,
                inst.participants[p],
                inst.minerals[m],
                "",
                "",
                inst.min_days[p, m],
                held,
                slack,
                bool(n[p, m] > 0 and slack < lot[m] * days_per_t),
            )
        )
    # the disrupted (scenario, mineral) pairs of the flows: holding x_dp and one lot per pair
    xd = plan.held(inst, f.pairs_s, f.pairs_m)  # (D, P): the holding of the year each strikes in
    lot_d = lot[f.pairs_m][:, None] + NOISE * xd
    out = f.release + f.lent  # (D, P, T) what leaves each giver's store
    total = out.sum(axis=-1)
    moves = total > 0
    safe = np.where(xd > 0, xd, 1.0)
    for p in np.nonzero(inst.release_rate < 1.0)[0].tolist():
        room = inst.release_rate[p] * xd[:, p, None] - out[:, p]
        binds = ((out[:, p] > 0) & (room < lot_d[:, p, None])).any()
        used = (out[:, p] / safe[:, p, None]).max(initial=0.0)
        rows.append(
            (
                Limit.RATE,
                inst.participants[p],
                "",
                "",
                "",
                inst.release_rate[p],
                used,
                inst.release_rate[p] - used,
                bool(binds),
            )
        )
    for p in np.nonzero(inst.reserve_floor > 0)[0].tolist():
        left = xd[:, p] - total[:, p]
        room = left - inst.reserve_floor[p] * xd[:, p]
        binds = (moves[:, p] & (room < lot_d[:, p])).any()
        used = np.where(moves[:, p], left / safe[:, p], 1.0).min(initial=1.0)
        rows.append(
            (
                Limit.FLOOR,
                inst.participants[p],
                "",
                "",
                "",
                inst.reserve_floor[p],
                used,
                used - inst.reserve_floor[p],
                bool(binds),
            )
        )
    lent = arc_lent(inst, plan, f)  # (D, A)
    for a in np.nonzero(inst.arc_share < 1.0)[0].tolist():
        g = inst.arc_from[a]
        room = inst.arc_share[a] * xd[:, g] - lent[:, a]
        binds = ((lent[:, a] > 0) & (room < lot_d[:, g])).any()
        used = (lent[:, a] / safe[:, g]).max(initial=0.0)
        rows.append(
            (
                Limit.LENDING,
                inst.participants[g],
                "",
                inst.arc_names[a],
                "",
                inst.arc_share[a],
                used,
                inst.arc_share[a] - used,
                bool(binds),
            )
        )
    taken = (plan.offtake_units * inst.proj_lot[None, :]).sum(axis=0)  # (J,) t/yr
    for j, name in enumerate(inst.projects):
        mineral = inst.minerals[inst.proj_m[j]]
        slack = inst.proj_cap[j] - taken[j]
        unit = inst.proj_lot[j] if inst.proj_integer[j] else NOISE * max(inst.proj_cap[j], 1.0)
        rows.append((Limit.CAPACITY, "", mineral, "", name, inst.proj_cap[j], taken[j], slack, bool(slack < unit)))
        floor = inst.proj_gap[j] + inst.price[inst.proj_m[j]]
        costs = bool(taken[j] > 0 and inst.proj_gap[j] > 0)
        rows.append((Limit.FLOOR_PRICE, "", mineral, "", name, floor, taken[j], float("nan"), costs))
    df = pd.DataFrame(rows, columns=[c for c in LIMIT_COLUMNS if c != "year"])
    df.insert(LIMIT_COLUMNS.index("year"), "year", pd.array([pd.NA] * len(df), dtype="Int64"))
    if inst.years > 1:
        df = pd.concat([yearly_limits(inst, plan), df], ignore_index=True)
    for col in ("used", "slack"):
        df[col] = clean(df[col].to_numpy(dtype=float))
    return df.astype({"value": float, "used": float, "slack": float, "binds": bool})


def yearly_limits(inst: Instance, plan: Plan) -> pd.DataFrame:
    """The first-stage limits of a build-up (horizon.years > 1), one row per year they apply in.

    budget_usd: used = that year's spend (with budget_carryover: the spend so far against the budgets
    so far); binds when the slack is below one more lot of a mineral still under that year's ceiling.
    storage_capacity_t: the holding of all minerals that year. max_acquisition_t: tonnes bought that
    year. min_days: days held that year against its target. The same tests as a one-year plan's.
    """
    rows: list[tuple[Any, ...]] = []
    lot = inst.lot[None, :, None]
    bought = plan.bought
    x = inst.holding_by_year(bought)
    cap = np.floor(inst.acquisition_path / lot + 1e-9)
    lot_price = np.where(bought < cap, lot * inst.price_path[None], 0.0)  # (P, M, Y)
    spent, budget = inst.budget_use(bought)
    for p, y in zip(*np.nonzero(np.isfinite(budget))):
        slack = budget[p, y] - spent[p, y]
        rows.append((Limit.BUDGET, p, "", y, budget[p, y], spent[p, y], slack, slack < lot_price[p, :, y].max()))
    for p, y in zip(*np.nonzero(np.isfinite(inst.storage_path))):
        used = x[p, :, y].sum()
        slack = inst.storage_path[p, y] - used
        room = inst.lot[bought[p, :, y] < cap[p, :, y]].max(initial=0)
        rows.append((Limit.STORAGE, p, "", y, inst.storage_path[p, y], used, slack, slack < room))
    for p, m, y in zip(*np.nonzero(np.isfinite(inst.acquisition_path))):
        value, used = inst.acquisition_path[p, m, y], bought[p, m, y] * inst.lot[m]
        rows.append((Limit.ACQUISITION, p, m, y, value, used, value - used, value - used < inst.lot[m] - NOISE))
    for p, m, y in zip(*np.nonzero((inst.min_days_path > 0) & (inst.consumption[..., None] > 0))):
        days_per_t = DAYS_PER_YEAR / inst.consumption[p, m]
        held, target = x[p, m, y] * days_per_t, inst.min_days_path[p, m, y]
        binds = bool(bought[p, m, : y + 1].sum() > 0 and held - target < inst.lot[m] * days_per_t)
        rows.append((Limit.MIN_DAYS, p, m, y, target, held, held - target, binds))
    name = np.array(inst.participants, dtype=object)
    mineral = np.array(("", *inst.minerals), dtype=object)
    cols: list[list[Any]] = [list(c) for c in zip(*rows)] if rows else [[] for _ in range(8)]
    return pd.DataFrame(
        {
            "limit": cols[0],
            "participant": name[np.array(cols[1], dtype=np.int64)],
            "mineral": mineral[np.array([0 if v == "" else v + 1 for v in cols[2]], dtype=np.int64)],
            "arc": "",
            "project": "",
            "year": pd.array(np.array(cols[3], dtype=np.int64) + 1, dtype="Int64"),
            "value": np.array(cols[4], dtype=float),
            "used": np.array(cols[5], dtype=float),
            "slack": np.array(cols[6], dtype=float),
            "binds": np.array(cols[7], dtype=bool),
        },
        columns=LIMIT_COLUMNS,
    )


def arc_lent(inst: Instance, plan: Plan, f: Flows) -> np.ndarray:
    """Tonnes lent on each arc over each disrupted (scenario, mineral) pair of the flows, (D, A)."""
    axes = inst.axes
    keys = axes.key({"s": f.pairs_s, "m": f.pairs_m}, ("s", "m"))
    d = np.searchsorted(keys, axes.key(plan.lending, ("s", "m")))
    out = np.zeros((keys.size, inst.arc_from.size))
    np.add.at(out, (d, plan.lending["a"]), plan.lend)
    return out


def holding_notes(inst: Instance, plan: Plan, limits: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Why each (participant, mineral) holds what it holds, in one phrase: the limit that forces
    or stops it, or the cost against the most the holding could save.

    The bound on the saving: a tonne held covers at most one tonne of shortfall in each year's
    scenario that disrupts the holder or a partner it may lend to, at the dearest segment of any
    participant's damage curve (shortfall_cost_usd_per_t on one-segment curves), and only its
    (1 - reserve_floor) share may leave: (sum_k delta_k) P(hit) * that cost * (1 - floor), against
    its net cost (price - discounted resale + discounted storage).
    """
    top = inst.seg_cost.max(axis=(0, 2))  # (M,)
    lot, n = inst.lot, plan.lots
    acquired = n * lot
    x = inst.initial + acquired
    hit = inst.shortfall.sum(axis=-1) > 0  # (S, P, M)
    reach = hit.copy()
    for a in range(inst.arc_from.size):
        reach[:, inst.arc_from[a]] |= hit[:, inst.arc_to[a]] & inst.arc_minerals[a][None, :]
    p_reach = np.einsum("s,spm->pm", inst.year_share, reach)
    binding = {(r.limit, r.participant, r.mineral) for r in limits.itertuples() if r.binds}
    years: dict[tuple[str, str, str], list[int]] = {}  # over a build-up: the years each limit binds in
    for r in limits.itertuples():
        if r.binds and not pd.isna(r.year):
            years.setdefault((r.limit, r.participant, r.mineral), []).append(int(r.year))

    def when(key: tuple[str, str, str]) -> str:
        ys = years.get(key, [])
        return f" in year{'s' * (len(ys) > 1)} {', '.join(map(str, ys))}" if ys else ""

    slack = {(r.limit, r.participant): r.slack for r in limits.itertuples()}
    _, n_cap = inst.lot_range()
    borrows = np.empty(x.shape, dtype=object)
    borrows.fill(())
    if plan.lend.size:
        lc, lent = plan.lending, plan.lend > 0
        for p, m, a in sorted(set(zip(lc["p"][lent], lc["m"][lent], lc["a"][lent]))):
            borrows[p, m] = (*borrows[p, m], inst.participants[inst.arc_from[a]])
    out = {}
    for p, pname in enumerate(inst.participants):
        for m, mname in enumerate(inst.minerals):
            if x[p, m] > 0:
                if (Limit.MIN_DAYS, pname, mname) in binding:
                    note = f"min_days binds{when((Limit.MIN_DAYS, pname, mname))}: bought to hold {inst.min_days[p, m]:g} days"
                elif (Limit.ACQUISITION, pname, mname) in binding:
                    note = f"max_acquisition_t binds{when((Limit.ACQUISITION, pname, mname))}: more would pay"
                elif acquired[p, m] == 0:
                    note = "initial stock: another lot does not pay"
                elif not reach[:, p, m].any():
                    note = "not disrupted: no scenario disrupts it"
                else:
                    note = "bought: saves more expected shortfall than it costs"
            elif not reach[:, p, m].any():
                note = "nothing held: no scenario disrupts it or a partner it lends to"
            elif n_cap[p, m] <= 0:
                note = "nothing held: max_acquisition_t allows no lot"
            elif (Limit.BUDGET, pname, "") in binding and slack[(Limit.BUDGET, pname)] < lot[m] * inst.price[m]:
                note = (
                    f"nothing held: budget_usd binds ({money(slack[(Limit.BUDGET, pname)])} left, "
                    f"a lot costs {money(lot[m] * inst.price[m])})"
                )
            elif (Limit.STORAGE, pname, "") in binding and slack[(Limit.STORAGE, pname)] < lot[m]:
                note = "nothing held: storage_capacity_t binds"
            elif borrows[p, m]:
                note = f"nothing held: borrowing from {', '.join(borrows[p, m])} costs less than holding"
            else:
                per_t = inst.net_cost_per_t[m]
                saving = inst.risk_years * p_reach[p, m] * top[m] * (1.0 - inst.reserve_floor[p])
                fixed = f" plus a {money(inst.fixed_cost[p, m])} programme" if inst.fixed_cost[p, m] > 0 else ""
                cost = f"a tonne's net cost is {money(per_t)}{fixed}"
                note = (
                    f"nothing held: not worth its cost at P(hit) {p_reach[p, m]:.2f}: {cost}, "
                    f"and saves at most {money(saving)}/t"
                    if per_t >= saving
                    else f"nothing held: no lot pays for itself at P(hit) {p_reach[p, m]:.2f} ({cost}; "
                    f"the saving stays under its bound of {money(saving)}/t)"
                )
            out[(pname, mname)] = note
    return out


def coverage_notes(
    expected: pd.DataFrame, flows_table: pd.DataFrame, holdings: pd.DataFrame, held: dict[tuple[str, str], str]
) -> list[str]:
    """Where each row of expected_coverage's coverage comes from (its expected own, borrowed and
    offtake days): own stock, borrowed (from whom), offtake, or nothing and why (the holding note)."""
    lenders = flows_table.groupby(["to", "mineral"])["from"].agg(lambda s: ", ".join(sorted(set(s))))
    has = {(r.participant, r.mineral): r.holding_t > 0 for r in holdings.itertuples()}
    out = []
    for r in expected.itertuples():
        key = (r.participant, r.mineral)
        own, bor = r.own_coverage_days, r.borrowed_coverage_days
        src = lenders.get(key, "partners")
        if bor > 0 and own > 0:
            note = f"own {own:,.1f} d + borrowed {bor:,.1f} d from {src}"
        elif bor > 0:
            note = f"{'own stock kept back' if has[key] else 'no own stock'}: all {bor:,.1f} d borrowed from {src}"
        elif own > 0:
            note = "own stock"
        elif has[key]:
            note = "own stock kept back (reserve floor, release rate or lent to partners)"
        else:
            note = held[key]
        off = getattr(r, "offtake_coverage_days", 0.0)
        if off > 0:
            note = f"{note} + offtake {off:,.1f} d" if own > 0 or bor > 0 else f"offtake {off:,.1f} d"
        out.append(note)
    return out
