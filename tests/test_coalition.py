"""Coalition values against hand computation, and Shapley shares against an independent formula."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_runs_verify, write_config

from stockpile.analysis.coalition import in_core, shapley
from stockpile.cli.commands import cli


def pooling(n: int, k: float) -> dict:
    """n participants, each hit alone in its own scenario; lending both ways between all."""
    names = ["US", "JP", "EU"][:n]
    return {
        "name": "pool",
        "horizon": {"periods": 1, "period_days": 365},
        "participants": names,
        "minerals": {
            "cobalt": {
                "price_usd_per_t": 100,
                "shortfall_cost_usd_per_t": 1000,
                "consumption_t_per_year": {p: 1000 * (i + 1) for i, p in enumerate(names)},
            }
        },
        "lending": [{"from": a, "to": b, "cost_usd_per_t": k} for a in names for b in names if a != b],
        "scenarios": [
            {
                "name": f"{p}_hit",
                "probability": 1 / n,
                "shocks": [
                    {"mineral": "cobalt", "start": 1, "periods": 1, "loss": {q: 0.1 if q == p else 0.0 for q in names}}
                ],
            }
            for p in names
        ],
        "solver": {"relative_gap": 1e-9},
    }


def test_two_participant_value_of_cooperation(tmp_path):
    c, k = 100.0, 10.0
    cfg = write_config(tmp_path / "c.yaml", pooling(2, k))
    result = CliRunner().invoke(cli, ["coalition", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    coal = pd.read_csv(tmp_path / "out" / "coalitions.csv")
    shares = pd.read_csv(tmp_path / "out" / "shares.csv")
    assert list(coal.coalition) == ["US", "JP", "US+JP"]
    v = dict(zip(coal.coalition, coal.objective_usd))
    # alone: US holds its 100 t, JP its 200 t (each hit with probability 1/2, b/2 > c)
    assert v["US"] == pytest.approx(100 * c) and v["JP"] == pytest.approx(200 * c)
    # together: 200 t cover JP's shock; however it is split, 100 t cross an arc in one of the
    # two equally likely scenarios, so the grand coalition pays 200 c + 0.5 * 100 k
    grand = v["US+JP"]
    assert grand == pytest.approx(200 * c + 0.5 * 100 * k, rel=1e-9)
    assert v["US"] + v["JP"] - grand == pytest.approx(100 * c - 50 * k, rel=1e-9)
    assert shares.shapley_usd.sum() == pytest.approx(grand)
    cols = ["participant", "standalone_usd", "shapley_usd", "spending_usd", "in_core", "transfer_usd"]
    assert list(shares.columns) == cols
    assert shares.spending_usd.sum() == pytest.approx(grand)
    # each nets its Shapley share after its transfer, and the transfers cancel
    assert (shares.spending_usd - shares.transfer_usd).tolist() == pytest.approx(shares.shapley_usd.tolist())
    assert shares.transfer_usd.sum() == pytest.approx(0.0, abs=1e-6 * grand)
    assert "value of cooperation" in result.output and ("receives" in result.output or "no transfer" in result.output)


def permutation_shapley(v: dict[frozenset, float], players: list[str]) -> dict[str, float]:
    """Average marginal cost over every order of arrival: a second, independent formula."""
    total = dict.fromkeys(players, 0.0)
    for order in itertools.permutations(players):
        seen: frozenset = frozenset()
        for p in order:
            total[p] += v.get(seen | {p}, 0.0) - v.get(seen, 0.0)
            seen = seen | {p}
    return {p: t / math.factorial(len(players)) for p, t in total.items()}


def test_three_participant_shapley(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", pooling(3, 25.0))
    result = CliRunner().invoke(cli, ["coalition", str(cfg), "--out", str(tmp_path / "out"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    coal = pd.read_csv(tmp_path / "out" / "coalitions.csv")
    shares = pd.read_csv(tmp_path / "out" / "shares.csv")
    assert len(coal) == 7
    assert assert_runs_verify(tmp_path / "out") == 7
    v = {frozenset(c.split("+")): x for c, x in zip(coal.coalition, coal.objective_usd)}
    expected = permutation_shapley(v, ["US", "JP", "EU"])
    for row in shares.itertuples():
        assert row.shapley_usd == pytest.approx(expected[row.participant], rel=1e-9)
    assert shares.shapley_usd.sum() == pytest.approx(v[frozenset(["US", "JP", "EU"])])
    assert shares.transfer_usd.sum() == pytest.approx(0.0, abs=1e-6 * abs(shares.shapley_usd.sum()))
    # cooperation never costs more than standing alone
    for S, cost in v.items():
        for T in v:
            if T < S:
                assert cost <= v[T] + v.get(S - T, 0.0) + 1e-6 * abs(cost)


def test_core_check_on_a_known_game():
    v = {frozenset("a"): 10.0, frozenset("b"): 10.0, frozenset("ab"): 12.0}
    phi = shapley(v, ("a", "b"))
    assert phi == {"a": 6.0, "b": 6.0} and in_core(phi, v)
    assert not in_core({"a": 11.0, "b": 1.0}, v)


def test_coalitions_of_a_sampled_config_keep_only_their_members_supplier_shares():
    from conftest import ROOT

    from stockpile import load_config
    from stockpile.analysis.coalition import coalition_cases

    cfg = load_config(ROOT / "configs" / "us_japan_sampled.yaml", [("scenarios.sample.count", 20)])
    cases = {c.name: c for c in coalition_cases(cfg)}
    assert set(cases) == {"US", "JP", "US+JP"}
    assert cases["US"].config.suppliers["China"]["rare_earths"] == {"US": 0.70}
    assert len(cases["US"].config.scenario_list) == 20  # the same draw, restricted to the member
