"""Phase: out-of-sample evaluation (stockpile evaluate) of the sampled default config's plan.

The plan is solved once on the config's 1,000 scenarios; the benchmark re-optimises its
recourse on fresh samples: 2,000 (small, one worker), 20,000 and 100,000 (every core). And at
the scenario-sampling issue's size: the plan of a generated 3 x 20 x 24 config whose scenarios
are drawn from suppliers and events (stockpile generate --sampled), on 100,000 fresh scenarios.
"""

from functools import cache

import pytest
from sizes import ROOT

from stockpile import load_config, solve
from stockpile.analysis.evaluate import evaluate_plan
from stockpile.config import validate
from stockpile.tools.generate import generate

COUNTS = {"small": 2_000, "medium": 20_000, "large": 100_000}


@cache
def _plan():
    cfg = load_config(ROOT / "configs" / "us_japan_sampled.yaml")
    hold = solve(cfg).holdings
    return cfg, {p: {m: int(n) for m, n in zip(g.mineral, g.lots)} for p, g in hold.groupby("participant")}


@pytest.mark.parametrize("size", [pytest.param(s, marks=getattr(pytest.mark, s)) for s in COUNTS])
def test_evaluate_sampled(benchmark, size):
    cfg, lots = _plan()
    workers = 1 if size == "small" else None
    table = benchmark.pedantic(evaluate_plan, args=(cfg, lots, (COUNTS[size], 1), workers), rounds=3, iterations=1)
    assert len(table) == COUNTS[size]
    benchmark.extra_info.update(scenarios=COUNTS[size], mean_recourse_usd=float(table.recourse_usd.mean()))


@cache
def _generated_plan():
    cfg = validate(generate(3, 20, 1000, 24, seed=11, sampled=True), "generated sampled config")
    hold = solve(cfg).holdings
    return cfg, {p: {m: int(n) for m, n in zip(g.mineral, g.lots)} for p, g in hold.groupby("participant")}


@pytest.mark.large
def test_evaluate_generated_100k(benchmark):
    """100,000 scenarios at 3 participants x 20 minerals x 24 periods, every core."""
    cfg, lots = _generated_plan()
    table = benchmark.pedantic(evaluate_plan, args=(cfg, lots, (100_000, 1)), rounds=1, iterations=1)
    assert len(table) == 100_000
    benchmark.extra_info.update(scenarios=100_000, mean_recourse_usd=float(table.recourse_usd.mean()))
