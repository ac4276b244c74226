"""Stage 5 of the flow: a solution vector -> result tables and coverage metrics.

Reads the solution through the model's labelled blocks, so no index arithmetic
of the build leaks here. Inventory, which the model does not carry as variables,
is rebuilt as I_t = x - cumulative(release + lent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpile.enums import COST_KEYS, CostKind, Status
from stockpile.fmt import tonnes
from stockpile.model.core import LinearModel
from stockpile.model.instance import DAYS_PER_YEAR, Instance
from stockpile.model.plan import Flows, Plan, clean
from stockpile.results.outputs import write_run

log = logging.getLogger(__name__)


# the solver's objective and the cost breakdown of the reported plan must agree to this (relative)
OBJECTIVE_AGREEMENT = 1e-7


HOLDINGS_COLUMNS = [
    "participant",
    "mineral",
    "initial_t",
    "acquired_t",
    "lots",
    "holding_t",
    "days_of_consumption",
    "acquisition_usd",
    "net_cost_usd_per_t",
    "expected_saving_usd_per_t",
    "note",
]


SCHEDULE_COLUMNS = [
    "scenario",
    "participant",
    "mineral",
    "period",
    "shortfall_t",
    "release_t",
    "lent_t",
    "borrowed_t",
    "offtake_t",
    "offtake_lent_t",
    "unmet_t",
    "inventory_t",
]


COVERAGE_COLUMNS = [
    "scenario",
    "participant",
    "mineral",
    "disruption_days",
    "coverage_days",
    "coverage_share",
    "unmet_t",
    "own_t",
    "borrowed_t",
    "offtake_t",
    "own_coverage_days",
    "borrowed_coverage_days",
    "offtake_coverage_days",
]


# the parts of coverage by source, each expected the same way in expected_coverage.csv
SOURCES = ["own_t", "borrowed_t", "offtake_t", "own_coverage_days", "borrowed_coverage_days", "offtake_coverage_days"]


LENDING_COLUMNS = ["scenario", "from", "to", "mineral", "period", "lent_t", "source"]


EXPECTED_COVERAGE_COLUMNS = [
    "participant",
    "mineral",
    "disruption_probability",
    "expected_disruption_days",
    "expected_coverage_days",
    "expected_coverage_share",
    *SOURCES,
    "worst_coverage_share",
    "worst_scenario",
    "note",
]


OFFTAKE_COLUMNS = [
    "participant",
    "project",
    "mineral",
    "offtake_t_per_year",
    "subsidy_usd_per_year",
    "agreement_usd",
    "cost_usd",
    "expected_served_t",
]


ACQUISITIONS_COLUMNS = [
    "participant",
    "mineral",
    "year",
    "lots",
    "acquired_t",
    "cost_usd",
    "discounted_cost_usd",
    "holding_t",
    "days_of_consumption",
    "expected_saving_per_usd",
]


LENDING_FLOWS_COLUMNS = [
    "from",
    "to",
    "mineral",
    "expected_lent_t",
    "expected_fees_usd",
    "worst_lent_t",
    "worst_scenario",
]


class ObjectiveMismatch(RuntimeError):
    """The solver's objective and the cost breakdown of its plan disagree: a bug, never a user error."""


def participant_costs(
    lm: LinearModel, plan: Plan, inst: Instance
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Each participant's share of the objective, from the model's own cost terms: its buying
    and holding, its unmet shortfall, and the fees of what it borrows (the borrower pays); and
    the shared terms (the risk premium of a CVaR objective), which no single participant pays."""
    parts, shared = lm.cost_breakdown(plan.x, len(inst.participants))
    by = {
        name: {k.summary_key: float(v[i]) for k, v in parts.items()}
        | {"total_usd": float(sum(v[i] for v in parts.values()))}
        for i, name in enumerate(inst.participants)
    }
    return by, {k.summary_key: v for k, v in shared.items()}


def costs(by_participant: dict[str, dict[str, float]], shared: dict[str, float]) -> dict[str, float]:
    """Cost breakdown of a plan: each component summed over participants, and the shared ones;
    they add up to the objective."""
    return {k: shared[k] if k in shared else float(sum(c[k] for c in by_participant.values())) for k in COST_KEYS}


def reporting_shift(lm: LinearModel, x: np.ndarray, plan: Plan) -> float:
    """The most the plan's cost can move from the solver's x by rounding integers and zeroing noise."""
    return float(np.abs(lm.c) @ np.abs(plan.x - x))


def check_objective(solver_objective: float, breakdown_total: float, shift: float = 0.0) -> None:
    """The objective is stated once: what the solver optimised must be what the breakdown reports,
    up to 1e-7 relative plus the shift that rounding and noise removal explain (``reporting_shift``)."""
    if abs(solver_objective - breakdown_total) > OBJECTIVE_AGREEMENT * max(1.0, abs(solver_objective)) + shift:
        raise ObjectiveMismatch(
            f"the solver's objective {solver_objective:,.6f} and the cost breakdown of its plan "
            f"{breakdown_total:,.6f} differ by {breakdown_total - solver_objective:,.6g} "
            f"(over {OBJECTIVE_AGREEMENT:g} relative)"
        )


def expected_saving(inst: Instance, plan: Plan) -> np.ndarray:
    """(P, M) the damage each holding's releases and lendings avoid over the years protected:
    sum_s pi_s W_y(s) (released + lent in s) x the receiving cell's damage avoided per tonne served
    (``Plan.value_per_t``: shortfall_cost_usd_per_t itself on a one-segment curve)."""
    c, lc = plan.cells, plan.lending
    value = plan.value_per_t(inst)
    w = inst.prob * inst.scen_weight
    saved = np.zeros((len(inst.participants), len(inst.minerals)))
    np.add.at(saved, (c["p"], c["m"]), w[c["s"]] * value * plan.release)
    keys = inst.axes.key(c, tuple("spmt"))  # cells are in key order; a loan sits on its receiver's cell
    at = np.searchsorted(keys, inst.axes.key(lc, tuple("spmt")))
    np.add.at(saved, (inst.arc_from[lc["a"]], lc["m"]), w[lc["s"]] * value[at] * plan.lend)
    return saved


def holdings_table(inst: Instance, plan: Plan, f: Flows, notes: dict[tuple[str, str], str]) -> pd.DataFrame:
    """One row per (participant, mineral); net cost of a tonne (price, discounted storage over the
    years protected, less discounted resale: ``Instance.net_cost_per_t``) against what a tonne held
    saves in expectation (``expected_saving`` per tonne held); note: why it holds what it holds
    (``limits.holding_notes``)."""
    acquired = inst.lot * plan.lots
    holding = inst.initial + acquired
    saved = expected_saving(inst, plan)
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(inst.consumption > 0, holding * DAYS_PER_YEAR / inst.consumption, np.nan)
    pm = inst.axes.grid(("p", "m"))
    p, m = pm["p"], pm["m"]
    return pd.DataFrame(
        {
            "participant": np.array(inst.participants, dtype=object)[p],
            "mineral": np.array(inst.minerals, dtype=object)[m],
            "initial_t": inst.initial.ravel(),
            "acquired_t": acquired.ravel(),
            "lots": plan.lots.ravel().astype(np.int64),
            "holding_t": holding.ravel(),
            "days_of_consumption": days.ravel(),
            "acquisition_usd": (inst.lot[None, :, None] * plan.bought * inst.price_path[None]).sum(axis=-1).ravel(),
            "net_cost_usd_per_t": inst.net_cost_per_t[m],
            "expected_saving_usd_per_t": np.divide(saved, holding, out=np.zeros_like(saved), where=holding > 0).ravel(),
            "note": [notes.get((inst.participants[i], inst.minerals[j]), "") for i, j in zip(p, m)],
        },
        columns=HOLDINGS_COLUMNS,
    )


def schedule_table(inst: Instance, f: Flows) -> pd.DataFrame:
    """One row per (scenario, participant, mineral, period) of each disrupted (scenario, mineral).

    Undisrupted pairs are left out: nothing moves there and inventory equals the holding.
    """
    D, P, T = f.shortfall.shape
    d, p, t = (a.ravel() for a in np.meshgrid(np.arange(D), np.arange(P), np.arange(T), indexing="ij"))
    return pd.DataFrame(
        {
            "scenario": np.array(inst.scenarios, dtype=object)[f.pairs_s[d]],
            "participant": np.array(inst.participants, dtype=object)[p],
            "mineral": np.array(inst.minerals, dtype=object)[f.pairs_m[d]],
            "period": t + 1,
            "shortfall_t": f.shortfall.ravel(),
            "release_t": f.release.ravel(),
            "lent_t": f.lent.ravel(),
            "borrowed_t": f.borrowed.ravel(),
            "offtake_t": f.offtake.ravel(),
            "offtake_lent_t": f.offtake_lent.ravel(),
            "unmet_t": f.unmet.ravel(),
            "inventory_t": f.inventory.ravel(),
        },
        columns=SCHEDULE_COLUMNS,
    )


def lending_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """Per-arc lending flows (non-zero only): who lent what to whom, when, and from what (its
    stock, or offtake lent onward)."""
    lc, lent = plan.all_lending()
    source = np.where(np.arange(lent.size) < plan.lend.size, "stock", "offtake").astype(object)
    keep = lent > 0
    lc = {k: v[keep] for k, v in lc.items()}
    parts = np.array(inst.participants, dtype=object)
    return pd.DataFrame(
        {
            "scenario": np.array(inst.scenarios, dtype=object)[lc["s"]],
            "from": parts[inst.arc_from[lc["a"]]],
            "to": parts[inst.arc_to[lc["a"]]],
            "mineral": np.array(inst.minerals, dtype=object)[lc["m"]],
            "period": lc["t"] + 1,
            "lent_t": lent[keep],
            "source": source[keep],
        },
        columns=LENDING_COLUMNS,
    )


def coverage_table(inst: Instance, f: Flows) -> pd.DataFrame:
    """Coverage per (scenario, participant, mineral) with some shortfall, split by source.

    disruption_days = Delta * #{t: g_t > 0};  coverage_days = sum_{t: g_t > 0} Delta * covered_t / g_t;
    coverage_share = sum covered / sum g;  covered = g - unmet = own release + borrowed + offtake
    (the demand row), so own + borrowed + offtake coverage days = coverage_days with own_t = sum
    release, borrowed_t = sum borrowed, offtake_t = sum of the shortfall offtake served.
    """
    g = f.shortfall
    hit = g > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        per_g = np.where(hit, 1.0 / np.where(hit, g, 1.0), 0.0)
        total = g.sum(axis=-1)
        covered = np.clip(g - f.unmet, 0.0, None)
        share = np.where(total > 0, covered.sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)
    delta = inst.period_days
    d, p = np.nonzero(total > 0)

    def days(flow: np.ndarray) -> np.ndarray:
        return clean(delta * (flow * per_g).sum(axis=-1)[d, p])

    return pd.DataFrame(
        {
            "scenario": np.array(inst.scenarios, dtype=object)[f.pairs_s[d]],
            "participant": np.array(inst.participants, dtype=object)[p],
            "mineral": np.array(inst.minerals, dtype=object)[f.pairs_m[d]],
            "disruption_days": delta * hit.sum(axis=-1)[d, p],
            "coverage_days": days(covered),
            "coverage_share": clean(share[d, p]),
            "unmet_t": clean(f.unmet.sum(axis=-1)[d, p]),
            "own_t": clean(f.release.sum(axis=-1)[d, p]),
            "borrowed_t": clean(f.borrowed.sum(axis=-1)[d, p]),
            "offtake_t": clean(f.offtake.sum(axis=-1)[d, p]),
            "own_coverage_days": days(f.release),
            "borrowed_coverage_days": days(f.borrowed),
            "offtake_coverage_days": days(f.offtake),
        },
        columns=COVERAGE_COLUMNS,
    )


def expected_coverage(inst: Instance, coverage: pd.DataFrame) -> pd.DataFrame:
    """Probability-weighted coverage per (participant, mineral), over the scenarios that disrupt it.

    expected_coverage_days = sum_s pi_s coverage_days_s / sum_s pi_s over disrupting scenarios,
    i.e. the coverage an analyst should expect *given* a disruption of that mineral; own_t,
    borrowed_t and their days are expected the same way. worst_coverage_share is the lowest
    share over those scenarios, worst_scenario the first (in config order) that has it.
    note: left empty here; ``limits.coverage_notes`` says where the coverage comes from.
    """
    if coverage.empty:
        return pd.DataFrame(columns=EXPECTED_COVERAGE_COLUMNS)
    order = {name: i for i, name in enumerate(inst.scenarios)}
    df = coverage.assign(w=coverage["scenario"].map(dict(zip(inst.scenarios, inst.year_share))))
    mean_of = ["disruption_days", "coverage_days", "coverage_share", *SOURCES]
    df = df.assign(**{f"w_{c}": df.w * df[c] for c in mean_of}, order=df["scenario"].map(order))
    keys = ["participant", "mineral"]
    g = df.groupby(keys, sort=False)[["w", *(f"w_{c}" for c in mean_of)]].sum()
    worst = df.sort_values(["coverage_share", "order"], kind="stable").groupby(keys, sort=False).first()
    worst = worst.reindex(g.index)
    mean = {c: g[f"w_{c}"] / g.w for c in mean_of}
    out = pd.DataFrame(
        {
            "disruption_probability": g.w,
            "expected_disruption_days": mean["disruption_days"],
            "expected_coverage_days": mean["coverage_days"],
            "expected_coverage_share": mean["coverage_share"],
            **{c: mean[c] for c in SOURCES},
            "worst_coverage_share": worst.coverage_share,
            "worst_scenario": worst.scenario,
        }
    ).reset_index()
    out["note"] = ""
    return out[EXPECTED_COVERAGE_COLUMNS]


def saving_per_usd(inst: Instance, plan: Plan, f: Flows) -> np.ndarray:
    """(P, M) what each holding saves in expectation per dollar it cost to buy: the shortfall cost of
    the tonnes it releases and lends (``expected_saving``), over its
    discounted purchase cost (0 where nothing is bought). Why a build-up buys some minerals first."""
    saved = expected_saving(inst, plan)
    cost = (inst.lot[None, :, None] * plan.bought * inst.price_path[None] * inst.discount).sum(axis=-1)
    return np.asarray(np.divide(saved, cost, out=np.zeros_like(saved), where=cost > 0))


def acquisitions_table(inst: Instance, plan: Plan, f: Flows) -> pd.DataFrame:
    """One row per (participant, mineral, build-up year): lots bought that year, their cost as paid
    (price of the year) and discounted to year 1, the holding and its days at the year's end, and
    the holding's expected saving per dollar (``saving_per_usd``)."""
    pmy = inst.axes.grid(("p", "m", "y"))
    p, m, y = pmy["p"], pmy["m"], pmy["y"]
    bought = plan.bought.ravel()
    acquired = bought * inst.lot[m]
    cost = acquired * inst.price_path[m, y]
    held = inst.holding_by_year(plan.bought).ravel()
    cons = inst.consumption[p, m]
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(cons > 0, held * DAYS_PER_YEAR / cons, np.nan)
    return pd.DataFrame(
        {
            "participant": np.array(inst.participants, dtype=object)[p],
            "mineral": np.array(inst.minerals, dtype=object)[m],
            "year": y + 1,
            "lots": bought.astype(np.int64),
            "acquired_t": acquired,
            "cost_usd": cost,
            "discounted_cost_usd": cost * inst.discount[y],
            "holding_t": held,
            "days_of_consumption": days,
            "expected_saving_per_usd": saving_per_usd(inst, plan, f)[p, m],
        },
        columns=ACQUISITIONS_COLUMNS,
    )


def buildup_table(acq: pd.DataFrame) -> pd.DataFrame:
    """The (participant, mineral) pairs a build-up buys, in the order it first buys them (ties: the
    higher expected saving per dollar first): one column per year, 'tonnes bought/days held at the
    year's end' ('-': nothing bought that year), and the holding's expected saving per dollar."""
    bought = acq[acq.lots > 0]
    first = bought.groupby(["participant", "mineral"], sort=False).year.min().rename("first_year")
    saving = acq.groupby(["participant", "mineral"], sort=False).expected_saving_per_usd.first()
    cell = np.where(
        acq.lots > 0,
        [f"{tonnes(t)}/{d:,.0f}d" if d == d else tonnes(t) for t, d in zip(acq.acquired_t, acq.days_of_consumption)],
        "-",
    )
    wide = acq.assign(cell=cell).pivot(index=["participant", "mineral"], columns="year", values="cell")
    wide.columns = [f"y{y}" for y in wide.columns]
    out = wide.join(first, how="inner").join(saving).reset_index()
    out = out.sort_values(["first_year", "expected_saving_per_usd"], ascending=[True, False], kind="stable")
    return out[["participant", "mineral", "first_year", *wide.columns, "expected_saving_per_usd"]].reset_index(
        drop=True
    )


def offtake_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """One row per (participant, project offered): tonnes a year (0 where it takes none), the yearly
    price-gap subsidy, the agreement's fixed cost (paid only by a taker), the cost over the horizon
    (as in costs.offtake_usd) and the shortfall it serves in expectation (its mineral's offtake split
    by the taker's tonnes). Every pair has its row, so a script reads the same file whether or not
    the plan takes anything."""
    units = plan.offtake_units
    p, j = (a.ravel() for a in np.indices(units.shape))
    tonnes = np.round(units[p, j] * inst.proj_lot[j], 6)  # a micro-tonne: below it is the solver's noise
    subsidy = tonnes * inst.proj_gap[j]
    agreement = np.where(units[p, j] > 0, inst.proj_fixed[j], 0.0)
    c = plan.cells
    served = np.zeros((len(inst.participants), len(inst.minerals)))
    np.add.at(served, (c["p"], c["m"]), inst.year_share[c["s"]] * plan.offtake)
    taken = np.zeros_like(served)
    np.add.at(taken, (p, inst.proj_m[j]), tonnes)
    share = np.divide(tonnes, taken[p, inst.proj_m[j]], out=np.zeros_like(tonnes), where=taken[p, inst.proj_m[j]] > 0)
    return pd.DataFrame(
        {
            "participant": np.array(inst.participants, dtype=object)[p],
            "project": np.array(inst.projects, dtype=object)[j],
            "mineral": np.array(inst.minerals, dtype=object)[inst.proj_m[j]],
            "offtake_t_per_year": tonnes,
            "subsidy_usd_per_year": subsidy,
            "agreement_usd": agreement,
            "cost_usd": inst.risk_years * subsidy + agreement,
            "expected_served_t": share * served[p, inst.proj_m[j]],
        },
        columns=OFFTAKE_COLUMNS,
    )


def lending_flows_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """Expected tonnes and fees per (lender, borrower, mineral) over the scenarios, and the worst one.

    expected_lent_t = sum_s pi_s sum_t (l + e), stock and offtake lent onward; expected_fees_usd =
    expected_lent_t * cost_usd_per_t (paid by the borrower); worst_lent_t: the most lent in one
    scenario (worst_scenario).
    """
    lc, lent = plan.all_lending()  # stock and offtake lent onward: the receiver pays both fees
    if not lent.size or not (lent > 0).any():
        return pd.DataFrame(columns=LENDING_FLOWS_COLUMNS)
    am, inv = inst.axes.unique(lc, ("a", "m"))
    per_s = np.zeros((am["a"].size, len(inst.scenarios)))
    np.add.at(per_s, (inv, lc["s"]), lent)
    per_s = clean(per_s)
    expected = per_s @ inst.year_share
    worst = per_s.argmax(axis=1)  # first scenario (config order) with the most lent
    parts = np.array(inst.participants, dtype=object)
    df = pd.DataFrame(
        {
            "from": parts[inst.arc_from[am["a"]]],
            "to": parts[inst.arc_to[am["a"]]],
            "mineral": np.array(inst.minerals, dtype=object)[am["m"]],
            "expected_lent_t": expected,
            "expected_fees_usd": expected * inst.arc_cost[am["a"]],
            "worst_lent_t": per_s.max(axis=1),
            "worst_scenario": np.array(inst.scenarios, dtype=object)[worst],
        },
        columns=LENDING_FLOWS_COLUMNS,
    )
    return df[df.worst_lent_t > 0].reset_index(drop=True)


@dataclass(frozen=True)
class CostRow:
    """One party's line of the cost table: what it pays by kind (the parts sum to total_usd) and the
    lending fees it receives."""

    party: str
    paid: dict[CostKind, float]
    total_usd: float
    fees_received_usd: float


def cost_rows(summary: Mapping[str, Any], flows: pd.DataFrame | None) -> tuple[list[CostKind], list[CostRow]]:
    """The cost table of the terminal and the report, from a summary: the kinds a participant pays, in
    CostKind order (offtake only where the run has some; the risk premium has no payer), and a row per
    participant, then "all" (the objective, and every fee received)."""
    received = flows.groupby("from").expected_fees_usd.sum().to_dict() if flows is not None and len(flows) else {}
    total = summary["costs"]
    kinds = [k for k in CostKind if not k.shared and (not k.optional or total.get(k.summary_key, 0.0) != 0)]
    rows = [
        CostRow(p, {k: c[k.summary_key] for k in kinds}, c["total_usd"], float(received.get(p, 0.0)))
        for p, c in (summary.get("costs_by_participant") or {}).items()
    ]
    everyone = {k: total[k.summary_key] for k in kinds}
    rows.append(CostRow("all", everyone, summary["objective_usd"], float(sum(received.values()))))
    return kinds, rows


@dataclass
class Summary:
    """Everything summary.json says about a run, in one typed object (written in this order)."""

    status: Status
    config_name: str
    config_hash: str
    source: str | None
    overrides: list[str]
    stockpile_version: str
    sizes: dict[str, int]
    solver: str
    exposure_years: int | None = None  # K = horizon.years + holding_years - 1: the years the stock protects
    year_weights: list[float] | None = None  # delta_k of each year k = 1..K (discounted; each faces every scenario)
    objective_usd: float | None = None
    best_bound_usd: float | None = None
    gap: float | None = None
    solver_objective_usd: float | None = None
    costs: dict[str, float] | None = None
    costs_by_participant: dict[str, dict[str, float]] | None = None
    holding_t_by_participant: dict[str, float] | None = None
    expected_coverage_days: dict[str, dict[str, float]] | None = None
    expected_coverage_share: float | None = None  # probability-weighted over disrupted (participant, mineral)
    expected_recourse_usd: float | None = None  # E[Q] of one year, Q_s = shortfall, release and lending fees of s
    var_recourse_usd: float | None = None  # the risk.cvar_alpha quantile of one year's Q (weighted over build years)
    cvar_recourse_usd: float | None = None  # CVaR at risk.cvar_alpha, whatever risk.cvar_weight is
    solver_version: str | None = None
    method: str | None = None
    build_seconds: float | None = None
    solve_seconds: float | None = None
    iterations: dict[str, int] | None = None
    fixed_lots: dict[str, dict[str, int]] | None = None  # the first-stage plan evaluated, when one was given
    reasons: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; keys that do not apply to this run (None where optional) are left out,
        except the figures every run reports."""
        always = {"status", "objective_usd", "best_bound_usd", "gap", "solver"}
        out = {k: v for k, v in asdict(self).items() if v is not None or k in always}
        out["status"] = str(self.status)
        return out


@dataclass
class Result:
    """A solved (or unsolvable) config: summary, tables and where they came from."""

    summary: Summary
    holdings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HOLDINGS_COLUMNS))
    schedule: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCHEDULE_COLUMNS))
    coverage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COVERAGE_COLUMNS))
    expected_coverage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXPECTED_COVERAGE_COLUMNS))
    lending: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LENDING_COLUMNS))
    lending_flows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LENDING_FLOWS_COLUMNS))
    limits: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: dict[str, Any] = field(default_factory=dict)
    offtake: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=OFFTAKE_COLUMNS))
    acquisitions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ACQUISITIONS_COLUMNS))

    @property
    def status(self) -> Status:
        return self.summary.status

    @property
    def has_solution(self) -> bool:
        return self.status.has_plan

    def tables(self) -> dict[str, pd.DataFrame]:
        """The run folder's tables by file name (expected coverage only where something is disrupted)."""
        out = {
            "holdings.csv": self.holdings,
            "schedule.csv": self.schedule,
            "coverage.csv": self.coverage,
            "lending.csv": self.lending,
            "lending_flows.csv": self.lending_flows,
            "limits.csv": self.limits,
        }
        if not self.expected_coverage.empty:
            out["expected_coverage.csv"] = self.expected_coverage
        if self.config.get("projects"):  # every run with projects, taken or not
            out["offtake.csv"] = self.offtake
        if self.acquisitions["year"].nunique() > 1:  # a build-up over several years
            out["acquisitions.csv"] = self.acquisitions
        return out

    def write(self, out_dir: str | Path) -> Path:
        """Write the run folder as a whole (summary.json last), replacing any earlier run there."""
        return write_run(Path(out_dir), self.summary.to_dict(), self.tables(), self.config)
