"""The decomposition against the extensive form and exhaustive enumeration."""

from __future__ import annotations

import pytest
from bruteforce import brute_force, random_config
from conftest import ROOT, checked_solve, solve_dict

from stockpile import load_config
from stockpile.config import validate
from stockpile.generate import generate


@pytest.mark.parametrize("seed", range(30))
def test_benders_matches_enumeration(tmp_path, seed):
    cfg = random_config(seed)
    best = brute_force(cfg)
    res = solve_dict(tmp_path, cfg, method="benders", relative_gap=0.0, time_limit_s=30.0)
    if best is None:
        assert res.status == "infeasible"
        return
    assert res.status == "optimal", res.summary
    assert res.summary["objective_usd"] == pytest.approx(best[0], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size", [(2, 5, 10, 12), (3, 4, 25, 6)])
def test_benders_agrees_with_extensive(tmp_path, seed, size):
    data = generate(*size, seed=seed)
    data["solver"]["relative_gap"] = 1e-6
    ext = solve_dict(tmp_path, data, "ext", method="extensive")
    ben = solve_dict(tmp_path, data, "ben", method="benders")
    assert ext.status == ben.status == "optimal"
    e, b = ext.summary, ben.summary
    assert b["objective_usd"] == pytest.approx(e["objective_usd"], rel=2e-6)
    assert b["best_bound_usd"] <= e["objective_usd"] * (1 + 1e-7)  # LP tolerances
    assert e["best_bound_usd"] <= b["objective_usd"] * (1 + 1e-7)
    assert b["iterations"]["cuts"] > 0


def test_benders_on_default_config(tmp_path, default_config):
    ext = checked_solve(load_config(default_config, [("solver.method", "extensive"), ("solver.relative_gap", 1e-7)]))
    ben = checked_solve(load_config(default_config, [("solver.method", "benders"), ("solver.relative_gap", 1e-7)]))
    assert ben.summary["objective_usd"] == pytest.approx(ext.summary["objective_usd"], rel=1e-6)
    from stockpile.check import check_run

    assert check_run(ben.write(tmp_path / "ben")) == []


def test_threads_do_not_change_the_answer():
    data = generate(2, 6, 40, 12, seed=3)
    data["solver"].update(method="benders")
    one = checked_solve(validate({**data, "solver": {**data["solver"], "threads": 1}}))
    two = checked_solve(validate({**data, "solver": {**data["solver"], "threads": 2}}))
    assert one.summary["objective_usd"] == two.summary["objective_usd"]
    assert one.holdings.equals(two.holdings)


def test_auto_picks_by_size():
    small = checked_solve(validate(generate(1, 1, 2, 2, seed=1)))
    big = checked_solve(validate(generate(2, 6, 60, 12, seed=1)))
    assert small.summary["method"] == "extensive"
    assert big.summary["method"] == "benders"


def test_generated_configs_are_valid_and_reproducible():
    a, b = generate(3, 20, 50, 24, seed=7), generate(3, 20, 50, 24, seed=7)
    assert a == b
    cfg = validate(a)
    assert len(cfg.participants) == 3 and len(cfg.minerals) == 20 and len(cfg.scenarios) == 50
    assert all(1 <= len(s.shocks) <= 4 for s in cfg.scenarios[1:])
    assert generate(3, 20, 50, 24, seed=8) != a


@pytest.mark.parametrize("seed", range(3))
def test_extensive_solvers_agree_on_generated(seed):
    data = generate(2, 5, 10, 12, seed=seed)
    data["solver"].update(method="extensive", relative_gap=1e-7)
    objs = [
        checked_solve(validate({**data, "solver": {**data["solver"], "name": s}})).summary["objective_usd"]
        for s in ("highs", "scip")
    ]
    assert objs[0] == pytest.approx(objs[1], rel=2e-7)


def test_an_evaluation_past_its_deadline_gives_no_plan():
    """The time limit is kept even while the first plan is evaluated: a batch not yet
    started when the deadline passes is skipped and the evaluation reports nothing."""
    import numpy as np

    from stockpile.benders import Recourse, Structure
    from stockpile.instance import build_instance
    from stockpile.model import build_model

    data = generate(2, 3, 20, 6, seed=5)
    lm = build_model(build_instance(validate(data)))
    st = Structure.of(lm)
    rec = Recourse.of(st)
    assert rec.batches, "the generated config has lending, so its blocks go to the LP path"
    z = lm.lb[st.first_cols].copy()
    assert rec.evaluate(z, None, deadline=0.0) is None
    Q, grad, values = rec.evaluate(z, None)
    assert np.isfinite(Q).all() and grad.shape == (z.size, st.aggregates)


def test_a_master_bound_above_a_plan_in_hand_is_not_trusted():
    """tests/data/scip_bound.yaml: SCIP bounded the master at $192.07bn while a $191.89bn plan was
    in hand; the true optimum is $186.58bn. The decomposition must re-check such a bound, not stop."""
    path = ROOT / "tests" / "data" / "scip_bound.yaml"
    exact = checked_solve(load_config(path, [("solver.method", "extensive"), ("solver.relative_gap", 1e-9)]))
    res = checked_solve(load_config(path))  # benders at gap 1e-6, as the fuzz test found it
    assert res.summary["objective_usd"] == pytest.approx(exact.summary["objective_usd"], rel=2e-6)
    assert res.summary["best_bound_usd"] <= exact.summary["objective_usd"] * (1 + 1e-9)


@pytest.mark.xfail(
    strict=True, reason="known: master MIPs with coefficients near 1e11 defeat SCIP (see docs/numerics.md)"
)
@pytest.mark.parametrize("name", ["master_numerics_a", "master_numerics_b"])
def test_decomposition_on_masters_with_extreme_coefficients(name):
    """Two random configs the fuzz test found: the decomposition does not reach the extensive
    optimum. Strict: when the master's numerics are mended, these pass and this marker must go."""
    path = ROOT / "tests" / "data" / f"{name}.yaml"
    exact = load_config(path, [("solver.method", "extensive"), ("solver.relative_gap", 1e-9)])
    res = checked_solve(load_config(path))
    assert res.status == "optimal"
    assert res.summary["objective_usd"] == pytest.approx(checked_solve(exact).summary["objective_usd"], rel=2e-6)
