"""The optimizer against optima computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import one_mineral, solve_dict


def newsvendor_optimum(demands, probs, c, b):
    """Critical fractile: the smallest demand d with P(D <= d) >= 1 - c/b, and its expected cost."""
    order = np.argsort(demands)
    d, p = np.asarray(demands, float)[order], np.asarray(probs, float)[order]
    x = d[np.searchsorted(np.cumsum(p), 1 - c / b - 1e-12)]
    return x, c * x + b * float(np.sum(p * np.maximum(d - x, 0)))


@pytest.mark.parametrize("seed,c,b", [(1, 100, 400), (2, 100, 250), (3, 30, 1000), (4, 90, 100)])
def test_newsvendor_critical_fractile(tmp_path, seed, c, b):
    rng = np.random.default_rng(seed)
    losses = np.round(rng.uniform(0, 1, 8), 3)
    probs = rng.dirichlet(np.ones(8))
    probs[-1] = 1 - probs[:-1].sum()
    cfg = one_mineral(
        scenarios=[
            {
                "name": f"s{i}",
                "probability": float(pr),
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": float(lo)}],
            }
            for i, (lo, pr) in enumerate(zip(losses, probs))
        ]
    )
    cfg["minerals"]["cobalt"].update(price_usd_per_t=c, shortfall_cost_usd_per_t=b, lot_t=0.001)
    x_star, cost_star = newsvendor_optimum(losses * 1000, probs, c, b)
    res = solve_dict(tmp_path, cfg)
    assert res.status == "optimal"
    assert res.holdings.holding_t.iloc[0] == pytest.approx(x_star, abs=1e-3)
    assert res.summary.objective_usd == pytest.approx(cost_star, rel=1e-6)


def test_pooling_gain_matches_hand_computation(tmp_path):
    """Two participants hit in different scenarios: pooling saves 100 c - 50 k."""
    c, b, k = 100.0, 1000.0, 10.0
    base = {
        "name": "pool",
        "horizon": {"periods": 1, "period_days": 365},
        "participants": ["US", "JP"],
        "minerals": {"cobalt": {"price_usd_per_t": c, "shortfall_cost_usd_per_t": b, "consumption_t_per_year": 1000}},
        "scenarios": [
            {
                "name": "us_hit",
                "probability": 0.5,
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": {"US": 0.1, "JP": 0.0}}],
            },
            {
                "name": "jp_hit",
                "probability": 0.5,
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": {"US": 0.0, "JP": 0.1}}],
            },
        ],
        "solver": {"relative_gap": 1e-9},
    }
    alone = solve_dict(tmp_path, base, "alone")
    pooled = solve_dict(
        tmp_path,
        {
            **base,
            "lending": [
                {"from": "US", "to": "JP", "cost_usd_per_t": k},
                {"from": "JP", "to": "US", "cost_usd_per_t": k},
            ],
        },
        "pooled",
    )
    assert alone.summary.objective_usd == pytest.approx(2 * 100 * c)
    assert pooled.summary.objective_usd == pytest.approx(100 * c + 0.5 * 100 * k)
    gain = alone.summary.objective_usd - pooled.summary.objective_usd
    assert gain == pytest.approx(100 * c - 50 * k)
    assert pooled.holdings.holding_t.sum() == pytest.approx(100)
    assert pooled.coverage.coverage_share.min() == pytest.approx(1.0)


@pytest.mark.parametrize("fixed", [0.0, 2000.0])
def test_budget_binds(tmp_path, fixed):
    cfg = one_mineral(
        participants={"US": {"budget_usd": 35_000}},
        scenarios=[
            {
                "name": "ban",
                "probability": 1.0,
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": 1.0}],
            }
        ],
    )
    cfg["minerals"]["cobalt"].update(lot_t=10, shortfall_cost_usd_per_t=1000, fixed_cost_usd=fixed)
    lots = int((35_000 - fixed) // (100 * 10))
    res = solve_dict(tmp_path, cfg)
    assert res.holdings.lots.iloc[0] == lots
    expected = lots * 10 * 100 + fixed + 1000 * (1000 - lots * 10)
    assert res.summary.objective_usd == pytest.approx(expected)
    assert res.summary.costs["fixed_usd"] == pytest.approx(fixed)


def test_release_rate_and_floor_closed_form(tmp_path):
    """Served = min(sum_t min(g_t, rate x), (1 - floor) x) for a fixed holding."""
    g = [50.0, 120.0, 80.0, 30.0]
    cfg = one_mineral(
        horizon={"periods": 4, "period_days": 365},
        participants={"US": {"release_rate_max": 0.3, "reserve_floor": 0.4}},
        scenarios=[
            {
                "name": "s",
                "probability": 1.0,
                "shocks": [
                    {"mineral": "cobalt", "start": t + 1, "periods": 1, "loss": v / 1000} for t, v in enumerate(g)
                ],
            }
        ],
    )
    cfg["minerals"]["cobalt"].update(initial_t=300, max_acquisition_t=0, shortfall_cost_usd_per_t=10)
    res = solve_dict(tmp_path, cfg)
    x, rate, floor = 300.0, 0.3, 0.4
    served = min(sum(min(v, rate * x) for v in g), (1 - floor) * x)
    assert res.schedule.release_t.sum() == pytest.approx(served)
    assert res.summary.costs["expected_shortfall_usd"] == pytest.approx(10 * (sum(g) - served))


def test_min_days_forces_holding_without_shocks(tmp_path):
    cfg = one_mineral()
    cfg["minerals"]["cobalt"].update(min_days={"US": 73}, lot_t=7)
    res = solve_dict(tmp_path, cfg)
    need = 73 * 1000 / 365  # 200 t -> ceil(200 / 7) = 29 lots
    assert res.holdings.lots.iloc[0] == 29
    assert res.holdings.holding_t.iloc[0] >= need


@pytest.mark.parametrize(
    ("floor", "expected", "offtake_t"),
    [
        # subsidy (150 - 100) x 1 yr = $50/t < buying and holding 100 + 10 = $110/t: offtake covers the cut
        (150.0, 1000 * 50.0, 1000.0),
        # subsidy $150/t > $110/t: stock instead (both beat the expected shortfall 0.5 x 400 = $200/t)
        (250.0, 1000 * 110.0, 0.0),
    ],
)
def test_offtake_at_a_floor_price_against_stock(tmp_path, floor, expected, offtake_t):
    """One year, one scenario cutting all 1,000 t with probability 0.5: each tonne covered saves
    0.5 x 400 = $200; a tonne of stock costs 100 + 10, a tonne of offtake its price gap."""
    data = one_mineral(
        horizon={"periods": 1, "period_days": 365, "holding_years": 1},
        scenarios=[
            {"name": "calm", "probability": 0.5},
            {
                "name": "cut",
                "probability": 0.5,
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 1, "loss": 1.0}],
            },
        ],
        projects=[
            {
                "name": "ally",
                "host": "AU",
                "mineral": "cobalt",
                "capacity_t_per_year": 5000,
                "floor_price_usd_per_t": floor,
            }
        ],
    )
    data["minerals"]["cobalt"]["holding_cost_usd_per_t_year"] = 10
    for method in ("extensive", "benders"):
        res = solve_dict(tmp_path, data, f"offtake{floor:g}{method}", method=method)
        assert res.summary.objective_usd == pytest.approx(expected, rel=1e-9)
        assert res.offtake.offtake_t_per_year.sum() == pytest.approx(offtake_t)
        # offtake.csv on every run with projects, taken or not: a row per participant and project
        off = pd.read_csv(tmp_path / f"run_offtake{floor:g}{method}" / "offtake.csv")
        assert list(zip(off.participant, off.project)) == [("US", "ally")]
        assert off.offtake_t_per_year.sum() == pytest.approx(offtake_t)
        if offtake_t == 0:
            assert off.agreement_usd.sum() == off.cost_usd.sum() == off.expected_served_t.sum() == 0
