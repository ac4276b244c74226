"""How solve time grows with scenarios, per method; fits the exponent b of time = a * S^b.

    python benchmarks/scaling.py                     # writes benchmarks/results/scaling-<time>.json
    python benchmarks/scaling.py --update-baseline   # overwrites benchmarks/baseline/scaling.json

Instances: 2 participants, 10 minerals, 24 periods, seed 7, scenarios as listed; the
extensive form stops at sizes where it still finishes within its time limit.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from stockpile import solve
from stockpile.config import validate
from stockpile.tools.generate import generate

SCENARIOS = {"benders": [100, 300, 1000, 3000, 10000], "extensive": [25, 50, 100, 200, 400]}
BASELINE = Path(__file__).parent / "baseline" / "scaling.json"
RESULTS = Path(__file__).parent / "results"


def measure(method: str, scenarios: int, rounds: int) -> dict:
    data = generate(2, 10, scenarios, 24, seed=7)
    data["solver"].update(method=method, time_limit_s=600.0)
    cfg = validate(data)
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = solve(cfg)
        total = time.perf_counter() - start
        s = result.summary
        runs.append((total, s.build_seconds, s.solve_seconds))
    total, build, solve_s = (statistics.median(r[i] for r in runs) for i in range(3))
    return {
        "method": method,
        "scenarios": scenarios,
        "variables": s.sizes["variables"],
        "status": s.status,
        "gap": s.gap,
        "total_seconds": round(total, 3),
        "build_seconds": round(build, 3),
        "solve_seconds": round(solve_s, 3),
        "build_share": round(build / total, 3),
    }


def fit(rows: list[dict]) -> float:
    s = np.log([r["scenarios"] for r in rows])
    t = np.log([r["total_seconds"] for r in rows])
    return float(np.polyfit(s, t, 1)[0])


def main() -> None:
    update = "--update-baseline" in sys.argv[1:]
    out = BASELINE if update else RESULTS / f"scaling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    rounds = int(os.environ.get("ROUNDS", "3"))
    rows = []
    for method, sizes in SCENARIOS.items():
        for n in sizes:
            row = measure(method, n, rounds if n <= 1000 else 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    exponents = {m: round(fit([r for r in rows if r["method"] == m and r["scenarios"] >= 100]), 2) for m in SCENARIOS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cores": os.cpu_count(), "rows": rows, "exponents": exponents}, indent=2) + "\n")
    print(f"fitted exponents (scenarios >= 100): {exponents}; written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
