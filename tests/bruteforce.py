"""An independent reference solver: enumerate every lot vector, solve each scenario's
recourse as an LP in the model's normative form (inventory variables, floor in every
period) with scipy's HiGHS. Shares no code with stockpile's model or results."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linprog


def _pp(value, p, default, year=-1):
    """A participant's value; of a yearly list, that of the 0-based year (-1: the last)."""
    if isinstance(value, dict):
        value = value.get(p, default)
    if value is None:
        return default
    return float(value[year]) if isinstance(value, list) else float(value)


def _shortfall(cfg, sc, parts, mins, T):
    g = np.zeros((len(parts), len(mins), T))
    for sh in sc.get("shocks", []):
        m = mins.index(sh["mineral"])
        for t in range(sh["start"] - 1, min(sh["start"] - 1 + sh["periods"], T)):
            for i, p in enumerate(parts):
                g[i, m, t] += _pp(sh["loss"], p, 0.0)
    g = np.minimum(g, 1.0)
    for i, p in enumerate(parts):
        for j, m in enumerate(mins):
            g[i, j] *= (
                _pp(cfg["minerals"][m].get("consumption_t_per_year"), p, 0.0)
                * cfg["horizon"].get("period_days", 30)
                / 365.0
            )
    return g


def segments(mc, p):
    """The literal damage curve of a participant: [(up_to_share, usd_per_t), ...] (a figure: one segment)."""
    given = mc["shortfall_cost_usd_per_t"]
    one = given[p] if isinstance(given, dict) else given
    if isinstance(one, list):
        return [(g["up_to_share"], g["usd_per_t"]) for g in one]
    return [(1.0, float(one))]


def recourse(cfg, sc, x, offtake=None):
    """Optimal second-stage cost of one scenario for holdings x[p][m] and offtake[p][m] (t a
    period from allied projects, uncut by the shocks; serves the taker's shortfall or is lent
    onward on the lending arcs, outside the lender's stock limits)."""
    parts, mins = list(cfg["participants"]), list(cfg["minerals"])
    T = cfg["horizon"]["periods"]
    g = _shortfall(cfg, sc, parts, mins, T)
    arcs = []
    for a in cfg.get("lending", []):
        for m in a.get("minerals") or mins:
            arcs.append(
                (
                    parts.index(a["from"]),
                    parts.index(a["to"]),
                    mins.index(m),
                    a.get("max_share", 1.0),
                    a.get("cost_usd_per_t", 0.0),
                )
            )
    var = {}

    def v(*key):
        if key not in var:
            var[key] = len(var)
        return var[key]

    curves = [[segments(cfg["minerals"][m], p) for m in mins] for p in parts]
    for i in range(len(parts)):
        for j in range(len(mins)):
            for t in range(T):
                v("r", i, j, t), v("I", i, j, t), v("f", i, j, t)
                for k in range(len(curves[i][j])):
                    v("u", i, j, t, k)  # unmet on segment k of the participant's damage curve
    for k in range(len(arcs)):
        for t in range(T):
            v("l", k, t), v("e", k, t)  # stock lent, and offtake lent onward
    n = len(var)
    c = np.zeros(n)
    release = [cfg["minerals"][m].get("release_cost_usd_per_t", 0.0) for m in mins]
    bounds = [(0.0, None)] * n
    for i, p in enumerate(parts):
        for j, m in enumerate(mins):
            q = _pp(cfg["minerals"][m]["consumption_t_per_year"], p, 0.0) * cfg["horizon"]["period_days"] / 365.0
            for t in range(T):
                lo = 0.0
                for k, (w, b) in enumerate(curves[i][j]):  # 0 <= u_k <= (w_k - w_{k-1}) q, at b_k
                    c[var["u", i, j, t, k]] = b
                    bounds[var["u", i, j, t, k]] = (0.0, (w - lo) * q)
                    lo = w
                c[var["r", i, j, t]] = release[j]
    for k, arc in enumerate(arcs):
        for t in range(T):
            c[var["e", k, t]] = arc[4]
            c[var["l", k, t]] = arc[4] + release[arc[2]]  # stock lent leaves the lender's store
    A_eq, b_eq, A_ub, b_ub = [], [], [], []
    for i, p in enumerate(parts):
        lim = cfg["participants"][p] or {}
        rate, floor = lim.get("release_rate_max", 1.0), lim.get("reserve_floor", 0.0)
        for j in range(len(mins)):
            for t in range(T):
                out = [var["r", i, j, t]] + [var["l", k, t] for k, a in enumerate(arcs) if a[0] == i and a[2] == j]
                inn = [var[kind, k, t] for k, a in enumerate(arcs) if a[1] == i and a[2] == j for kind in "le"]
                row = np.zeros(n)  # inventory balance
                row[var["I", i, j, t]] = 1
                row[out] += 1
                if t > 0:
                    row[var["I", i, j, t - 1]] = -1
                A_eq.append(row)
                b_eq.append(x[i][j] if t == 0 else 0.0)
                row = np.zeros(n)  # demand
                row[var["r", i, j, t]] += 1
                for k in range(len(curves[i][j])):
                    row[var["u", i, j, t, k]] += 1
                row[var["f", i, j, t]] += 1
                row[inn] += 1
                A_eq.append(row)
                b_eq.append(g[i, j, t])
                row = np.zeros(n)  # release rate
                row[out] += 1
                A_ub.append(row)
                b_ub.append(rate * x[i][j])
                row = np.zeros(n)  # floor: -I <= -floor x
                row[var["I", i, j, t]] = -1
                A_ub.append(row)
                b_ub.append(-floor * x[i][j])
                row = np.zeros(n)  # offtake: own use + lent onward <= what arrives a period
                row[var["f", i, j, t]] = 1
                row[[var["e", k, t] for k, a in enumerate(arcs) if a[0] == i and a[2] == j]] = 1
                A_ub.append(row)
                b_ub.append(offtake[i][j] if offtake is not None else 0.0)
    for k, a in enumerate(arcs):
        row = np.zeros(n)
        for t in range(T):
            row[var["l", k, t]] = 1
        A_ub.append(row)
        b_ub.append(a[3] * x[a[0]][a[2]])
    res = linprog(c, A_ub=np.array(A_ub), b_ub=b_ub, A_eq=np.array(A_eq), b_eq=b_eq, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return res.fun


def cvar(q, prob, alpha):
    """CVaR_alpha by its definition min_eta eta + E[max(Q - eta, 0)] / (1 - alpha), the minimum
    taken over the scenario values (where a piecewise-linear convex function has it)."""
    return min(eta + sum(p * max(v - eta, 0.0) for p, v in zip(prob, q)) / (1 - alpha) for eta in q)


def brute_force(cfg):
    """(best objective, best lots (P, M, Y), offtake units) over every admissible vector of lots
    bought each build-up year; None if none is admissible. The issue's objective, literally: years
    k = 1..K (K = B + H - 1) each face every scenario, drawing on the holding x_min(k,B), discounted
    by delta_k = (1 + r)^-(k-1); storage at the start of each year on that holding; the stock left
    after year K resold at salvage_share of the last build year's price, discounted delta_{K+1};
    with CVaR, sum_k delta_k [(1 - w) E Q + w CVaR Q]."""
    parts, mins = list(cfg["participants"]), list(cfg["minerals"])
    hz = cfg["horizon"]
    H, Y = hz.get("holding_years", 1), hz.get("years", 1)
    K = Y + H - 1
    d = [(1.0 + hz.get("discount_rate", 0.0)) ** -k for k in range(K + 1)]
    ranges = []
    for p in parts:
        for m in mins:
            mc = cfg["minerals"][m]
            for y in range(Y):
                cap = _pp(mc.get("max_acquisition_t"), p, None, y)
                assert cap is not None, "brute force needs an acquisition ceiling on every pair and year"
                ranges.append(range(int(np.floor(cap / mc.get("lot_t", 1.0) + 1e-9)) + 1))
    projects = cfg.get("projects", [])
    offers = []  # (participant, project) with its units of offtake_lot_t
    for pr in projects:
        assert pr.get("offtake_lot_t"), "brute force needs offtake in lots"
        most = int(np.floor(pr["capacity_t_per_year"] / pr["offtake_lot_t"] + 1e-9))
        offers += [(i, pr, range(most + 1)) for i in range(len(parts))]
    prob = [sc["probability"] for sc in cfg["scenarios"]]
    memo: dict = {}
    best = None
    for lots, units in itertools.product(itertools.product(*ranges), itertools.product(*(o[2] for o in offers))):
        n = np.array(lots, float).reshape(len(parts), len(mins), Y)
        x = np.array([[_pp(cfg["minerals"][m].get("initial_t"), p, 0.0) for m in mins] for p in parts])[
            ..., None
        ] + np.array([cfg["minerals"][m].get("lot_t", 1.0) for m in mins])[None, :, None] * np.cumsum(n, axis=-1)
        ok, first = True, 0.0
        for i, p in enumerate(parts):
            lim = cfg["participants"][p] or {}
            spent = budget = 0.0
            for y in range(Y):
                spend = 0.0
                for j, m in enumerate(mins):
                    mc = cfg["minerals"][m]
                    cons = _pp(mc.get("consumption_t_per_year"), p, 0.0)
                    if x[i, j, y] < _pp(mc.get("min_days"), p, 0.0, y) * cons / 365 - 1e-9:
                        ok = False
                    fixed = _pp(mc.get("fixed_cost_usd"), p, 0.0) if y == 0 and n[i, j].sum() > 0 else 0.0
                    buy = _pp(mc["price_usd_per_t"], p, 0.0, y) * mc.get("lot_t", 1.0) * n[i, j, y]
                    spend += buy + fixed
                    first += d[y] * buy + fixed
                carry = lim.get("budget_carryover", False)
                spent = spent + spend if carry else spend
                if lim.get("budget_usd") is not None:
                    budget = budget + _pp(lim["budget_usd"], p, 0.0, y) if carry else _pp(lim["budget_usd"], p, 0.0, y)
                    if spent > budget + 1e-9:
                        ok = False
                store = lim.get("storage_capacity_t")
                if store is not None and x[i, :, y].sum() > _pp(store, p, 0.0, y) + 1e-9:
                    ok = False
        taken: dict = {}
        per = [[0.0] * len(mins) for _ in parts]
        for (i, pr, _), k in zip(offers, units):
            t = k * pr["offtake_lot_t"]
            taken[pr["name"]] = taken.get(pr["name"], 0.0) + t
            gap = max(pr["floor_price_usd_per_t"] - _pp(cfg["minerals"][pr["mineral"]]["price_usd_per_t"], "", 0, 0), 0)
            first += sum(d[:K]) * gap * t + (pr.get("fixed_cost_usd", 0.0) if t > 0 else 0.0)
            per[i][mins.index(pr["mineral"])] += t * cfg["horizon"].get("period_days", 30) / 365.0
        if any(t > pr["capacity_t_per_year"] + 1e-9 for pr in projects for t in [taken.get(pr["name"], 0.0)]):
            ok = False
        if not ok:
            continue
        risk = cfg.get("risk") or {}
        w, alpha = risk.get("cvar_weight", 0.0), risk.get("cvar_alpha", 0.9)
        total = first
        for k in range(K):
            held = x[:, :, min(k, Y - 1)]
            for i in range(len(parts)):
                for j, m in enumerate(mins):
                    total += d[k] * cfg["minerals"][m].get("holding_cost_usd_per_t_year", 0.0) * held[i, j]
            q = []
            for s, sc in enumerate(cfg["scenarios"]):
                key = (s, held.tobytes(), tuple(map(tuple, per)))
                if key not in memo:
                    memo[key] = recourse(cfg, sc, held.tolist(), per)
                q.append(memo[key])
            expected = sum(p * v for p, v in zip(prob, q))
            total += d[k] * ((1 - w) * expected + (w * cvar(q, prob, alpha) if w > 0 else 0.0))
        for i, p in enumerate(parts):
            for j, m in enumerate(mins):
                mc = cfg["minerals"][m]
                resale = mc.get("salvage_share", 0.0) * _pp(mc["price_usd_per_t"], p, 0.0, Y - 1)
                total -= d[K] * resale * x[i, j, Y - 1]
        if best is None or total < best[0] - 1e-9:
            best = (total, n, units)
    return best


def with_years(cfg: dict, seed: int) -> dict:
    """The config built up over 2 or 3 fiscal years: yearly prices, budgets (sometimes carried
    over), acquisition ceilings and min_days targets; a discount rate half the time; every build
    year faces every scenario. Small enough to enumerate every yearly lot vector."""
    rng = np.random.default_rng(2000 + seed)
    Y = int(rng.integers(2, 4))
    parts, mins = list(cfg["participants"]), list(cfg["minerals"])
    if len(parts) * len(mins) * Y > 6:  # keep the enumeration small: drop a mineral
        mins = mins[:1]
    out = {**cfg, "horizon": {**cfg["horizon"], "years": Y}}
    if rng.random() < 0.5:
        out["horizon"]["discount_rate"] = float(np.round(rng.uniform(0.02, 0.2), 3))
    out["minerals"] = {}
    for m in mins:
        mc = dict(cfg["minerals"][m])
        lot = mc["lot_t"]
        mc["price_usd_per_t"] = [float(np.round(mc["price_usd_per_t"] * rng.uniform(0.7, 1.4), 2)) for _ in range(Y)]
        mc["max_acquisition_t"] = {p: [float(lot * rng.integers(0, 3)) for _ in range(Y)] for p in parts}
        if rng.random() < 0.5:
            days = np.sort(rng.integers(0, 20, Y)).astype(float)
            mc["min_days"] = {parts[-1]: [float(v) for v in days]}
        else:
            mc.pop("min_days", None)
        out["minerals"][m] = mc
    out["lending"] = [
        {**a, "minerals": None} if a.get("minerals") and a["minerals"][0] not in mins else a
        for a in cfg.get("lending", [])
    ]
    out["participants"] = {}
    for p, lim in cfg["participants"].items():
        lim = dict(lim)
        if "budget_usd" in lim or rng.random() < 0.5:
            lim["budget_usd"] = [float(rng.integers(1, 5) * 1000) for _ in range(Y)]
            lim["budget_carryover"] = bool(rng.random() < 0.5)
        if "storage_capacity_t" in lim:
            lim["storage_capacity_t"] = [float(rng.integers(30, 120)) for _ in range(Y)]
        out["participants"][p] = lim
    scenarios = []
    for sc in cfg["scenarios"]:
        shocks = [sh for sh in sc["shocks"] if sh["mineral"] in mins]
        scenarios.append({**sc, "shocks": shocks})
    out["scenarios"] = scenarios
    out["name"] = f"{cfg['name']}-y{Y}"
    return out


def random_curve(rng, parts):
    """A figure (half the time), or a convex curve of 2-3 segments, for all or per participant."""

    def one():
        if rng.random() < 0.5:
            return float(rng.integers(50, 600))
        k = int(rng.integers(2, 4))
        ends = sorted(set(np.round(rng.uniform(0.1, 0.9, k - 1), 2).tolist())) + [1.0]
        costs = np.sort(rng.integers(50, 900, len(ends))).astype(float).tolist()
        return [{"up_to_share": w, "usd_per_t": b} for w, b in zip(ends, costs)]

    return {p: one() for p in parts} if rng.random() < 0.3 else one()


def random_config(seed: int) -> dict:
    """A tiny random config that exercises every limit and lending, small enough to enumerate."""
    rng = np.random.default_rng(seed)
    P, M = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    T, S = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    parts = ["US", "JP"][:P]
    mins = ["cobalt", "gallium"][:M]
    participants = {}
    for p in parts:
        lim = {}
        if rng.random() < 0.4:
            lim["budget_usd"] = float(rng.integers(2, 8) * 1000)
        if rng.random() < 0.3:
            lim["storage_capacity_t"] = float(rng.integers(40, 120))
        if rng.random() < 0.5:
            lim["release_rate_max"] = float(np.round(rng.uniform(0.2, 0.9), 2))
        if rng.random() < 0.4:
            lim["reserve_floor"] = float(np.round(rng.uniform(0.0, 0.4), 2))
        participants[p] = lim
    minerals = {}
    for m in mins:
        lot = float(rng.integers(5, 30))
        mc = {
            "price_usd_per_t": float(rng.integers(20, 100)),
            "holding_cost_usd_per_t_year": float(rng.integers(0, 10)),
            "lot_t": lot,
            "shortfall_cost_usd_per_t": random_curve(rng, parts),
            "consumption_t_per_year": {p: float(rng.integers(100, 400)) for p in parts},
            "max_acquisition_t": {p: float(lot * rng.integers(1, 4)) for p in parts},
        }
        if rng.random() < 0.4:
            mc["initial_t"] = {parts[0]: float(rng.integers(0, 20))}
        if rng.random() < 0.4:
            mc["fixed_cost_usd"] = {p: float(rng.integers(100, 1500)) for p in parts}
        if rng.random() < 0.25:
            mc["min_days"] = {parts[-1]: float(rng.integers(5, 30))}
        if rng.random() < 0.4:
            mc["salvage_share"] = float(np.round(rng.uniform(0.2, 0.9), 2))
        if rng.random() < 0.3:
            mc["release_cost_usd_per_t"] = float(rng.integers(1, 40))
        minerals[m] = mc
    lending = []
    if P == 2:
        for a, b in (("US", "JP"), ("JP", "US")):
            if rng.random() < 0.7:
                arc = {
                    "from": a,
                    "to": b,
                    "max_share": float(np.round(rng.uniform(0.2, 1.0), 2)),
                    "cost_usd_per_t": float(rng.integers(0, 30)),
                }
                if M == 2 and rng.random() < 0.4:
                    arc["minerals"] = [mins[int(rng.integers(0, 2))]]
                lending.append(arc)
    probs = rng.dirichlet(np.ones(S))
    discount = {"discount_rate": float(np.round(rng.uniform(0.02, 0.1), 3))} if rng.random() < 0.3 else {}
    scenarios = []
    for s in range(S):
        shocks = []
        for _ in range(int(rng.integers(0, 3))):
            loss = (
                float(np.round(rng.uniform(0.1, 1.0), 2))
                if rng.random() < 0.5
                else {p: float(np.round(rng.uniform(0.0, 1.0), 2)) for p in parts}
            )
            shocks.append(
                {
                    "mineral": mins[int(rng.integers(0, M))],
                    "start": int(rng.integers(1, T + 1)),
                    "periods": int(rng.integers(1, T + 1)),
                    "loss": loss,
                }
            )
        scenarios.append(
            {
                "name": f"s{s}",
                "probability": float(probs[s]) if s < S - 1 else float(1 - probs[:-1].sum()),
                "shocks": shocks,
            }
        )
    return {
        "name": f"rand{seed}",
        "horizon": {"periods": T, "period_days": 73, "holding_years": int(rng.choice([1, 1, 2, 3])), **discount},
        "participants": participants,
        "minerals": minerals,
        "lending": lending,
        "scenarios": scenarios,
        "solver": {"relative_gap": 1e-9},
    }


def with_project(cfg: dict, seed: int) -> dict:
    """The config with one allied project on its first mineral, offtake in lots, its floor price
    between the market price and 3x it (so that it sometimes beats stock, sometimes not)."""
    rng = np.random.default_rng(1000 + seed)
    m = next(iter(cfg["minerals"]))
    price = cfg["minerals"][m]["price_usd_per_t"]
    lot = float(rng.integers(20, 80))
    project = {
        "name": "ally",
        "host": "AU",
        "mineral": m,
        "capacity_t_per_year": lot * float(rng.integers(1, 3)),
        "floor_price_usd_per_t": float(np.round(price * rng.uniform(1.0, 3.0), 2)),
        "offtake_lot_t": lot,
    }
    if rng.random() < 0.5:
        project["fixed_cost_usd"] = float(rng.integers(100, 2000))
    return {**cfg, "projects": [project]}
