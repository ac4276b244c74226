"""stockpile respond / simulate: the non-anticipative response against an independent LP, the
clairvoyant bound, acting alone, the verifier, both methods and bad states."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import solve_dict, write_config
from scipy.optimize import linprog

from stockpile.analysis.respond import resolve_state, respond, write_response
from stockpile.analysis.simulate import simulate_run
from stockpile.cli.commands import cli
from stockpile.results.check import check_response

LOSS = {"US": 0.6, "JP": 0.3}


def tiny() -> dict:
    """Two participants, one mineral, five periods; three scenarios share period 1 and differ in
    duration and depth; lending both ways with fees and caps, rate caps and a floor."""
    shock = lambda periods, loss=LOSS: {"mineral": "cobalt", "start": 1, "periods": periods, "loss": loss}
    return {
        "name": "tiny",
        "horizon": {"periods": 5, "period_days": 73},
        "participants": {"US": {"release_rate_max": 0.3, "reserve_floor": 0.1}, "JP": {"release_rate_max": 0.5}},
        "minerals": {
            "cobalt": {
                "price_usd_per_t": 100,
                "shortfall_cost_usd_per_t": 1000,
                "consumption_t_per_year": {"US": 500, "JP": 400},
                "initial_t": {"US": 90, "JP": 120},
            }
        },
        "lending": [
            {"from": "JP", "to": "US", "max_share": 0.25, "cost_usd_per_t": 40},
            {"from": "US", "to": "JP", "max_share": 0.5, "cost_usd_per_t": 10},
        ],
        "scenarios": [
            {"name": "calm", "probability": 0.4},
            {"name": "short", "probability": 0.3, "shocks": [shock(1)]},
            {"name": "long", "probability": 0.2, "shocks": [shock(5)]},
            {
                "name": "deepening",
                "probability": 0.1,
                "shocks": [shock(1), {**shock(4, {"US": 0.9, "JP": 0.8}), "start": 2}],
            },
        ],
        "solver": {"relative_gap": 1e-9},
    }


def state_file(tmp_path: Path, cfg: Path, **over) -> Path:
    state = {
        "config": cfg.name,
        "inventory": {"US": {"cobalt": 90}, "JP": {"cobalt": 120}},
        "period": 1,
        "history": "long",
    }
    state.update(over)
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump(state, sort_keys=False))
    return path


@pytest.fixture
def cfg_path(tmp_path) -> Path:
    return write_config(tmp_path / "tiny.yaml", tiny())


def independent_lp(sit) -> float:
    """The non-anticipative problem written from docs/model.md with scipy's HiGHS: r, u per
    (continuation, participant, period), l per (continuation, arc, period), the period-1 orders
    equal across continuations. Its optimum is the expected cost from period k on."""
    inst, g = sit.inst, sit.future[:, :, 0, :]  # one mineral
    C, P, T = g.shape
    arcs = list(zip(inst.arc_from, inst.arc_to, inst.arc_share, inst.arc_cost))
    idx = itertools.count()
    r = {(c, p, t): next(idx) for c in range(C) for p in range(P) for t in range(T)}
    u = {(c, p, t): next(idx) for c in range(C) for p in range(P) for t in range(T)}
    lend = {(c, a, t): next(idx) for c in range(C) for a in range(len(arcs)) for t in range(T)}
    n = next(idx)
    cost, ub = np.zeros(n), np.full(n, np.inf)
    b = float(inst.seg_cost[0, 0, 0])
    for (c, p, t), j in u.items():
        cost[j] = sit.prob[c] * b
        ub[j] = ub[r[c, p, t]] = g[c, p, t]
    for (c, a, _), j in lend.items():
        cost[j] = sit.prob[c] * arcs[a][3]
    A_eq, b_eq, A_ub, b_ub = [], [], [], []

    def row(terms):
        v = np.zeros(n)
        for j, coef in terms:
            v[j] += coef
        return v

    H, stock = sit.holding[:, 0], sit.inventory[:, 0]
    rate, floor = inst.release_rate, inst.reserve_floor
    for c in range(C):
        for p in range(P):
            out = lambda t, c=c, p=p: (
                [(r[c, p, t], 1.0)] + [(lend[c, a, t], 1.0) for a in range(len(arcs)) if arcs[a][0] == p]
            )
            for t in range(T):
                into = [(lend[c, a, t], 1.0) for a in range(len(arcs)) if arcs[a][1] == p]
                A_eq.append(row([(r[c, p, t], 1.0), (u[c, p, t], 1.0), *into]))
                b_eq.append(g[c, p, t])
                A_ub.append(row(out(t)))
                b_ub.append(rate[p] * H[p])
            A_ub.append(row([x for t in range(T) for x in out(t)]))
            b_ub.append(stock[p] - floor[p] * H[p])
        for a, (frm, _, share, _) in enumerate(arcs):
            A_ub.append(row([(lend[c, a, t], 1.0) for t in range(T)]))
            b_ub.append(share * H[frm] - sit.lent[a, 0])
        for t in range(T):  # lending only where the receiver is short
            for a, (_, to, _, _) in enumerate(arcs):
                ub[lend[c, a, t]] = g[c, to, t]
    for c in range(1, C):  # non-anticipative: period k's orders are the same in every continuation
        for p in range(P):
            A_eq.append(row([(r[c, p, 0], 1.0), (r[0, p, 0], -1.0)]))
            b_eq.append(0.0)
        for a in range(len(arcs)):
            A_eq.append(row([(lend[c, a, 0], 1.0), (lend[0, a, 0], -1.0)]))
            b_eq.append(0.0)
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=list(zip(np.zeros(n), ub)), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


@pytest.mark.parametrize("period", [1, 2])
@pytest.mark.parametrize("inventory", [(90, 120), (40, 100)])
def test_the_response_is_the_independent_non_anticipative_optimum(tmp_path, cfg_path, period, inventory):
    history = "deepening" if period == 2 else "long"
    lent = {"JP->US": {"cobalt": 5.0}} if period == 2 else None
    state = state_file(
        tmp_path,
        cfg_path,
        period=period,
        history=history,
        inventory={"US": {"cobalt": inventory[0]}, "JP": {"cobalt": inventory[1]}},
        holding={"US": {"cobalt": 90}, "JP": {"cobalt": 120}},
        **({"lent_so_far": lent} if lent else {}),
    )
    sit = resolve_state(state)
    resp = respond(sit)
    s = resp.summary
    assert s["expected_cost_usd"] == pytest.approx(independent_lp(sit), rel=1e-7, abs=1e-6)
    # knowing the continuation can only help, and coordination never costs more than acting alone
    assert s["clairvoyant_expected_cost_usd"] <= s["expected_cost_usd"] + 1e-6
    assert s["expected_cost_usd"] <= s["alone_expected_cost_usd"] + 1e-6
    assert check_response(write_response(resp, sit, tmp_path / "out")) == []


def test_period_one_outlook_is_every_scenario_that_starts_the_same(tmp_path, cfg_path):
    sit = resolve_state(state_file(tmp_path, cfg_path))
    assert sit.names == ("short", "long", "deepening")
    np.testing.assert_allclose(sit.prob, [0.5, 1 / 3, 1 / 6])


def test_a_single_continuation_is_the_clairvoyant_recourse_of_its_scenario(tmp_path, cfg_path):
    run = solve_dict(tmp_path, tiny(), "tiny")
    run_dir = run.write(tmp_path / "run")
    held = {r.participant: {"cobalt": r.holding_t} for r in run.tables()["holdings.csv"].itertuples()}
    only = [
        {"name": "long", "probability": 1.0, "shocks": [{"mineral": "cobalt", "start": 2, "periods": 4, "loss": LOSS}]}
    ]
    sit = resolve_state(state_file(tmp_path, cfg_path, inventory=held, history="long", outlook=only))
    from stockpile.analysis.evaluate import evaluate_plan
    from stockpile.results.runs import read_run_config, run_lots

    cfg, _ = read_run_config(run_dir)
    seer = evaluate_plan(cfg, run_lots(run_dir), cfg.scenario_list, workers=1).set_index("scenario").recourse_usd
    assert seer["long"] > 0
    assert respond(sit).summary["expected_cost_usd"] == pytest.approx(seer["long"], rel=1e-9, abs=1e-6)


def test_rolling_simulation_is_never_below_the_clairvoyant_cost(tmp_path):
    run = solve_dict(tmp_path, tiny(), "tiny")
    run_dir = run.write(tmp_path / "run")
    table, m = simulate_run(run_dir, workers=1)
    assert [r["scenario"] for r in m.scenarios] == ["short", "long", "deepening"]
    for r in m.scenarios:
        assert r["rolling_cost_usd"] >= r["clairvoyant_cost_usd"] - 1e-6 * max(1.0, r["clairvoyant_cost_usd"])
        assert r["alone_cost_usd"] >= r["rolling_cost_usd"] - 1e-6 * max(1.0, r["rolling_cost_usd"])
    e = m.expected
    assert e["rolling_cost_usd"] == pytest.approx(sum(r["probability"] * r["rolling_cost_usd"] for r in m.scenarios))
    # applied flows: demand balance and stock never below the floor
    assert np.allclose(table.release_t + table.borrowed_t + table.offtake_t + table.unmet_t, table.shortfall_t)
    held = run.tables()["holdings.csv"].set_index("participant").holding_t
    us = table[table.participant == "US"]
    assert (us.inventory_t >= 0.1 * held["US"] - 1e-9).all()  # US reserve_floor 0.1


def test_both_methods_give_the_same_response(tmp_path):
    data = tiny()
    costs = {}
    for method in ("extensive", "benders"):
        cfg = write_config(tmp_path / f"{method}.yaml", {**data, "solver": {**data["solver"], "method": method}})
        stock = {"US": {"cobalt": 70}, "JP": {"cobalt": 100}}
        held = {"US": {"cobalt": 90}, "JP": {"cobalt": 120}}
        sit = resolve_state(state_file(tmp_path, cfg, history="deepening", period=2, inventory=stock, holding=held))
        costs[method] = respond(sit).summary["expected_cost_usd"]
    assert costs["benders"] == pytest.approx(costs["extensive"], rel=1e-7)


def test_the_verifier_catches_a_tampered_order(tmp_path, cfg_path):
    sit = resolve_state(state_file(tmp_path, cfg_path))
    out = write_response(respond(sit), sit, tmp_path / "out")
    cont = (out / "contingency.csv").read_text().splitlines()
    head, first = cont[0].split(","), cont[1].split(",")
    first[head.index("release_t")] = str(float(first[head.index("release_t")]) + 1.0)
    (out / "contingency.csv").write_text("\n".join([cont[0], ",".join(first), *cont[2:]]) + "\n")
    rules = {v.rule for v in check_response(out)}
    assert {"demand", "orders", "inventory"} <= rules


@pytest.mark.parametrize(
    ("over", "key", "expected"),
    [
        ({"inventory": {"US": {"cobalt": -1}}}, "inventory.US.cobalt", "greater than or equal to 0"),
        ({"period": 9, "history": "long"}, "period", "past the horizon's 5 periods"),
        ({"history": {"US": {"cobalt": [1.0, 2.0]}}}, "history.US.cobalt", "expected 1 values"),
        ({"history": {"US": {"cobalt": [123.0]}}}, "history", "no scenario of the config matches"),
        ({"history": "lng"}, "history", "unknown scenario"),
        ({"inventory": {"EU": {"cobalt": 1}}}, "inventory.EU", "unknown participant"),
        ({"lent_so_far": {"US->EU": {"cobalt": 1}}}, "lent_so_far.US->EU", "not a lending arc"),
        ({"outlook": [{"name": "x", "probability": 0.5}]}, "outlook", "sum to 0.5"),
        ({"invntory": 1}, "invntory", "unknown key"),
    ],
)
def test_bad_states_name_the_key(tmp_path, cfg_path, over, key, expected):
    state = state_file(tmp_path, cfg_path, **over)
    res = CliRunner().invoke(cli, ["respond", str(state), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert f"{key}: " in res.output and expected in res.output and "Traceback" not in res.output


def test_respond_cli_prints_the_orders_and_check_verifies_them(tmp_path, cfg_path):
    state = state_file(tmp_path, cfg_path)
    res = CliRunner().invoke(cli, ["respond", str(state), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "orders for period 1 of 5" in res.output and "coordinating saves" in res.output
    res = CliRunner().invoke(cli, ["check", str(tmp_path / "o")])
    assert res.exit_code == 0 and "every rule holds" in res.output, res.output


def test_inventory_from_a_run_takes_its_holdings(tmp_path, cfg_path):
    run = solve_dict(tmp_path, tiny(), "tiny").write(tmp_path / "run")
    sit = resolve_state(state_file(tmp_path, cfg_path, inventory={"from_run": "run"}))
    held = pd.read_csv(run / "holdings.csv").set_index("participant").holding_t
    assert sit.inventory[:, 0].tolist() == [held["US"], held["JP"]]
    assert (sit.holding == sit.inventory).all()  # nothing drawn yet
    missing = state_file(tmp_path, cfg_path, inventory={"from_run": "nowhere"})
    res = CliRunner().invoke(cli, ["respond", str(missing), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "inventory.from_run: " in res.output and "not a run folder" in res.output


def test_committed_offtake_keeps_arriving_during_the_disruption(tmp_path):
    """A run that takes offtake: the response and the replay count it before any release."""
    data = tiny()
    data["projects"] = [
        {"name": "ally", "host": "AU", "mineral": "cobalt", "capacity_t_per_year": 200, "floor_price_usd_per_t": 101}
    ]
    run = solve_dict(tmp_path, data, "tiny").write(tmp_path / "run")
    taken = pd.read_csv(run / "offtake.csv").offtake_t_per_year.sum()
    assert taken > 0
    cfg = write_config(tmp_path / "tiny.yaml", data)
    sit = resolve_state(state_file(tmp_path, cfg, inventory={"from_run": "run"}))
    assert sit.offtake.sum() * 1.0 == pytest.approx(taken)  # units of 1 t
    out = write_response(respond(sit), sit, tmp_path / "out")
    assert check_response(out) == []
    orders = pd.read_csv(out / "orders.csv")
    assert orders.offtake_t.sum() == pytest.approx(taken * 73 / 365)  # one period of 73 days
    table, m = simulate_run(run, workers=1)
    assert table.offtake_t.sum() > 0
    assert np.allclose(table.release_t + table.borrowed_t + table.offtake_t + table.unmet_t, table.shortfall_t)
    for r in m.scenarios:
        assert r["rolling_cost_usd"] >= r["clairvoyant_cost_usd"] - 1e-6 * max(1.0, r["clairvoyant_cost_usd"])


def test_inventory_in_tonnes_is_not_blamed_on_the_run_form(tmp_path, cfg_path):
    """inventory is tonnes or {from_run}: a mistake in the tonnes names the tonnes only."""
    state = state_file(tmp_path, cfg_path, inventory={"US": {"cobalt": -3}})
    res = CliRunner().invoke(cli, ["respond", str(state), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "inventory.US.cobalt: input should be greater than or equal to 0" in res.output
    assert "from_run" not in res.output
    typo = state_file(tmp_path, cfg_path, history="lnog")
    res = CliRunner().invoke(cli, ["respond", str(typo), "--out", str(tmp_path / "o")])
    assert "history: unknown scenario 'lnog' (did you mean 'long'?)" in res.output


def test_simulate_reads_a_run_solved_again_into_the_same_folder(tmp_path):
    first = solve_dict(tmp_path, tiny(), "a").write(tmp_path / "run")
    _, before = simulate_run(first, workers=1)
    dearer = tiny()
    dearer["minerals"]["cobalt"]["shortfall_cost_usd_per_t"] = 3000
    again = solve_dict(tmp_path, dearer, "b").write(tmp_path / "run")
    _, after = simulate_run(again, workers=1)
    assert after.expected["clairvoyant_cost_usd"] != pytest.approx(before.expected["clairvoyant_cost_usd"])
    assert after.expected["rolling_cost_usd"] == pytest.approx(after.expected["clairvoyant_cost_usd"], rel=1e-6)
