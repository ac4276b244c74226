"""How closely each method keeps ``solver.time_limit_s``, on the benchmark sizes.

    python benchmarks/time_limits.py

Prints, per method, size and limit, the status and the solve time; the target is
limit x 1.1 + 0.5 s. Instances as in sizes.py (seed 7), gap 0 so that the limit stops them.
"""

from __future__ import annotations

import time

from sizes import SIZES

from stockpile import solve
from stockpile.config import validate
from stockpile.tools.generate import generate

CASES = [
    ("extensive", "medium", 0.5),
    ("extensive", "medium", 2.0),
    ("benders", "medium", 0.5),
    ("benders", "large", 0.5),
    ("benders", "large", 3.0),
]


def main() -> None:
    print(f"{'method':10} {'size':7} {'limit s':>8} {'status':9} {'solve s':>8} {'total s':>8} {'target s':>9}")
    for method, size, limit in CASES:
        data = generate(*SIZES[size], seed=7)
        data["solver"].update(method=method, time_limit_s=limit, relative_gap=0.0)
        cfg = validate(data)
        start = time.perf_counter()
        s = solve(cfg).summary
        total = time.perf_counter() - start
        print(
            f"{method:10} {size:7} {limit:8.1f} {s.status:9} {s.solve_seconds:8.2f} {total:8.2f} "
            f"{limit * 1.1 + 0.5:9.2f}"
        )


if __name__ == "__main__":
    main()
