"""The one registry of benchmark sizes: (participants, minerals, scenarios, periods)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from stockpile.config import Config, validate
from stockpile.tools.generate import generate

SEED = 7
SIZES = {
    "small": (2, 5, 10, 12),
    "medium": (2, 10, 100, 24),
    "large": (3, 20, 1000, 24),
}
# timed rounds per size: fast sizes need more rounds for a stable median (the compare gate is 25%)
ROUNDS = {"small": 15, "medium": 5, "large": 3}
# the fiscal years of the build-up benchmarks (stockpile generate --years)
BUILDUP_YEARS = 5
# the damage-curve benchmarks: segments of every mineral's curve (stockpile generate --segments)
DAMAGE_SEGMENTS = 3
# the extensive form is measured only where it finishes in reasonable time
EXTENSIVE_SIZES = ("small", "medium")
ROOT = Path(__file__).resolve().parents[1]


@cache
def config(
    size: str, method: str = "auto", gap: float = 1e-4, projects: bool = False, years: int = 1, segments: int = 1
) -> Config:
    """The benchmark instance of a size; years > 1: the same instance built up over that many years;
    segments > 1: every mineral's damage a rising curve of that many segments (the same average)."""
    data = generate(*SIZES[size], seed=SEED, name=f"bench-{size}", years=years, segments=segments)
    data["solver"].update(method=method, relative_gap=gap)
    if projects:
        data["projects"] = allied_projects(data)
    return validate(data, f"benchmark {size}")


def allied_projects(data: dict) -> list[dict]:
    """Two allied projects on the first two minerals: capacity a fifth of the partners' use, the floor
    5% above the market price, an agreement cost (so the offtake binaries are exercised too)."""
    out = []
    for name, spec in list(data["minerals"].items())[:2]:
        use = spec["consumption_t_per_year"]
        total = sum(use.values()) if isinstance(use, dict) else use * len(data["participants"])
        out.append(
            {
                "name": f"ally_{name}",
                "host": "AU",
                "mineral": name,
                "capacity_t_per_year": round(0.2 * total, 1),
                "floor_price_usd_per_t": round(1.05 * spec["price_usd_per_t"], 2),
                "fixed_cost_usd": 1e5,
            }
        )
    return out


def write_config(size: str, path: Path) -> Path:
    data = generate(*SIZES[size], seed=SEED, name=f"bench-{size}")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
