"""Independent verifier of a run folder (``stockpile check RUN_DIR``).

Re-reads ``config.resolved.yaml`` and the CSV outputs and checks every rule of
the model (docs/model.md) from scratch: shortfall is re-derived from the shocks
with plain loops, and nothing of the optimizer (instance, model, results) is
imported, so a bug there cannot hide itself here.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

DAYS = 365.0


@dataclass
class Violation:
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.detail}"


def _close(a: float, b: float, scale: float = 1.0, rel: float = 1e-6) -> bool:
    return a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b), scale)


def _pp(value, participant: str, default: float) -> float:
    """Scalar-or-mapping config value for one participant."""
    if value is None:
        return default
    if isinstance(value, dict):
        return float(value.get(participant, default))
    return float(value)


def _read(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / name, keep_default_na=False, na_values=[""])


def check_run(run_dir: str | Path, tol: float = 1e-6) -> list[Violation]:
    """Every violated rule of a finished run; an empty list means the run is consistent."""
    run = Path(run_dir)
    bad: list[Violation] = []
    summary = json.loads((run / "summary.json").read_text())
    if summary.get("status") not in ("optimal", "feasible"):
        return bad  # nothing to verify: no plan was reported
    cfg = yaml.safe_load((run / "config.resolved.yaml").read_text())
    hold = _read(run, "holdings.csv")
    sched = _read(run, "schedule.csv")
    lend = _read(run, "lending.csv")
    cov = _read(run, "coverage.csv")

    parts, mins = list(cfg["participants"]), list(cfg["minerals"])
    T = cfg["horizon"]["periods"]
    delta = cfg["horizon"]["period_days"]
    years = cfg["horizon"]["holding_years"]
    prob = {s["name"]: s["probability"] for s in cfg["scenarios"]}

    # ---- first stage
    x: dict[tuple[str, str], float] = {}
    acq = fixed = holding_cost = 0.0
    spend: dict[str, float] = defaultdict(float)
    held: dict[str, float] = defaultdict(float)
    for i, row in hold.iterrows():
        p, m = row.participant, row.mineral
        mc = cfg["minerals"][m]
        where = f"holdings.csv row {i + 2} ({p}, {m})"
        lot = mc["lot_t"]
        init = _pp(mc["initial_t"], p, 0.0)
        if row.lots < 0 or row.lots != round(row.lots):
            bad.append(Violation("whole lots", where, f"lots = {row.lots}"))
        for col, want in (("initial_t", init), ("acquired_t", row.lots * lot),
                          ("holding_t", init + row.lots * lot), ("acquisition_usd", row.lots * lot * mc["price_usd_per_t"])):
            if not _close(row[col], want):
                bad.append(Violation("holding arithmetic", where, f"{col} = {row[col]}, expected {want}"))
        cons = _pp(mc["consumption_t_per_year"], p, 0.0)
        if cons > 0 and not _close(row.days_of_consumption, row.holding_t * DAYS / cons):
            bad.append(Violation("days of consumption", where, f"{row.days_of_consumption}"))
        need = _pp(mc["min_days"], p, 0.0) * cons / DAYS
        if row.holding_t < need - tol * max(1, need):
            bad.append(Violation("min_days", where, f"holding {row.holding_t:g} t < required {need:g} t"))
        cap = _pp(mc["max_acquisition_t"], p, math.inf)
        if row.acquired_t > cap + tol * max(1, cap):
            bad.append(Violation("max_acquisition_t", where, f"acquired {row.acquired_t:g} t > {cap:g} t"))
        f = _pp(mc["fixed_cost_usd"], p, 0.0) if row.lots > 0 else 0.0
        x[p, m] = row.holding_t
        acq += row.acquisition_usd
        fixed += f
        holding_cost += mc["holding_cost_usd_per_t_year"] * years * row.holding_t
        spend[p] += row.acquisition_usd + f
        held[p] += row.holding_t
    for p in parts:
        lim = cfg["participants"][p]
        if lim["budget_usd"] is not None and spend[p] > lim["budget_usd"] * (1 + tol) + tol:
            bad.append(Violation("budget_usd", p, f"spends {spend[p]:,.2f} > {lim['budget_usd']:,.2f}"))
        cap = lim["storage_capacity_t"]
        if cap is not None and held[p] > cap * (1 + tol) + tol:
            bad.append(Violation("storage_capacity_t", p, f"holds {held[p]:,.4f} t > {cap:,.4f} t"))
    if len(x) != len(parts) * len(mins):
        bad.append(Violation("holdings rows", "holdings.csv", f"{len(x)} rows, expected {len(parts) * len(mins)}"))

    # ---- shortfall from the shocks, independently
    g: dict[tuple[str, str, str, int], float] = {}
    for sc in cfg["scenarios"]:
        share: dict[tuple[str, str, int], float] = defaultdict(float)
        for sh in sc["shocks"]:
            for t in range(sh["start"], min(sh["start"] + sh["periods"], T + 1)):
                for p in parts:
                    share[p, sh["mineral"], t] += _pp(sh["loss"], p, 0.0)
        for (p, m, t), v in share.items():
            q = _pp(cfg["minerals"][m]["consumption_t_per_year"], p, 0.0) * delta / DAYS
            if min(v, 1.0) * q > 0:
                g[sc["name"], p, m, t] = min(v, 1.0) * q

    # ---- lending flows
    arcs = {(a["from"], a["to"]): a for a in cfg["lending"]}
    lent_by = defaultdict(float)
    borrowed_by = defaultdict(float)
    arc_total = defaultdict(float)
    lending_cost = 0.0
    for i, row in lend.iterrows():
        where = f"lending.csv row {i + 2}"
        arc = arcs.get((row["from"], row["to"]))
        if arc is None or (arc["minerals"] is not None and row.mineral not in arc["minerals"]):
            bad.append(Violation("lending arc", where, f"{row['from']} -> {row['to']} may not lend {row.mineral}"))
            continue
        if row.lent_t < -tol:
            bad.append(Violation("non-negative", where, f"lent_t = {row.lent_t}"))
        lent_by[row.scenario, row["from"], row.mineral, row.period] += row.lent_t
        borrowed_by[row.scenario, row["to"], row.mineral, row.period] += row.lent_t
        arc_total[row.scenario, row["from"], row["to"], row.mineral] += row.lent_t
        lending_cost += prob[row.scenario] * arc["cost_usd_per_t"] * row.lent_t
    for (s, a, b, m), total in arc_total.items():
        cap = arcs[a, b]["max_share"] * x[a, m]
        if total > cap + tol * max(1, cap):
            bad.append(Violation("lending max_share", f"{s} {a}->{b} {m}", f"lent {total:g} t > {cap:g} t"))

    # ---- schedule: balance, rates, floors, inventory
    short_cost = 0.0
    seen: set = set()
    sched = sched.sort_values(["scenario", "participant", "mineral", "period"], kind="stable")
    inv_prev: dict[tuple, float] = {}
    for i, row in zip(sched.index, sched.itertuples(index=False)):
        s, p, m, t = row.scenario, row.participant, row.mineral, row.period
        where = f"schedule.csv row {i + 2} ({s}, {p}, {m}, period {t})"
        key = (s, p, m, t)
        seen.add(key)
        lim = cfg["participants"][p]
        want_g = g.get(key, 0.0)
        if not _close(row.shortfall_t, want_g):
            bad.append(Violation("shortfall", where, f"{row.shortfall_t:g} t, shocks give {want_g:g} t"))
        for col in ("release_t", "lent_t", "borrowed_t", "unmet_t"):
            if getattr(row, col) < -tol:
                bad.append(Violation("non-negative", where, f"{col} = {getattr(row, col)}"))
        if not _close(row.release_t + row.borrowed_t + row.unmet_t, row.shortfall_t, row.shortfall_t):
            bad.append(Violation("demand balance", where, "release + borrowed + unmet != shortfall"))
        if not _close(row.lent_t, lent_by.get(key, 0.0)):
            bad.append(Violation("lending total", where, f"lent_t {row.lent_t:g} != lending.csv {lent_by.get(key, 0.0):g}"))
        if not _close(row.borrowed_t, borrowed_by.get(key, 0.0)):
            bad.append(Violation("borrowing total", where, "borrowed_t != lending.csv"))
        hx = x[p, m]
        out = row.release_t + row.lent_t
        if out > lim["release_rate_max"] * hx + tol * max(1, hx):
            bad.append(Violation("release_rate_max", where, f"outflow {out:g} t > {lim['release_rate_max']} x {hx:g} t"))
        before = inv_prev.get((s, p, m), hx) if t > 1 else hx
        if not _close(row.inventory_t, before - out, hx):
            bad.append(Violation("inventory balance", where, f"{row.inventory_t:g} != {before:g} - {out:g}"))
        if row.inventory_t < lim["reserve_floor"] * hx - tol * max(1, hx):
            bad.append(Violation("reserve_floor", where, f"inventory {row.inventory_t:g} t < floor"))
        inv_prev[s, p, m] = row.inventory_t
        short_cost += prob[s] * cfg["minerals"][m]["shortfall_cost_usd_per_t"] * row.unmet_t
    for key in set(g) - seen:
        bad.append(Violation("schedule rows", "schedule.csv", f"no row for shortfall at {key}"))
    for key in set(lent_by) - seen:
        bad.append(Violation("schedule rows", "schedule.csv", f"no row for lending at {key}"))

    # ---- coverage metrics follow from the schedule
    per = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # disruption days, coverage days, covered, shortfall
    unmet = defaultdict(float)
    for row in sched.itertuples(index=False):
        if row.shortfall_t > 0:
            k = (row.scenario, row.participant, row.mineral)
            covered = row.shortfall_t - row.unmet_t
            per[k][0] += delta
            per[k][1] += delta * covered / row.shortfall_t
            per[k][2] += covered
            per[k][3] += row.shortfall_t
            unmet[k] += row.unmet_t
    got = {(r.scenario, r.participant, r.mineral): r for r in cov.itertuples(index=False)}
    for k, (dd, cd, c, sh) in per.items():
        r = got.get(k)
        if r is None:
            bad.append(Violation("coverage rows", "coverage.csv", f"no row for {k}"))
            continue
        for name, have, want in (("disruption_days", r.disruption_days, dd), ("coverage_days", r.coverage_days, cd),
                                 ("coverage_share", r.coverage_share, c / sh), ("unmet_t", r.unmet_t, unmet[k])):
            if not _close(have, want, rel=1e-5):
                bad.append(Violation("coverage arithmetic", f"coverage.csv {k}", f"{name} = {have:g}, expected {want:g}"))
    for k in set(got) - set(per):
        bad.append(Violation("coverage rows", "coverage.csv", f"row {k} has no shortfall"))

    # ---- costs add up
    mine = {"acquisition_usd": acq, "fixed_usd": fixed, "holding_usd": holding_cost,
            "expected_shortfall_usd": short_cost, "expected_lending_usd": lending_cost}
    total = sum(mine.values())
    for k, v in mine.items():
        if not _close(summary["costs"][k], v, total):
            bad.append(Violation("cost breakdown", f"summary.json costs.{k}", f"{summary['costs'][k]:,.2f}, recomputed {v:,.2f}"))
    if not _close(summary["objective_usd"], total):
        bad.append(Violation("objective", "summary.json objective_usd",
                             f"{summary['objective_usd']:,.2f}, recomputed {total:,.2f}"))
    bound = summary.get("best_bound_usd")
    if bound is not None and bound > summary["objective_usd"] * (1 + tol) + tol:
        bad.append(Violation("bound", "summary.json best_bound_usd", "bound above the objective"))
    return bad
