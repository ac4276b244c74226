"""Reports: the numbers shown match the run's files, the page is offline, and a real browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, checked_solve

from stockpile import load_config
from stockpile.cli.commands import cli
from stockpile.fmt import money as _money
from stockpile.report import build_report, write_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("report")
    out = {"solve": checked_solve(load_config(ROOT / "configs" / "us_japan.yaml")).write(tmp / "solve")}
    out["buildup"] = checked_solve(load_config(ROOT / "configs" / "us_japan_buildup.yaml")).write(tmp / "buildup")
    simulated = CliRunner().invoke(cli, ["simulate", str(out["solve"]), "--workers", "2"])
    assert simulated.exit_code == 0, simulated.output
    responded = CliRunner().invoke(
        cli, ["respond", str(ROOT / "configs" / "states" / "ga_ge_month3.yaml"), "--out", str(tmp / "response")]
    )
    assert responded.exit_code == 0, responded.output
    out["response"] = tmp / "response"
    study = tmp / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "base": str(ROOT / "configs" / "us_japan.yaml"),
                "sweep": {
                    "participants.JP.budget_usd": [7e8, 9e8],
                    "scenarios.drc_cobalt_suspension.shocks.0.periods": [4, 8],
                },
            }
        )
    )
    for kind, args in (
        ("study", ["study", str(study)]),
        ("coalition", ["coalition", str(ROOT / "configs" / "us_japan.yaml")]),
        (
            "compare",
            [
                "compare",
                str(ROOT / "configs" / "us_japan.yaml"),
                "--set",
                "participants.JP.budget_usd=1.5e9",
                "--set",
                "minerals.cobalt.max_acquisition_t.US=3000",
            ],
        ),
    ):
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp / kind), "--workers", "2"])
        assert result.exit_code == 0, result.output
        out[kind] = tmp / kind
    return out


def _data(chart) -> pd.DataFrame:
    """The chart's largest dataset (a layer over a subset, such as a frontier, has fewer rows)."""
    spec = chart.to_dict()
    return pd.DataFrame(max(spec["datasets"].values(), key=len))


def _chart(page, section: str, i: int = 0):
    """The i-th chart of a section, by the section's title."""
    items = [item for title, _, items in page.sections if title == section for item in items]
    return [item for item in items if not isinstance(item, str)][i]


def test_solve_report_numbers_match_the_files(runs):
    folder = runs["solve"]
    page = build_report(folder)
    summary = json.loads((folder / "summary.json").read_text())
    hold = pd.read_csv(folder / "holdings.csv")
    cov = pd.read_csv(folder / "coverage.csv")
    ec = pd.read_csv(folder / "expected_coverage.csv")
    assert _money(summary["objective_usd"]) in page.header
    assert summary["config_hash"] in page.header
    for p, c in summary["costs_by_participant"].items():  # cost per participant in the headline
        assert f">{p}<" in page.header and _money(c["total_usd"]) in page.header
    shown = _data(_chart(page, "Holdings", 0))  # initial and acquired tonnes
    assert shown.tonnes.sum() == pytest.approx(hold.holding_t.sum())
    days = _data(_chart(page, "Holdings", 1))
    assert days.set_index(["participant", "mineral"]).days_of_consumption.to_dict() == pytest.approx(
        hold.dropna(subset=["days_of_consumption"]).set_index(["participant", "mineral"]).days_of_consumption.to_dict()
    )
    sources = _data(_chart(page, "Coverage given a disruption")).groupby("who").days.sum()
    for r in ec.itertuples():
        assert sources[f"{r.participant} · {r.mineral}"] == pytest.approx(r.expected_coverage_days, abs=1e-6)
    heat = _data(_chart(page, "Coverage by scenario"))
    assert len(heat) == len(cov) and heat.coverage_days.sum() == pytest.approx(cov.coverage_days.sum())
    costs = _data(_chart(page, "Cost by component"))
    assert costs.usd.sum() == pytest.approx(summary["objective_usd"])
    limits = [s for s in page.sections if s[0] == "Limits at the optimum"][0][2][0]
    assert "budget_usd" in limits and "min_days" in limits
    spec = _chart(page, "Lending between partners").to_dict()
    flows = pd.DataFrame(next(d for d in spec["datasets"].values() if "expected_lent_t" in d[0]))
    assert flows.expected_lent_t.tolist() == pytest.approx(
        pd.read_csv(folder / "lending_flows.csv").expected_lent_t.tolist()
    )


def test_study_and_coalition_report_numbers(runs):
    page = build_report(runs["study"])
    table = pd.read_csv(runs["study"] / "study.csv")
    points = _data(_chart(page, "Cost against coverage"))
    assert sorted(points.objective_usd) == pytest.approx(sorted(table.objective_usd))
    assert points.expected_coverage_share.tolist() == pytest.approx(table.expected_coverage_share.tolist())
    # every metric of study.csv can be picked in each effect chart
    effect = _data(_chart(page, "Effect of JP.budget_usd"))
    swept = ["participants.JP.budget_usd", "scenarios.drc_cobalt_suspension.shocks.0.periods"]
    metrics = [c for c in table.columns if (c.endswith(("_usd", "_share")) or "." in c) and c not in swept]
    assert effect.metric.nunique() == len(metrics)
    assert all(f">{case}<" in "".join(str(i) for s in page.sections for i in s[2]) for case in table.case)
    page = build_report(runs["coalition"])
    coal = pd.read_csv(runs["coalition"] / "coalitions.csv")
    shares = pd.read_csv(runs["coalition"] / "shares.csv")
    charts = list(page.charts.values())
    assert _data(charts[0]).objective_usd.tolist() == pytest.approx(coal.objective_usd.tolist())
    shown = _data(charts[1])
    assert shown[shown.measure == "Shapley share"].usd.tolist() == pytest.approx(shares.shapley_usd.tolist())


def test_compare_and_simulation_report_numbers(runs):
    page = build_report(runs["compare"])
    table = pd.read_csv(runs["compare"] / "compare.csv").set_index("rule")
    bars = _data(_chart(page, "What complementarity is worth"))
    assert set(bars.rule) == {"optimised", "days", "prorata", "alone"}
    for rule, g in bars.groupby("rule"):
        assert g.usd.sum() == pytest.approx(table.loc[rule, "objective_usd"], rel=1e-9)
    page = build_report(runs["solve"])
    sim = json.loads((runs["solve"] / "simulation.json").read_text())
    shown = _data(_chart(page, "Responding month by month"))
    rolling = shown[shown.kind == "rolling_cost_usd"].set_index("scenario").usd
    assert rolling["expected"] == pytest.approx(sim["expected"]["rolling_cost_usd"])
    assert [rolling[r["scenario"]] for r in sim["scenarios"]] == pytest.approx(
        [r["rolling_cost_usd"] for r in sim["scenarios"]]
    )


def test_response_report_numbers(runs):
    page = build_report(runs["response"])
    s = json.loads((runs["response"] / "summary.json").read_text())
    bars = _data(_chart(page, "How it may go on"))
    mine = bars[bars.kind == "cost_usd"].set_index("name").usd
    assert [mine[c["name"]] for c in s["continuations"]] == pytest.approx([c["cost_usd"] for c in s["continuations"]])
    assert _money(s["expected_cost_usd"]) in page.header


def test_report_is_self_contained(runs):
    for folder in runs.values():
        html = write_report(folder).read_text()
        assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)
        assert "vegaEmbed" in html


def test_cli_report_and_figures(runs, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(runs["coalition"]), "--figures", str(tmp_path / "fig")])
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in (tmp_path / "fig").iterdir()) == [".png", ".png", ".svg", ".svg"]
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "fig").iterdir())
    bad = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "not a solve, study or coalition output folder" in bad.output


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.mark.slow
def test_buildup_report_numbers_match_the_files(runs):
    """The build-up section: days held by year, the budget spent each year, the order of purchase."""
    folder = runs["buildup"]
    page = build_report(folder)
    acq = pd.read_csv(folder / "acquisitions.csv")
    limits = pd.read_csv(folder / "limits.csv")
    days = _data(_chart(page, "Build-up by fiscal year", 0))
    held = acq[acq.groupby(["participant", "mineral"]).holding_t.transform("max") > 0].dropna(
        subset=["days_of_consumption"]
    )
    assert len(days) == len(held)
    assert days.days_of_consumption.sum() == pytest.approx(held.days_of_consumption.sum())
    spent = _data(_chart(page, "Build-up by fiscal year", 1))
    budget = limits[limits.limit == "budget_usd"]
    assert spent.used.sum() == pytest.approx(budget.used.sum()) and spent.value.sum() == pytest.approx(
        budget.value.sum()
    )
    table = [s for s in page.sections if s[0] == "Build-up by fiscal year"][0][2][-1]
    assert table.index("germanium") < table.index("manganese")  # first bought first


@pytest.mark.parametrize("kind", ["solve", "buildup", "study", "coalition", "compare", "response"])
def test_every_chart_renders_in_a_real_browser(runs, kind, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (install Debian's chromium package; .ci/run does)")
    page = write_report(runs[kind])
    flags = [*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    charts = int(re.search(r'data-charts="(\d+)"', dom.stdout).group(1))
    assert charts > 0
    assert f'data-rendered="{charts}"' in dom.stdout, "not every chart rendered"
    assert "data-error" not in dom.stdout
    errors = [
        line
        for line in dom.stderr.splitlines()
        if "CONSOLE" in line and ("Error" in line or "Uncaught" in line) and "WARN" not in line
    ]
    assert not errors, errors
    for i in range(1, charts + 1):
        block = re.search(rf'<div class="chart[^"]*" id="chart{i}".*?</svg>', dom.stdout, re.S)
        assert block and "<path" in block.group(0), f"chart {i} is empty"
    shot = tmp_path / f"{kind}.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20_000


def test_study_labels_tell_keys_apart_and_values_read_as_money():
    from stockpile.report.page import fmt_value, short_labels

    keys = ["scenarios.drc.shocks.0.periods", "scenarios.china.shocks.0.periods", "participants.JP.budget_usd"]
    labels = short_labels(keys)
    assert labels == {
        keys[0]: "drc.shocks.0.periods",
        keys[1]: "china.shocks.0.periods",
        keys[2]: "JP.budget_usd",
    }
    assert fmt_value("participants.JP.budget_usd", 6e8) == "$600.00m"
    assert fmt_value("scenarios.drc.shocks.0.periods", 4.0) == "4"
