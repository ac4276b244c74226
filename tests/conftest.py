"""Shared helpers: write a config dict to YAML, solve it, verify it independently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stockpile import load_config, solve
from stockpile.results.check import check_run

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def solve_dict(tmp_path: Path, data: dict, label: str = "cfg", except_rules: tuple[str, ...] = (), **solver):
    """Solve a config given as a dict, write its run folder and assert the verifier passes
    (every rule but except_rules)."""
    data = {**data, "solver": {**data.get("solver", {}), **solver}}
    cfg = load_config(write_config(tmp_path / f"{label}.yaml", data))
    result = solve(cfg)
    if result.has_solution:
        run = result.write(tmp_path / f"run_{label}")
        problems = [v for v in check_run(run) if v.rule not in except_rules]
        assert not problems, "\n".join(map(str, problems[:20]))
    return result


def checked_solve(cfg):
    """Solve a Config, write its run to a temporary folder and assert the verifier passes."""
    import tempfile

    result = solve(cfg)
    if result.has_solution:
        with tempfile.TemporaryDirectory() as tmp:
            problems = check_run(result.write(Path(tmp) / "run"))
        assert not problems, "\n".join(map(str, problems[:20]))
    return result


def assert_runs_verify(folder: Path) -> int:
    """Run the verifier on every case folder under folder/cases; returns how many were checked."""
    cases = sorted((folder / "cases").glob("*/summary.json"))
    for summary in cases:
        problems = check_run(summary.parent)
        assert not problems, f"{summary.parent.name}: " + "\n".join(map(str, problems[:20]))
    return len(cases)


def one_mineral(**over) -> dict:
    """A one-participant, one-mineral, one-period config; q = consumption (period = a year)."""
    base = {
        "name": "t",
        "horizon": {"periods": 1, "period_days": 365},
        "participants": {"US": {}},
        "minerals": {
            "cobalt": {"price_usd_per_t": 100, "shortfall_cost_usd_per_t": 400, "consumption_t_per_year": {"US": 1000}}
        },
        "scenarios": [{"name": "calm", "probability": 1.0}],
        "solver": {"relative_gap": 1e-9},
    }
    for key, value in over.items():
        base[key] = value
    return base


def bundled(name: str) -> dict:
    """A bundled config as a plain dict with its base files merged in (written anywhere, it stands alone)."""
    from stockpile.config import read_yaml, with_bases

    return with_bases(read_yaml(ROOT / "configs" / name))[0]


# the default config with each derived damage curve as one segment (its average over a full cut):
# damage flat in the depth, where the canonical schedule applies
FLAT_DAMAGE = [
    (f"minerals.{m}.damage.shares", [1.0])
    for m in ("cobalt", "graphite", "lithium", "manganese", "nickel", "rare_earths", "gallium", "germanium")
]


@pytest.fixture
def default_config() -> Path:
    return ROOT / "configs" / "us_japan.yaml"
