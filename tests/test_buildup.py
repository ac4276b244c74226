"""Stockpiles built over fiscal years (horizon.years): enumeration, a hand-computed front-loading
case, the yearly limits and their messages, and the verifier."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from bruteforce import brute_force, random_config, with_years
from conftest import one_mineral, solve_dict, write_config

from stockpile import load_config, solve
from stockpile.config import ConfigError
from stockpile.results.check import check_run

SEEDS = range(30)


@pytest.mark.parametrize("method", ["extensive", "benders"])
@pytest.mark.parametrize("seed", SEEDS)
def test_matches_enumeration_of_yearly_lots(tmp_path, seed, method):
    """Every vector of lots bought each year enumerated, each scenario's recourse solved by scipy on
    the holding of the year it strikes in; yearly budgets (with and without carryover), ceilings,
    targets, storage, prices and discounting."""
    cfg = with_years(random_config(seed), seed)
    best = brute_force(cfg)
    res = solve_dict(tmp_path, cfg, method=method, relative_gap=0.0)
    if best is None:
        assert res.status == "infeasible", res.summary
        assert res.summary.reasons
        return
    assert res.status == "optimal", res.summary
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("method", ["extensive", "benders"])
@pytest.mark.parametrize("seed", [2, 4, 6, 8, 14, 18, 28])  # feasible, with shocks that cost
def test_cvar_over_a_build_up_matches_enumeration(tmp_path, seed, method):
    """The risk-aware objective on discounted scenario costs, over yearly lots."""
    cfg = with_years(random_config(seed), seed)
    cfg["risk"] = {"cvar_alpha": 0.6, "cvar_weight": 0.5}
    best = brute_force(cfg)
    if best is None:
        pytest.skip("infeasible instance")
    res = solve_dict(tmp_path, cfg, method=method, relative_gap=0.0)
    assert res.summary.objective_usd == pytest.approx(best[0], rel=1e-6, abs=1e-6)


def front_loading() -> dict:
    """Two minerals, two years, one appropriation of $2,000 a year (lapsing). A lot of A (10 t at
    $200/t) saves $500/t of shortfall: $2.5 a dollar; four lots of B (40 t at $50/t) save $200/t:
    $4 a dollar. B may be bought only in year 1 (its ceiling is [40, 0]). Each year faces the same
    one-year mix: a shock that cuts both minerals whole (probability 1/2), or calm."""
    cons = {"US": 1000.0}
    return {
        "name": "front",
        "horizon": {"periods": 1, "period_days": 365, "years": 2},
        "participants": {"US": {"budget_usd": 2000}},
        "minerals": {
            "A": {
                "price_usd_per_t": 200,
                "lot_t": 10,
                "shortfall_cost_usd_per_t": 500,
                "consumption_t_per_year": cons,
                "max_acquisition_t": 10,
            },
            "B": {
                "price_usd_per_t": 50,
                "lot_t": 10,
                "shortfall_cost_usd_per_t": 200,
                "consumption_t_per_year": cons,
                "max_acquisition_t": [40, 0],
            },
        },
        "scenarios": [
            {
                "name": "cut",
                "probability": 0.5,
                "shocks": [{"mineral": m, "start": 1, "periods": 1, "loss": 1.0} for m in "AB"],
            },
            {"name": "calm", "probability": 0.5},
        ],
        "solver": {"relative_gap": 0.0},
    }


@pytest.mark.parametrize("method", ["extensive", "benders"])
def test_a_shock_in_year_one_front_loads_the_best_saving_per_dollar(tmp_path, method):
    """By hand. Year 1's $2,000 buys one lot of A (saves 0.5 x 5,000 in each of the two years:
    net $3,000) or four of B (saves 0.5 x 8,000 in each: net $6,000): B first. Year 2 buys A (saves
    0.5 x 5,000 in year 2 for $2,000: net $500). Year 1's shock: A 1,000 t x $500 unmet, B 960 t x
    $200: $692,000; year 2's: 990 x 500 + 960 x 200 = $687,000; each with probability 1/2; plus
    $4,000 bought: objective 4,000 + (692,000 + 687,000) / 2 = $693,500. Per dollar: B
    0.5 x 200 x 40 x 2 / 2,000 = 4.0, A 0.5 x 500 x 10 / 2,000 = 1.25."""
    res = solve_dict(tmp_path, front_loading(), method=method)
    assert res.summary.objective_usd == pytest.approx(693_500.0, rel=1e-9)
    acq = res.acquisitions.set_index(["mineral", "year"])
    assert acq.loc[("B", 1), "lots"] == 4 and acq.loc[("B", 2), "lots"] == 0
    assert acq.loc[("A", 1), "lots"] == 0 and acq.loc[("A", 2), "lots"] == 1
    assert acq.loc[("B", 1), "expected_saving_per_usd"] == pytest.approx(4.0)
    assert acq.loc[("A", 2), "expected_saving_per_usd"] == pytest.approx(1.25)
    assert acq.loc[("A", 2), "holding_t"] == 10 and acq.loc[("B", 2), "holding_t"] == 40
    assert res.holdings.set_index("mineral").loc["B", "acquisition_usd"] == 2000
    budget = res.limits[res.limits.limit == "budget_usd"].set_index("year")
    assert list(budget.used) == [2000, 2000]
    assert list(budget.binds) == [True, False]  # year 2: the ceilings bind first (no lot of A or B may be added)


def test_discounting_and_carryover_by_hand(tmp_path):
    """One mineral, two years; 100 t (36.5 days of 1,000 t/yr) to hold by year 2, in 10 t lots at
    $100/t in year 1 and $50/t in year 2. With $1,000 a year carried over, even the cheapest
    purchase (10 lots in year 2, $5,000) exceeds the $2,000 of both years: infeasible, and the
    message names the budget and the years. With $3,500 a year it fits: 10 lots in year 2,
    discounted at 10% (5,000 / 1.1), plus the storage of 100 t at the start of years 2 and 3
    (holding_years = 2 from year 2: 1,000 / 1.1 + 1,000 / 1.21); buying earlier would cost more
    and add a year's storage."""
    data = one_mineral(
        horizon={"periods": 1, "period_days": 365, "years": 2, "discount_rate": 0.1, "holding_years": 2},
        participants={"US": {"budget_usd": 1000, "budget_carryover": True}},
    )
    data["minerals"]["cobalt"].update(
        price_usd_per_t=[100, 50], lot_t=10, holding_cost_usd_per_t_year=10, min_days=[0, 36.5]
    )
    res = solve(load_config(write_config(tmp_path / "c.yaml", data)))
    assert res.status == "infeasible"
    assert "budget_usd" in res.summary.reasons[0] and "years 1..2" in res.summary.reasons[0]
    # with $3,500 a year carried over: 10 lots in year 2 cost $5,000 <= $7,000 (discounted
    # 5,000 / 1.1); storing 100 t in years 2 and 3: 1,000 / 1.1 + 1,000 / 1.21
    data["participants"]["US"]["budget_usd"] = 3500
    res = solve_dict(tmp_path, data, "ok")
    assert res.summary.objective_usd == pytest.approx((5000 + 1000) / 1.1 + 1000 / 1.21, rel=1e-9)
    acq = res.acquisitions.set_index("year")
    assert list(acq.lots) == [0, 10]
    assert acq.loc[2, "cost_usd"] == 5000 and acq.loc[2, "discounted_cost_usd"] == pytest.approx(5000 / 1.1)


def test_lapsing_budgets_that_no_schedule_meets_are_explained(tmp_path):
    """60 t at $100/t by year 2; budgets [3,000, 4,000] lapse and year 1 may buy nothing
    (ceiling [0, 1000]). Every necessary check passes (the ceilings allow 1,000 t, the budgets
    add up to $7,000 >= $6,000), yet year 2 alone buys only 40 t: the solver proves it, and the
    message says which limits conflict in the user's terms."""
    data = one_mineral(
        horizon={"periods": 1, "period_days": 365, "years": 2},
        participants={"US": {"budget_usd": [3000, 4000]}},
    )
    data["minerals"]["cobalt"].update(min_days=[0, 21.9], max_acquisition_t=[0, 1000])  # 60 t by year 2
    res = solve(load_config(write_config(tmp_path / "c.yaml", data)))
    assert res.status == "infeasible"
    assert "budget" in res.summary.reasons[0]


def test_yearly_lists_must_match_the_years(tmp_path):
    data = one_mineral(horizon={"periods": 1, "years": 3}, participants={"US": {"budget_usd": [1, 2]}})
    data["minerals"]["cobalt"]["min_days"] = {"US": [10, 20, 30, 40]}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    text = str(err.value)
    assert "participants.US.budget_usd" in text and "2 values for 3 years" in text
    assert "minerals.cobalt.min_days.US" in text and "4 values for 3 years" in text


def test_a_scenario_year_is_refused_with_the_reason(tmp_path):
    """scenarios[].year and scenarios.sample.year are gone: every year faces every scenario."""
    data = one_mineral(horizon={"periods": 1, "years": 3})
    data["scenarios"][0]["year"] = 2
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert "scenarios.0" in str(err.value) and "every year" in str(err.value) and "'year'" in str(err.value)
    data["scenarios"] = {"sample": {"count": 4, "year": 1}}
    with pytest.raises(ConfigError, match="no longer a key"):
        load_config(write_config(tmp_path / "c.yaml", data))


def test_verifier_catches_a_yearly_budget_broken(tmp_path):
    res = solve_dict(tmp_path, front_loading())
    run = tmp_path / "run_cfg"
    acq = pd.read_csv(run / "acquisitions.csv")
    assert (run / "acquisitions.csv").exists() and len(acq) == 4
    # move A's lot to year 1: holdings unchanged, year 1 now spends $4,000 of $2,000
    acq.loc[(acq.mineral == "A") & (acq.year == 1), ["lots", "acquired_t", "cost_usd", "discounted_cost_usd"]] = [
        1,
        10,
        2000,
        2000,
    ]
    acq.loc[(acq.mineral == "A") & (acq.year == 2), ["lots", "acquired_t", "cost_usd", "discounted_cost_usd"]] = 0
    acq.loc[(acq.mineral == "A") & (acq.year == 1), "holding_t"] = 10
    acq.loc[(acq.mineral == "A") & (acq.year == 1), "days_of_consumption"] = 3.65
    acq.to_csv(run / "acquisitions.csv", index=False)
    rules = {v.rule for v in check_run(run)}
    assert "budget_usd" in rules
    assert res.status == "optimal"


def disrupted_build_up() -> dict:
    """A two-participant, two-year build-up with lending and several periods, for the commands that
    read a run: a random tiny config with shocks in both years."""
    cfg = with_years(random_config(14), 14)
    assert cfg["horizon"]["years"] == 2
    return cfg


def test_evaluate_reproduces_a_build_up_runs_expected_recourse(tmp_path):
    """The run's own scenarios, each build year's on that year's holding, weighted by its discounted
    years: a year's mean recourse is the run's, and first stage plus the years' is the objective."""
    from stockpile.analysis.evaluate import evaluate_run

    res = solve_dict(tmp_path, disrupted_build_up(), method="extensive", relative_gap=0.0)
    table, m = evaluate_run(tmp_path / "run_cfg", workers=1)
    assert m.expected_total_usd == pytest.approx(res.summary.objective_usd, rel=1e-7)
    assert m.mean_recourse_usd == pytest.approx(res.summary.expected_recourse_usd, rel=1e-7, abs=1e-7)


def test_explain_relaxes_one_year_at_a_time(tmp_path):
    """Each yearly limit is relaxed in its own year: the re-solve's override is the whole list with
    only that year's value moved; EV is the one-year mix's mean shock, faced every year."""
    import json

    from stockpile.analysis.explain import explain_run

    solve_dict(tmp_path, front_loading())
    table, measures = explain_run(tmp_path / "run_cfg", workers=1)
    budget = table[table.limit == "budget_usd"].set_index("year")
    assert json.loads(budget.override[1].split("=", 1)[1]) == [2200.0, 2000.0]
    assert json.loads(budget.override[2].split("=", 1)[1]) == [2000.0, 2200.0]
    # $200 more in year 1 buys nothing (a lot of B costs $500, of A $2,000; year 1 has 4 lots of B,
    # its ceiling): the relaxation is worth nothing; same in year 2
    assert budget.delta_objective_usd[1] == pytest.approx(0.0, abs=1e-6)
    ev = yaml.safe_load((tmp_path / "run_cfg" / "explain" / "cases" / "ev" / "config.resolved.yaml").read_text())
    assert [(sc["name"], sc["probability"]) for sc in ev["scenarios"]] == [("expected_value", 1.0)]
    assert ev["scenarios"][0]["shocks"][0]["loss"] == {"US": 0.5}
    assert measures.vss_usd >= -1e-6 and measures.evpi_usd >= -1e-6


def test_simulate_and_respond_use_the_holding_of_the_year(tmp_path):
    """Year 1's disruption draws on year 1's stock (40 t of B, no A): month by month, A is all unmet."""
    from stockpile.analysis.simulate import simulate_run

    solve_dict(tmp_path, front_loading())
    table, m = simulate_run(tmp_path / "run_cfg", workers=1)
    y1 = table[table.scenario == "cut@y1"].set_index("mineral")
    assert y1.release_t["A"] == 0 and y1.unmet_t["A"] == 1000 and y1.release_t["B"] == 40
    y2 = table[table.scenario == "cut@y2"].set_index("mineral")
    assert y2.release_t["A"] == 10
    for r in m.scenarios:  # a one-period shock: knowing its length is worth nothing
        assert r["rolling_cost_usd"] == pytest.approx(r["clairvoyant_cost_usd"], rel=1e-9)


def test_one_holding_rules_are_refused_over_a_build_up(tmp_path):
    data = {**front_loading(), "allocation": "days"}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert "allocation" in str(err.value) and "build-up" in str(err.value)


@pytest.mark.parametrize(
    ("size", "seed"),
    # three participants too; at 25 scenarios the extensive form took 40-220 s a seed, at 12 2-4 s
    [*(((2, 5, 10, 12), seed) for seed in range(3)), *(((3, 4, 12, 6), seed) for seed in range(2))],
)
def test_methods_agree_on_generated_build_ups(tmp_path, seed, size):
    """stockpile generate --years 3: the decomposition and the extensive form reach the same optimum."""
    from stockpile.tools.generate import generate

    data = generate(*size, seed=seed, years=3)
    data["solver"]["relative_gap"] = 1e-6
    ext = solve_dict(tmp_path, data, "ext", method="extensive")
    ben = solve_dict(tmp_path, data, "ben", method="benders")
    assert ext.status == ben.status == "optimal"
    assert ben.summary.objective_usd == pytest.approx(ext.summary.objective_usd, rel=2e-6)
    assert ext.acquisitions.lots.sum() > 0


def test_every_build_year_faces_the_same_sample(tmp_path):
    """A sampled build-up: the sample is one year's, the same draw as without the build-up, and the
    instance repeats it for each build year (NAME@yY), each on that year's holding."""
    from conftest import bundled

    from stockpile.model.instance import build_instance

    base = bundled("us_japan_sampled.yaml")
    one = load_config(write_config(tmp_path / "one.yaml", base), [("scenarios.sample.count", 40)])
    three = load_config(
        write_config(tmp_path / "three.yaml", base), [("scenarios.sample.count", 40), ("horizon.years", 3)]
    )
    assert [sc.shocks for sc in three.scenario_list] == [sc.shocks for sc in one.scenario_list]
    inst = build_instance(three)
    assert len(inst.scenarios) == 120 and inst.scenarios[40] == f"{one.scenario_list[0].name}@y2"
    assert list(inst.scen_year[::40]) == [0, 1, 2] and inst.prob.sum() == pytest.approx(3.0)


def test_study_report_reads_a_swept_yearly_list():
    """A study may sweep a yearly list (study.csv writes it as text): shown value by value, money as money."""
    from stockpile.report.page import fmt_value

    assert fmt_value("participants.JP.budget_usd", "[240000000.0, 120000000.0]") == "[$240.00m, $120.00m]"
    assert fmt_value("minerals.cobalt.min_days.JP", "[8.4, 42.0]") == "[8.4, 42]"
    assert fmt_value("participants.JP.budget_usd", 1.2e8) == "$120.00m"


def test_one_year_written_as_lists_is_the_one_shot_model(tmp_path):
    """horizon.years: 1 with every yearly figure of the default config written as a one-value list
    gives the same tables, number for number, as the config as it is (the model at Y = 1 is
    today's: tests/data/formulation.lp and the stored objectives of every bundled config hold)."""
    from conftest import bundled

    base = bundled("us_japan.yaml")
    listed = bundled("us_japan.yaml")
    listed["horizon"]["years"] = 1
    for spec in listed["participants"].values():
        for key in ("budget_usd", "storage_capacity_t"):
            if spec.get(key) is not None:
                spec[key] = [spec[key]]
    for spec in listed["minerals"].values():
        spec["price_usd_per_t"] = [spec["price_usd_per_t"]]
        for key in ("max_acquisition_t", "min_days"):
            if isinstance(spec.get(key), dict):
                spec[key] = {p: [v] for p, v in spec[key].items()}
    a = solve_dict(tmp_path, base, "scalar")
    b = solve_dict(tmp_path, listed, "lists")
    assert a.summary.objective_usd == b.summary.objective_usd
    for name in ("holdings.csv", "schedule.csv", "coverage.csv", "lending.csv", "limits.csv"):
        pd.testing.assert_frame_equal(a.tables()[name], b.tables()[name])
    assert "acquisitions.csv" not in b.tables()


def test_a_misspelt_horizon_key_does_not_cascade(tmp_path):
    """`yeras: 3` is the one problem: the yearly lists are not judged against a default of 1 year."""
    data = one_mineral(horizon={"periods": 1, "yeras": 3}, participants={"US": {"budget_usd": [1, 2, 3]}})
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert [p.loc for p in err.value.problems] == [("horizon", "yeras")]
    assert "did you mean 'years'" in str(err.value)
