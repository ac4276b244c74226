"""How a plan does on disruptions it was not optimised for (``stockpile evaluate``).

The run's lots are held fixed and only the recourse of every scenario is re-optimised: the
same model with n_min = n_max = the lots (``model.build_model(inst, lots)``), solved by the
decomposition's recourse (closed form where it is exact, LP batches elsewhere)
at that one first-stage point, in chunks of scenarios that run in parallel (local processes
or a Dask cluster).

evaluation.json: with Q_s one year's recourse cost of scenario s (shortfall, releases and lending
fees), each scenario once per build year y with weight W_y (the discounted years drawing on that
year's holding, R = sum_y W_y), and omega_s = pi_s W_y / R: a year's mean = sum omega_s Q_s,
std = sqrt(sum omega_s (Q_s - mean)^2), VaR and CVaR at the run's risk.cvar_alpha, and the total
expected cost first_stage + R mean with its 95% interval first_stage + R (mean +- 1.96 std /
sqrt(n_eff)), n_eff = 1 / sum omega_s^2 (the count for equally likely sampled scenarios). One
build year and one year held: omega = pi, R = 1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpile.config import Config, Scenario, read_yaml, validate
from stockpile.errors import OptionError
from stockpile.jsontypes import JSON
from stockpile.results.outputs import write_csv, write_json
from stockpile.results.runs import read_run_config, run_lots

log = logging.getLogger(__name__)

EVALUATION_COLUMNS = [
    "scenario",
    "probability",
    "year",
    "weight",
    "recourse_usd",
    "shortfall_usd",
    "lending_usd",
    "unmet_t",
    "coverage_share",
]
CHUNK_SCENARIOS = 2_000  # scenarios per parallel chunk
Z95 = 1.959963984540054

Progress = Callable[[int, int], None]  # (chunks done, chunks)


def evaluate_chunk(payload: dict[str, Any]) -> dict[str, list[Any]]:
    """Recourse of each scenario of one chunk for the fixed lots (runs in a worker process)."""
    from stockpile.api import lot_array, offtake_array
    from stockpile.model.families import build_model
    from stockpile.model.instance import build_instance
    from stockpile.model.plan import plan_from_solution, scenario_recourse
    from stockpile.solver.benders.batches import Recourse
    from stockpile.solver.benders.structure import Structure

    cfg = validate(payload["config"], "evaluation chunk")
    if "sample" in payload:  # draw this chunk of the sample here, in the worker
        from stockpile.config.sampling import sample_scenarios

        count, seed, start, stop = payload["sample"]
        cfg.scenarios = [
            sc.model_copy(update={"probability": 1.0 / (stop - start)})
            for sc in sample_scenarios(cfg, count, seed, range(start, stop))
        ]
    inst = build_instance(cfg)
    lm = build_model(inst, lot_array(inst, payload["lots"]), offtake_array(inst, payload["lots"]))
    st = Structure.of(lm)
    z = lm.lb[st.first_cols].copy()
    evaluated = Recourse.of(st).evaluate(z, None)
    assert evaluated is not None  # no deadline
    plan = plan_from_solution(lm, evaluated[2], inst)
    q = scenario_recourse(inst, plan)
    c = plan.cells
    S = len(inst.scenarios)
    short = np.bincount(c["s"], plan.damage(inst), S)
    unmet = np.bincount(c["s"], plan.unmet, S)
    need = np.bincount(c["s"], inst.shortfall[c["s"], c["p"], c["m"], c["t"]], S)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(need > 0, 1.0 - unmet / np.where(need > 0, need, 1.0), 1.0)
    return {
        "scenario": list(inst.scenarios),
        "year": (inst.scen_year + 1).tolist(),
        "weight": inst.scen_weight.tolist(),
        "recourse_usd": q.tolist(),
        "shortfall_usd": short.tolist(),
        "lending_usd": (q - short).tolist(),
        "unmet_t": unmet.tolist(),
        "coverage_share": share.tolist(),
    }


def scenarios_from(cfg: Config, source: str | None, sample: tuple[int, int] | None) -> list[Scenario] | tuple[int, int]:
    """The scenarios to evaluate: a config-format file's `scenarios` (a list or a sample), a
    sample (count, seed) from the run's events (drawn by the workers), or the run's own."""
    if source is not None and sample is not None:
        raise OptionError("give a scenarios file or --sample, not both")
    if sample is not None:
        if not cfg.events:
            raise OptionError("--sample needs `events` in the run's config (see docs/model.md, sampled scenarios)")
        return sample
    if source is None:
        return cfg.scenario_list
    doc = read_yaml(source)
    if not isinstance(doc.data, dict) or "scenarios" not in doc.data:
        raise OptionError(f"{source}: expected a YAML file with a `scenarios` list (as `stockpile scenarios` writes)")
    data = {**cfg.resolved_dict(), "scenarios": doc.data["scenarios"]}
    return validate(data, source, doc).scenario_list


@dataclass(frozen=True)
class Evaluation:
    """evaluation.json's figures (in this order): a plan's first-stage cost plus its recourse's mean,
    spread, 95% interval and tail over the scenarios it was evaluated on."""

    count: int
    first_stage_usd: float
    mean_recourse_usd: float
    std_recourse_usd: float
    expected_total_usd: float
    ci95_low_usd: float
    ci95_high_usd: float
    var_recourse_usd: float
    cvar_recourse_usd: float
    cvar_alpha: float
    effective_count: float  # 1 / sum p^2: the sample size the interval's width stands for
    scenarios: str | None = None  # where they came from: a file, "sampled" or "the run's own"
    sample: dict[str, int] | None = None  # count and seed of a sample

    def to_dict(self) -> JSON:
        return {k: v for k, v in asdict(self).items() if v is not None}


def summarise(table: pd.DataFrame, first_stage: float, alpha: float) -> Evaluation:
    """evaluation.json's figures from the per-scenario table (module docstring)."""
    from stockpile.model.plan import var_cvar

    years = float(table.groupby("year").weight.first().sum())
    p = table.probability.to_numpy() * table.weight.to_numpy()
    p = p / p.sum()
    q = table.recourse_usd.to_numpy()
    mean = float(p @ q)
    std = math.sqrt(float(p @ (q - mean) ** 2))
    n_eff = 1.0 / float(p @ p)
    half = Z95 * std / math.sqrt(n_eff)
    var, cvar = var_cvar(q, p, alpha)
    return Evaluation(
        count=len(table),
        first_stage_usd=first_stage,
        mean_recourse_usd=mean,
        std_recourse_usd=std,
        expected_total_usd=first_stage + years * mean,
        ci95_low_usd=first_stage + years * (mean - half),
        ci95_high_usd=first_stage + years * (mean + half),
        var_recourse_usd=var,
        cvar_recourse_usd=cvar,
        cvar_alpha=alpha,
        effective_count=n_eff,
    )


def evaluate_plan(
    cfg: Config,
    lots: dict[str, dict[str, int]],
    scenarios: list[Scenario] | tuple[int, int],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """evaluation.csv's table: each scenario's recourse for the fixed lots, chunks in parallel.

    scenarios: a list, or (count, seed) of a sample from cfg's events, which each worker draws
    for its own chunk (the parent then only splits the work)."""
    from stockpile.analysis.runner import parallel_map

    resolved = cfg.resolved_dict()
    resolved["risk"] = {**resolved["risk"], "cvar_weight": 0.0}  # the recourse of each scenario alone
    resolved["solver"] = {**resolved["solver"], "threads": 1}
    placeholder = [{"name": "chunk", "probability": 1.0}]  # replaced in the worker
    payloads: list[dict[str, Any]] = []
    if isinstance(scenarios, tuple):
        count, seed = scenarios
        for i in range(0, count, CHUNK_SCENARIOS):
            chunk = (count, seed, i, min(i + CHUNK_SCENARIOS, count))
            payloads.append({"config": {**resolved, "scenarios": placeholder}, "lots": lots, "sample": chunk})
        probability = [1.0 / count] * count * cfg.horizon.years
    else:
        for i in range(0, len(scenarios), CHUNK_SCENARIOS):
            part = scenarios[i : i + CHUNK_SCENARIOS]
            listed = [{**sc.model_dump(mode="json", by_alias=True), "probability": 1.0 / len(part)} for sc in part]
            payloads.append({"config": {**resolved, "scenarios": listed}, "lots": lots})
        probability = [
            sc.probability
            for i in range(0, len(scenarios), CHUNK_SCENARIOS)
            for _ in range(cfg.horizon.years)
            for sc in scenarios[i : i + CHUNK_SCENARIOS]
        ]
    answers = parallel_map(evaluate_chunk, payloads, workers, scheduler, progress)
    table = pd.concat([pd.DataFrame(a) for a in answers], ignore_index=True)
    table.insert(1, "probability", probability)
    log.info("evaluated %d scenarios in %d chunks", len(table), len(payloads))
    return table[EVALUATION_COLUMNS]


def first_stage_cost(summary: dict[str, Any]) -> float:
    """The run's plan cost whatever happens (buying, programmes, holding, offtake): the model's
    first-stage cost kinds, so a new one is counted without a change here."""
    from stockpile.enums import FIRST_STAGE_COST_KEYS

    return float(sum(summary["costs"].get(k, 0.0) for k in FIRST_STAGE_COST_KEYS))


def evaluate_run(
    run_dir: str | Path,
    source: str | None = None,
    sample: tuple[int, int] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, Evaluation]:
    """Evaluate a run's plan on other scenarios; write evaluation.csv and evaluation.json into the run."""
    run_dir = Path(run_dir)
    cfg, summary = read_run_config(run_dir)
    scen = scenarios_from(cfg, source, sample)
    table = evaluate_plan(cfg, run_lots(run_dir), scen, workers, scheduler, progress)
    measures = replace(
        summarise(table, first_stage_cost(summary), cfg.risk.cvar_alpha),
        scenarios=source or ("sampled" if sample else "the run's own"),
        sample=None if sample is None else {"count": sample[0], "seed": sample[1]},
    )
    write_csv(table, run_dir / "evaluation.csv")
    write_json(measures.to_dict(), run_dir / "evaluation.json")
    return table, measures
