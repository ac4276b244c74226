"""Write every kind of run folder of the bundled configs, or compare two such trees byte by byte.

A refactor that must not change behaviour is proved by writing the folders before and after it:

    python benchmarks/golden.py write ../golden-before      # on the commit before the change
    python benchmarks/golden.py write ../golden-after       # on the change
    python benchmarks/golden.py compare ../golden-before ../golden-after

``compare`` ignores what differs from run to run (timings, versions, dates, absolute paths of the
two trees) and lists every other file that differs, is missing or is new; it exits 1 on a
difference. A study's report.html shows each case's solve_seconds in its table and charts, so it
is compared with those numbers scrubbed from its data and its table (SECONDS_CELL).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (folder, arguments after `stockpile`); {out} is the folder, {root} the tree being written
RUNS: list[tuple[str, list[str]]] = [
    ("baseline", ["solve", "configs/us_japan.yaml", "--out", "{out}"]),
    ("baseline_benders", ["solve", "configs/us_japan.yaml", "--method", "benders", "--out", "{out}"]),
    ("cvar", ["solve", "configs/us_japan.yaml", "--set", "risk.cvar_weight=0.5", "--out", "{out}"]),
    ("sampled", ["solve", "configs/us_japan_sampled.yaml", "--out", "{out}"]),
    ("buildup", ["solve", "configs/us_japan_buildup.yaml", "--out", "{out}"]),
    ("three", ["solve", "configs/us_eu_japan.yaml", "--out", "{out}"]),
    ("explain", ["explain", "{root}/baseline", "--workers", "2"]),
    ("explain_buildup", ["explain", "{root}/buildup", "--workers", "2"]),
    ("evaluate", ["evaluate", "{root}/sampled", "--sample", "2000", "--seed", "1"]),
    (
        "saa",
        ["saa", "configs/us_japan_sampled.yaml", "--sample", "50", "--replications", "3", "--evaluate", "500"]
        + ["--seed", "1", "--out", "{out}", "--workers", "2"],
    ),
    ("respond", ["respond", "configs/states/ga_ge_month3.yaml", "--out", "{out}"]),
    ("simulate", ["simulate", "{root}/baseline", "--all", "--workers", "2"]),
    ("study", ["study", "configs/studies/risk_weight.yaml", "--out", "{out}", "--workers", "2"]),
    ("offtake", ["study", "configs/studies/offtake.yaml", "--out", "{out}", "--workers", "2"]),
    ("coalition", ["coalition", "configs/us_japan.yaml", "--out", "{out}", "--workers", "2"]),
    ("compare", ["compare", "configs/us_japan.yaml", "--out", "{out}", "--workers", "2"]),
    ("report_baseline", ["report", "{root}/baseline"]),
    ("report_study", ["report", "{root}/study"]),
    ("report_respond", ["report", "{root}/respond"]),
    ("report_compare", ["report", "{root}/compare"]),
    ("check_baseline", ["check", "{root}/baseline"]),
    ("check_respond", ["check", "{root}/respond"]),
]

# keys whose values differ between any two runs of the same code
VOLATILE_KEYS = {
    "build_seconds",
    "solve_seconds",
    "seconds",
    "elapsed_seconds",
    "wall_seconds",
    "version",
    "stockpile_version",
    "ortools_version",
    "solver_version",
    "python_version",
    "created",
    "finished_at",
    "started_at",
}
VOLATILE_TEXT = [
    re.compile(r"\d+(\.\d+)? ?s\b"),  # "solved in 1.2 s"
    re.compile(r"(stockpile|ortools|OR-Tools)[ =]v?\d+(\.\d+)+"),
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?UTC|Z|[+-]\d{2}:?\d{2})?"),
    re.compile(r'"data-[0-9a-f]{32}"'),  # Altair names a chart's data by its hash: timings move it
    re.compile(r'"(solve|build)_seconds": [0-9.eE+-]+'),
]
# the study report's table: the last cell of each case's row is its solve_seconds
SECONDS_CELL = re.compile(r'<td data-key="[0-9.eE+-]+">[0-9.eE+-]+</td></tr>')


def write(root: Path) -> None:
    """Run every command of RUNS into ``root``, each command's terminal output beside its folder."""
    root.mkdir(parents=True, exist_ok=True)
    for name, args in RUNS:
        out = root / name
        argv = [a.format(out=out, root=root) for a in args]
        done = subprocess.run([sys.executable, "-m", "stockpile", *argv], cwd=ROOT, capture_output=True, text=True)
        (root / f"{name}.stdout").write_text(done.stdout + f"\nexit {done.returncode}\n")
        print(f"{name}: exit {done.returncode}", flush=True)


def _scrub(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("*" if k in VOLATILE_KEYS else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return _scrub_text(value)
    return value


def _scrub_text(text: str) -> str:
    for pattern in VOLATILE_TEXT:
        text = pattern.sub("*", text)
    return text


def _normal(path: Path, root: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return f"<binary {len(raw)} bytes>"
    text = text.replace(str(root), "{root}")
    if path.suffix == ".csv":
        lines = text.splitlines()
        if lines:
            head = lines[0].split(",")
            drop = {i for i, name in enumerate(head) if name in VOLATILE_KEYS}
            if drop:
                rows = (line.split(",") for line in lines)
                return "\n".join(",".join(v for i, v in enumerate(r) if i not in drop) for r in rows)
    if path.suffix == ".json":
        try:
            return json.dumps(_scrub(json.loads(text)), indent=1, sort_keys=True)
        except json.JSONDecodeError:
            pass
    if path.name == "report.html" and "solve_seconds" in text:
        text = SECONDS_CELL.sub("<td>*</td></tr>", text)
    return _scrub_text(text)


def compare(before: Path, after: Path, *, allowed_new: set[str]) -> int:
    """Print each file that differs between the two trees; 0 when none does."""
    names_b = {p.relative_to(before).as_posix() for p in before.rglob("*") if p.is_file()}
    names_a = {p.relative_to(after).as_posix() for p in after.rglob("*") if p.is_file()}
    bad = 0
    for name in sorted(names_b - names_a):
        print(f"missing: {name}")
        bad += 1
    for name in sorted(names_a - names_b):
        if Path(name).name not in allowed_new:
            print(f"new: {name}")
            bad += 1
    same = 0
    for name in sorted(names_b & names_a):
        if name.endswith(".png"):  # rasterised text: fonts and versions, compared through the html/svg
            continue
        b, a = _normal(before / name, before), _normal(after / name, after)
        if a == b:
            same += 1
            continue
        bad += 1
        print(f"differs: {name}")
        diff = difflib.unified_diff(b.splitlines(), a.splitlines(), "before", "after", n=0, lineterm="")
        for line in list(diff)[:12]:
            print("    " + line[:200])
    print(f"{same} files identical, {bad} differences")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("root", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--allow-new", nargs="*", default=[], help="file names the change is allowed to add")
    args = parser.parse_args()
    if args.command == "write":
        write(args.root.resolve())
        return 0
    return compare(args.before.resolve(), args.after.resolve(), allowed_new=set(args.allow_new))


if __name__ == "__main__":
    sys.exit(main())
