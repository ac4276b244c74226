"""Damage curves: segments by the depth of a shortage, derived curves, and their errors."""

from __future__ import annotations

import math

import pytest
from conftest import solve_dict, write_config

from stockpile.config import ConfigError, load_config
from stockpile.config.damage import derived_segments, marginal_damage


def two_segments(probability: float = 0.2, holding_years: int = 1, discount: float = 0.0) -> dict:
    """One participant and mineral, lots of 1 t at $500, 100 t a year consumed in one period of a
    year; one disruption cuts it all with the given probability. The first 30% of a shortage costs
    $1,000/t (thrift and substitution absorb it), the rest $5,000/t."""
    return {
        "name": "segments",
        "horizon": {"periods": 1, "period_days": 365, "holding_years": holding_years, "discount_rate": discount},
        "participants": {"US": {}},
        "minerals": {
            "A": {
                "price_usd_per_t": 500,
                "shortfall_cost_usd_per_t": [
                    {"up_to_share": 0.3, "usd_per_t": 1000},
                    {"up_to_share": 1.0, "usd_per_t": 5000},
                ],
                "consumption_t_per_year": {"US": 100},
            }
        },
        "scenarios": [
            {
                "name": "cut",
                "probability": probability,
                "shocks": [{"mineral": "A", "start": 1, "periods": 1, "loss": 1.0}],
            },
            {"name": "calm", "probability": 1 - probability},
        ],
        "solver": {"relative_gap": 0.0},
    }


@pytest.mark.parametrize("method", ["extensive", "benders"])
@pytest.mark.parametrize(
    ("probability", "years", "rate"),
    [(0.2, 1, 0.0), (0.2, 3, 0.1), (0.05, 1, 0.0), (0.6, 1, 0.0)],
)
def test_a_holding_covers_exactly_the_segments_worth_their_net_cost(tmp_path, method, probability, years, rate):
    """By hand: a tonne held covers one tonne of the deepest uncovered segment in every year protected,
    so segment j is held iff b_j p sum_k delta_k > the net cost of a tonne ($500: no storage, no resale).
    At p = 0.2 over one year only the $5,000 segment pays (1,000 > 500; 200 < 500): 70 t, cost
    70 x 500 + 0.2 x 30 x 1,000. Over three years at 10% (sum delta = 2.7355) both do (547 > 500)."""
    weight = sum((1 + rate) ** -k for k in range(years))
    held = sum(w for w, b in ((30, 1000), (70, 5000)) if b * probability * weight > 500)
    unmet = {0: 100, 70: 30, 100: 0}[held]
    want = held * 500 + probability * weight * (1000 * min(unmet, 30) + 5000 * max(unmet - 30, 0))
    result = solve_dict(tmp_path, two_segments(probability, years, rate), method=method)
    assert result.holdings.holding_t.sum() == pytest.approx(held)
    assert result.summary.objective_usd == pytest.approx(want, rel=1e-9)


def test_the_pieces_fill_cheapest_first_and_the_costs_add_up(tmp_path):
    """10 t held against a 100 t cut: 90 t unmet, 30 at $1,000 and 60 at $5,000 (not 90 at either)."""
    data = two_segments(0.5)
    data["minerals"]["A"]["initial_t"] = {"US": 10}
    data["minerals"]["A"]["max_acquisition_t"] = 0
    result = solve_dict(tmp_path, data)
    assert result.summary.objective_usd == pytest.approx(0.5 * (30 * 1000 + 60 * 5000), rel=1e-12)
    assert result.summary.costs["expected_shortfall_usd"] == pytest.approx(result.summary.objective_usd, rel=1e-12)
    assert result.schedule.unmet_t.sum() == pytest.approx(90)  # solve_dict also ran stockpile check on it


@pytest.mark.parametrize(
    ("curve", "says"),
    [
        (
            [{"up_to_share": 0.3, "usd_per_t": 5000}, {"up_to_share": 1.0, "usd_per_t": 1000}],
            "segment 2: usd_per_t 1000",
        ),
        ([{"up_to_share": 0.3, "usd_per_t": 1000}, {"up_to_share": 0.9, "usd_per_t": 5000}], "ends at up_to_share 0.9"),
        (
            [{"up_to_share": 0.5, "usd_per_t": 1000}, {"up_to_share": 0.5, "usd_per_t": 5000}],
            "segment 2: up_to_share 0.5",
        ),
    ],
)
def test_a_curve_that_is_not_convex_or_does_not_reach_one_is_refused(tmp_path, curve, says):
    data = two_segments()
    data["minerals"]["A"]["shortfall_cost_usd_per_t"] = curve
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    text = str(err.value)
    assert "minerals.A" in text and "shortfall_cost_usd_per_t" in text and says in text


def test_a_mapping_of_curves_names_every_participant(tmp_path):
    data = two_segments()
    data["participants"]["JP"] = {}
    data["minerals"]["A"]["shortfall_cost_usd_per_t"] = {"US": 1000}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert "no damage for JP" in str(err.value) and "minerals.A.shortfall_cost_usd_per_t" in str(err.value)


def test_damage_and_a_figure_together_are_refused(tmp_path):
    data = two_segments()
    data["minerals"]["A"]["damage"] = {"elasticity": 0.2, "choke_usd_per_t": 1e5}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml", data))
    assert "exactly one" in str(err.value)


def test_a_derived_curve_averages_the_marginal_damage_over_each_segment():
    """The closed-form integral against a fine midpoint sum of b(phi), with and without the choke."""
    for eps, choke in ((0.2, 1e5), (1.0, 3e3), (0.05, 1e9)):
        shares = [0.1, 0.3, 0.6, 1.0]
        got = derived_segments(1000.0, eps, choke, shares)
        lo = 0.0
        for (w, b), hi in zip(got, shares, strict=True):
            n = 200_000
            mid = sum(marginal_damage(lo + (i + 0.5) * (hi - lo) / n, 1000.0, eps, choke) for i in range(n)) / n
            assert w == hi and b == pytest.approx(mid, rel=1e-6)
            lo = hi
        assert [b for _, b in got] == sorted(b for _, b in got)  # convex
    assert marginal_damage(0.5, 1000.0, 1.0, math.inf) == pytest.approx(1000.0)  # price doubles at half the supply


@pytest.mark.parametrize("method", ["extensive", "benders"])
def test_a_derived_curve_solves_as_its_segments(tmp_path, method):
    data = two_segments()
    segs = derived_segments(500.0, 0.3, 20000.0, [0.3, 0.6, 1.0])
    data["minerals"]["A"]["shortfall_cost_usd_per_t"] = [{"up_to_share": w, "usd_per_t": b} for w, b in segs]
    given = solve_dict(tmp_path, data, "given", method=method)
    del data["minerals"]["A"]["shortfall_cost_usd_per_t"]
    data["minerals"]["A"]["damage"] = {"elasticity": 0.3, "choke_usd_per_t": 20000.0, "shares": [0.3, 0.6, 1.0]}
    derived = solve_dict(tmp_path, data, "derived", method=method)
    assert derived.summary.objective_usd == pytest.approx(given.summary.objective_usd, rel=1e-12)


@pytest.mark.parametrize(
    ("mineral", "central", "low", "high"),
    [("gallium", 3.1e9, 1.7e9, 8.2e9), ("germanium", 0.4e9, 0.01e9, 1.1e9)],
)
def test_the_bundled_curves_reproduce_usgs_ofr_2024_1057(tmp_path, mineral, central, low, high):
    """configs/damage.md: with no stock and no lending, a year-long full cut of US supply costs the
    US the report's central GDP loss ($3.1bn gallium, $0.4bn germanium), inside its range."""
    from conftest import ROOT

    data = {
        "base": str(ROOT / "configs" / "minerals.yaml"),
        "name": "calibration",
        "horizon": {"periods": 12, "period_days": 365 / 12},
        "participants": {"US": {}, "JP": {}},
        "minerals": {mineral: {"initial_t": 0, "max_acquisition_t": {"US": 0}}},
        "scenarios": [
            {
                "name": "cut",
                "probability": 1.0,
                "shocks": [{"mineral": mineral, "start": 1, "periods": 12, "loss": {"US": 1.0, "JP": 0.0}}],
            }
        ],
        "solver": {"relative_gap": 0.0},
    }
    result = solve_dict(tmp_path, data)
    lost = result.summary.costs["expected_shortfall_usd"]
    assert low <= lost <= high
    assert lost == pytest.approx(central, rel=1e-3)
