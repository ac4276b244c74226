"""Phase: the whole CLI, from YAML to written run folder, and its peak memory."""

import json
import resource
import subprocess
import sys

from conftest import sized
from sizes import ROUNDS, write_config


@sized()
def test_cli_end_to_end(benchmark, size, tmp_path):
    path = write_config(size, tmp_path / f"{size}.yaml")
    out = tmp_path / "run"

    def run():
        proc = subprocess.run(
            [sys.executable, "-m", "stockpile", "solve", str(path), "--out", str(out), "--quiet"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr

    benchmark.pedantic(run, rounds=max(5, ROUNDS[size] // 3), iterations=1)  # start-up dominated
    summary = json.loads((out / "summary.json").read_text())
    benchmark.extra_info.update(
        method=summary["method"],
        objective_usd=summary["objective_usd"],
        build_seconds=summary["build_seconds"],
        solve_seconds=summary["solve_seconds"],
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB, Linux reports KiB
    benchmark.extra_info["peak_memory_mib"] = round(peak, 1)
    assert peak < 2048, f"peak memory {peak:.0f} MiB over 2 GiB"
