"""Independent verifier of a run folder (``stockpile check RUN_DIR``).

Re-reads ``config.resolved.yaml`` and the CSV outputs and checks every rule of
the model (docs/model.md) from scratch: shortfall is re-derived from the shocks
with plain loops, and nothing of the optimizer (instance, model, results) is
imported, so a bug there cannot hide itself here. The one thing it takes from the
package is the config's own validation: ``config.resolved.yaml`` must be a config the
commands that read a run (evaluate, explain, simulate, respond) accept.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stockpile.config.damage import Segments, derived_segments
from stockpile.enums import COST_KEYS, has_plan
from stockpile.jsontypes import JSON

Cell = tuple[Any, ...]  # a key of values read from the run's CSV rows: (scenario, participant, mineral, period) or part

DAYS = 365.0
CENT = 0.01  # money below a cent is solver noise, not a finding


@dataclass
class Violation:
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.detail}"


def _close(a: float, b: float, scale: float = 1.0, rel: float = 1e-6) -> bool:
    return a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b), scale)


def curve(mc: JSON, participant: str) -> Segments:
    """A participant's damage curve from a mineral's config entry, (up_to_share, usd_per_t) per segment."""
    given = mc.get("shortfall_cost_usd_per_t")
    if given is not None:
        one = given.get(participant, 0.0) if isinstance(given, dict) else given
        if isinstance(one, list):
            return tuple((float(g["up_to_share"]), float(g["usd_per_t"])) for g in one)
        return ((1.0, float(one)),)
    d = mc["damage"] if "elasticity" in mc["damage"] else mc["damage"].get(participant)
    if d is None:
        return ((1.0, 0.0),)
    price = mc["price_usd_per_t"]
    c = float(price[0] if isinstance(price, list) else price)
    return derived_segments(c, d["elasticity"], d["choke_usd_per_t"], d.get("shares", [1.0]))


def damage(segments: Segments, per_period: float, unmet: float) -> float:
    """The damage of `unmet` tonnes in a period: segment by segment from the shallowest, each
    (w_j - w_{j-1}) q tonnes wide (the last unbounded), at its usd_per_t."""
    total, lo = 0.0, 0.0
    for j, (w, b) in enumerate(segments):
        hi = math.inf if j == len(segments) - 1 else w * per_period
        total += b * max(0.0, min(unmet, hi) - lo)
        lo = hi
    return total


def per_period(cfg: JSON, p: str, m: str) -> float:
    """q_pm: a participant's consumption of a mineral per period, the width unit of its curve."""
    return _pp(cfg["minerals"][m]["consumption_t_per_year"], p, 0.0) * float(cfg["horizon"]["period_days"]) / DAYS


def _pp(value: Any, participant: str, default: float, year: int = -1) -> float:
    """Scalar-or-mapping config value for one participant; of a yearly list, that of the year
    (0-based; -1: the last)."""
    if isinstance(value, dict):
        value = value.get(participant, default)
    if value is None:
        return default
    return float(value[year]) if isinstance(value, list) else float(value)


def _read(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / name, keep_default_na=False, na_values=[""])


@dataclass
class Run:
    """A run folder, read once; every rule reads from here."""

    summary: JSON
    cfg: JSON
    hold: pd.DataFrame
    sched: pd.DataFrame
    lend: pd.DataFrame
    cov: pd.DataFrame
    offtake: pd.DataFrame  # empty when the run has none
    acq: pd.DataFrame  # acquisitions by build-up year; empty for a one-year run
    tol: float
    x: dict[tuple[str, str], float] = field(default_factory=dict)  # holding per (participant, mineral)
    x_year: dict[tuple[str, str, int], float] = field(default_factory=dict)  # ... at the end of each year (0-based)
    costs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_KEYS, 0.0))  # recomputed by the rules
    recourse: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # Q_s: shortfall + fees
    saved: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))  # damage avoided
    offtake_per_period: dict[tuple[str, str], float] = field(default_factory=dict)  # t each period may serve

    @property
    def parts(self) -> list[str]:
        return list(self.cfg["participants"])

    def curve(self, p: str, m: str) -> Segments:
        return curve(self.cfg["minerals"][m], p)

    def per_period(self, p: str, m: str) -> float:
        return per_period(self.cfg, p, m)

    @cached_property
    def prob(self) -> dict[str, float]:
        """pi of every scenario of the run: over a build-up each config scenario once per build year."""
        return {name: sc["probability"] for name, (sc, _) in self.scenario_years.items()}

    @property
    def years(self) -> int:
        return int(self.cfg["horizon"].get("years", 1))

    def discount(self, year: int) -> float:
        """delta = (1 + r)^-y of a 0-based year."""
        return (1.0 + float(self.cfg["horizon"].get("discount_rate", 0.0))) ** -year

    @cached_property
    def weights(self) -> list[float]:
        """W_y of each 0-based build year: its own discount before the last, and the sum of the
        discounts of years B..K for the finished stock (K = years + holding_years - 1)."""
        K = self.years + int(self.cfg["horizon"]["holding_years"]) - 1
        return [self.discount(y) for y in range(self.years - 1)] + [
            sum(self.discount(k) for k in range(self.years - 1, K))
        ]

    @property
    def resale_discount(self) -> float:
        """delta_{K+1}: the stock left after the years protected is resold then."""
        return self.discount(self.years + int(self.cfg["horizon"]["holding_years"]) - 1)

    @cached_property
    def scenario_years(self) -> dict[str, tuple[JSON, int]]:
        """Each scenario of the run with its config scenario and the 0-based build year whose holding
        it draws on: the config's names, or NAME@yY over a build-up (every year faces every one)."""
        Y = self.years
        return {
            (sc["name"] if Y == 1 else f"{sc['name']}@y{y + 1}"): (sc, y)
            for y in range(Y)
            for sc in self.cfg["scenarios"]
        }

    def year_of(self, scenario: str) -> int:
        return self.scenario_years[scenario][1]

    def weight(self, scenario: str) -> float:
        """pi_s W_y(s): what a dollar of the scenario's recourse weighs in the objective."""
        return float(self.prob[scenario] * self.weights[self.year_of(scenario)])

    def held(self, scenario: str, p: str, m: str) -> float:
        """The holding a scenario draws on: that at the end of the year it strikes in."""
        return self.x_year.get((p, m, self.year_of(scenario)), self.x[p, m])


def read_run(run_dir: str | Path, tol: float = 1e-6) -> Run:
    run = Path(run_dir)
    return Run(
        summary=json.loads((run / "summary.json").read_text()),
        cfg=yaml.safe_load((run / "config.resolved.yaml").read_text()),
        hold=_read(run, "holdings.csv"),
        sched=_read(run, "schedule.csv"),
        lend=_read(run, "lending.csv"),
        cov=_read(run, "coverage.csv"),
        offtake=_read(run, "offtake.csv") if (run / "offtake.csv").exists() else pd.DataFrame(),
        acq=_read(run, "acquisitions.csv") if (run / "acquisitions.csv").exists() else pd.DataFrame(),
        tol=tol,
    )


def check_holdings(r: Run) -> Iterator[Violation]:
    """Whole lots, holding arithmetic, days of consumption, min_days, max_acquisition_t; per participant
    budget_usd and storage_capacity_t; the first-stage costs."""
    cfg, tol = r.cfg, r.tol
    one_year = r.years == 1  # over a build-up the limits and costs are yearly (check_acquisitions)
    bought = r.acq.groupby(["participant", "mineral"]).cost_usd.sum() if not one_year else None
    spend: dict[str, float] = defaultdict(float)
    held: dict[str, float] = defaultdict(float)
    for i, row in r.hold.iterrows():
        p, m = row.participant, row.mineral
        mc = cfg["minerals"][m]
        where = f"holdings.csv row {int(str(i)) + 2} ({p}, {m})"
        lot = mc["lot_t"]
        init = _pp(mc["initial_t"], p, 0.0)
        if row.lots < 0 or row.lots != round(row.lots):
            yield Violation("whole lots", where, f"lots = {row.lots}")
        expected = (
            ("initial_t", init),
            ("acquired_t", row.lots * lot),
            ("holding_t", init + row.lots * lot),
            (
                "acquisition_usd",
                row.lots * lot * _pp(mc["price_usd_per_t"], p, 0.0, 0) if bought is None else bought.get((p, m), 0.0),
            ),
        )
        for col, want in expected:
            if not _close(row[col], want):
                yield Violation("holding arithmetic", where, f"{col} = {row[col]}, expected {want}")
        cons = _pp(mc["consumption_t_per_year"], p, 0.0)
        if cons > 0 and not _close(row.days_of_consumption, row.holding_t * DAYS / cons):
            yield Violation("days of consumption", where, f"{row.days_of_consumption}")
        r.x[p, m] = row.holding_t
        resale = r.resale_discount * mc["salvage_share"] * _pp(mc["price_usd_per_t"], p, 0.0)
        net = _pp(mc["price_usd_per_t"], p, 0.0, 0) + mc["holding_cost_usd_per_t_year"] * sum(r.weights) - resale
        if not _close(row.net_cost_usd_per_t, net):
            yield Violation("net cost per tonne", where, f"{row.net_cost_usd_per_t:,.2f}, expected {net:,.2f}")
        if not one_year:
            r.costs["fixed_usd"] += _pp(mc["fixed_cost_usd"], p, 0.0) if row.lots > 0 else 0.0
            continue
        need = _pp(mc["min_days"], p, 0.0) * cons / DAYS
        if row.holding_t < need - tol * max(1, need):
            yield Violation("min_days", where, f"holding {row.holding_t:g} t < required {need:g} t")
        cap = _pp(mc["max_acquisition_t"], p, math.inf)
        if row.acquired_t > cap + tol * max(1, cap):
            yield Violation("max_acquisition_t", where, f"acquired {row.acquired_t:g} t > {cap:g} t")
        f = _pp(mc["fixed_cost_usd"], p, 0.0) if row.lots > 0 else 0.0
        r.costs["acquisition_usd"] += row.acquisition_usd
        r.costs["fixed_usd"] += f
        r.costs["holding_usd"] += mc["holding_cost_usd_per_t_year"] * r.weights[0] * row.holding_t
        r.costs["salvage_usd"] -= (
            r.resale_discount * mc["salvage_share"] * _pp(mc["price_usd_per_t"], p, 0.0) * row.holding_t
        )
        spend[p] += row.acquisition_usd + f
        held[p] += row.holding_t
    for p in r.parts if one_year else []:
        lim = cfg["participants"][p]
        budget = _pp(lim["budget_usd"], p, math.inf)  # a number, or a list of one (horizon.years 1)
        if spend[p] > budget * (1 + tol) + tol:
            yield Violation("budget_usd", p, f"spends {spend[p]:,.2f} > {budget:,.2f}")
        cap = _pp(lim["storage_capacity_t"], p, math.inf)
        if held[p] > cap * (1 + tol) + tol:
            yield Violation("storage_capacity_t", p, f"holds {held[p]:,.4f} t > {cap:,.4f} t")
    if len(r.x) != len(r.parts) * len(cfg["minerals"]):
        yield Violation(
            "holdings rows", "holdings.csv", f"{len(r.x)} rows, expected {len(r.parts) * len(cfg['minerals'])}"
        )


def check_acquisitions(r: Run) -> Iterator[Violation]:
    """A build-up over horizon.years > 1 (acquisitions.csv): whole lots, each year's arithmetic (cost
    at that year's price, discounted by (1 + r)^-(y-1), holding so far, days), that year's
    min_days, max_acquisition_t, budget_usd (with budget_carryover: the spend so far within the
    budgets so far; programme costs in year 1) and storage_capacity_t; the year totals agree with
    holdings.csv; the discounted acquisition and holding costs."""
    if r.years == 1:
        return
    cfg, tol, Y = r.cfg, r.tol, r.years
    spend: dict[tuple[str, int], float] = defaultdict(float)
    held: dict[tuple[str, int], float] = defaultdict(float)
    total: dict[tuple[str, str], float] = defaultdict(float)
    acq = r.acq.sort_values(["participant", "mineral", "year"], kind="stable")
    for i, row in zip(acq.index, acq.itertuples(index=False)):
        p, m, y = row.participant, row.mineral, int(row.year) - 1
        mc = cfg["minerals"][m]
        where = f"acquisitions.csv row {int(str(i)) + 2} ({p}, {m}, year {y + 1})"
        if row.lots < 0 or row.lots != round(row.lots):
            yield Violation("whole lots", where, f"lots = {row.lots}")
        total[p, m] += row.lots
        x = _pp(mc["initial_t"], p, 0.0) + total[p, m] * mc["lot_t"]
        cost = row.lots * mc["lot_t"] * _pp(mc["price_usd_per_t"], p, 0.0, y)
        d = r.discount(y)
        expected = (
            ("acquired_t", row.lots * mc["lot_t"]),
            ("cost_usd", cost),
            ("discounted_cost_usd", cost * d),
            ("holding_t", x),
        )
        for col, want in expected:
            if not _close(getattr(row, col), want):
                yield Violation("acquisition arithmetic", where, f"{col} = {getattr(row, col)}, expected {want}")
        cons = _pp(mc["consumption_t_per_year"], p, 0.0)
        if cons > 0 and not _close(row.days_of_consumption, x * DAYS / cons):
            yield Violation("days of consumption", where, f"{row.days_of_consumption}")
        need = _pp(mc["min_days"], p, 0.0, y) * cons / DAYS
        if x < need - tol * max(1, need):
            yield Violation("min_days", where, f"holding {x:g} t < the year's target {need:g} t")
        cap = _pp(mc["max_acquisition_t"], p, math.inf, y)
        if row.acquired_t > cap + tol * max(1, cap):
            yield Violation("max_acquisition_t", where, f"bought {row.acquired_t:g} t > the year's {cap:g} t")
        r.x_year[p, m, y] = x
        spend[p, y] += cost
        held[p, y] += x
        r.costs["acquisition_usd"] += cost * d
        r.costs["holding_usd"] += mc["holding_cost_usd_per_t_year"] * x * r.weights[y]
        if y == Y - 1:
            resale = r.resale_discount * mc["salvage_share"] * _pp(mc["price_usd_per_t"], p, 0.0, y)
            r.costs["salvage_usd"] -= resale * x
    for (p, m), n in total.items():
        want = r.hold[(r.hold.participant == p) & (r.hold.mineral == m)].lots.sum()
        if not _close(n, want):
            yield Violation("acquisition totals", f"acquisitions.csv ({p}, {m})", f"{n:g} lots, holdings.csv {want:g}")
    for p in r.parts:
        lim = cfg["participants"][p]
        so_far = budget = 0.0
        for y in range(Y):
            spent = spend[p, y] + (
                sum(_pp(cfg["minerals"][m]["fixed_cost_usd"], p, 0.0) for m in cfg["minerals"] if total[p, m] > 0)
                if y == 0
                else 0.0
            )
            carry = lim.get("budget_carryover", False)
            so_far = so_far + spent if carry else spent
            if lim["budget_usd"] is not None:
                cap = _pp(lim["budget_usd"], p, math.inf, y)
                budget = budget + cap if carry else cap
                if so_far > budget * (1 + tol) + tol:
                    yield Violation("budget_usd", f"{p} year {y + 1}", f"spends {so_far:,.2f} > {budget:,.2f}")
            if lim["storage_capacity_t"] is not None:
                cap = _pp(lim["storage_capacity_t"], p, math.inf, y)
                if held[p, y] > cap * (1 + tol) + tol:
                    yield Violation(
                        "storage_capacity_t", f"{p} year {y + 1}", f"holds {held[p, y]:,.4f} t > {cap:,.4f} t"
                    )
    for m in cfg["minerals"]:
        for p in r.parts:
            if (p, m) not in total:
                yield Violation("acquisition rows", "acquisitions.csv", f"no rows for ({p}, {m})")


def shortfall(cfg: JSON, scenarios: dict[str, tuple[JSON, int]]) -> dict[tuple[str, str, str, int], float]:
    """g[s, p, m, t] from the shocks, with plain loops (overlaps add, capped at 1; cut at the horizon),
    for each scenario of the run (name: its config scenario and build year)."""
    T = cfg["horizon"]["periods"]
    delta = cfg["horizon"]["period_days"]
    parts = list(cfg["participants"])
    g: dict[tuple[str, str, str, int], float] = {}
    for name, (sc, _) in scenarios.items():
        share: dict[tuple[str, str, int], float] = defaultdict(float)
        for sh in sc["shocks"]:
            for t in range(sh["start"], min(sh["start"] + sh["periods"], T + 1)):
                for p in parts:
                    share[p, sh["mineral"], t] += _pp(sh["loss"], p, 0.0)
        for (p, m, t), v in share.items():
            q = _pp(cfg["minerals"][m]["consumption_t_per_year"], p, 0.0) * delta / DAYS
            if min(v, 1.0) * q > 0:
                g[name, p, m, t] = min(v, 1.0) * q
    return g


def lending_flows(r: Run) -> tuple[list[Violation], dict[Cell, float], dict[Cell, float]]:
    """Arcs and minerals allowed, non-negative, lending max_share (of stock); totals by giver (stock,
    and offtake lent onward under ("offtake", ...)) and by receiver cell (both)."""
    tol, bad = r.tol, []
    arcs = {(a["from"], a["to"]): a for a in r.cfg["lending"]}
    lent_by: dict[Cell, float] = defaultdict(float)
    borrowed_by: dict[Cell, float] = defaultdict(float)
    arc_total: dict[Cell, float] = defaultdict(float)
    for i, row in r.lend.iterrows():
        where = f"lending.csv row {int(str(i)) + 2}"
        arc = arcs.get((row["from"], row["to"]))
        if arc is None or (arc["minerals"] is not None and row.mineral not in arc["minerals"]):
            bad.append(Violation("lending arc", where, f"{row['from']} -> {row['to']} may not lend {row.mineral}"))
            continue
        if row.lent_t < -tol:
            bad.append(Violation("non-negative", where, f"lent_t = {row.lent_t}"))
        borrowed_by[row.scenario, row["to"], row.mineral, row.period] += row.lent_t
        release = 0.0  # the release cost of stock leaving the lender's store, paid by the borrower
        if row.get("source", "stock") == "offtake":  # offtake lent onward: not the lender's stock
            lent_by["offtake", row.scenario, row["from"], row.mineral, row.period] += row.lent_t
        else:
            lent_by[row.scenario, row["from"], row.mineral, row.period] += row.lent_t
            arc_total[row.scenario, row["from"], row["to"], row.mineral] += row.lent_t
            release = r.cfg["minerals"][row.mineral]["release_cost_usd_per_t"] * row.lent_t
        w = r.weight(row.scenario)
        r.costs["expected_lending_usd"] += w * arc["cost_usd_per_t"] * row.lent_t
        r.costs["expected_release_usd"] += w * release
        r.recourse[row.scenario] += arc["cost_usd_per_t"] * row.lent_t + release
    for (s, a, b, m), total in arc_total.items():
        cap = arcs[a, b]["max_share"] * r.held(s, a, m)
        if total > cap + tol * max(1, cap):
            bad.append(Violation("lending max_share", f"{s} {a}->{b} {m}", f"lent {total:g} t > {cap:g} t"))
    return bad, lent_by, borrowed_by


def check_schedule(r: Run) -> Iterator[Violation]:
    """Per (scenario, participant, mineral, period): shortfall from the shocks, non-negative flows,
    demand balance, lending totals, release_rate_max, inventory balance, reserve_floor; every
    shortfall and lending has its row; the expected shortfall cost."""
    cfg, tol = r.cfg, r.tol
    g = shortfall(cfg, r.scenario_years)
    bad, lent_by, borrowed_by = lending_flows(r)
    yield from bad
    seen: set[Cell] = set()
    inv_prev: dict[Cell, float] = {}
    value: dict[Cell, float] = {}
    sched = r.sched.sort_values(["scenario", "participant", "mineral", "period"], kind="stable")
    for i, row in zip(sched.index, sched.itertuples(index=False)):
        s, p, m, t = row.scenario, row.participant, row.mineral, row.period
        where = f"schedule.csv row {int(str(i)) + 2} ({s}, {p}, {m}, period {t})"
        key = (s, p, m, t)
        seen.add(key)
        lim = cfg["participants"][p]
        want_g = g.get(key, 0.0)
        if not _close(row.shortfall_t, want_g):
            yield Violation("shortfall", where, f"{row.shortfall_t:g} t, shocks give {want_g:g} t")
        served = getattr(row, "offtake_t", 0.0)
        for col in ("release_t", "lent_t", "borrowed_t", "unmet_t"):
            if getattr(row, col) < -tol:
                yield Violation("non-negative", where, f"{col} = {getattr(row, col)}")
        if not _close(row.release_t + row.borrowed_t + served + row.unmet_t, row.shortfall_t, row.shortfall_t):
            yield Violation("demand balance", where, "release + borrowed + offtake + unmet != shortfall")
        cap = r.offtake_per_period.get((p, m), 0.0)
        onward = getattr(row, "offtake_lent_t", 0.0)
        if not -tol * max(1.0, cap) <= served <= row.shortfall_t + tol * max(1.0, cap):
            yield Violation("offtake", where, f"offtake_t {served:g} outside [0, shortfall]")
        if served + onward > cap + tol * max(1.0, cap):
            yield Violation("offtake", where, f"offtake used {served:g} + lent {onward:g} t > {cap:g} t committed")
        if not _close(onward, lent_by.get(("offtake", *key), 0.0)):
            yield Violation("lending total", where, "offtake_lent_t != lending.csv (source offtake)")
        room = min(cap - onward, row.shortfall_t)
        if served < room - tol * max(1.0, cap) and row.release_t > tol * max(1.0, r.held(s, p, m)):
            yield Violation("offtake first", where, "stock released while committed offtake is left unused")
        if not _close(row.lent_t, lent_by.get(key, 0.0)):
            yield Violation("lending total", where, f"lent_t {row.lent_t:g} != lending.csv {lent_by.get(key, 0.0):g}")
        if not _close(row.borrowed_t, borrowed_by.get(key, 0.0)):
            yield Violation("borrowing total", where, "borrowed_t != lending.csv")
        hx = r.held(s, p, m)
        out = row.release_t + row.lent_t
        if out > lim["release_rate_max"] * hx + tol * max(1, hx):
            yield Violation("release_rate_max", where, f"outflow {out:g} t > {lim['release_rate_max']} x {hx:g} t")
        before = inv_prev.get((s, p, m), hx) if t > 1 else hx
        if not _close(row.inventory_t, before - out, hx):
            yield Violation("inventory balance", where, f"{row.inventory_t:g} != {before:g} - {out:g}")
        if row.inventory_t < lim["reserve_floor"] * hx - tol * max(1, hx):
            yield Violation("reserve_floor", where, f"inventory {row.inventory_t:g} t < floor")
        inv_prev[s, p, m] = row.inventory_t
        q = r.per_period(p, m)
        lost = damage(r.curve(p, m), q, row.unmet_t)
        release = cfg["minerals"][m]["release_cost_usd_per_t"] * row.release_t
        r.costs["expected_shortfall_usd"] += r.weight(s) * lost
        r.costs["expected_release_usd"] += r.weight(s) * release
        r.recourse[s] += lost + release
        served = row.shortfall_t - row.unmet_t  # what a tonne served saves here: the damage avoided per tonne
        value[key] = (damage(r.curve(p, m), q, row.shortfall_t) - lost) / served if served > tol else 0.0
        r.saved[p, m] += r.weight(s) * value[key] * row.release_t
    ln = r.lend
    source = ln["source"] if "source" in ln else pd.Series("stock", index=ln.index)
    for sc, fr, to, m, t, lent, src in zip(ln.scenario, ln["from"], ln.to, ln.mineral, ln.period, ln.lent_t, source):
        if src != "offtake":  # a tonne lent saves what it saves its receiver
            r.saved[fr, m] += r.weight(sc) * value.get((sc, to, m, t), 0.0) * lent
    for missing in set(g) - seen:
        yield Violation("schedule rows", "schedule.csv", f"no row for shortfall at {missing}")
    for missing in {k[1:] if k[0] == "offtake" else k for k in lent_by} - seen:
        yield Violation("schedule rows", "schedule.csv", f"no row for lending at {missing}")


def check_offtake(r: Run) -> Iterator[Violation]:
    """offtake.csv: known projects producing in year 1, capacity, whole lots, the price-gap subsidy
    (floor above the market price), the agreement cost, and the offtake each period may serve.
    Runs before the schedule, which reads what each participant may take per period."""
    cfg, tol = r.cfg, r.tol
    projects = {pr["name"]: pr for pr in cfg.get("projects", [])}
    used: dict[str, float] = defaultdict(float)
    for row in r.offtake.itertuples(index=False):
        where = f"offtake.csv ({row.participant}, {row.project})"
        pr = projects.get(row.project)
        if pr is None or pr["available_from_year"] > 1:
            yield Violation("offtake", where, "not a project of the config producing in year 1")
            continue
        t = row.offtake_t_per_year
        used[row.project] += t
        lot = pr.get("offtake_lot_t")
        if lot and not _close(t / lot, round(t / lot)):
            yield Violation("offtake", where, f"{t:g} t/yr is not whole lots of {lot:g} t")
        gap = max(pr["floor_price_usd_per_t"] - _pp(cfg["minerals"][pr["mineral"]]["price_usd_per_t"], "", 0.0, 0), 0.0)
        if not _close(row.subsidy_usd_per_year, gap * t, gap * t):
            yield Violation("offtake", where, f"subsidy {row.subsidy_usd_per_year:,.2f} != {gap:g} x {t:g} t")
        fixed = pr["fixed_cost_usd"] if t > tol else 0.0
        if not _close(row.agreement_usd, fixed, fixed):
            yield Violation("offtake", where, f"agreement {row.agreement_usd:,.2f} != fixed_cost_usd {fixed:,.2f}")
        r.costs["offtake_usd"] += sum(r.weights) * gap * t + fixed
        per = cfg["horizon"]["period_days"] / DAYS
        r.offtake_per_period[row.participant, pr["mineral"]] = (
            r.offtake_per_period.get((row.participant, pr["mineral"]), 0.0) + per * t
        )
    for name, t in used.items():
        cap = projects[name]["capacity_t_per_year"]
        if t > cap + tol * max(1.0, cap):
            yield Violation("offtake", f"project {name}", f"{t:g} t/yr taken > capacity_t_per_year {cap:g}")


def check_coverage(r: Run) -> Iterator[Violation]:
    """coverage.csv follows from the schedule: disruption and coverage days, share, unmet."""
    delta = r.cfg["horizon"]["period_days"]
    per: dict[Cell, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # days, covered days, covered, g
    unmet: dict[Cell, float] = defaultdict(float)
    src: dict[Cell, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # own t, borrowed t, their days
    for row in r.sched.itertuples(index=False):
        if row.shortfall_t > 0:
            k = (row.scenario, row.participant, row.mineral)
            covered = row.shortfall_t - row.unmet_t
            per[k][0] += delta
            per[k][1] += delta * covered / row.shortfall_t
            per[k][2] += covered
            per[k][3] += row.shortfall_t
            unmet[k] += row.unmet_t
            src[k][0] += row.release_t
            src[k][1] += row.borrowed_t
            src[k][2] += delta * row.release_t / row.shortfall_t
            src[k][3] += delta * row.borrowed_t / row.shortfall_t
    got = {(c.scenario, c.participant, c.mineral): c for c in r.cov.itertuples(index=False)}
    for k, (dd, cd, c, sh) in per.items():
        have = got.get(k)
        if have is None:
            yield Violation("coverage rows", "coverage.csv", f"no row for {k}")
            continue
        pairs = (
            ("disruption_days", have.disruption_days, dd),
            ("coverage_days", have.coverage_days, cd),
            ("coverage_share", have.coverage_share, c / sh),
            ("unmet_t", have.unmet_t, unmet[k]),
            ("own_t", have.own_t, src[k][0]),
            ("borrowed_t", have.borrowed_t, src[k][1]),
            ("own_coverage_days", have.own_coverage_days, src[k][2]),
            ("borrowed_coverage_days", have.borrowed_coverage_days, src[k][3]),
        )
        for name, value, want in pairs:
            if not _close(value, want, rel=1e-5):
                yield Violation("coverage arithmetic", f"coverage.csv {k}", f"{name} = {value:g}, expected {want:g}")
    for k in set(got) - set(per):
        yield Violation("coverage rows", "coverage.csv", f"row {k} has no shortfall")


def check_release_order(r: Run) -> Iterator[Violation]:
    """The canonical schedule (docs/model.md): no unmet shortfall in a period while the participant's
    stock after it is above its floor, its release-rate headroom is positive, and it releases or
    lends that mineral later in the same scenario. Not on a damage curve of several segments,
    where moving a tonne between periods changes the cost."""
    cfg, tol = r.cfg, r.tol
    sched = r.sched.sort_values(["scenario", "participant", "mineral", "period"], kind="stable")
    for (s, p, m), grp in sched.groupby(["scenario", "participant", "mineral"], sort=False):
        if len(r.curve(p, m)) > 1:  # on a curve of several segments the cost orders the schedule
            continue
        lim = cfg["participants"][p]
        hx = r.held(s, p, m)
        eps = tol * max(1.0, hx)
        out = (grp.release_t + grp.lent_t).to_numpy()
        later = out[::-1].cumsum()[::-1] - out
        for row, after in zip(grp.itertuples(index=False), later):
            room = min(
                row.unmet_t,
                row.inventory_t - lim["reserve_floor"] * hx,
                lim["release_rate_max"] * hx - row.release_t - row.lent_t,
                after,
            )
            if room > eps:
                yield Violation(
                    "canonical schedule",
                    f"schedule.csv ({s}, {p}, {m}, period {row.period})",
                    f"{row.unmet_t:g} t unmet while {after:g} t leaves the store later and {room:g} t could go now",
                )


def check_lending_summary(r: Run, run_dir: Path) -> Iterator[Violation]:
    """lending_flows.csv: expected tonnes and fees per (from, to, mineral) follow from lending.csv."""
    path = run_dir / "lending_flows.csv"
    if not path.exists():
        return
    flows = _read(run_dir, "lending_flows.csv")
    arcs = {(a["from"], a["to"]): a for a in r.cfg["lending"]}
    want: dict[Cell, float] = defaultdict(float)
    years = sum(r.weights)
    for row in r.lend.itertuples(index=False):  # a year's expectation: weighted by pi_s W_y(s) / sum W
        want[row[1], row.to, row.mineral] += r.weight(row.scenario) / years * row.lent_t
    got = {(row[0], row.to, row.mineral): row for row in flows.itertuples(index=False)}
    for k in set(want) | set(got):
        have = got.get(k)
        if have is None:
            if want[k] > r.tol:
                yield Violation("lending flows", "lending_flows.csv", f"no row for {k}")
            continue
        fee = arcs[k[0], k[1]]["cost_usd_per_t"] * want.get(k, 0.0)
        if not _close(have.expected_lent_t, want.get(k, 0.0)) or not _close(have.expected_fees_usd, fee):
            yield Violation(
                "lending flows", f"lending_flows.csv {k}", "expected tonnes or fees differ from lending.csv"
            )


def check_risk(r: Run) -> Iterator[Violation]:
    """E[Q], VaR and CVaR at risk.cvar_alpha of a year's recourse cost Q_s (shortfall, release and
    fees), recomputed from the schedule by sorting each build year's scenarios, averaged over the
    build years by W_y / sum W; the risk premium w sum_y W_y (CVaR_y - E_y[Q]) of the objective."""
    risk = r.cfg.get("risk") or {"cvar_alpha": 0.9, "cvar_weight": 0.0}
    alpha, w = risk["cvar_alpha"], risk["cvar_weight"]
    mean = var = cvar = premium = 0.0
    for y, weight in enumerate(r.weights):
        values = sorted((r.recourse.get(name, 0.0), p) for name, p in r.prob.items() if r.year_of(name) == y)
        mean_y = sum(q * p for q, p in values)
        cum, var_y = 0.0, values[-1][0]
        for q, p in values:
            cum += p
            if cum >= alpha - 1e-12:
                var_y = q
                break
        cvar_y = var_y + sum(p * max(q - var_y, 0.0) for q, p in values) / (1 - alpha)
        share = weight / sum(r.weights)
        mean, var, cvar = mean + share * mean_y, var + share * var_y, cvar + share * cvar_y
        premium += w * weight * (cvar_y - mean_y)
    r.costs["risk_premium_usd"] = premium
    scale = max(1.0, abs(cvar))
    for key, want in (("expected_recourse_usd", mean), ("var_recourse_usd", var), ("cvar_recourse_usd", cvar)):
        have = r.summary.get(key)
        if have is not None and not _close(have, want, scale):
            yield Violation("risk measures", f"summary.json {key}", f"{have:,.2f}, recomputed {want:,.2f}")


def check_costs(r: Run) -> Iterator[Violation]:
    """The cost breakdown and objective equal the costs recomputed by the other rules; the bound is
    not above the objective. Runs after them."""
    s = r.summary
    total = sum(r.costs.values())
    for k, v in r.costs.items():
        have = s["costs"].get(k, 0.0)
        if not _close(have, v, total):
            yield Violation("cost breakdown", f"summary.json costs.{k}", f"{have:,.2f}, recomputed {v:,.2f}")
    if not _close(s["objective_usd"], total):
        yield Violation(
            "objective", "summary.json objective_usd", f"{s['objective_usd']:,.2f}, recomputed {total:,.2f}"
        )
    bound = s.get("best_bound_usd")
    if bound is not None and bound > s["objective_usd"] + r.tol * max(1.0, abs(s["objective_usd"])) + CENT:
        yield Violation("bound", "summary.json best_bound_usd", "bound above the objective")
    # the years the stock protects, K = years + holding_years - 1, each weighed delta_k
    h = r.cfg["horizon"]
    K = int(h.get("years", 1)) + int(h.get("holding_years", 1)) - 1
    rate = float(h.get("discount_rate", 0.0))
    if "exposure_years" in s and s["exposure_years"] != K:
        yield Violation("years protected", "summary.json exposure_years", f"{s['exposure_years']}, expected {K}")
    want = [(1.0 + rate) ** -k for k in range(K)]
    have = s.get("year_weights", want)
    if len(have) != K or not all(_close(a, b) for a, b in zip(have, want, strict=False)):
        yield Violation("years protected", "summary.json year_weights", f"{have}, expected {want}")


# The rules, in order: later ones read what earlier ones derived (holdings, recomputed costs).
def check_saving(r: Run) -> Iterator[Violation]:
    """holdings.csv expected_saving_usd_per_t: the damage what each holding releases and lends
    avoids, sum_s pi_s W_y(s) (release + lent) x the receiving cell's damage avoided per tonne
    served, per tonne held. Runs after the schedule."""
    for row in r.hold.itertuples(index=False):
        want = r.saved[row.participant, row.mineral] / row.holding_t if row.holding_t > 0 else 0.0
        if not _close(row.expected_saving_usd_per_t, want, rel=1e-5):
            where = f"holdings.csv ({row.participant}, {row.mineral})"
            yield Violation("expected saving", where, f"{row.expected_saving_usd_per_t:,.2f}, recomputed {want:,.2f}")


RULES: tuple[Callable[[Run], Iterator[Violation]], ...] = (
    check_holdings,
    check_acquisitions,
    check_offtake,
    check_schedule,
    check_saving,
    check_coverage,
    check_release_order,
    check_risk,
    check_costs,
)


def check_reads_back(folder: Path) -> Iterator[Violation]:
    """config.resolved.yaml validates again as written: every command that reads the folder can."""
    from stockpile.config import ConfigError, validate

    path = folder / "config.resolved.yaml"
    try:
        validate(yaml.safe_load(path.read_text()), str(path))
    except ConfigError as e:
        yield Violation("reads back", "config.resolved.yaml", str(e).splitlines()[0])


def check_run(run_dir: str | Path, tol: float = 1e-6) -> list[Violation]:
    """Every violated rule of a finished run; an empty list means the run is consistent."""
    r = read_run(run_dir, tol)
    back = list(check_reads_back(Path(run_dir)))
    if not has_plan(r.summary.get("status")):
        return back  # no plan to verify: only that the folder reads back
    return back + [v for rule in RULES for v in rule(r)] + list(check_lending_summary(r, Path(run_dir)))


# ----------------------------------------------------------------------------
# A response folder (stockpile respond): the period's orders and every continuation


def check_response(folder: str | Path, tol: float = 1e-6) -> list[Violation]:
    """Every violated rule of a response: the orders are the same in every continuation; each
    period's demand balance, release-rate cap, reserve floor and inventory from the state; the
    lending caps counting what was lent before; the expected cost from the flows."""
    d = Path(folder)
    out = list(check_reads_back(d))
    cfg = yaml.safe_load((d / "config.resolved.yaml").read_text())
    st = yaml.safe_load((d / "state.resolved.yaml").read_text())
    summary = json.loads((d / "summary.json").read_text())
    orders, cont, lend = (_read(d, f) for f in ("orders.csv", "contingency.csv", "lending.csv"))
    k = st["period"]
    parts = cfg["participants"]

    def held(p: str, m: str) -> float:
        return float(st["holding"][p][m])

    for r in cont.itertuples():
        where = f"{r.continuation} {r.participant} {r.mineral} period {r.period}"
        H, scale = held(r.participant, r.mineral), max(1.0, r.shortfall_t)
        served = getattr(r, "offtake_t", 0.0)
        if not _close(r.release_t + r.borrowed_t + served + r.unmet_t, r.shortfall_t, scale, tol):
            out.append(Violation("demand", where, "release + borrowed + offtake + unmet != shortfall"))
        arriving = float(st.get("offtake_per_period", {}).get(r.participant, {}).get(r.mineral, 0.0))
        served += getattr(r, "offtake_lent_t", 0.0)  # used here or lent onward
        if served > arriving + tol * max(1.0, arriving):
            out.append(Violation("offtake", where, f"offtake {served:g} t > {arriving:g} t arriving a period"))
        if min(r.release_t, r.lent_t, r.borrowed_t, r.unmet_t) < -tol * scale:
            out.append(Violation("sign", where, "a negative flow"))
        rate = float(parts[r.participant].get("release_rate_max", 1.0))
        if r.release_t + r.lent_t > rate * H + tol * max(1.0, H):
            out.append(Violation("rate", where, f"outflow {r.release_t + r.lent_t:g} t > {rate:g} x {H:g} t"))
        floor = float(parts[r.participant].get("reserve_floor", 0.0))
        if r.inventory_t < floor * H - tol * max(1.0, H):
            out.append(Violation("floor", where, f"stock {r.inventory_t:g} t < {floor:g} x {H:g} t"))
    for (c, p, m), g in cont.sort_values("period").groupby(["continuation", "participant", "mineral"]):
        stock = float(st["inventory"][p][m]) - (g.release_t + g.lent_t).cumsum()
        if not all(_close(a, b, max(1.0, held(p, m)), tol) for a, b in zip(stock, g.inventory_t)):
            out.append(Violation("inventory", f"{c} {p} {m}", "inventory does not follow from the state and outflows"))
    first = cont[cont.period == k].set_index(["participant", "mineral"])
    for r in orders.itertuples():
        rows = first.loc[[(r.participant, r.mineral)]] if (r.participant, r.mineral) in first.index else first[:0]
        for col in ("release_t", "lent_t", "borrowed_t", "unmet_t"):
            if any(not _close(v, getattr(r, col), max(1.0, r.shortfall_t), tol) for v in rows[col]):
                out.append(Violation("orders", f"{r.participant} {r.mineral}", f"{col} differs between continuations"))
    arcs = {f"{a['from']}->{a['to']}": a for a in cfg.get("lending", [])}
    fees: defaultdict[str, float] = defaultdict(float)
    for (c, fr, to, m), g in lend.groupby(["continuation", "from", "to", "mineral"]):
        arc = arcs.get(f"{fr}->{to}")
        if arc is None or (arc.get("minerals") is not None and m not in arc["minerals"]):
            out.append(Violation("lending", f"{c} {fr}->{to} {m}", "not an allowed lending arc"))
            continue
        before = float(st["lent_so_far"].get(f"{fr}->{to}", {}).get(m, 0.0))
        cap = float(arc.get("max_share", 1.0)) * held(fr, m)
        from_stock = g[g.get("source", pd.Series("stock", index=g.index)) != "offtake"].lent_t.sum()
        if from_stock + before > cap + tol * max(1.0, cap):
            out.append(
                Violation("lending", f"{c} {fr}->{to} {m}", f"{g.lent_t.sum() + before:g} t > max_share cap {cap:g} t")
            )
        fees[c] += float(arc.get("cost_usd_per_t", 0.0)) * g.lent_t.sum()
    for c, g in cont.groupby("continuation"):
        sums = lend[lend.continuation == c]
        stock = sums[sums.get("source", pd.Series("stock", index=sums.index)) != "offtake"]
        for who, col, rows in (("from", "lent_t", stock), ("to", "borrowed_t", sums)):
            got = rows.groupby([who, "mineral", "period"]).lent_t.sum()
            want = g.set_index(["participant", "mineral", "period"])[col]
            want = want[want.abs() > tol]
            if not all(_close(got.get(i, 0.0), v, max(1.0, v), tol) for i, v in want.items()):
                out.append(Violation("lending", str(c), f"contingency {col} differs from lending.csv"))

    def lost(g: pd.DataFrame) -> float:
        return sum(
            damage(
                curve(cfg["minerals"][row.mineral], row.participant),
                per_period(cfg, row.participant, row.mineral),
                row.unmet_t,
            )
            for row in g.itertuples(index=False)
        )

    cost = {c: lost(g) + fees[c] for c, g in cont.groupby("continuation")}
    prob = st["continuations"]
    expected = sum(prob[c] * v for c, v in cost.items())
    if (
        not _close(expected, summary["expected_cost_usd"], 1.0, 1e-6)
        and abs(expected - summary["expected_cost_usd"]) > CENT
    ):
        out.append(
            Violation("costs", "expected_cost_usd", f"{summary['expected_cost_usd']:,.2f} != flows {expected:,.2f}")
        )
    return out
