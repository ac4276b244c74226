"""Realistic synthetic configs for scale studies and benchmarks (``stockpile generate``).

Shock patterns follow the bundled real events: each disruptive scenario cuts one
to four minerals, losses are a supplier's share of imports (20-100%), shocks
start in the first half of the horizon and last 2 periods to the whole horizon.
Same arguments and seed, same config.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARTICIPANTS = ["US", "JP", "EU", "KR", "AU", "CA", "IN", "UK"]
# (name, price USD/t, US-scale consumption t/yr) for the first minerals; the rest are drawn
MINERALS = [
    ("cobalt", 37_500, 12_400),
    ("graphite", 1_300, 52_000),
    ("lithium", 69_000, 2_000),
    ("manganese", 1_800, 700_000),
    ("nickel", 14_000, 110_000),
    ("rare_earths", 66_000, 7_800),
    ("gallium", 240_000, 20),
    ("germanium", 5_000_000, 30),
    ("antimony", 12_000, 23_000),
    ("tungsten", 35_000, 10_000),
    ("vanadium", 30_000, 8_000),
    ("platinum", 30_000_000, 80),
    ("palladium", 60_000_000, 90),
    ("titanium", 10_000, 40_000),
    ("chromium", 9_000, 400_000),
    ("niobium", 45_000, 9_000),
    ("tantalum", 300_000, 1_000),
    ("indium", 350_000, 150),
    ("magnesium", 3_000, 100_000),
    ("bismuth", 7_000, 1_000),
]


def damage_curve(average: float, segments: int) -> float | list[dict[str, float]]:
    """Segments of equal depth 1/k costing average x 2 (j + 1/2) / k (j = 0..k-1): rising, and
    averaging `average` over a full cut, so a curve and its figure cost the same at depth 1."""
    if segments == 1:
        return average
    return [
        {
            "up_to_share": float(np.round((j + 1) / segments, 6)) if j < segments - 1 else 1.0,
            "usd_per_t": float(np.round(average * 2 * (j + 0.5) / segments, 2)),
        }
        for j in range(segments)
    ]


def generate(
    participants: int = 2,
    minerals: int = 5,
    scenarios: int = 10,
    periods: int = 12,
    seed: int = 0,
    name: str | None = None,
    years: int = 1,
    sampled: bool = False,
    segments: int = 1,
) -> dict[str, Any]:
    """A valid config as a plain dict (write it with yaml.safe_dump).

    years > 1: the same instance built up over that many fiscal years (``build_up``); sampled:
    its scenarios drawn from supplier countries and restriction events (``with_events``);
    segments > 1: every mineral's damage a convex curve of that many equal-depth segments
    (``damage_curve``), whose average is the one-segment figure."""
    if not 1 <= participants <= len(PARTICIPANTS):
        raise ValueError(f"participants must be 1..{len(PARTICIPANTS)}")
    if minerals < 1 or scenarios < 1 or periods < 1 or years < 1:
        raise ValueError("minerals, scenarios, periods and years must be at least 1")
    rng = np.random.default_rng(seed)
    parts = PARTICIPANTS[:participants]
    scale = {p: (1.0 if i == 0 else float(np.round(rng.uniform(0.3, 1.2), 2))) for i, p in enumerate(parts)}

    mins: dict[str, Any] = {}
    value_per_year = dict.fromkeys(parts, 0.0)
    for j in range(minerals):
        if j < len(MINERALS):
            mname, price, cons = MINERALS[j][0], float(MINERALS[j][1]), float(MINERALS[j][2])
        else:
            mname = f"mineral_{j + 1}"
            price = float(np.round(np.exp(rng.uniform(np.log(2e3), np.log(5e5))), -2))
            cons = float(np.round(np.exp(rng.uniform(np.log(50), np.log(1e5)))))
        consumption = {p: float(np.round(cons * scale[p] * rng.uniform(0.8, 1.2), 1)) for p in parts}
        lot = float(10 ** max(0, int(np.floor(np.log10(cons))) - 2))
        mult = 20 if price >= 60_000 else 10
        entry: dict[str, Any] = {
            "price_usd_per_t": float(price),
            "holding_cost_usd_per_t_year": float(np.round(0.05 * price + 200)),
            "lot_t": lot,
            "shortfall_cost_usd_per_t": damage_curve(float(mult * price), segments),
            "consumption_t_per_year": consumption,
        }
        if participants > 1 and rng.random() < 0.5:
            entry["min_days"] = {parts[1]: 42.0}
        if rng.random() < 0.3:
            entry["fixed_cost_usd"] = {parts[0]: 2.0e6}
        mins[mname] = entry
        for p in parts:
            value_per_year[p] += consumption[p] * price

    participants_cfg = {}
    for p in parts:
        participants_cfg[p] = {
            # about 45 days of consumption value: budgets bind, as real ones do
            "budget_usd": float(np.round(value_per_year[p] * 45 / 365 + 2.0e7, -5)),
            "release_rate_max": float(np.round(rng.uniform(0.2, 0.4), 2)),
            "reserve_floor": float(np.round(rng.choice([0.0, 0.05, 0.1]), 2)),
        }

    lending = [
        {
            "from": a,
            "to": b,
            "max_share": float(np.round(rng.uniform(0.3, 0.6), 2)),
            "cost_usd_per_t": float(np.round(rng.uniform(100, 500))),
        }
        for a in parts
        for b in parts
        if a != b
    ]

    names = list(mins)
    calm = 0.3 if scenarios > 1 else 1.0
    weights = rng.dirichlet(np.ones(scenarios - 1)) * (1 - calm) if scenarios > 1 else np.zeros(0)
    scen: list[dict[str, Any]] = [{"name": "calm", "probability": calm}]
    for s in range(scenarios - 1):
        shocks = []
        for m in rng.choice(len(names), size=min(len(names), int(rng.integers(1, 5))), replace=False):
            start = int(rng.integers(1, max(1, periods // 2) + 1))
            length = int(rng.integers(min(2, periods), periods + 1))
            hit = {p: float(np.round(rng.uniform(0.2, 1.0), 2)) for p in parts if rng.random() < 0.8}
            shocks.append(
                {
                    "mineral": names[int(m)],
                    "start": start,
                    "periods": length,
                    # every participant named (0: not cut), from the same draws as always
                    "loss": {p: hit.get(p, 0.0) for p in parts} if hit else float(np.round(rng.uniform(0.2, 1.0), 2)),
                }
            )
        scen.append({"name": f"shock_{s + 1:05d}", "probability": float(weights[s]), "shocks": shocks})
    # make the probabilities sum to 1 exactly in floating point
    scen[-1]["probability"] = float(1.0 - sum(float(x["probability"]) for x in scen[:-1]))
    cfg = {
        "name": name or f"gen-p{participants}-m{minerals}-s{scenarios}-t{periods}-seed{seed}",
        "horizon": {"periods": periods, "period_days": float(np.round(360 / periods, 4)), "holding_years": 5},
        "participants": participants_cfg,
        "minerals": mins,
        "lending": lending,
        "scenarios": scen,
        "solver": {"name": "highs", "time_limit_s": 600.0, "relative_gap": 1.0e-4},
    }
    if sampled:
        cfg = with_events(cfg, scenarios, seed, name is None)
    return cfg if years == 1 else build_up(cfg, years, name is None)


SUPPLIERS = ["China", "DRC", "Indonesia", "Chile", "Russia", "South Africa"]


def with_events(cfg: dict[str, Any], count: int, seed: int, rename: bool) -> dict[str, Any]:
    """The config with `scenarios: {sample: {count, seed}}` drawn from generated `suppliers` and
    `events`: each mineral comes from one supplier country (20-100% of each participant's supply);
    each supplier's minerals are restricted together in groups of up to three, an event a year
    with probability 3-15%, lasting 2 periods to the whole horizon (mode: half), cutting 30-100%
    of the flow; China's first two events are correlated (P = 0.5), as gallium and graphite in
    2023. Drawn from their own stream: the rest of the config is unchanged."""
    rng = np.random.default_rng([seed, 7919])
    parts = list(cfg["participants"])
    T = cfg["horizon"]["periods"]
    suppliers: dict[str, dict[str, Any]] = {}
    for m in cfg["minerals"]:
        home = SUPPLIERS[int(rng.integers(len(SUPPLIERS)))]
        suppliers.setdefault(home, {})[m] = {p: float(np.round(rng.uniform(0.2, 1.0), 2)) for p in parts}
    events: list[dict[str, Any]] = []
    for home, minerals in suppliers.items():
        names = list(minerals)
        for k in range(0, len(names), 3):
            events.append(
                {
                    "name": f"{home.lower().replace(' ', '_')}_{k // 3 + 1}",
                    "supplier": home,
                    "minerals": names[k : k + 3],
                    "annual_probability": float(np.round(rng.uniform(0.03, 0.15), 3)),
                    "duration_periods": {"min": float(min(2, T)), "mode": float(max(1, T // 2)), "max": float(T)},
                    "severity": {"min": 0.3, "max": 1.0},
                }
            )
    china = [e for e in events if e["supplier"] == "China"]
    if len(china) > 1:
        china[0]["correlated_with"] = {"event": china[1]["name"], "probability": 0.5}
    cfg["suppliers"], cfg["events"] = suppliers, events
    cfg["scenarios"] = {"sample": {"count": count, "seed": seed}}
    if rename:
        cfg["name"] += "-sampled"
    return cfg


def build_up(cfg: dict[str, Any], years: int, rename: bool) -> dict[str, Any]:
    """The config bought over `years` fiscal years: each year's budget is the total's even share
    (unspent money lapses) and min_days targets rise evenly to the final one; every year faces
    every scenario."""
    cfg["horizon"]["years"] = years
    for part in cfg["participants"].values():
        part["budget_usd"] = float(np.round(part["budget_usd"] / years, -5))
    for entry in cfg["minerals"].values():
        if "min_days" in entry:
            entry["min_days"] = {
                p: [float(np.round(d * (y + 1) / years, 1)) for y in range(years)] for p, d in entry["min_days"].items()
            }
    if rename:
        cfg["name"] += f"-y{years}"
    return cfg
