"""What-if studies: case expansion, validation up front, parallel runs, resume, Dask."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import assert_runs_verify, write_config

from stockpile.analysis.study import load_study, run_study
from stockpile.cli.commands import cli
from stockpile.config import ConfigError


def base() -> dict:
    return {
        "name": "mini",
        "horizon": {"periods": 3, "period_days": 30},
        "participants": {"US": {"budget_usd": 2e6, "release_rate_max": 0.5}, "JP": {"budget_usd": 2e6}},
        "minerals": {
            "cobalt": {
                "price_usd_per_t": 1000,
                "shortfall_cost_usd_per_t": 9000,
                "lot_t": 10,
                "consumption_t_per_year": {"US": 12000, "JP": 6000},
            },
            "gallium": {
                "price_usd_per_t": 5000,
                "shortfall_cost_usd_per_t": 90000,
                "consumption_t_per_year": {"US": 200, "JP": 300},
            },
        },
        "lending": [{"from": "JP", "to": "US", "max_share": 0.5}],
        "scenarios": [
            {"name": "calm", "probability": 0.6},
            {
                "name": "ban",
                "probability": 0.4,
                "shocks": [
                    {"mineral": "cobalt", "start": 1, "periods": 2, "loss": 0.6},
                    {"mineral": "gallium", "start": 2, "periods": 2, "loss": {"US": 1.0, "JP": 0.0}},
                ],
            },
        ],
    }


@pytest.fixture
def study_file(tmp_path):
    write_config(tmp_path / "base.yaml", base())
    scenarios = base()["scenarios"]  # a new participant needs its loss in every loss map
    scenarios[1]["shocks"][1]["loss"]["KR"] = 0.5
    frag = {"participants": {"KR": {"budget_usd": 1e6}}, "lending": [], "scenarios": scenarios}
    (tmp_path / "frag.yaml").write_text(yaml.safe_dump(frag))
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": "base.yaml",
                "sweep": {"participants.US.budget_usd": [2e5, 1e6, 4e6], "scenarios.ban.shocks.0.periods": [1, 3]},
                "cases": [{"name": "no_lending", "set": {"lending": []}}, {"name": "korea", "set_file": "frag.yaml"}],
            }
        )
    )
    return path


def test_cases_are_the_product_plus_extras(study_file):
    cases = load_study(study_file)
    assert [c.name for c in cases][:6] == [f"sweep_{i:03d}" for i in range(1, 7)]
    assert [c.name for c in cases][6:] == ["no_lending", "korea"]
    assert cases[0].overrides == {"participants.US.budget_usd": 2e5, "scenarios.ban.shocks.0.periods": 1}
    assert cases[5].config.scenarios[1].shocks[0].periods == 3
    assert cases[6].config.lending == []
    assert "KR" in cases[7].config.participants
    assert all(c.config.solver.threads == 1 for c in cases)


def test_bad_case_fails_up_front_naming_case_and_key(study_file):
    spec = yaml.safe_load(study_file.read_text())
    spec["cases"].append({"name": "broken", "set": {"participants.US.budget_usd": -5}})
    study_file.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError) as err:
        load_study(study_file)
    assert "case broken" in str(err.value) and "participants.US.budget_usd" in str(err.value)
    result = CliRunner().invoke(cli, ["study", str(study_file), "--dry-run"])
    assert result.exit_code == 2 and "case broken" in result.output


def test_unknown_study_key_and_unsafe_case_name(tmp_path, study_file):
    spec = yaml.safe_load(study_file.read_text())
    spec["sweeep"] = spec.pop("sweep")
    study_file.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(cli, ["study", str(study_file), "--dry-run"])
    assert result.exit_code == 2 and "sweeep: unknown key (did you mean 'sweep'?)" in result.output
    spec["cases"] = [{"name": "../escape", "set": {}}]
    study_file.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(cli, ["study", str(study_file), "--dry-run"])
    assert result.exit_code == 2 and "cases.0.name" in result.output


def test_study_runs_resumes_and_frontier_is_monotone(tmp_path, study_file):
    out = tmp_path / "out"
    events: list[tuple[str, str]] = []
    df = run_study(load_study(study_file), out, workers=2, progress=lambda e, n, s: events.append((e, n)))
    assert len(df) == 8 and set(df.status) == {"optimal"}
    for col in (
        "case",
        "participants.US.budget_usd",
        "scenarios.ban.shocks.0.periods",
        "status",
        "objective_usd",
        "acquisition_usd",
        "expected_shortfall_usd",
        "holding_t.US",
        "coverage_days.US.cobalt",
        "gap",
        "solve_seconds",
    ):
        assert col in df.columns, col
    table = pd.read_csv(out / "study.csv")
    assert list(table.case) == list(df.case)
    assert assert_runs_verify(out) == 8
    assert (out / "study.parquet").exists()
    # more budget never costs more: the frontier is monotone for each shock length
    for _, g in df.dropna(subset=["participants.US.budget_usd"]).groupby("scenarios.ban.shocks.0.periods"):
        costs = g.sort_values("participants.US.budget_usd").objective_usd.to_numpy()
        assert all(a >= b - 1e-6 * abs(a) for a, b in zip(costs, costs[1:]))
    summary = json.loads((out / "cases" / "sweep_001" / "summary.json").read_text())
    assert summary["overrides"] == [["participants.US.budget_usd", 2e5], ["scenarios.ban.shocks.0.periods", 1]]
    # rerun: nothing is solved again
    events.clear()
    again = run_study(load_study(study_file), out, workers=2, progress=lambda e, n, s: events.append((e, n)))
    assert {e for e, _ in events} == {"cached"}
    assert again.objective_usd.tolist() == df.objective_usd.tolist()
    # a case whose summary is gone is solved again, alone
    (out / "cases" / "korea" / "summary.json").unlink()
    events.clear()
    run_study(load_study(study_file), out, workers=1, progress=lambda e, n, s: events.append((e, n)))
    assert [n for e, n in events if e == "done"] == ["korea"]


@pytest.mark.slow
def test_dask_local_cluster_matches_process_pool(tmp_path, study_file):
    pytest.importorskip("distributed")
    cases = load_study(study_file)[:4]
    local = run_study(cases, tmp_path / "pool", workers=2)
    dask = run_study(cases, tmp_path / "dask", workers=2, scheduler="local")
    assert dask.objective_usd.tolist() == pytest.approx(local.objective_usd.tolist(), rel=1e-9)
    assert (tmp_path / "dask" / "cases" / "sweep_004" / "holdings.csv").exists()


def test_study_cli(tmp_path, study_file):
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["study", str(study_file), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "study.csv" in result.output and (out / "study.csv").exists()
    dry = CliRunner().invoke(cli, ["study", str(study_file), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0 and "finished" in dry.output


@pytest.mark.parametrize("name", ["budget_sweep", "shock_length"])
def test_bundled_studies_load(name):
    from conftest import ROOT

    cases = load_study(ROOT / "configs" / "studies" / f"{name}.yaml")
    assert len(cases) >= 8 and len({c.hash for c in cases}) == len(cases)
