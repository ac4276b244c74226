"""Phase: out-of-sample evaluation (stockpile evaluate) of the sampled default config's plan.

The plan is solved once on the config's 1,000 scenarios; the benchmark re-optimises its
recourse on fresh samples: 2,000 (small, one worker), 20,000 and 100,000 (every core).
"""

from functools import cache

import pytest
from sizes import ROOT

from stockpile import load_config, solve
from stockpile.evaluate import evaluate_plan

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
