"""Faults found when tried as a new user would: each gives one clear line and a documented exit code."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, write_config
from test_cli import run, small

from stockpile.cli import app as cli_module
from stockpile.cli import views
from stockpile.results import outputs


@pytest.fixture
def cfg(tmp_path):
    return write_config(tmp_path / "c.yaml", small())


@pytest.fixture
def study_file(tmp_path, cfg):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"base": "c.yaml", "sweep": {"participants.US.budget_usd": [1e6, 2e6]}}))
    return path


def test_full_disk_leaves_the_old_run_whole(tmp_path, cfg, monkeypatch):
    out = tmp_path / "run"
    code, _ = run("solve", cfg, "--out", out)
    assert code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "fsync", full)
    code, text = run("solve", cfg, "--out", out, "--set", "participants.US.budget_usd=2e6")
    assert code == cli_module.EXIT_OUTPUT
    assert "cannot write the output" in text and "No space left on device" in text and "Traceback" not in text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier run, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]  # no half-written sibling
    fresh = tmp_path / "fresh"
    code, _ = run("solve", cfg, "--out", fresh)
    assert code == cli_module.EXIT_OUTPUT and not fresh.exists()


def test_unwritable_out(tmp_path, cfg):
    code, text = run("solve", cfg, "--out", "/proc/stockpile-run")
    assert code == cli_module.EXIT_OUTPUT and "cannot write the output" in text and "Traceback" not in text


def test_out_refuses_a_folder_it_did_not_write(tmp_path, cfg):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, text = run("solve", cfg, "--out", precious)
    assert code == cli_module.EXIT_OUTPUT and "not a stockpile run folder" in text
    assert (precious / "notes.txt").read_text() == "keep me"


def test_resolving_replaces_the_whole_folder(tmp_path, cfg):
    out = tmp_path / "run"
    assert run("solve", cfg, "--out", out, "--report")[0] == 0
    assert (out / "report.html").exists()
    assert run("solve", cfg, "--out", out, "--set", "participants.US.budget_usd=2e6")[0] == 0
    assert not (out / "report.html").exists()  # it described the previous plan
    assert json.loads((out / "summary.json").read_text())["overrides"] == [["participants.US.budget_usd", 2e6]]


def test_validate_reports_unknown_keys_and_references_together(tmp_path):
    data = small()
    data["participants"]["US"]["budgte_usd"] = 5
    data["scenarios"][1]["shocks"][0]["mineral"] = "cobalx"
    code, text = run("validate", write_config(tmp_path / "bad.yaml", data))
    assert code == 2
    assert "2 problems in the config" in text
    assert "participants.US.budgte_usd: unknown key (did you mean 'budget_usd'?)" in text
    assert "scenarios.1.shocks.0.mineral: unknown mineral 'cobalx' (did you mean 'cobalt'?)" in text


def test_override_typo_is_blamed_on_the_override(cfg):
    code, text = run("validate", cfg, "--set", "participants.US.budget=2e9")
    assert code == 2
    assert "--set participants.US.budget: unknown key (did you mean 'budget_usd'?)" in text
    assert f"{cfg}:" not in text
    code, text = run("validate", cfg, "--set", "participants.US={budget_usd: -1}")  # a key below the override
    assert code == 2 and "--set participants.US: participants.US.budget_usd: input should be greater" in text


def test_scheduler_typo(study_file, tmp_path):
    code, text = run("study", study_file, "--out", tmp_path / "s", "--scheduler", "lokal")
    assert code == 2 and "did you mean 'local'?" in text and "Traceback" not in text


@pytest.mark.slow
def test_unreachable_scheduler_fails_fast(study_file, tmp_path):
    start = time.monotonic()
    code, text = run("study", study_file, "--out", tmp_path / "s", "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and "no Dask scheduler answered" in text
    assert time.monotonic() - start < 30


def test_missing_dask_names_the_extra(study_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code, text = run("study", study_file, "--out", tmp_path / "s", "--scheduler", "local")
    assert code == 2 and "pip install 'stockpile[dask]'" in text


def test_internal_error_is_one_line_unless_debug(cfg, monkeypatch):
    from stockpile import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api, "solve", broken)
    code, text = run("solve", cfg)
    assert code == cli_module.EXIT_INTERNAL and "internal error: ZeroDivisionError: a bug" in text
    assert "--debug" in text and "Traceback" not in text
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_module.cli, ["--debug", "solve", str(cfg)])
    assert isinstance(result.exception, ZeroDivisionError)  # --debug lets the traceback through


def test_verbose_logs_the_stages(cfg, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "stockpile", "--verbose", "solve", str(cfg), "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "INFO stockpile.api" in proc.stderr and "solving with the extensive method" in proc.stderr


def test_progress_counts_only_cases_a_worker_runs():
    progress = views.CaseProgress(20, "study", workers=2)
    for i in range(20):
        progress("submitted", f"c{i}", None)
    assert progress.shown_running == 2
    progress("done", "c0", {"status": "optimal"})
    assert progress.shown_running == 2 and progress.done == 1


def test_help_does_not_load_the_solver_stack():
    code = (
        "import sys, stockpile.cli; heavy = {'pandas', 'scipy', 'ortools', 'pydantic', 'numpy'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "[]", proc.stdout
