"""Crash safety of studies, tested by really killing processes (SIGKILL)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stockpile.tools.generate import generate

N_CASES = 8
pytestmark = pytest.mark.slow  # kills real processes


@pytest.fixture
def study(tmp_path) -> Path:
    base = generate(2, 8, 60, 12, seed=3)
    base["solver"]["method"] = "benders"
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "study.yaml"
    budgets = [float(base["participants"]["US"]["budget_usd"]) * f for f in (0.5, 0.75, 1.0, 1.5)]
    path.write_text(
        yaml.safe_dump(
            {"base": "base.yaml", "sweep": {"participants.US.budget_usd": budgets, "horizon.holding_years": [3.0, 6.0]}}
        )
    )
    return path


def _start(study: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stockpile", "study", str(study), "--out", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _finished(out: Path) -> list[Path]:
    return sorted(out.glob("cases/*/summary.json"))


def _wait_for(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while len(_finished(out)) < n:
        assert proc.poll() is None, "study ended before it could be killed"
        assert time.time() < end, "no case finished in time"
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)


def _assert_no_corrupt_files(out: Path) -> None:
    for folder in out.glob("cases/*"):
        if not (folder / "summary.json").exists():
            continue  # unfinished: a resume solves it again, whatever else is there
        json.loads((folder / "summary.json").read_text())
        for csv in folder.glob("*.csv"):
            pd.read_csv(csv)


def _assert_complete(out: Path) -> None:
    table = pd.read_csv(out / "study.csv")
    assert len(table) == N_CASES and set(table.status) == {"optimal"}


def _assert_resume_completes(study: Path, out: Path) -> None:
    """After an interruption: no corrupt file; a rerun finishes the rest and solves no finished case again."""
    done = {p: p.stat().st_mtime_ns for p in _finished(out)}
    assert 1 <= len(done) < N_CASES
    _assert_no_corrupt_files(out)
    rerun = subprocess.run(
        [sys.executable, "-m", "stockpile", "study", str(study), "--out", str(out), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    for p, mtime in done.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was solved again"
    assert "cached" in rerun.stderr
    _assert_complete(out)


def test_sigkill_of_the_whole_study_loses_no_finished_case(tmp_path, study):
    out = tmp_path / "out"
    proc = _start(study, out)
    _wait_for(out, 1, proc)
    time.sleep(random.Random(7).uniform(0.0, 0.3))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _assert_resume_completes(study, out)


def test_sigkill_of_a_worker_is_survived(tmp_path, study):
    out = tmp_path / "out"
    proc = _start(study, out)
    _wait_for(out, 1, proc)
    # the study's children are the forkserver and the resource tracker; workers are the forkserver's
    workers = [w for child in _children(proc.pid) for w in _children(child)]
    assert workers, "no worker process found"
    os.kill(workers[-1], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=600)
    _assert_no_corrupt_files(out)
    assert proc.returncode == 0, stderr.decode()
    assert "a worker process died; restarting the pool" in stderr.decode()
    _assert_complete(out)


def test_ctrl_c_keeps_finished_cases_and_says_how_to_resume(tmp_path, study):
    out = tmp_path / "out"
    proc = _start(study, out)
    _wait_for(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
    _, stderr = proc.communicate(timeout=120)
    message = stderr.decode()
    assert proc.returncode == 130, message
    assert "interrupted:" in message and "run the same command again" in message and "Traceback" not in message
    assert (out / "study.csv").exists()  # the table of what finished is written before leaving
    _assert_resume_completes(study, out)
