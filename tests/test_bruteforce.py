"""The optimizer against exhaustive enumeration on random tiny configs."""

from __future__ import annotations

import pytest
from bruteforce import brute_force, random_config, with_project
from conftest import solve_dict

SEEDS = range(30)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_enumeration(tmp_path, seed):
    cfg = random_config(seed)
    best = brute_force(cfg)
    res = solve_dict(tmp_path, cfg)
    if best is None:
        assert res.status == "infeasible"
        assert res.summary.reasons
        return
    assert res.status == "optimal", res.summary
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("seed", range(0, 30, 5))
def test_scip_matches_enumeration(tmp_path, seed):
    cfg = random_config(seed)
    best = brute_force(cfg)
    if best is None:
        pytest.skip("infeasible instance")
    res = solve_dict(tmp_path, cfg, "scip", name="scip")
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("method", ["extensive", "benders"])
@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(0, 30, 6))
def test_cvar_objective_matches_enumeration(tmp_path, seed, w, method):
    """First stage + (1 - w) E[Q] + w CVaR_alpha(Q) against every lot vector, each scenario's recourse
    solved alone and CVaR computed from the scenario costs."""
    cfg = random_config(seed)
    cfg["risk"] = {"cvar_alpha": [0.5, 0.8][seed % 2], "cvar_weight": w}
    best = brute_force(cfg)
    if best is None:
        pytest.skip("infeasible instance")
    res = solve_dict(tmp_path, cfg, method=method, relative_gap=0.0)
    assert res.status == "optimal", res.summary
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("method", ["extensive", "benders"])
@pytest.mark.parametrize("seed", [*range(0, 30, 3), 32, 45])  # 32 and 45 lend offtake onward
def test_offtake_matches_enumeration(tmp_path, seed, method):
    """Offtake from an allied project (in lots) and every lot vector enumerated together."""
    cfg = with_project(random_config(seed), seed)
    best = brute_force(cfg)
    res = solve_dict(tmp_path, cfg, method=method, relative_gap=0.0)
    if best is None:
        assert res.status == "infeasible"
        return
    assert res.status == "optimal", res.summary
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)
