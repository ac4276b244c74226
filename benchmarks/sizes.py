"""The one registry of benchmark sizes: (participants, minerals, scenarios, periods)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from stockpile.config import Config, validate
from stockpile.generate import generate

SEED = 7
SIZES = {
    "small": (2, 5, 10, 12),
    "medium": (2, 10, 100, 24),
    "large": (3, 20, 1000, 24),
}
# timed rounds per size: fast sizes need more rounds for a stable median (the compare gate is 25%)
ROUNDS = {"small": 15, "medium": 5, "large": 3}
# the extensive form is measured only where it finishes in reasonable time
EXTENSIVE_SIZES = ("small", "medium")
ROOT = Path(__file__).resolve().parents[1]


@cache
def config(size: str, method: str = "auto", gap: float = 1e-4) -> Config:
    data = generate(*SIZES[size], seed=SEED, name=f"bench-{size}")
    data["solver"].update(method=method, relative_gap=gap)
    return validate(data, f"benchmark {size}")


def write_config(size: str, path: Path) -> Path:
    data = generate(*SIZES[size], seed=SEED, name=f"bench-{size}")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
