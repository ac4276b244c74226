"""Sample-average approximation with statistical bounds (``stockpile saa``).

The multiple-replication procedure of Mak, Morton and Wood (1999):

* R independent samples of N scenarios (seeds S + 1 .. S + R) are solved as optimisation
  problems; their optima z*_r estimate a lower bound: E[z*_N] <= z*. L = mean z*_r with
  the two-sided 95% interval L +- t_{R-1, 0.975} s_L / sqrt(R).
* Each replication's plan is a candidate; each is evaluated on the same M fresh scenarios
  (seed S + R + 1: common random numbers): U_r = c(x_r) + mean Q(x_r), with its normal 95%
  interval. The best candidate x^ is the one with the lowest U.
* The optimality gap of x^: on each replication's own sample r, G_r = [c(x^) + mean_r
  Q(x^)] - z*_r >= 0; mean G with the one-sided 95% bound mean G + t_{R-1, 0.95} s_G / sqrt(R).

Outputs: saa.json (bounds and gap), saa.csv (one row per replication) and the best plan as
a normal run folder (``best/``); the replications' run folders stay under ``cases/``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from stockpile.analysis.evaluate import evaluate_plan, first_stage_cost, summarise
from stockpile.analysis.runner import Case, Progress, Results, run_cases
from stockpile.config import Config, validate
from stockpile.enums import has_plan
from stockpile.errors import OptionError
from stockpile.results.outputs import write_csv, write_folder, write_json
from stockpile.results.runs import run_lots

log = logging.getLogger(__name__)


def replication_cases(cfg: Config, count: int, replications: int, seed: int) -> list[Case]:
    """One case per replication: the config with `count` scenarios drawn with seed + r."""
    if not cfg.events:
        raise OptionError("stockpile saa samples scenarios: the config needs `suppliers` and `events`")
    resolved = cfg.resolved_dict()
    cases = []
    width = len(str(replications))
    for r in range(1, replications + 1):
        data = {**resolved, "scenarios": {"sample": {"count": count, "seed": seed + r}}}
        data["solver"] = {**data["solver"], "threads": 1}
        case_cfg = validate(data, f"saa replication {r}")
        case_cfg._provenance = {**cfg.provenance, "saa": {"replication": r, "seed": seed + r}}
        cases.append(Case(f"rep_{r:0{width}d}", {"scenarios.sample.seed": seed + r}, case_cfg))
    return cases


def t_quantile(q: float, n: int) -> float:
    return float(stats.t.ppf(q, n - 1)) if n > 1 else math.inf


def run_saa(
    cfg: Config,
    out: Path,
    count: int,
    replications: int,
    evaluate_count: int,
    seed: int,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Solve the replications, evaluate their plans, write saa.json, saa.csv and best/."""
    if replications < 2:
        raise OptionError("--replications must be at least 2 for a confidence interval")
    cases = replication_cases(cfg, count, replications, seed)
    results: Results = {}
    run_cases(cases, out, results, workers, scheduler, progress)
    solved = [c for c in cases if has_plan((results.get(c.name, (None, None))[0] or {}).get("status"))]
    if len(solved) < 2:
        raise OptionError(f"only {len(solved)} of {replications} replications have a plan; see {out}/cases")
    fresh = (evaluate_count, seed + replications + 1)
    rows = []
    lots = {}
    for c in solved:
        summary = results[c.name][0]
        assert summary is not None
        lots[c.name] = run_lots(out / "cases" / c.name)
        table = evaluate_plan(cfg, lots[c.name], fresh, workers, scheduler)
        upper = summarise(table, first_stage_cost(summary), cfg.risk.cvar_alpha)
        rows.append(
            {
                "replication": c.name,
                "seed": c.overrides["scenarios.sample.seed"],
                "status": summary["status"],
                "objective_usd": summary["objective_usd"],
                "gap": summary.get("gap"),
                "first_stage_usd": first_stage_cost(summary),
                "upper_usd": upper.expected_total_usd,
                "upper_ci95_low_usd": upper.ci95_low_usd,
                "upper_ci95_high_usd": upper.ci95_high_usd,
            }
        )
    df = pd.DataFrame(rows)
    best = df.loc[df.upper_usd.idxmin()]
    # gap of the best plan on each replication's own sample (common random numbers)
    best_first = float(best.first_stage_usd)
    gaps = []
    for c in solved:
        own = evaluate_plan(
            cfg, lots[best.replication], (count, c.overrides["scenarios.sample.seed"]), workers, scheduler
        )
        summary = results[c.name][0]
        assert summary is not None  # a solved replication
        # the plan's cost on that sample as the objective counts it: every year protected faces it
        gaps.append(summarise(own, best_first, cfg.risk.cvar_alpha).expected_total_usd - summary["objective_usd"])
    df["best_plan_gap_usd"] = gaps
    z = df.objective_usd.to_numpy()
    R = len(z)
    lower = float(z.mean())
    half = t_quantile(0.975, R) * float(z.std(ddof=1)) / math.sqrt(R)
    g = np.array(gaps)
    gap_mean = float(g.mean())
    gap_bound = gap_mean + t_quantile(0.95, R) * float(g.std(ddof=1)) / math.sqrt(R)
    head = {
        "sample_count": count,
        "replications": R,
        "evaluate_count": evaluate_count,
        "seed": seed,
        "lower_bound_usd": lower,
        "lower_ci95_low_usd": lower - half,
        "lower_ci95_high_usd": lower + half,
        "best_replication": str(best.replication),
        "upper_bound_usd": float(best.upper_usd),
        "upper_ci95_low_usd": float(best.upper_ci95_low_usd),
        "upper_ci95_high_usd": float(best.upper_ci95_high_usd),
        "gap_usd": gap_mean,
        "gap_ci95_high_usd": gap_bound,
        "gap_relative": gap_mean / max(abs(float(best.upper_usd)), 1.0),
        "best_lots": lots[best.replication],
    }
    write_csv(df, out / "saa.csv")
    write_json(head, out / "saa.json")
    source = out / "cases" / str(best.replication)
    write_folder(out / "best", {f.name: f.read_bytes() for f in source.iterdir() if f.is_file()})
    log.info("saa: lower %.6g, upper %.6g, gap %.3g", lower, head["upper_bound_usd"], gap_mean)
    return head
