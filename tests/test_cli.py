"""Every user mistake gives one clear message naming file, key and expectation, and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from conftest import write_config

from stockpile.cli.commands import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def small() -> dict:
    return {
        "name": "small",
        "horizon": {"periods": 3},
        "participants": {"US": {"budget_usd": 1e6}, "JP": None},
        "minerals": {
            "cobalt": {
                "price_usd_per_t": 100,
                "shortfall_cost_usd_per_t": 900,
                "consumption_t_per_year": {"US": 900, "JP": 500},
            }
        },
        "lending": [{"from": "JP", "to": "US"}],
        "scenarios": [
            {"name": "calm", "probability": 0.5},
            {
                "name": "ban",
                "probability": 0.5,
                "shocks": [{"mineral": "cobalt", "start": 1, "periods": 2, "loss": 0.5}],
            },
        ],
    }


def mutate(path: str, value):
    data = small()
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


BAD = [
    ("participants.US.budgte_usd", 5, "participants.US.budgte_usd: unknown key (did you mean 'budget_usd'?)"),
    ("minerals.cobalt.price_usd_per_t", "cheap", "minerals.cobalt.price_usd_per_t: input should be a valid number"),
    (
        "minerals.cobalt.price_usd_per_t",
        -3,
        "minerals.cobalt.price_usd_per_t: input should be greater than or equal to 0",
    ),
    (
        "minerals.cobalt.shortfall_cost_usd_per_t",
        float("nan"),
        "minerals.cobalt.shortfall_cost_usd_per_t: expected a finite number",
    ),
    ("participants.US.budget_usd", float("inf"), "participants.US.budget_usd: expected a finite number"),
    (
        "minerals.cobalt.consumption_t_per_year",
        {"US": -5},
        "minerals.cobalt.consumption_t_per_year.US: input should be greater than or equal to 0",
    ),
    ("scenarios.1.shocks.0.loss", 1.5, "scenarios.1.shocks.0.loss: input should be less than or equal to 1"),
    (
        "scenarios.1.shocks.0.loss",
        {"US": -0.1},
        "scenarios.1.shocks.0.loss.US: input should be greater than or equal to 0",
    ),
    ("scenarios.1.probability", 0.4, "scenarios: probabilities sum to 0.9, expected 1"),
    ("scenarios.1.shocks.0.loss", {"US": 0.5}, "scenarios.1.shocks.0.loss: no loss for JP: give every participant"),
    (
        "scenarios.1.shocks.0.mineral",
        "cobalx",
        "scenarios.1.shocks.0.mineral: unknown mineral 'cobalx' (did you mean 'cobalt'?)",
    ),
    ("lending.0.to", "USA", "lending.0.to: unknown participant 'USA' (did you mean 'US'?)"),
    ("lending.0.from", "EU", "lending.0.from: unknown participant 'EU'"),
    ("scenarios.1.shocks.0.start", 7, "scenarios.1.shocks.0.start: start 7 is outside the horizon (periods 1..3)"),
    ("scenarios.1.shocks.0.start", 0, "scenarios.1.shocks.0.start: input should be greater than or equal to 1"),
    ("solver", {"name": "gurobi"}, "solver.name: input should be 'highs' or 'scip'"),
    ("horizon", {"periods": "twelve"}, "horizon.periods: input should be a valid integer"),
    ("minerals.cobalt", {"shortfall_cost_usd_per_t": 5}, "minerals.cobalt.price_usd_per_t: required key is missing"),
    ("scenarios", [], "scenarios: list should have at least 1 item"),
    ("minerals.cobalt.min_days", {"XX": 3}, "minerals.cobalt.min_days.XX: unknown participant 'XX'"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[b[0] + "=" + repr(b[1])[:12] for b in BAD])
def test_bad_config_names_file_key_and_expectation(tmp_path, path, value, message):
    cfg = write_config(tmp_path / "bad.yaml", mutate(path, value))
    for command in ("solve", "validate"):
        code, out = run(command, cfg, "--out", tmp_path / "o") if command == "solve" else run(command, cfg)
        assert code == 2, out
        assert message in out, out
        assert str(cfg) in out
        assert "Traceback" not in out


def test_yaml_syntax_error_gives_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nhorizon: {periods: 3\nparticipants: [US]\n")
    code, out = run("solve", path)
    assert code == 2
    assert f"{path}:3" in out and "YAML syntax error" in out


def test_unknown_key_reports_line(tmp_path):
    path = tmp_path / "c.yaml"
    text = yaml.safe_dump(small(), sort_keys=False).replace("budget_usd", "budget")
    path.write_text(text)
    line = text.splitlines().index(next(s for s in text.splitlines() if "budget:" in s)) + 1
    code, out = run("validate", path)
    assert code == 2 and f"{path}:{line}: participants.US.budget: unknown key" in out


def test_python_object_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    code, out = run("validate", path)
    assert code == 2 and "not allowed" in out
    assert not marker.exists(), "the YAML tag ran a command"


def test_scientific_notation_reads_as_number(tmp_path):
    data = small()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data).replace("1000000.0", "1.5e9"))
    from stockpile import load_config

    assert load_config(path).participants["US"].budget_usd == 1.5e9


def test_missing_file(tmp_path):
    code, out = run("solve", tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml" in out and "cannot read" in out


def test_bad_override(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", small())
    code, out = run("validate", cfg, "--set", "scenarios.nosuch.probability=1")
    assert code == 2 and "no item named 'nosuch'" in out
    code, out = run("validate", cfg, "--set", "participants.US.budget_usd")
    assert code == 2 and "expected KEY=VALUE" in out
    code, out = run("validate", cfg, "--set", "participants.US.budget_usd=-1")
    assert code == 2 and "participants.US.budget_usd" in out


def test_override_by_scenario_name_and_index(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", small())
    out = tmp_path / "o"
    code, text = run(
        "solve",
        cfg,
        "--out",
        out,
        "--set",
        "scenarios.ban.shocks.0.periods=3",
        "--set",
        "participants.US.budget_usd=2e6",
        "--gap",
        "0",
    )
    assert code == 0, text
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["scenarios"][1]["shocks"][0]["periods"] == 3
    assert resolved["participants"]["US"]["budget_usd"] == 2e6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overrides"][0] == ["scenarios.ban.shocks.0.periods", 3]
    assert ["solver.relative_gap", 0.0] in summary["overrides"]


def test_infeasible_is_explained(tmp_path):
    data = small()
    data["minerals"]["cobalt"]["min_days"] = {"US": 365}
    data["participants"]["US"]["budget_usd"] = 50_000
    cfg = write_config(tmp_path / "c.yaml", data)
    code, out = run("solve", cfg, "--out", tmp_path / "o")
    assert code == 3
    assert "US min_days targets cost 90,000 USD" in out and "raise participants.US.budget_usd by 40,000" in out
    assert "or lower minerals.cobalt.min_days.US to 202" in out  # 50,000 USD buys 500 t of 900 t/yr
    code, out = run("validate", cfg)
    assert code == 3 and "budget_usd" in out


def test_infeasible_ceiling_and_storage(tmp_path):
    data = small()
    data["minerals"]["cobalt"].update(min_days={"JP": 73}, max_acquisition_t={"JP": 50})
    data["participants"]["US"] = {"storage_capacity_t": 10}
    data["minerals"]["cobalt"]["initial_t"] = {"US": 20}
    code, out = run("solve", write_config(tmp_path / "c.yaml", data), "--out", tmp_path / "o")
    assert code == 3
    assert "JP min_days for cobalt needs 100 t" in out and "lower minerals.cobalt.min_days.JP to 36" in out
    assert "US must hold at least 20 t" in out and "storage_capacity_t is 10" in out


def test_solve_writes_outputs_and_validate_prints_sizes(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", small())
    out = tmp_path / "run"
    code, text = run("solve", cfg, "--out", out)
    assert code == 0, text
    for name in ("summary.json", "holdings.csv", "schedule.csv", "coverage.csv", "lending.csv", "config.resolved.yaml"):
        assert (out / name).is_file()
    assert "total cost" in text and "holdings" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert sum(summary["costs"].values()) == pytest.approx(summary["objective_usd"])
    code, text = run("validate", cfg)
    assert code == 0 and "variables" in text and "constraints" in text and "scenarios" in text
    code, text = run("check", out)
    assert code == 0 and "every rule holds" in text


def test_export_model_writes_lp_without_solving(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", small())
    for ext in ("lp", "mps"):
        path = tmp_path / f"model.{ext}"
        code, text = run("solve", cfg, "--export-model", path, "--out", tmp_path / "never")
        assert code == 0, text
        assert path.stat().st_size > 0
    assert not (tmp_path / "never").exists()
    assert "demand(ban,US,cobalt,1)" in (tmp_path / "model.lp").read_text()


def test_python_dash_m_and_console_script(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", small())
    for cmd in ([sys.executable, "-m", "stockpile"], ["stockpile"]):
        proc = subprocess.run(cmd + ["validate", str(cfg)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        bad = subprocess.run(cmd + ["validate", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope.yaml" in bad.stderr


def test_tiny_numbers_are_refused(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", mutate("minerals.cobalt.consumption_t_per_year", {"US": 5e-324}))
    code, out = run("validate", cfg)
    assert code == 2 and "minerals.cobalt.consumption_t_per_year.US: 5e-324 is below 1e-09" in out and "write 0" in out
