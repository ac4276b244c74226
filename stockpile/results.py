"""Stage 5 of the flow: a solution vector -> result tables and coverage metrics.

Reads the solution through the model's labelled blocks, so no index arithmetic
of the build leaks here. Inventory, which the model does not carry as variables,
is rebuilt as I_t = x - cumulative(release + lent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .instance import DAYS_PER_YEAR, Instance
from .model import LinearModel

ZERO = 1e-9

HOLDINGS_COLUMNS = ["participant", "mineral", "initial_t", "acquired_t", "lots", "holding_t",
                    "days_of_consumption", "acquisition_usd"]
SCHEDULE_COLUMNS = ["scenario", "participant", "mineral", "period", "shortfall_t", "release_t",
                    "lent_t", "borrowed_t", "unmet_t", "inventory_t"]
COVERAGE_COLUMNS = ["scenario", "participant", "mineral", "disruption_days", "coverage_days",
                    "coverage_share", "unmet_t"]
LENDING_COLUMNS = ["scenario", "from", "to", "mineral", "period", "lent_t"]
COST_KEYS = ["acquisition_usd", "fixed_usd", "holding_usd", "expected_shortfall_usd", "expected_lending_usd"]


@dataclass
class Plan:
    """First- and second-stage decisions in instance coordinates."""

    lots: np.ndarray  # (P, M) integer
    program: np.ndarray  # (P, M) 0/1
    release: np.ndarray  # per cell
    unmet: np.ndarray  # per cell
    lend: np.ndarray  # per lending variable
    cells: dict[str, np.ndarray]  # s, p, m, t of each cell
    lend_cell: np.ndarray
    lend_arc: np.ndarray


def plan_from_solution(lm: LinearModel, x: np.ndarray, inst: Instance) -> Plan:
    """Cut the solution vector into labelled decisions; lots are rounded to integers."""
    P, M = len(inst.participants), len(inst.minerals)
    vb = lm.var_blocks

    def part(name: str) -> np.ndarray:
        return clean(x[vb[name].start:vb[name].start + vb[name].size])

    lots = np.rint(part("n")).reshape(P, M)
    program = np.zeros((P, M))
    program[vb["y"].coords["p"], vb["y"].coords["m"]] = np.rint(part("y"))
    program = np.maximum(program, (lots > 0) & (inst.fixed_cost > 0))
    r = vb["r"].coords
    return Plan(lots, program, part("r"), part("u"), part("l"),
                {k: r[k] for k in "spmt"}, vb["l"].coords["cell"], vb["l"].coords["a"])


def clean(values: np.ndarray) -> np.ndarray:
    """Zero out solver noise so tables and hashes are stable."""
    out = np.where(np.abs(values) < ZERO, 0.0, values)
    return out + 0.0  # turns -0.0 into 0.0


def participant_costs(inst: Instance, plan: Plan) -> dict[str, dict[str, float]]:
    """Each participant's share of the objective: its own buying and holding, its own unmet
    shortfall, and the lending fees of what it borrows (the borrower pays)."""
    x = inst.initial + inst.lot * plan.lots
    s, p, m = plan.cells["s"], plan.cells["p"], plan.cells["m"]
    lc = plan.lend_cell
    P = len(inst.participants)
    parts = {
        "acquisition_usd": (inst.price * inst.lot * plan.lots).sum(axis=1),
        "fixed_usd": (inst.fixed_cost * plan.program).sum(axis=1),
        "holding_usd": (inst.holding_cost * inst.holding_years * x).sum(axis=1),
        "expected_shortfall_usd": np.bincount(p, inst.prob[s] * inst.shortfall_cost[m] * plan.unmet, P),
        "expected_lending_usd": np.bincount(p[lc], inst.prob[s[lc]] * inst.arc_cost[plan.lend_arc] * plan.lend, P),
    }
    return {name: {k: float(v[i]) for k, v in parts.items()} | {"total_usd": float(sum(v[i] for v in parts.values()))}
            for i, name in enumerate(inst.participants)}


def costs(by_participant: dict[str, dict[str, float]]) -> dict[str, float]:
    """Cost breakdown of a plan: each component summed over participants; they add up to the objective."""
    return {k: float(sum(c[k] for c in by_participant.values())) for k in COST_KEYS}


def holdings_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    P, M = len(inst.participants), len(inst.minerals)
    acquired = inst.lot * plan.lots
    holding = inst.initial + acquired
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(inst.consumption > 0, holding * DAYS_PER_YEAR / inst.consumption, np.nan)
    p, m = np.divmod(np.arange(P * M), M)
    return pd.DataFrame({
        "participant": np.array(inst.participants, dtype=object)[p],
        "mineral": np.array(inst.minerals, dtype=object)[m],
        "initial_t": inst.initial.ravel(),
        "acquired_t": acquired.ravel(),
        "lots": plan.lots.ravel().astype(np.int64),
        "holding_t": holding.ravel(),
        "days_of_consumption": days.ravel(),
        "acquisition_usd": (acquired * inst.price).ravel(),
    }, columns=HOLDINGS_COLUMNS)


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


def flows(inst: Instance, plan: Plan) -> Flows:
    """Scatter cell and lending values onto the disrupted (scenario, mineral) pairs."""
    P, M, T = len(inst.participants), len(inst.minerals), inst.periods
    c = plan.cells
    keys = c["s"] * M + c["m"]
    pairs = np.unique(keys)
    d = np.searchsorted(pairs, keys)
    shape = (pairs.size, P, T)
    short, rel, lent, bor, unmet = (np.zeros(shape) for _ in range(5))
    short[d, c["p"], c["t"]] = inst.shortfall[c["s"], c["p"], c["m"], c["t"]]
    rel[d, c["p"], c["t"]] = plan.release
    unmet[d, c["p"], c["t"]] = plan.unmet
    lc = plan.lend_cell
    np.add.at(bor, (d[lc], c["p"][lc], c["t"][lc]), plan.lend)
    np.add.at(lent, (d[lc], inst.arc_from[plan.lend_arc], c["t"][lc]), plan.lend)
    ps, pm = np.divmod(pairs, M)
    held = (inst.initial + inst.lot * plan.lots)[:, pm].T  # (D, P)
    inv = clean(held[:, :, None] - np.cumsum(rel + lent, axis=-1))
    return Flows(ps, pm, short, rel, lent, bor, unmet, inv)


def schedule_table(inst: Instance, f: Flows) -> pd.DataFrame:
    """One row per (scenario, participant, mineral, period) of each disrupted (scenario, mineral).

    Undisrupted pairs are left out: nothing moves there and inventory equals the holding.
    """
    D, P, T = f.shortfall.shape
    d, p, t = (a.ravel() for a in np.meshgrid(np.arange(D), np.arange(P), np.arange(T), indexing="ij"))
    return pd.DataFrame({
        "scenario": np.array(inst.scenarios, dtype=object)[f.pairs_s[d]],
        "participant": np.array(inst.participants, dtype=object)[p],
        "mineral": np.array(inst.minerals, dtype=object)[f.pairs_m[d]],
        "period": t + 1,
        "shortfall_t": f.shortfall.ravel(),
        "release_t": f.release.ravel(),
        "lent_t": f.lent.ravel(),
        "borrowed_t": f.borrowed.ravel(),
        "unmet_t": f.unmet.ravel(),
        "inventory_t": f.inventory.ravel(),
    }, columns=SCHEDULE_COLUMNS)


def lending_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """Per-arc lending flows (non-zero only): who lent what to whom, when."""
    keep = plan.lend > 0
    c = plan.lend_cell[keep]
    a = plan.lend_arc[keep]
    cells = plan.cells
    parts = np.array(inst.participants, dtype=object)
    return pd.DataFrame({
        "scenario": np.array(inst.scenarios, dtype=object)[cells["s"][c]],
        "from": parts[inst.arc_from[a]],
        "to": parts[inst.arc_to[a]],
        "mineral": np.array(inst.minerals, dtype=object)[cells["m"][c]],
        "period": cells["t"][c] + 1,
        "lent_t": plan.lend[keep],
    }, columns=LENDING_COLUMNS)


def coverage_table(inst: Instance, f: Flows) -> pd.DataFrame:
    """Coverage per (scenario, participant, mineral) with some shortfall.

    disruption_days = Delta * #{t: g_t > 0};  coverage_days = sum_{t: g_t > 0} Delta * covered_t / g_t;
    coverage_share = sum covered / sum g;  covered = g - unmet.
    """
    g = f.shortfall
    covered = np.clip(g - f.unmet, 0.0, None)
    hit = g > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(hit, covered / np.where(hit, g, 1.0), 0.0)
        total = g.sum(axis=-1)
        share = np.where(total > 0, covered.sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)
    delta = inst.period_days
    d, p = np.nonzero(total > 0)
    return pd.DataFrame({
        "scenario": np.array(inst.scenarios, dtype=object)[f.pairs_s[d]],
        "participant": np.array(inst.participants, dtype=object)[p],
        "mineral": np.array(inst.minerals, dtype=object)[f.pairs_m[d]],
        "disruption_days": delta * hit.sum(axis=-1)[d, p],
        "coverage_days": clean(delta * frac.sum(axis=-1)[d, p]),
        "coverage_share": clean(share[d, p]),
        "unmet_t": clean(f.unmet.sum(axis=-1)[d, p]),
    }, columns=COVERAGE_COLUMNS)


def expected_coverage(inst: Instance, coverage: pd.DataFrame) -> pd.DataFrame:
    """Probability-weighted coverage per (participant, mineral), over the scenarios that disrupt it.

    expected_coverage_days = sum_s pi_s coverage_days_s / sum_s pi_s over disrupting scenarios,
    i.e. the coverage an analyst should expect *given* a disruption of that mineral.
    """
    if coverage.empty:
        return pd.DataFrame(columns=["participant", "mineral", "disruption_probability",
                                     "expected_disruption_days", "expected_coverage_days",
                                     "expected_coverage_share"])
    prob = pd.Series(inst.prob, index=list(inst.scenarios))
    df = coverage.assign(w=coverage["scenario"].map(prob))
    df = df.assign(wd=df.w * df.disruption_days, wc=df.w * df.coverage_days, ws=df.w * df.coverage_share)
    g = df.groupby(["participant", "mineral"], sort=False)[["w", "wd", "wc", "ws"]].sum().reset_index()
    return pd.DataFrame({
        "participant": g.participant,
        "mineral": g.mineral,
        "disruption_probability": g.w,
        "expected_disruption_days": g.wd / g.w,
        "expected_coverage_days": g.wc / g.w,
        "expected_coverage_share": g.ws / g.w,
    })


@dataclass
class Result:
    """A solved (or unsolvable) config: summary, tables and where they came from."""

    summary: dict[str, Any]
    holdings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HOLDINGS_COLUMNS))
    schedule: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCHEDULE_COLUMNS))
    coverage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COVERAGE_COLUMNS))
    expected_coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    lending: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LENDING_COLUMNS))
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    def write(self, out_dir: str | Path) -> Path:
        """Write summary.json, the CSV tables and the resolved config, atomically."""
        from .outputs import write_result

        return write_result(self, Path(out_dir))
