"""Property-based tests: random valid configs solve and verify; random mutations fail cleanly.

Default profile: a few dozen examples per property (seconds). The long profile
(HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py --hypothesis-show-statistics)
tries a thousand mutations and two hundred configs.
"""

from __future__ import annotations

import copy
import math
import os

import yaml
from click.testing import CliRunner
from conftest import solve_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockpile.cli.commands import cli

# default (the test run, CI): the same 30 examples every run, so a red run is a change, not a draw;
# `HYPOTHESIS_PROFILE=long` explores (its finds go to tests/data/ as regression tests)
settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

PARTS = ["US", "JP", "EU"]
MINS = ["cobalt", "gallium", "nickel"]


def floats(lo: float, hi: float):
    """Floats in [lo, hi], with values under 1e-9 (which configs refuse) drawn as 0."""
    return st.floats(min_value=lo, max_value=hi, allow_nan=False).map(lambda v: 0.0 if abs(v) < 1e-9 else v)


money = floats(1.0, 1e7)
share = floats(0.0, 1.0)


@st.composite
def configs(draw) -> dict:
    P, M = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    T, S = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    parts, mins = PARTS[:P], MINS[:M]
    participants = {}
    for p in parts:
        lim = {}
        if draw(st.booleans()):
            lim["budget_usd"] = draw(floats(1e4, 1e9))
        if draw(st.booleans()):
            lim["storage_capacity_t"] = draw(floats(10, 1e6))
        lim["release_rate_max"] = draw(share)
        lim["reserve_floor"] = draw(floats(0.0, 0.9))
        participants[p] = lim
    minerals = {}
    for m in mins:
        price = draw(money)
        minerals[m] = {
            "price_usd_per_t": price,
            "holding_cost_usd_per_t_year": draw(floats(0, 0.2)) * price,
            "lot_t": draw(st.sampled_from([0.5, 1.0, 10.0, 100.0])),
            "shortfall_cost_usd_per_t": price * draw(floats(0.5, 50)),
            "consumption_t_per_year": {p: draw(floats(0, 1e5)) for p in parts},
            "initial_t": {p: draw(floats(0, 1e3)) for p in parts if draw(st.booleans())},
            "fixed_cost_usd": {p: draw(floats(0, 1e7)) for p in parts if draw(st.booleans())},
            "min_days": {p: draw(floats(0, 60)) for p in parts if draw(st.booleans())},
        }
        if draw(st.booleans()):
            minerals[m]["max_acquisition_t"] = {p: draw(floats(0, 1e5)) for p in parts}
    lending = [
        {
            "from": a,
            "to": b,
            "max_share": draw(share),
            "cost_usd_per_t": draw(floats(0, 1e3)),
            "minerals": draw(st.lists(st.sampled_from(mins), min_size=1, unique=True)),
        }
        for a in parts
        for b in parts
        if a != b and draw(st.booleans())
    ]
    weights = [draw(floats(0.01, 1.0)) for _ in range(S)]
    scenarios = []
    for s in range(S):
        shocks = [
            {
                "mineral": draw(st.sampled_from(mins)),
                "start": draw(st.integers(1, T)),
                "periods": draw(st.integers(1, T + 2)),
                "loss": draw(st.one_of(share, st.fixed_dictionaries(dict.fromkeys(parts, share)))),
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        scenarios.append({"name": f"s{s}", "probability": weights[s] / sum(weights), "shocks": shocks})
    scenarios[-1]["probability"] = 1.0 - math.fsum(x["probability"] for x in scenarios[:-1])
    return {
        "name": "fuzz",
        "horizon": {
            "periods": T,
            "period_days": draw(st.sampled_from([7, 30, 91.25])),
            "holding_years": draw(st.integers(1, 10)),
        },
        "participants": participants,
        "minerals": minerals,
        "lending": lending,
        "scenarios": scenarios,
        "solver": {"method": draw(st.sampled_from(["extensive", "benders"])), "relative_gap": 1e-6},
    }


@given(configs())
def test_random_valid_configs_solve_and_verify(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("fuzz")
    result = solve_dict(tmp, data)  # writes the run and asserts `stockpile check` finds nothing
    assert result.status in ("optimal", "infeasible"), result.summary
    if result.status == "infeasible":
        assert result.summary.reasons


def magnitudes(lo: float = 0.0, hi: float = 8.0):
    """Numbers spread evenly in log10 over 10^lo .. 10^hi."""
    return st.floats(min_value=lo, max_value=hi).map(lambda e: float(f"{10**e:.6g}"))


@st.composite
def extreme_configs(draw) -> dict:
    """configs() with each mineral's price, shortfall cost and lot drawn over 1e0-1e8: the magnitudes
    that once put cut coefficients near 1e11 into the decomposition's master (tests/data/master_*)."""
    data = draw(configs())
    for spec in data["minerals"].values():
        spec["price_usd_per_t"] = draw(magnitudes())
        spec["holding_cost_usd_per_t_year"] = 0.0
        spec["shortfall_cost_usd_per_t"] = draw(magnitudes())
        spec["lot_t"] = draw(magnitudes())
    data["solver"] = {"relative_gap": 1e-6}
    return data


# `HYPOTHESIS_PROFILE=long` (or STOCKPILE_EXTREME_EXAMPLES=200 alone) runs 200 of these
EXTREME_EXAMPLES = int(
    os.environ.get("STOCKPILE_EXTREME_EXAMPLES", 200 if os.environ.get("HYPOTHESIS_PROFILE") else 12)
)


@settings(max_examples=EXTREME_EXAMPLES)
@given(extreme_configs())
def test_the_decomposition_never_calls_a_plan_optimal_above_the_extensive_optimum(tmp_path_factory, data):
    """Both methods on a config of extreme magnitudes: where the decomposition says optimal, its plan
    costs no more than the extensive optimum (within the gap) and its bound is no higher than it."""
    tmp = tmp_path_factory.mktemp("extreme")
    exact = solve_dict(tmp, data, "extensive", method="extensive", relative_gap=1e-9)
    if exact.status != "optimal":
        return
    opt = exact.summary.objective_usd
    dec = solve_dict(tmp, data, "benders", method="benders")
    assert dec.status in ("optimal", "feasible")
    slack = 1e-6 * max(1.0, abs(opt))
    assert dec.summary.best_bound_usd <= opt + slack, (dec.summary.best_bound_usd, opt)
    if dec.status == "optimal":
        assert dec.summary.objective_usd <= opt + 2 * slack, (dec.summary.objective_usd, opt)


BASE = {
    "name": "base",
    "horizon": {"periods": 2},
    "participants": {"US": {"budget_usd": 1e6}, "JP": {}},
    "minerals": {
        "cobalt": {
            "price_usd_per_t": 10,
            "shortfall_cost_usd_per_t": 90,
            "consumption_t_per_year": {"US": 100, "JP": 50},
            "min_days": {"JP": 10},
        }
    },
    "lending": [{"from": "JP", "to": "US", "max_share": 0.5}],
    "scenarios": [
        {"name": "calm", "probability": 0.5},
        {
            "name": "ban",
            "probability": 0.5,
            "shocks": [{"mineral": "cobalt", "start": 1, "periods": 2, "loss": {"US": 0.5}}],
        },
    ],
    "solver": {"name": "highs"},
}
BAD_VALUES = st.sampled_from(
    [
        "abc",
        -1,
        -1e308,
        float("nan"),
        float("inf"),
        float("-inf"),
        None,
        [],
        {},
        10**15,
        "ZZ",
        True,
        [1, 2],
        {"x": 1},
        1e308,
        "",
        "../x",
    ]
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutations(draw) -> dict:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            kind = draw(st.sampled_from(["replace", "delete", "unknown_key", "duplicate", "empty"]))
            key = path[-1]
            if kind == "replace":
                parent[key] = draw(BAD_VALUES)
            elif kind == "delete":
                del parent[key]
            elif kind == "unknown_key" and isinstance(parent, dict):
                parent[draw(st.sampled_from(["budgte_usd", "pricee", "lots", "x"]))] = 1
            elif kind == "duplicate" and isinstance(parent, list):
                parent.append(copy.deepcopy(parent[key]))
            elif kind == "empty" and isinstance(parent[key], (list, dict)):
                parent[key] = type(parent[key])()
        except (KeyError, IndexError, TypeError):
            continue  # the path no longer exists after an earlier mutation
    return data


@given(mutations())
def test_mutations_give_a_clean_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("mut") / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2, 3), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("error:") and str(path) in result.output
