"""Trust under hard numerics, hostile input and solver limits."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import ROOT, checked_solve, write_config

from stockpile import load_config
from stockpile.cli.commands import cli
from stockpile.config import ConfigError, parse_yaml
from stockpile.tools.generate import generate

DEFAULT = ROOT / "configs" / "us_japan.yaml"
TIGHT = [("solver.relative_gap", 1e-9)]


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def _scaled(data: dict, price: float = 1.0, qty: float = 1.0) -> dict:
    """Multiply every price by `price` and every quantity by `qty` (costs per tonne by price/qty)."""
    out = json.loads(json.dumps(data))
    for p in out["participants"].values():
        if p.get("budget_usd") is not None:
            p["budget_usd"] *= price
        if p.get("storage_capacity_t") is not None:
            p["storage_capacity_t"] *= qty
    per_t = price / qty
    for m in out["minerals"].values():
        for k in ("price_usd_per_t", "holding_cost_usd_per_t_year", "shortfall_cost_usd_per_t"):
            if m.get(k) is not None:
                m[k] *= per_t
        if m.get("damage"):  # a derived curve scales with its price and choke value
            m["damage"]["choke_usd_per_t"] *= per_t
        m["fixed_cost_usd"] = {p: v * price for p, v in m["fixed_cost_usd"].items()}
        m["lot_t"] *= qty
        for k in ("consumption_t_per_year", "initial_t", "max_acquisition_t"):
            if isinstance(m.get(k), dict):
                m[k] = {p: v * qty for p, v in m[k].items()}
    for a in out["lending"]:
        a["cost_usd_per_t"] *= per_t
    return out


@pytest.mark.parametrize("price,qty", [(1e3, 1.0), (1.0, 1e3), (1e-3, 1e3)])
def test_scaling_units_scales_the_plan_exactly(tmp_path, price, qty):
    base = load_config(DEFAULT, TIGHT).resolved_dict()
    ref = checked_solve(load_config(write_config(tmp_path / "a.yaml", base)))
    scaled = checked_solve(load_config(write_config(tmp_path / "b.yaml", _scaled(base, price, qty))))
    assert scaled.summary.objective_usd == pytest.approx(ref.summary.objective_usd * price, rel=1e-6)
    assert scaled.holdings.lots.tolist() == ref.holdings.lots.tolist()
    assert scaled.holdings.holding_t.to_numpy() == pytest.approx(ref.holdings.holding_t.to_numpy() * qty, rel=1e-9)


def test_outputs_are_byte_identical_but_for_timings(tmp_path):
    a = checked_solve(load_config(DEFAULT)).write(tmp_path / "a")
    b = checked_solve(load_config(DEFAULT)).write(tmp_path / "b")
    for name in (
        "holdings.csv",
        "schedule.csv",
        "coverage.csv",
        "lending.csv",
        "expected_coverage.csv",
        "config.resolved.yaml",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for s in (sa, sb):
        s.pop("build_seconds"), s.pop("solve_seconds")
    assert sa == sb


def test_time_limit_with_incumbent_is_feasible_and_reports_gap(tmp_path):
    """The limit passes after the first plan (the progress callback outlasts it): the run
    stops between iterations with that plan, its gap and the proven bound."""
    import time

    from stockpile import solve
    from stockpile.config import validate

    data = generate(2, 10, 100, 24, seed=7)
    data["solver"].update(method="benders", time_limit_s=1.0, relative_gap=0.0)
    result = solve(validate(data), progress=lambda *_: time.sleep(1.05))
    summary = result.summary
    assert summary.status == "feasible"
    assert 0 < summary.gap < 1 and summary.best_bound_usd < summary.objective_usd
    result.write(tmp_path / "o")
    assert (tmp_path / "o" / "holdings.csv").exists()


def test_time_limit_without_incumbent_is_no_solution(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", generate(2, 10, 100, 24, seed=7))
    code, out = run("solve", cfg, "--method", "extensive", "--time-limit", "0.001", "--out", tmp_path / "o")
    assert code == 4 and "no plan found within the time limit" in out
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["status"] == "no_solution"


def test_billion_laughs_is_refused():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_yaml("\n".join(lines))


def test_large_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCKPILE_MAX_CONFIG_MB", "0.01")
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 5000)
    code, out = run("validate", path)
    assert code == 2 and "over the 0 MiB limit" in out and "STOCKPILE_MAX_CONFIG_MB" in out


def test_deep_nesting_and_duplicate_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="too deep|YAML"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000)
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nname: y\n")
    code, out = run("validate", path)
    assert code == 2 and f"{path}:2: name: duplicate key (first at line 1)" in out


def test_config_too_large_for_memory_is_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCKPILE_MAX_MEMORY_GB", "0.001")
    cfg = write_config(tmp_path / "c.yaml", generate(2, 10, 200, 24, seed=1))
    code, out = run("solve", cfg, "--out", tmp_path / "o")
    assert code == 2 and "the model would need about" in out and "STOCKPILE_MAX_MEMORY_GB" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", ".hidden", ""])
def test_names_cannot_escape_output_folders(tmp_path, name):
    data = {
        "name": "x",
        "horizon": {"periods": 1},
        "participants": {name: {}},
        "minerals": {"m": {"price_usd_per_t": 1, "shortfall_cost_usd_per_t": 2}},
        "scenarios": [{"name": "s", "probability": 1}],
    }
    code, out = run("validate", write_config(tmp_path / "c.yaml", data))
    assert code == 2 and "participants" in out
    data["participants"] = {"US": {}}
    data["name"] = name
    code, out = run("validate", write_config(tmp_path / "c.yaml", data))
    assert code == 2 and "name" in out


def test_non_mapping_and_empty_files(tmp_path):
    for text, expect in (("", "got an empty file"), ("- 1\n- 2\n", "got a list"), ("42", "got a int")):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        code, out = run("validate", path)
        assert code == 2 and expect in out, out
