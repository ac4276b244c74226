"""Phase: the rapid response (stockpile respond, stockpile simulate).

small: `respond` on the bundled state (month 3 of the gallium and germanium controls on the
default config: three continuations, solved coordinated, alone and clairvoyant).
medium: `simulate --all` on a generated 2 participants x 10 minerals x 100 scenarios x 24
periods run, every core: each disrupted scenario replayed month by month, coordinated and alone.
"""

from functools import cache

import pytest
from sizes import ROOT

from stockpile import solve
from stockpile.analysis.respond import resolve_state, respond
from stockpile.analysis.simulate import simulate_run
from stockpile.config import validate
from stockpile.tools.generate import generate


@pytest.mark.small
def test_respond_default(benchmark):
    sit = resolve_state(ROOT / "configs" / "states" / "ga_ge_month3.yaml")
    resp = benchmark(respond, sit)
    assert resp.summary["status"] == "optimal"
    benchmark.extra_info.update(continuations=len(sit.names), expected_cost_usd=resp.summary["expected_cost_usd"])


@cache
def _run(folder: str) -> str:
    result = solve(validate(generate(2, 10, 100, 24, seed=1), "generated"))
    return str(result.write(folder))


@pytest.mark.medium
def test_simulate_all(benchmark, tmp_path_factory):
    run = _run(str(tmp_path_factory.getbasetemp() / "simulate_run"))
    table, m = benchmark.pedantic(simulate_run, args=(run,), rounds=3, iterations=1)
    assert len(m.scenarios) > 0 and len(table) > 0
    benchmark.extra_info.update(scenarios=len(m.scenarios), rows=len(table))
