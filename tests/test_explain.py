"""stockpile explain: limits with duals and deltas, and RP/WS/EVPI/EV/EEV/VSS against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import checked_solve, one_mineral

from stockpile import load_config, solve
from stockpile.analysis.explain import explain_run, parse_steps
from stockpile.cli.commands import cli
from stockpile.config import validate
from stockpile.tools.generate import generate


def _explained(tmp_path, data: dict, **kw) -> tuple[pd.DataFrame, dict]:
    result = checked_solve(validate(data))
    run = result.write(tmp_path / "run")
    return explain_run(run, workers=2, **kw)


def test_newsvendor_measures_by_hand(tmp_path):
    """price 100, shortfall 400, g = 1000 t w.p. 0.5 (else calm): a tonne held saves 0.5 x 400 > 100,
    so RP holds 1000 t: 100,000. WS = 0.5 x 100,000 + 0.5 x 0; EV (loss 0.5, g = 500) holds 500 t:
    50,000; that plan in the real scenarios adds 0.5 x 400 x 500 of shortfall: EEV = 150,000."""
    data = one_mineral(
        scenarios=[
            {"name": "cut", "probability": 0.5, "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": 1}]},
            {"name": "calm", "probability": 0.5},
        ]
    )
    _, m = _explained(tmp_path, data)
    assert m.rp_usd == pytest.approx(100_000, rel=1e-9)
    assert m.ws_usd == pytest.approx(50_000, rel=1e-9)
    assert m.evpi_usd == pytest.approx(50_000, rel=1e-9)
    assert m.ev_usd == pytest.approx(50_000, rel=1e-9)
    assert m.eev_usd == pytest.approx(150_000, rel=1e-9)
    assert m.vss_usd == pytest.approx(50_000, rel=1e-9)
    assert m.ws_by_scenario_usd == pytest.approx({"cut": 100_000, "calm": 0.0})


def test_one_scenario_has_no_value_of_information_or_of_the_stochastic_solution(tmp_path):
    data = one_mineral(
        scenarios=[
            {"name": "cut", "probability": 1, "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": 0.3}]}
        ]
    )
    _, m = _explained(tmp_path, data)
    assert m.rp_usd == pytest.approx(30_000, rel=1e-9)
    for key in ("ws_usd", "ev_usd", "eev_usd"):
        assert getattr(m, key) == pytest.approx(30_000, rel=1e-9)
    assert m.evpi_usd == pytest.approx(0, abs=1e-6) and m.vss_usd == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_evpi_and_vss_are_not_negative(tmp_path, seed):
    data = generate(2, 2, 4, 3, seed=seed)
    data["solver"].update(relative_gap=1e-9, method="extensive")
    table, m = _explained(tmp_path, data)
    scale = 1e-7 * max(1.0, m.rp_usd)
    assert m.evpi_usd >= -scale
    assert m.vss_usd is not None and m.vss_usd >= -scale
    assert m.ws_usd <= m.rp_usd + scale <= m.eev_usd + 2 * scale
    # relaxing a limit never costs more (to the gap)
    assert (table.delta_objective_usd.dropna() <= scale).all()


def test_default_config_explained(tmp_path, default_config):
    """Japan's budget binds and relaxing it saves; every delta is what a --set re-solve gives, to the gap;
    the floor's LP dual matches a finite difference of the fixed-lot LP."""
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(cli, ["solve", str(default_config), "--out", str(run), "--explain", "--quiet"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(run / "limits.csv", keep_default_na=False, na_values=[""])
    jp = table[(table.limit == "budget_usd") & (table.participant == "JP")].iloc[0]
    assert bool(jp.binds) and jp.delta_objective_usd < 0
    rp = json.loads((run / "summary.json").read_text())["objective_usd"]
    gap = load_config(default_config).solver.relative_gap
    for row in table.dropna(subset=["delta_objective_usd"]).itertuples():
        key, value = row.override.split("=", 1)
        relaxed = solve(load_config(default_config, [(key, json.loads(value))]))
        assert relaxed.summary.objective_usd - rp == pytest.approx(row.delta_objective_usd, abs=gap * rp), row
    m = json.loads((run / "explain.json").read_text())
    assert m["evpi_usd"] > 0 and m["vss_usd"] > 0
    res = runner.invoke(cli, ["check", str(run)])
    assert res.exit_code == 0, res.output


def test_duals_match_finite_differences(tmp_path):
    """dual_usd_per_unit of the rate, floor and lending-share limits: the fixed-lot LP's saving per unit."""
    from stockpile.api import lot_array
    from stockpile.model.families import build_model
    from stockpile.model.instance import build_instance
    from stockpile.solver.backends import solve_model

    data = generate(2, 3, 6, 4, seed=2)
    data["solver"].update(relative_gap=1e-9, method="extensive")
    for p in data["participants"].values():
        p.update(release_rate_max=0.3, reserve_floor=0.2)
    for arc in data["lending"]:
        arc["max_share"] = 0.3
    table, _ = _explained(tmp_path, data)
    hold = pd.read_csv(tmp_path / "run" / "holdings.csv")
    lots = {p: {m: int(n) for m, n in zip(g.mineral, g.lots)} for p, g in hold.groupby("participant")}

    def fixed_lp(cfg_data: dict) -> float:
        inst = build_instance(validate(cfg_data))
        lm = build_model(inst, lot_array(inst, lots))
        lm.integer[:] = False
        return solve_model(lm, "highs", 60, 0).objective

    base = fixed_lp(data)
    h = 1e-4
    checked = 0
    for row in table.itertuples():
        if row.limit not in ("release_rate_max", "reserve_floor", "lending_max_share"):
            continue
        moved = json.loads(json.dumps(data))
        if row.limit == "lending_max_share":
            a = [f"{x['from']}->{x['to']}" for x in moved["lending"]].index(row.arc)
            moved["lending"][a]["max_share"] += h
        else:
            moved["participants"][row.participant][row.limit] += -h if row.limit == "reserve_floor" else h
        saving = (base - fixed_lp(moved)) / h
        assert saving == pytest.approx(row.dual_usd_per_unit, rel=1e-3, abs=1e-3 * max(1.0, abs(base))), row
        checked += 1
    assert checked >= 4


def test_step_option():
    steps = parse_steps(["budget_usd=20%", "reserve_floor=0.02"])
    assert steps["budget_usd"] == (0.2, True) and steps["reserve_floor"] == (0.02, False)
    res = CliRunner().invoke(cli, ["explain", ".", "--step", "budgets=10%"])
    assert res.exit_code != 0 and "unknown limit 'budgets'" in res.output
    res = CliRunner().invoke(cli, ["explain", ".", "--step", "budget_usd=-3"])
    assert res.exit_code != 0 and "positive number" in res.output


def test_explain_refuses_a_folder_that_is_not_a_run(tmp_path):
    res = CliRunner().invoke(cli, ["explain", str(tmp_path)])
    assert res.exit_code != 0 and "not a finished run folder" in res.output
    assert "Traceback" not in res.output


def test_evaluating_a_given_plan_matches_the_optimum_at_that_plan():
    """solve(lots=...) fixes the first stage: at the optimum's own lots it gives the optimum."""
    cfg = validate(generate(2, 3, 5, 4, seed=4) | {"solver": {"relative_gap": 1e-9}})
    best = solve(cfg)
    lots = {p: {m: int(n) for m, n in zip(g.mineral, g.lots)} for p, g in best.holdings.groupby("participant")}
    again = solve(cfg, lots=lots)
    assert again.summary.objective_usd == pytest.approx(best.summary.objective_usd, rel=1e-7)
    zero = solve(cfg, lots={})
    assert np.all(zero.holdings.lots == 0) or zero.summary.status == "infeasible"
