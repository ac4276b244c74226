"""Invariants on solved configs, determinism, and the formulation's regression LP file."""

from __future__ import annotations

import filecmp
import json
import os

import pandas as pd
import pytest
from conftest import ROOT, checked_solve

from stockpile import export_model, load_config
from stockpile.results.check import check_run

DATA = ROOT / "tests" / "data"


@pytest.mark.parametrize("solver", ["highs", "scip"])
def test_default_config_solves_and_verifies(tmp_path, default_config, solver):
    res = checked_solve(load_config(default_config, [("solver.name", solver)]))
    assert res.status == "optimal"
    assert res.summary.gap <= 1e-4
    run = res.write(tmp_path / solver)
    assert check_run(run) == []
    costs = res.summary.costs
    assert sum(costs.values()) == pytest.approx(res.summary.objective_usd, rel=1e-12)
    assert res.summary.best_bound_usd <= res.summary.objective_usd


def test_default_config_solvers_agree(default_config):
    objs = [
        checked_solve(
            load_config(default_config, [("solver.name", s), ("solver.relative_gap", 1e-7)])
        ).summary.objective_usd
        for s in ("highs", "scip")
    ]
    assert objs[0] == pytest.approx(objs[1], rel=1e-6)


def test_checker_catches_tampering(tmp_path, default_config):
    run = checked_solve(load_config(default_config)).write(tmp_path / "run")
    sched = pd.read_csv(run / "schedule.csv")
    i = sched.index[sched.release_t > 0][0]
    sched.loc[i, "release_t"] += 5.0
    sched.to_csv(run / "schedule.csv", index=False)
    rules = {v.rule for v in check_run(run)}
    assert {"demand balance", "inventory balance"} <= rules
    hold = pd.read_csv(run / "holdings.csv")
    hold.loc[0, "lots"] += 1
    hold.to_csv(run / "holdings.csv", index=False)
    assert "holding arithmetic" in {v.rule for v in check_run(run)}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["exposure_years"] == 5 and summary["year_weights"][1] == pytest.approx(1 / 1.02)
    summary["year_weights"] = summary["year_weights"][:-1]  # one year protected fewer
    (run / "summary.json").write_text(json.dumps(summary))
    assert "years protected" in {v.rule for v in check_run(run)}


def test_same_config_same_bytes(tmp_path, default_config):
    a = checked_solve(load_config(default_config)).write(tmp_path / "a")
    b = checked_solve(load_config(default_config)).write(tmp_path / "b")
    for name in ("holdings.csv", "schedule.csv", "coverage.csv", "lending.csv", "config.resolved.yaml"):
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_lp_formulation_regression(tmp_path):
    """The small model's LP file equals the saved one; regenerate with STOCKPILE_REGEN_LP=1."""
    cfg = load_config(DATA / "formulation.yaml")
    path = export_model(cfg, tmp_path / "formulation.lp")
    saved = DATA / "formulation.lp"
    if os.environ.get("STOCKPILE_REGEN_LP"):
        saved.write_text(path.read_text())
    assert path.read_text() == saved.read_text()


def test_lending_reduces_cost(tmp_path, default_config):
    with_lending = checked_solve(load_config(default_config))
    without = checked_solve(load_config(default_config, [("lending", [])]))
    assert without.summary.objective_usd >= with_lending.summary.objective_usd * (1 - 1e-4)


def test_config_reference_is_current():
    from stockpile.tools.docs import config_reference

    assert (ROOT / "docs" / "config.md").read_text().strip() == config_reference().strip(), (
        "docs/config.md is stale: run `stockpile schema > docs/config.md`"
    )
