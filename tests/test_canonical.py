"""Canonical release schedules: the repair keeps the cost, removes every break, and the verifier sees breaks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from stockpile import api, load_config
from stockpile.backends import solve_model
from stockpile.canonical import canonical_schedule
from stockpile.check import check_run
from stockpile.config import validate
from stockpile.generate import generate
from stockpile.instance import build_instance
from stockpile.model import build_model
from stockpile.results import early_cover_gaps, flows, plan_from_solution


def _gaps(inst, lm, x) -> float:
    plan = plan_from_solution(lm, x, inst)
    return float(early_cover_gaps(inst, plan, flows(inst, plan)).sum())


@pytest.mark.parametrize(
    "cfg",
    [
        load_config(ROOT / "configs" / "us_japan.yaml"),
        *(validate(generate(2, 4, 8, 6, seed=s) | {"solver": {"relative_gap": 1e-9}}) for s in range(4)),
    ],
    ids=["default", *(f"generated{s}" for s in range(4))],
)
def test_repair_keeps_the_cost_and_removes_every_break(cfg):
    inst = build_instance(cfg)
    lm = build_model(inst)
    out = solve_model(lm, "highs", 60, cfg.solver.relative_gap)
    new, saving = canonical_schedule(inst, lm, out.x)
    assert _gaps(inst, lm, new) == 0.0
    before, after = lm.c @ out.x, lm.c @ new
    assert after <= before + 1e-9 * abs(before)
    assert after == pytest.approx(before - saving, rel=1e-12, abs=1e-6)
    act = lm.A @ new
    assert np.all(act >= lm.row_lb - 1e-6) and np.all(act <= lm.row_ub + 1e-6)
    assert np.all(new >= lm.lb - 1e-6) and np.all(new <= lm.ub + 1e-6)


def test_the_default_solvers_schedule_needs_the_repair():
    """Not a vacuous rule: the solver's own schedule on the default config breaks it."""
    cfg = load_config(ROOT / "configs" / "us_japan.yaml")
    inst = build_instance(cfg)
    lm = build_model(inst)
    out = solve_model(lm, "highs", 60, cfg.solver.relative_gap)
    assert _gaps(inst, lm, out.x) > 0


def test_the_verifier_reports_a_schedule_that_is_not_canonical(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "canonical_schedule", lambda inst, lm, x: (x, 0.0))
    run = api.solve(load_config(ROOT / "configs" / "us_japan.yaml")).write(tmp_path / "run")
    rules = {v.rule for v in check_run(run)}
    assert rules == {"canonical schedule"}
