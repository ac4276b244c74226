"""Phase: start-up of the command line (``stockpile --help``), which every command pays."""

import subprocess
import sys

import pytest


@pytest.mark.small
def test_cli_help_startup(benchmark):
    def run():
        proc = subprocess.run([sys.executable, "-m", "stockpile", "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
