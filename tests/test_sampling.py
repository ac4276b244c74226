"""Scenarios sampled from suppliers and events: reproducible, faithful to the probabilities, clear errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from stockpile.cli.commands import cli
from stockpile.config import ConfigError, validate

BASE = {
    "name": "samp",
    "horizon": {"periods": 12},
    "participants": ["US", "JP"],
    "minerals": {
        "gallium": {"price_usd_per_t": 240000, "shortfall_cost_usd_per_t": 4.8e6, "consumption_t_per_year": 50},
        "germanium": {"price_usd_per_t": 5e6, "shortfall_cost_usd_per_t": 1e8, "consumption_t_per_year": 20},
    },
    "suppliers": {"China": {"gallium": {"US": 0.9, "JP": 0.6}, "germanium": 0.5}},
    "events": [
        {
            "name": "ga_ge",
            "supplier": "China",
            "minerals": ["gallium", "germanium"],
            "annual_probability": 0.2,
            "duration_periods": {"min": 3, "mode": 6, "max": 12},
            "severity": {"min": 0.5, "max": 1.0},
            "correlated_with": {"event": "ge_only", "probability": 0.5},
        },
        {
            "name": "ge_only",
            "supplier": "China",
            "minerals": ["germanium"],
            "annual_probability": 0.15,
            "duration_periods": {"min": 1, "mode": 2, "max": 4},
            "severity": {"min": 0.2, "max": 0.4},
        },
    ],
    "scenarios": {"sample": {"count": 20000, "seed": 7}},
}


def _sample(**over):
    data = copy.deepcopy(BASE)
    data.update(over)
    return validate(data).scenario_list


def test_same_seed_same_bytes_other_seed_other_sample():
    a = [s.model_dump() for s in _sample(scenarios={"sample": {"count": 500, "seed": 1}})]
    b = [s.model_dump() for s in _sample(scenarios={"sample": {"count": 500, "seed": 1}})]
    c = [s.model_dump() for s in _sample(scenarios={"sample": {"count": 500, "seed": 2}})]
    assert yaml.safe_dump(a) == yaml.safe_dump(b) and a != c


def test_frequencies_match_the_event_probabilities():
    """Binomial checks at 4 standard deviations (fixed seed: deterministic), marginals and the correlation."""
    scen = _sample()
    n = len(scen)
    a = np.array(["ga_ge" in s.name for s in scen])
    b = np.array(["ge_only" in s.name for s in scen])

    def within(k: int, trials: int, p: float) -> bool:
        return abs(k - trials * p) <= 4 * np.sqrt(trials * p * (1 - p))

    assert within(int(a.sum()), n, 0.2)
    assert within(int(b.sum()), n, 0.15)  # the marginal is kept under the correlation
    assert within(int((a & b).sum()), int(a.sum()), 0.5)  # P(ge_only | ga_ge) = 0.5
    assert within(int((~a & ~b).sum()), n, 1 - 0.2 - 0.15 + 0.2 * 0.5)  # calm years
    assert all(s.probability == pytest.approx(1 / n) for s in scen)


def test_losses_are_supplier_share_times_severity_within_the_drawn_ranges():
    for s in _sample(scenarios={"sample": {"count": 2000, "seed": 3}}):
        for sh in s.shocks:
            assert 1 <= sh.start <= 12
            if sh.mineral == "gallium":  # only ga_ge cuts gallium: severity in [0.5, 1]
                sev = sh.loss["US"] / 0.9
                assert 0.5 <= sev <= 1.0 and sh.loss["JP"] == pytest.approx(0.6 * sev)
                assert 3 <= sh.periods <= 12
            else:
                assert sh.loss["US"] == sh.loss["JP"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"suppliers": {"China": {"gallium": {"US": 0.9, "JP": 0.6}, "germanium": 0.5}, "DRC": {"gallium": 0.3}}},
            "sum to 1.2",
        ),
        ({"events": [{**BASE["events"][1], "supplier": "Chna"}]}, "unknown supplier 'Chna'"),
        (
            {
                "events": [
                    {**BASE["events"][0], "correlated_with": {"event": "nope", "probability": 0.5}},
                    BASE["events"][1],
                ]
            },
            "unknown event 'nope'",
        ),
        (
            {
                "events": [
                    {**BASE["events"][0], "correlated_with": {"event": "ge_only", "probability": 0.95}},
                    {**BASE["events"][1], "annual_probability": 0.1},
                ]
            },
            "cannot keep ge_only's annual_probability",
        ),
        (
            {"events": [{**BASE["events"][1], "duration_periods": {"min": 5, "mode": 2, "max": 4}}]},
            "min <= mode <= max",
        ),
        ({"events": []}, "sampling needs `events`"),
        ({"events": [], "scenarios": "enumerate"}, "enumerate needs `events`"),
        (
            {"scenarios": "enumerat"},
            "expected a list of scenarios, {sample: {count, seed}} or enumerate, got 'enumerat'",
        ),
    ],
)
def test_bad_sampling_inputs_name_the_key(change, message):
    data = copy.deepcopy(BASE)
    data.update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("|", r"\|")):
        validate(data)


def test_scenarios_command_writes_an_explicit_reusable_list(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "s.yaml"
    res = CliRunner().invoke(cli, ["scenarios", str(cfg), "--count", "50", "--seed", "4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    listed = yaml.safe_load(out.read_text())["scenarios"]
    assert len(listed) == 50
    again = validate({**BASE, "scenarios": listed}).scenario_list
    direct = validate({**BASE, "scenarios": {"sample": {"count": 50, "seed": 4}}}).scenario_list
    assert [s.model_dump() for s in again] == [s.model_dump() for s in direct]


def test_a_run_with_zero_and_missing_supplier_shares_is_read_back_by_every_command(tmp_path):
    """A supplier that serves one participant nothing (share 0) or is silent on it (no share): the
    run's config.resolved.yaml must validate again, so the commands that take a run work on it."""
    data = copy.deepcopy(BASE)
    data["horizon"] = {"periods": 6}
    data["suppliers"] = {"China": {"gallium": {"US": 0.9, "JP": 0.0}, "germanium": {"US": 0.5}}}
    data["scenarios"] = {"sample": {"count": 40, "seed": 3}}
    data["lending"] = [{"from": "JP", "to": "US", "max_share": 0.5}]
    cfg = tmp_path / "samp.yaml"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    run = tmp_path / "run"
    runner = CliRunner()

    def ok(*args: str) -> None:
        out = runner.invoke(cli, list(args))
        assert out.exit_code == 0, (args, out.output)

    ok("solve", str(cfg), "--out", str(run), "--quiet")
    again = validate(yaml.safe_load((run / "config.resolved.yaml").read_text()))
    shocks = [sh for s in again.scenario_list for sh in s.shocks]
    assert shocks and all(sh.loss["JP"] == 0.0 for sh in shocks)  # named, at zero
    ok("check", str(run))
    ok("evaluate", str(run), "--sample", "50", "--seed", "2")
    ok("explain", str(run), "--workers", "1")
    ok("simulate", str(run), "--all", "--workers", "1")


def test_enumerated_scenarios_are_every_combination_with_its_exact_probability():
    """BASE's two events by hand: ga_ge 0.2; ge_only 0.15, 0.5 where ga_ge occurs and
    (0.15 - 0.5 x 0.2) / 0.8 = 0.0625 elsewhere. So calm 0.8 x 0.9375 = 0.75, ga_ge alone 0.1,
    both 0.1, ge_only alone 0.05; each event at its mode (6 and 2 periods) and mean severity (0.75
    and 0.3) from period 1: ga_ge cuts gallium 0.9 x 0.75 for the US, 0.6 x 0.75 for Japan. And the
    sample of the same events converges on the same probabilities."""
    got = {sc.name: sc for sc in _sample(scenarios="enumerate")}
    assert {k: round(v.probability, 12) for k, v in got.items()} == {
        "calm": 0.75,
        "ga_ge": 0.1,
        "ga_ge_and_ge_only": 0.1,
        "ge_only": 0.05,
    }
    assert sum(v.probability for v in got.values()) == 1.0
    (ga, ge) = got["ga_ge"].shocks
    assert (ga.mineral, ga.start, ga.periods) == ("gallium", 1, 6)
    assert ga.loss == pytest.approx({"US": 0.675, "JP": 0.45}) and ge.loss == pytest.approx({"US": 0.375, "JP": 0.375})
    (only,) = got["ge_only"].shocks
    assert (only.periods, only.loss) == (2, pytest.approx({"US": 0.15, "JP": 0.15}))
    assert not got["calm"].shocks and len(got["ga_ge_and_ge_only"].shocks) == 3
    drawn = [sc.name.split("_", 1)[1] for sc in _sample()]  # s00001_ga_ge_and_ge_only: the same names
    for name, sc in got.items():
        assert drawn.count(name) / len(drawn) == pytest.approx(sc.probability, abs=0.01)


def test_the_bundled_configs_read_one_statement_of_the_events():
    """The default and the sampled config take their events and suppliers from configs/events.yaml;
    the default enumerated gives the 24 combinations that can happen (graphite is restricted only
    with gallium and germanium: its rate elsewhere is 0), likeliest first, summing to 1."""
    from conftest import ROOT

    from stockpile import load_config

    default = load_config(ROOT / "configs" / "us_japan.yaml", [("scenarios", "enumerate")])
    sampled = load_config(ROOT / "configs" / "us_japan_sampled.yaml")
    assert default.events == sampled.events and default.suppliers == sampled.suppliers
    got = default.scenario_list
    assert len(got) == 24 and got[0].name == "calm" and sum(s.probability for s in got) == pytest.approx(1.0, abs=1e-15)
    assert got[0].probability == pytest.approx(0.88 * 0.88 * 0.94 * 0.88)  # no rare earths, Ga/Ge, cobalt, nickel
    assert not any("china_graphite" in s.name and "china_ga_ge" not in s.name for s in got)
