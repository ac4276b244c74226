"""Replay a run's scenarios period by period with the rolling response (``stockpile simulate``).

At each period k of a scenario the history so far is known, ``respond`` decides period k's
orders over the continuations that match it (the run's scenarios with the same periods 1..k),
the orders are applied (stock drawn, lending counted) and the state moves on. Nothing of
the future is used before it happens, so the rolling cost is at least the run's clairvoyant
recourse of the scenario (its schedule saw the whole scenario): their difference is the value
of knowing the duration. The same replay with each participant alone (no lending) prices
coordination.

simulation.csv: scenario, period, participant, mineral, shortfall_t and the applied release_t,
lent_t, borrowed_t, offtake_t (served by committed offtake), unmet_t, inventory_t (after the
period), then alone_release_t, alone_unmet_t.
simulation.json: per scenario and in expectation (the run's probabilities; calm scenarios cost
nothing) rolling_cost_usd, clairvoyant_cost_usd, value_of_knowing_duration_usd, alone_cost_usd,
coordination_value_usd.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpile.analysis.respond import period_orders, run_holdings, situation, solve_response
from stockpile.config import Config
from stockpile.errors import NoSolution, OptionError
from stockpile.jsontypes import JSON
from stockpile.model.instance import Instance, build_instance
from stockpile.results.outputs import FINISHED_FILE, write_csv, write_json
from stockpile.results.runs import read_run_config, run_lots

log = logging.getLogger(__name__)

SIMULATION_COLUMNS = [
    "scenario",
    "period",
    "participant",
    "mineral",
    "shortfall_t",
    "release_t",
    "lent_t",
    "borrowed_t",
    "offtake_t",
    "unmet_t",
    "inventory_t",
    "alone_release_t",
    "alone_unmet_t",
]


@lru_cache(maxsize=2)
def _run(run_dir: str, stamp: int) -> tuple[Config, Instance, np.ndarray, np.ndarray]:
    """The run's config, instance, holdings (Y, P, M: at the end of each build-up year) and offtake
    (P, J units), read once per worker and run (stamp: summary.json's mtime, so a folder solved
    again is read again)."""
    from stockpile.api import offtake_array

    cfg, _ = read_run_config(Path(run_dir))
    inst = build_instance(cfg)
    held = np.stack([run_holdings(Path(run_dir), inst, y if inst.years > 1 else None) for y in range(inst.years)])
    return cfg, inst, held, offtake_array(inst, run_lots(Path(run_dir)))


def replay(
    cfg: Config, inst: Instance, held: np.ndarray, taken: np.ndarray, s: int, alone: bool
) -> tuple[dict[str, np.ndarray], float]:
    """Period by period through scenario s: orders from the response over the continuations
    that match the history so far (of the build-up year it strikes in), applied to the stock held
    that year. Returns the applied flows (T, P, M) and the cost (one year's, undiscounted)."""
    year = int(inst.scen_year[s])
    held = held[year]
    T, A = inst.periods, inst.arc_from.size
    P, M = held.shape
    inventory, lent_so_far = held.copy(), np.zeros((A, M))
    out = {k: np.zeros((T, P, M)) for k in ("release", "lent", "borrowed", "offtake", "unmet", "inventory")}
    cost = 0.0
    for k in range(1, T + 1):
        g = inst.shortfall[s, :, :, k - 1]
        if g.any():
            sit = situation(
                cfg, inst, k, held, inventory, lent_so_far, inst.shortfall[s, :, :, :k], offtake=taken, year=year
            )
            o = solve_response(sit, alone=alone)
            if not o.status.has_plan:
                raise NoSolution(f"scenario {inst.scenarios[s]}, period {k}: the response has no solution ({o.status})")
            release, unmet, lend, out["offtake"][k - 1], onward = period_orders(o, 0 if alone else A)
            if not alone:
                np.add.at(out["lent"][k - 1], inst.arc_from, lend)  # stock only: it leaves the store
                np.add.at(out["borrowed"][k - 1], inst.arc_to, lend + onward)
                lent_so_far += lend
                cost += float((inst.arc_cost[:, None] * (lend + onward)).sum())
                cost += float((inst.release_cost[None, :] * lend).sum())
            out["release"][k - 1], out["unmet"][k - 1] = release, unmet
            inventory = inventory - release - out["lent"][k - 1]
            pm = inst.axes.grid(("p", "m"))
            cost += float(
                inst.damage(pm["p"], pm["m"], unmet.ravel()).sum() + (inst.release_cost[None, :] * release).sum()
            )
        out["inventory"][k - 1] = inventory
    return out, cost


def simulate_scenario(payload: dict[str, Any]) -> dict[str, Any]:
    """One scenario, coordinated and alone (runs in a worker)."""
    cfg, inst, held, taken = _run(payload["run_dir"], payload["stamp"])
    s = inst.scenarios.index(payload["scenario"])
    both, cost = replay(cfg, inst, held, taken, s, alone=False)
    alone, alone_cost = replay(cfg, inst, held, taken, s, alone=True)
    T, P, M = both["release"].shape
    t, p, m = (a.ravel() for a in np.meshgrid(np.arange(T), np.arange(P), np.arange(M), indexing="ij"))
    g = inst.shortfall[s].transpose(2, 0, 1)  # (T, P, M)
    keep = (g[t, p, m] > 0) | (both["lent"][t, p, m] > 0)
    t, p, m = t[keep], p[keep], m[keep]
    rows = {
        "scenario": payload["scenario"],
        "period": t + 1,
        "participant": np.array(inst.participants, dtype=object)[p],
        "mineral": np.array(inst.minerals, dtype=object)[m],
        "shortfall_t": g[t, p, m],
        **{f"{k}_t": both[k][t, p, m] for k in ("release", "lent", "borrowed", "offtake", "unmet", "inventory")},
        "alone_release_t": alone["release"][t, p, m],
        "alone_unmet_t": alone["unmet"][t, p, m],
    }
    return {"rows": rows, "rolling": cost, "alone": alone_cost}


def clean_usd(difference: float, scale: float) -> float:
    """A difference of two solved costs, 0 when it is below their relative tolerance (1e-9)."""
    return 0.0 if abs(difference) <= 1e-9 * max(1.0, abs(scale)) else difference


@dataclass(frozen=True)
class Simulation:
    """simulation.json: each replayed scenario's costs (rolling, clairvoyant, alone) and the values
    of knowing the duration and of coordinating; over every disrupted scenario, their expectation."""

    scenarios: list[dict[str, Any]]
    expected: dict[str, float] | None = None  # only when every disrupted scenario was replayed

    def to_dict(self) -> JSON:
        return {k: v for k, v in asdict(self).items() if v is not None}


def simulate_run(
    run_dir: str | Path,
    scenarios: list[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Any = None,
) -> tuple[pd.DataFrame, Simulation]:
    """Replay the named scenarios (None: all disrupted ones) of a run; write simulation.csv and
    simulation.json into the run folder."""
    from stockpile.analysis.evaluate import evaluate_plan
    from stockpile.analysis.runner import parallel_map

    run_dir = Path(run_dir)
    done = run_dir / FINISHED_FILE
    stamp = done.stat().st_mtime_ns if done.exists() else 0  # _run refuses an unfinished folder
    cfg, inst, _, _ = _run(str(run_dir), stamp)
    names = list(scenarios) if scenarios else [n for i, n in enumerate(inst.scenarios) if inst.shortfall[i].any()]
    unknown = [n for n in names if n not in inst.scenarios]
    if unknown:
        raise OptionError(f"--scenario {unknown[0]!r}: not a scenario of the run ({', '.join(inst.scenarios)})")
    answers = parallel_map(
        simulate_scenario,
        [{"run_dir": str(run_dir), "stamp": stamp, "scenario": n} for n in names],
        workers,
        scheduler,
        progress,
    )
    seer = evaluate_plan(cfg, run_lots(run_dir), cfg.scenario_list, workers=1).set_index("scenario").recourse_usd
    per = []
    for name, a in zip(names, answers):
        per.append(
            {
                "scenario": name,
                "probability": float(inst.prob[inst.scenarios.index(name)]),
                "rolling_cost_usd": a["rolling"],
                "clairvoyant_cost_usd": float(seer[name]),
                "value_of_knowing_duration_usd": a["rolling"] - float(seer[name]),
                "alone_cost_usd": a["alone"],
                "coordination_value_usd": a["alone"] - a["rolling"],
            }
        )
    for r in per:  # the two costs agree to the solvers' tolerance where the duration is worth nothing
        r["value_of_knowing_duration_usd"] = clean_usd(r["value_of_knowing_duration_usd"], r["clairvoyant_cost_usd"])
    expected = None
    if not scenarios:  # every disrupted scenario: the expectation over the run's (calm ones cost 0)
        expected = (
            {k: float(sum(r["probability"] * r[k] for r in per)) for k in per[0] if k.endswith("_usd")} if per else {}
        )
    measures = Simulation(per, expected)
    table = pd.concat([pd.DataFrame(a["rows"]) for a in answers], ignore_index=True)[SIMULATION_COLUMNS]
    write_csv(table, run_dir / "simulation.csv")
    write_json(measures.to_dict(), run_dir / "simulation.json")
    return table, measures
