"""stockpile evaluate (a plan on other scenarios) and stockpile saa (statistical bounds)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, checked_solve, one_mineral

from stockpile import load_config, solve
from stockpile.analysis.evaluate import evaluate_run
from stockpile.analysis.saa import run_saa
from stockpile.cli.commands import cli
from stockpile.config import validate
from stockpile.tools.generate import generate

SAMPLED = ROOT / "configs" / "us_japan_sampled.yaml"
# the bundled allied projects with the NdPr floor at $57/kg, where the plan takes offtake (a tonne a
# year costs $1,000 x 4.81 years against a stocked tonne's net $11,300)
ALLIED = [
    {**pr, "floor_price_usd_per_t": 57000} if pr["mineral"] == "rare_earths" else pr
    for pr in yaml.safe_load((ROOT / "configs" / "fragments" / "allied_projects.yaml").read_text())["projects"]
]


@pytest.mark.parametrize(
    "cfg",
    [
        load_config(ROOT / "configs" / "us_japan.yaml"),
        validate(generate(2, 4, 30, 6, seed=3) | {"solver": {"relative_gap": 1e-9}}),
        load_config(SAMPLED, [("scenarios.sample.count", 300)]),
        load_config(ROOT / "configs" / "us_japan.yaml", [("projects", ALLIED), ("solver.relative_gap", 1e-9)]),
    ],
    ids=["default", "generated", "sampled", "offtake"],
)
def test_the_runs_own_scenarios_reproduce_its_expected_recourse(tmp_path, cfg):
    result = checked_solve(cfg)
    run = result.write(tmp_path / "run")
    table, m = evaluate_run(run, workers=1)
    assert m.mean_recourse_usd == pytest.approx(result.summary.expected_recourse_usd, rel=1e-7, abs=1e-6)
    assert m.expected_total_usd == pytest.approx(result.summary.objective_usd, rel=1e-7)
    assert m.cvar_recourse_usd == pytest.approx(result.summary.cvar_recourse_usd, rel=1e-7, abs=1e-6)
    assert len(table) == len(cfg.scenario_list) * cfg.horizon.years
    assert (table.shortfall_usd + table.lending_usd).tolist() == pytest.approx(table.recourse_usd.tolist())
    if cfg.projects:  # the plan's offtake is part of its first stage, and of what it is evaluated with
        assert result.summary.costs["offtake_usd"] > 0


def test_sampled_evaluation_in_parallel_matches_one_worker(tmp_path):
    run = checked_solve(load_config(SAMPLED, [("scenarios.sample.count", 200)])).write(tmp_path / "run")
    one, m1 = evaluate_run(run, sample=(4500, 9), workers=1)
    two, m2 = evaluate_run(run, sample=(4500, 9), workers=2)
    assert one.equals(two) and m1 == m2
    assert m1.count == 4500 and m1.ci95_low_usd < m1.expected_total_usd < m1.ci95_high_usd
    saved = json.loads((run / "evaluation.json").read_text())
    assert saved["sample"] == {"count": 4500, "seed": 9}


def test_evaluate_cli_scenarios_file_and_errors(tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["solve", str(ROOT / "configs" / "us_japan.yaml"), "--set", "events=[]", "--out", str(run), "--quiet"]
        ).exit_code
        == 0  # without the events its base file gives it: --sample has nothing to draw from
    )
    scen = tmp_path / "s.yaml"
    scen.write_text(
        yaml.safe_dump(
            {
                "scenarios": [
                    {
                        "name": "cut",
                        "probability": 1.0,
                        "shocks": [{"mineral": "gallium", "start": 1, "periods": 12, "loss": 1.0}],
                    }
                ]
            }
        )
    )
    res = runner.invoke(cli, ["evaluate", str(run), str(scen), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "evaluation.json").read_text())["count"] == 1
    res = runner.invoke(cli, ["evaluate", str(run), "--sample", "10"])
    assert res.exit_code == 2 and "needs `events`" in res.output
    res = runner.invoke(cli, ["evaluate", str(run), str(scen), "--sample", "10"])
    assert res.exit_code == 2 and "not both" in res.output


def _enumerable(p: float) -> dict:
    """One mineral, one period, one event of fixed duration and severity: two outcomes (cut, calm)."""
    return one_mineral(
        suppliers={"China": {"cobalt": 1.0}},
        events=[
            {
                "name": "cut",
                "supplier": "China",
                "minerals": ["cobalt"],
                "annual_probability": p,
                "duration_periods": {"min": 1, "mode": 1, "max": 1},
                "severity": {"min": 1.0, "max": 1.0},
            }
        ],
        scenarios={"sample": {"count": 60, "seed": 0}},
    )


@pytest.mark.parametrize("holding_years", [1, 3])
def test_saa_bounds_contain_the_true_optimum(tmp_path, holding_years):
    """The true problem has two scenarios (cut w.p. 0.3, calm): its optimum is solved exactly, and the
    SAA lower bound's 95% interval and the best plan's upper-bound interval contain it. On its own
    sample a replication's optimum is at most the best plan's cost there, every year protected
    facing the sample (a gap below 0 would mean the years were counted differently)."""
    data = _enumerable(0.3)
    data["horizon"] = {**data["horizon"], "holding_years": holding_years, "discount_rate": 0.05}
    # the first half of a cut is not worth holding for (0.3 x 100 x up to 2.86 years < $100): recourse stays
    data["minerals"]["cobalt"]["shortfall_cost_usd_per_t"] = [
        {"up_to_share": 0.5, "usd_per_t": 100},
        {"up_to_share": 1.0, "usd_per_t": 400},
    ]
    true = solve(
        validate(
            {
                **data,
                "scenarios": [
                    {
                        "name": "cut",
                        "probability": 0.3,
                        "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": 1.0}],
                    },
                    {"name": "calm", "probability": 0.7},
                ],
            }
        )
    ).summary.objective_usd
    head = run_saa(validate(data), tmp_path / "saa", 60, 8, 4000, 11, workers=1)
    assert head["lower_ci95_low_usd"] <= true <= head["lower_ci95_high_usd"]
    assert (
        head["upper_ci95_low_usd"] <= true * (1 + 1e-9) <= head["upper_ci95_high_usd"]
        or head["upper_bound_usd"] >= true
    )
    assert head["gap_usd"] >= -1e-6 and head["gap_ci95_high_usd"] >= head["gap_usd"]
    assert (tmp_path / "saa" / "best" / "summary.json").exists()
    table = __import__("pandas").read_csv(tmp_path / "saa" / "saa.csv")
    assert len(table) == 8
    assert (table.best_plan_gap_usd >= -1e-6 * table.objective_usd.abs()).all()


def test_a_sample_drawn_by_the_workers_is_the_sample_drawn_whole():
    from stockpile.analysis.evaluate import CHUNK_SCENARIOS, evaluate_plan
    from stockpile.config.sampling import sample_scenarios

    cfg = load_config(SAMPLED, [("scenarios.sample.count", 100)])
    lots = {"JP": {"rare_earths": 300, "gallium": 20}, "US": {"germanium": 5}}
    count = CHUNK_SCENARIOS + 321  # two chunks, the second partial
    by_workers = evaluate_plan(cfg, lots, (count, 5), workers=1)
    whole = evaluate_plan(cfg, lots, sample_scenarios(cfg, count, 5), workers=1)
    assert by_workers.equals(whole)
