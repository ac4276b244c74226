"""Phase: solve, per method and solver."""

import pytest
from conftest import sized
from sizes import BUILDUP_YEARS, DAMAGE_SEGMENTS, EXTENSIVE_SIZES, ROUNDS, config

from stockpile import solve
from stockpile.enums import SolverName


def _run(benchmark, cfg, size):
    result = benchmark.pedantic(solve, args=(cfg,), rounds=ROUNDS[size], iterations=1, warmup_rounds=1)
    s = result.summary
    assert s.status == "optimal" and s.gap <= cfg.solver.relative_gap
    benchmark.extra_info.update(
        objective_usd=s.objective_usd,
        gap=s.gap,
        build_seconds=s.build_seconds,
        solve_seconds=s.solve_seconds,
        variables=s.sizes["variables"],
        method=s.method,
    )


@sized()
def test_benders(benchmark, size):
    _run(benchmark, config(size, "benders"), size)


@sized()
def test_benders_offtake(benchmark, size):
    """The same instances with two allied projects (benchmarks/sizes.py): what offtake adds."""
    _run(benchmark, config(size, "benders", projects=True), size)


@sized()
def test_benders_cvar(benchmark, size):
    """The same instances with a CVaR objective (risk.cvar_weight 0.1): what risk aversion adds."""
    cfg = config(size, "benders").model_copy(deep=True)
    cfg.risk.cvar_weight = 0.1
    _run(benchmark, cfg, size)


@sized()
def test_benders_damage_curves(benchmark, size):
    """The same instances with three-segment damage curves on every mineral: what convex damage adds
    (its blocks are solved as LPs, the closed forms implementing one segment only)."""
    _run(benchmark, config(size, "benders", segments=DAMAGE_SEGMENTS), size)


@sized()
def test_benders_buildup(benchmark, size):
    """The same instances bought over five fiscal years (stockpile generate --years 5): yearly budgets
    (the total's even share, lapsing), min_days targets rising to the final one; every year faces every scenario."""
    _run(benchmark, config(size, "benders", years=BUILDUP_YEARS), size)


@sized(EXTENSIVE_SIZES)
def test_extensive_buildup(benchmark, size):
    _run(benchmark, config(size, "extensive", years=BUILDUP_YEARS), size)


@sized(EXTENSIVE_SIZES)
@pytest.mark.parametrize("solver", ["highs", "scip"])
def test_extensive(benchmark, size, solver):
    cfg = config(size, "extensive").model_copy(deep=True)
    cfg.solver.name = SolverName(solver)
    _run(benchmark, cfg, size)
