"""Canonical release schedules: the repair keeps the cost, removes every break, and the verifier sees breaks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLAT_DAMAGE, ROOT

from stockpile import api, load_config
from stockpile.config import validate
from stockpile.model.core import FIRST_KEY
from stockpile.model.families import build_model
from stockpile.model.instance import build_instance
from stockpile.model.plan import early_cover_gaps, flows, plan_from_solution
from stockpile.results.check import check_run
from stockpile.solver import run as solver_run
from stockpile.solver.backends import solve_model
from stockpile.solver.canonical import canonical_schedule
from stockpile.tools.generate import generate


def _gaps(inst, lm, x) -> float:
    plan = plan_from_solution(lm, x, inst)
    return float(early_cover_gaps(inst, plan, flows(inst, plan)).sum())


@pytest.mark.parametrize(
    "cfg",
    [
        load_config(ROOT / "configs" / "us_japan.yaml", FLAT_DAMAGE),
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
    cfg = load_config(ROOT / "configs" / "us_japan.yaml", FLAT_DAMAGE)
    inst = build_instance(cfg)
    lm = build_model(inst)
    out = solve_model(lm, "highs", 60, cfg.solver.relative_gap)
    assert _gaps(inst, lm, out.x) > 0


def test_the_verifier_reports_a_schedule_that_is_not_canonical(tmp_path, monkeypatch):
    monkeypatch.setattr(solver_run, "canonical_schedule", lambda inst, lm, x: (x, 0.0))
    run = api.solve(load_config(ROOT / "configs" / "us_japan.yaml", FLAT_DAMAGE)).write(tmp_path / "run")
    rules = {v.rule for v in check_run(run)}
    assert rules == {"canonical schedule"}


def test_the_repair_stands_on_tight_cvar_rows(tmp_path, caplog):
    """The decomposition sets each v_s to max(0, t_s - eta) exactly, so the CVaR rows of tail
    scenarios are tight: terms of thousands summing to 0, and its closed forms leave values below
    1e-9 that clean() zeroes. The repair moves such rows by about 1e-9, which must be judged against
    the size of their terms and what clean() drops (judged against the activity, the repair of
    this run was refused and the verifier reported the breaks)."""
    data = generate(3, 8, 400, 24, seed=11)
    data["risk"] = {"cvar_alpha": 0.9, "cvar_weight": 0.1}
    data["solver"].update(method="benders")
    with caplog.at_level("INFO", logger="stockpile.solver.canonical"):
        result = api.solve(validate(data))
    assert "re-ordered" in caplog.text and "breaks a row" not in caplog.text
    assert check_run(result.write(tmp_path / "run")) == []


def test_a_repair_that_breaks_a_row_of_the_model_is_refused(caplog):
    """The repair knows release, unmet and lending only; a row of a family it does not know may
    forbid a move. Here an added row pins one release the repair moves (by more than the
    tolerance for rounding): the solver's schedule must stand, with a warning."""
    from dataclasses import replace

    import scipy.sparse as sp

    cfg = load_config(ROOT / "configs" / "us_japan.yaml", FLAT_DAMAGE)
    inst = build_instance(cfg)
    lm = build_model(inst)
    x = solve_model(lm, "highs", 60, cfg.solver.relative_gap).x
    new, _ = canonical_schedule(inst, lm, x)
    moved = np.nonzero(np.abs(new - x)[lm.var_blocks["r"].index] > 1e-3)[0]
    assert moved.size, "the default config's schedule needs the repair"
    j = lm.var_blocks["r"].start + moved[0]
    pin = sp.csr_matrix(([1.0], ([0], [j])), shape=(1, lm.c.size))
    pinned = replace(
        lm,
        A=sp.vstack([lm.A, pin]).tocsr(),
        row_lb=np.r_[lm.row_lb, x[j]],
        row_ub=np.r_[lm.row_ub, x[j]],
        row_key=np.r_[lm.row_key, FIRST_KEY],
    )
    with caplog.at_level("WARNING", logger="stockpile.solver.canonical"):
        kept, saving = canonical_schedule(inst, pinned, x)
    assert "breaks a row" in caplog.text
    assert np.array_equal(kept, x) and saving == 0.0
