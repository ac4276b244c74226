"""Rapid response: what to release and lend this period, from the stocks in store, when nobody
knows how long the disruption will last (``stockpile respond``, ``stockpile simulate``).

The run's model sees each scenario whole, so its schedules know the duration. Here the
period-k orders are decided once for every continuation the outlook allows (non-anticipative)
and periods k+1..T adapt per continuation. It is the same model (model.py) on a derived
instance: the continuations are its scenarios, periods k..T its periods, the holding is fixed,
what was drawn and lent already moves the floor and the lending caps (``Instance.drawn``,
``arc_lent``), and ``shared_periods = 1`` adds the orders as first-stage variables
(``define_orders``). Every method, cost and check of the model follows.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpile.config import Config, Problem, load_config
from stockpile.config.loader import Document
from stockpile.config.state import FromRun, State, load_state
from stockpile.enums import Status
from stockpile.errors import ConfigError, NoSolution, did_you_mean
from stockpile.jsontypes import JSON
from stockpile.model.families import build_model
from stockpile.model.instance import DAYS_PER_YEAR, OFFTAKE_KEY, Instance, build_instance, without_lending
from stockpile.model.plan import flows, plan_from_solution, scenario_recourse
from stockpile.results.outputs import CONFIG_FILE, FINISHED_FILE, json_bytes, write_folder
from stockpile.results.runs import STATE_FILE, run_lots
from stockpile.results.tables import coverage_table, lending_table, schedule_table
from stockpile.solver.run import solve_instance

log = logging.getLogger(__name__)

MATCH_TOL = 1e-9  # relative: a scenario continues the history when its periods 1..k match it to this
# a response folder: its tables, then the config and state it answered, summary.json last
RESPONSE_FILES = (
    "orders.csv",
    "contingency.csv",
    "lending.csv",
    "coverage.csv",
    CONFIG_FILE,
    STATE_FILE,
    FINISHED_FILE,
)


@dataclass(frozen=True)
class Situation:
    """A state in instance terms: what is in store, what happened, what may follow."""

    cfg: Config
    inst: Instance  # the config's
    period: int  # k, 1-based
    holding: np.ndarray  # (P, M) t before the disruption: sets rate caps and floors
    inventory: np.ndarray  # (P, M) t in store at the start of period k
    lent: np.ndarray  # (A, M) t lent in periods 1..k-1
    history: np.ndarray  # (P, M, k) t of shortfall in periods 1..k
    names: tuple[str, ...]  # continuations
    prob: np.ndarray  # (C,)
    future: np.ndarray  # (C, P, M, T - k + 1) shortfall in periods k..T (period k: the history's)
    offtake: np.ndarray  # (P, J) units of offtake committed (they keep arriving during the disruption)


def matching(inst: Instance, history: np.ndarray, year: int | None = None) -> np.ndarray:
    """Scenarios whose shortfall in periods 1..k equals the history (within MATCH_TOL, relative);
    over a build-up, those striking in the year (0-based; None: the last)."""
    k = history.shape[-1]
    g = inst.shortfall[..., :k]
    close = np.abs(g - history[None]) <= MATCH_TOL * np.maximum(1.0, np.abs(history[None]))
    same_year = inst.scen_year == (inst.years - 1 if year is None else year)
    return np.nonzero(close.all(axis=(1, 2, 3)) & same_year)[0]


def situation(
    cfg: Config,
    inst: Instance,
    period: int,
    holding: np.ndarray,
    inventory: np.ndarray,
    lent: np.ndarray,
    history: np.ndarray,
    outlook: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None,
    offtake: np.ndarray | None = None,
    year: int | None = None,
) -> Situation:
    """The situation at period k; outlook (names, probabilities, shortfall (C, P, M, T)) or the
    config's scenarios that match the history (over a build-up: of the year, 0-based, that it
    struck in). Raises ValueError when none does."""
    k = period
    if outlook is None:
        idx = matching(inst, history, year)
        if idx.size == 0:
            raise ValueError("no scenario of the config matches the history")
        names = tuple(inst.scenarios[i] for i in idx)
        prob = inst.prob[idx] / inst.prob[idx].sum()
        future = inst.shortfall[idx][..., k - 1 :].copy()
    else:
        names, prob, full = outlook
        future = full[..., k - 1 :].copy()
    future[..., 0] = history[None, :, :, k - 1]  # the current period is known: the same in all
    taken = np.zeros((len(inst.participants), len(inst.projects))) if offtake is None else offtake
    return Situation(cfg, inst, k, holding, inventory, lent, history, names, prob, future, taken)


# ----------------------------------------------------------------------------
# The state file, checked against its config


def _pm(
    tonnes: dict[str, dict[str, float]], inst: Instance, key: str, default: np.ndarray
) -> tuple[np.ndarray, list[Problem]]:
    out, problems = default.copy(), []
    for p, per in tonnes.items():
        if p not in inst.participants:
            problems.append(Problem((key, p), f"unknown participant; expected one of {', '.join(inst.participants)}"))
            continue
        for m, v in per.items():
            if m not in inst.minerals:
                problems.append(Problem((key, p, m), f"unknown mineral; expected one of {', '.join(inst.minerals)}"))
                continue
            out[inst.participants.index(p), inst.minerals.index(m)] = v
    return out, problems


def run_holdings(run: Path, inst: Instance, year: int | None = None) -> np.ndarray:
    """A run folder's holdings (P, M) in tonnes, in the instance's order; of a build-up, those at
    the end of the year (0-based; None: the last)."""
    table = pd.read_csv(run / "holdings.csv", keep_default_na=False)
    if (run / "acquisitions.csv").exists() and year is not None:
        acq = pd.read_csv(run / "acquisitions.csv", keep_default_na=False)
        table = acq[acq.year == year + 1]
    held, _ = _pm(
        {p: dict(zip(g.mineral, g.holding_t)) for p, g in table.groupby("participant", sort=False)},
        inst,
        "inventory",
        np.zeros((len(inst.participants), len(inst.minerals))),
    )
    return held


def resolve_state(path: str | Path) -> Situation:
    """Read a STATE.yaml and its config; every problem is reported at once, naming its key."""
    state, doc = load_state(path)
    base = Path(path).parent
    problems: list[Problem] = []
    try:
        cfg = load_config(base / state.config)
    except FileNotFoundError:
        missing = Problem(("config",), f"no config file at {base / state.config}")
        raise ConfigError([_at(doc, missing)], doc.source) from None
    inst = build_instance(cfg)
    P, M, T = len(inst.participants), len(inst.minerals), inst.periods
    zeros = np.zeros((P, M))
    k = state.period
    if k > T:
        problems.append(Problem(("period",), f"period {k} is past the horizon's {T} periods"))
    year = None if state.year is None else state.year - 1
    if state.year is not None and state.year > inst.years:
        problems.append(Problem(("year",), f"year {state.year} is outside the build-up (years 1..{inst.years})"))
        year = None
    offtake: dict[str, dict[str, float]] = state.offtake or {}
    if isinstance(state.inventory, FromRun):
        run = base / state.inventory.from_run
        if not (run / "holdings.csv").is_file():
            problems.append(Problem(("inventory", "from_run"), f"{run} is not a run folder (no holdings.csv)"))
            inventory = zeros
        else:
            inventory = run_holdings(run, inst, year)
            offtake = state.offtake or run_lots(run).get(OFFTAKE_KEY, {})
    else:
        inventory, bad = _pm(state.inventory, inst, "inventory", zeros)
        problems += bad
    holding, bad = _pm(state.holding or {}, inst, "holding", inventory)
    problems += bad
    for p, m in zip(*np.nonzero(inventory > holding * (1 + 1e-9) + 1e-9)):
        P_, M_ = inst.participants[p], inst.minerals[m]
        problems.append(
            Problem(("inventory", P_, M_), f"{inventory[p, m]:g} t is more than the holding of {holding[p, m]:g} t")
        )
    lent = np.zeros((inst.arc_from.size, M))
    arcs = inst.arc_names
    for name, per in (state.lent_so_far or {}).items():
        if name not in arcs:
            problems.append(
                Problem(
                    ("lent_so_far", name),
                    f"not a lending arc of the config; expected one of {', '.join(arcs) or 'none'}",
                )
            )
            continue
        for m, v in per.items():
            if m not in inst.minerals:
                problems.append(Problem(("lent_so_far", name, m), "unknown mineral"))
                continue
            lent[arcs.index(name), inst.minerals.index(m)] = v
    history = np.zeros((P, M, k))
    if isinstance(state.history, str):
        if state.history not in inst.scenarios:
            hint = did_you_mean(state.history, inst.scenarios) or f"; expected one of {', '.join(inst.scenarios)}"
            problems.append(Problem(("history",), f"unknown scenario '{state.history}'{hint}"))
        elif k <= T:
            history = inst.shortfall[inst.scenarios.index(state.history), :, :, :k].copy()
    else:
        for p, series in state.history.items():
            for m, values in series.items():
                if p not in inst.participants or m not in inst.minerals:
                    problems.append(Problem(("history", p, m), "unknown participant or mineral"))
                elif len(values) != k:
                    problems.append(
                        Problem(("history", p, m), f"expected {k} values (periods 1..{k}), got {len(values)}")
                    )
                else:
                    history[inst.participants.index(p), inst.minerals.index(m)] = values
    taken = np.zeros((P, len(inst.projects)))
    for p, per in offtake.items():
        for j, t in per.items():
            if p not in inst.participants or j not in inst.projects:
                problems.append(Problem(("offtake", p, j), "unknown participant or project producing in year 1"))
            else:
                taken[inst.participants.index(p), inst.projects.index(j)] = t / inst.proj_lot[inst.projects.index(j)]
    outlook = None
    if state.outlook is not None:
        outlook, bad = _outlook(cfg, state, inst)
        problems += bad
    if not problems:
        try:
            return situation(cfg, inst, k, holding, inventory, lent, history, outlook, taken, year)
        except ValueError as exc:
            problems.append(Problem(("history",), f"{exc} in periods 1..{k}; give an explicit outlook"))
    raise ConfigError([_at(doc, p) for p in problems], doc.source)


def _at(doc: Document, problem: Problem) -> Problem:
    problem.line = doc.line_of(problem.loc)
    return problem


def _outlook(
    cfg: Config, state: State, inst: Instance
) -> tuple[tuple[tuple[str, ...], np.ndarray, np.ndarray], list[Problem]]:
    """Explicit continuations: shocks from period k+1 on, probabilities summing to 1."""
    assert state.outlook is not None
    problems = []
    for i, sc in enumerate(state.outlook):
        for j, sh in enumerate(sc.shocks):
            if sh.mineral not in inst.minerals:
                problems.append(Problem(("outlook", i, "shocks", j, "mineral"), "unknown mineral"))
            if isinstance(sh.loss, dict) and set(inst.participants) - set(sh.loss):
                missing = ", ".join(sorted(set(inst.participants) - set(sh.loss)))
                problems.append(
                    Problem(
                        ("outlook", i, "shocks", j, "loss"), f"no loss for {missing}: give every participant its share"
                    )
                )
            if sh.start <= state.period or sh.start > inst.periods:
                problems.append(
                    Problem(
                        ("outlook", i, "shocks", j, "start"),
                        f"a continuation's shocks start in periods {state.period + 1}..{inst.periods}, got {sh.start}",
                    )
                )
    total = sum(sc.probability for sc in state.outlook)
    if abs(total - 1.0) > 1e-6:
        problems.append(Problem(("outlook",), f"probabilities sum to {total:.9g}, expected 1 (within 1e-6)"))
    names = [sc.name for sc in state.outlook]
    if len(set(names)) < len(names):
        problems.append(Problem(("outlook",), "continuation names repeat"))
    if problems or not state.outlook:
        return ((), np.zeros(0), np.zeros(0)), problems or [Problem(("outlook",), "expected at least one continuation")]
    derived = cfg.model_copy(update={"scenarios": list(state.outlook)})
    g = build_instance(derived).shortfall
    return (tuple(names), np.array([sc.probability for sc in state.outlook]), g), []


# ----------------------------------------------------------------------------
# The response


def response_instance(sit: Situation, alone: bool = False, clairvoyant: bool = False) -> Instance:
    """The run's model for the rest of the disruption: continuations as scenarios, periods k..T,
    the holding fixed, what was drawn and lent counted; alone: no lending arcs; clairvoyant: each
    continuation's orders are its own (the lower bound: knowing the duration)."""
    P, M = len(sit.inst.participants), len(sit.inst.minerals)
    C = len(sit.names)
    inst = dataclasses.replace(
        sit.inst,
        scenarios=sit.names,
        prob=sit.prob,
        periods=sit.future.shape[-1],
        shortfall=sit.future,
        initial=sit.holding,
        drawn=sit.holding - sit.inventory,
        min_days=np.zeros((P, M)),
        max_acquisition=np.zeros((P, M)),
        arc_lent=sit.lent,
        shared_periods=0 if clairvoyant else 1,
        cvar_weight=0.0,
        # nothing more is bought: one year, costs in its own dollars
        years=1,
        holding_years=1,
        discount=np.ones(1),
        year_weight=np.ones(1),
        salvage_discount=1.0,
        salvage_share=np.zeros(M),
        scen_year=np.zeros(C, np.int64),
        price_path=sit.inst.price[:, None],
        budget_path=np.full((P, 1), np.inf),
        storage_path=np.full((P, 1), np.inf),
        acquisition_path=np.zeros((P, M, 1)),
        min_days_path=np.zeros((P, M, 1)),
    )
    return without_lending(inst) if alone else inst


@dataclass
class Outcome:
    """One solve of the response: its tables in the derived instance's terms."""

    status: Status
    inst: Instance
    plan: Any
    q: np.ndarray  # (C,) shortfall + lending cost from period k on, per continuation
    unmet: np.ndarray  # (C,) t
    solver: str

    @property
    def expected_cost(self) -> float:
        return float(self.inst.prob @ self.q)

    @property
    def expected_unmet(self) -> float:
        return float(self.inst.prob @ self.unmet)


def solve_response(sit: Situation, alone: bool = False, clairvoyant: bool = False) -> Outcome:
    """Solve the non-anticipative problem by the config's method (both give the same orders' cost)."""
    inst = response_instance(sit, alone, clairvoyant)
    lm = build_model(inst, np.zeros((len(inst.participants), len(inst.minerals))), sit.offtake)
    solved = solve_instance(inst, lm, sit.cfg.solver)
    out = solved.outcome
    if solved.x is None:
        return Outcome(out.status, inst, None, np.zeros(0), np.zeros(0), str(out.solver))
    plan = plan_from_solution(lm, solved.x, inst)
    q = scenario_recourse(inst, plan)
    unmet = np.bincount(plan.cells["s"], plan.unmet, len(inst.scenarios))
    return Outcome(out.status, inst, plan, q, unmet, str(out.solver))


def period_orders(o: Outcome, arcs: int) -> tuple[np.ndarray, ...]:
    """The first period's release (P, M), unmet (P, M), stock lent (arcs, M) on the config's
    arcs (none when the response was solved alone), offtake served (P, M) and offtake lent onward
    (arcs, M): the same in every continuation, read from one."""
    inst, plan = o.inst, o.plan
    P, M = len(inst.participants), len(inst.minerals)
    c, lc = plan.cells, plan.lending
    one = c["s"].min() if c["s"].size else 0
    sel = (c["t"] == 0) & (c["s"] == one)
    release, unmet, served = np.zeros((P, M)), np.zeros((P, M)), np.zeros((P, M))
    np.add.at(release, (c["p"][sel], c["m"][sel]), plan.release[sel])
    np.add.at(unmet, (c["p"][sel], c["m"][sel]), plan.unmet[sel])
    np.add.at(served, (c["p"][sel], c["m"][sel]), plan.offtake[sel])
    lent, onward = np.zeros((arcs, M)), np.zeros((arcs, M))
    if inst.arc_from.size:
        for out, coords, values in ((lent, lc, plan.lend), (onward, plan.onward_coords, plan.onward)):
            lsel = (coords["t"] == 0) & (coords["s"] == one)
            np.add.at(out, (coords["a"][lsel], coords["m"][lsel]), values[lsel])
    return release, unmet, lent, served, onward


def orders_table(sit: Situation, o: Outcome) -> pd.DataFrame:
    """Period k's orders per (participant, mineral) with shortfall or lending: one row each."""
    inst = sit.inst
    release, unmet, stock_lent, served, onward = period_orders(o, inst.arc_from.size)
    lent = stock_lent + onward  # an order to lend, from stock or from offtake
    short = sit.history[:, :, -1]
    given, got, stock_given = np.zeros_like(release), np.zeros_like(release), np.zeros_like(release)
    np.add.at(given, inst.arc_from, lent)
    np.add.at(got, inst.arc_to, lent)
    np.add.at(stock_given, inst.arc_from, stock_lent)
    p, m = np.nonzero((short > 0) | (given > 0))
    table = pd.DataFrame(
        {
            "participant": np.array(inst.participants, dtype=object)[p],
            "mineral": np.array(inst.minerals, dtype=object)[m],
            "period": sit.period,
            "shortfall_t": short[p, m],
            "release_t": release[p, m],
            "borrowed_t": got[p, m],
            "lent_t": given[p, m],
            "offtake_t": served[p, m],
            "unmet_t": unmet[p, m],
            "inventory_t": sit.inventory[p, m],
            "inventory_after_t": sit.inventory[p, m] - release[p, m] - stock_given[p, m],
            "holding_t": sit.holding[p, m],
        }
    )
    for a, name in enumerate(inst.arc_names):  # one column per arc: who lends to whom
        table[f"lent_t.{name}"] = np.where(p == inst.arc_from[a], lent[a, m], 0.0)
    return table


def _shift(df: pd.DataFrame, sit: Situation) -> pd.DataFrame:
    """Derived-instance tables in the disruption's terms: continuations, absolute periods."""
    df = df.rename(columns={"scenario": "continuation"})
    if "period" in df:
        df["period"] = df["period"] + sit.period - 1
    return df


@dataclass
class Response:
    summary: dict[str, Any]
    orders: pd.DataFrame
    contingency: pd.DataFrame
    lending: pd.DataFrame
    coverage: pd.DataFrame


def respond(sit: Situation) -> Response:
    """Solve the response, the same with each participant alone, and knowing the duration."""
    t0 = time.perf_counter()
    o = solve_response(sit)
    if not o.status.has_plan:
        raise NoSolution(f"the response has no solution ({o.status}); raise solver.time_limit_s in the config")
    alone = solve_response(sit, alone=True)
    seer = solve_response(sit, clairvoyant=True)
    f = flows(o.inst, o.plan)
    coverage = _shift(coverage_table(o.inst, f), sit)
    share = {}
    for name, g in coverage.groupby("continuation", sort=False):
        total = (g.own_t + g.borrowed_t + g.unmet_t).sum()
        share[name] = float((g.own_t + g.borrowed_t).sum() / total) if total > 0 else 1.0
    summary = {
        "status": str(o.status),
        "config_name": sit.cfg.name,
        "config_hash": sit.cfg.hash(),
        "period": sit.period,
        "periods": sit.inst.periods,
        "solver": o.solver,
        "expected_cost_usd": o.expected_cost,
        "expected_unmet_t": o.expected_unmet,
        "alone_expected_cost_usd": alone.expected_cost,
        "alone_expected_unmet_t": alone.expected_unmet,
        "coordination_value_usd": alone.expected_cost - o.expected_cost,
        "clairvoyant_expected_cost_usd": seer.expected_cost,
        "value_of_knowing_duration_usd": o.expected_cost - seer.expected_cost,
        "continuations": [
            {
                "name": n,
                "probability": float(pr),
                "cost_usd": float(o.q[i]),
                "unmet_t": float(o.unmet[i]),
                "alone_cost_usd": float(alone.q[i]),
                "clairvoyant_cost_usd": float(seer.q[i]),
                "coverage_share": share.get(n, 1.0),
            }
            for i, (n, pr) in enumerate(zip(sit.names, sit.prob))
        ],
        "seconds": round(time.perf_counter() - t0, 4),
    }
    contingency = _shift(schedule_table(o.inst, f), sit)
    return Response(summary, orders_table(sit, o), contingency, _shift(lending_table(o.inst, o.plan), sit), coverage)


def state_record(sit: Situation) -> dict[str, Any]:
    """What the checker needs to verify the orders without the optimizer: the state, resolved."""
    inst = sit.inst

    def pm(a: np.ndarray) -> dict[str, dict[str, float]]:
        return {p: {m: float(a[i, j]) for j, m in enumerate(inst.minerals)} for i, p in enumerate(inst.participants)}

    return {
        "period": sit.period,
        "holding": pm(sit.holding),
        "inventory": pm(sit.inventory),
        "lent_so_far": {
            a: {m: float(sit.lent[i, j]) for j, m in enumerate(inst.minerals)} for i, a in enumerate(inst.arc_names)
        },
        "continuations": {n: float(p) for n, p in zip(sit.names, sit.prob)},
        # t of offtake arriving each period per participant and mineral (it serves shortfall first)
        "offtake_per_period": pm((sit.offtake * inst.proj_lot) @ _of_mineral(inst) * inst.period_days / DAYS_PER_YEAR),
    }


def _of_mineral(inst: Instance) -> np.ndarray:
    """(J, M): which mineral each project produces."""
    out = np.zeros((len(inst.projects), len(inst.minerals)))
    out[np.arange(len(inst.projects)), inst.proj_m] = 1.0
    return out


def write_response(resp: Response, sit: Situation, out: Path) -> Path:
    """The response folder, written as a whole (summary.json last)."""
    import yaml

    from stockpile.results.outputs import csv_bytes

    def dump(d: JSON) -> bytes:
        return yaml.safe_dump(d, sort_keys=False, allow_unicode=True).encode("utf-8")

    tables = (resp.orders, resp.contingency, resp.lending, resp.coverage)
    files = dict(zip(RESPONSE_FILES, map(csv_bytes, tables)))
    files[CONFIG_FILE] = dump(sit.cfg.resolved_dict())
    files[STATE_FILE] = dump(state_record(sit))
    files[FINISHED_FILE] = json_bytes(resp.summary)
    return write_folder(out, files)
