"""Benchmarks: one file per measured phase, sizes from sizes.py, marked small/medium/large.

Run and compare with the committed baseline (fails on a median slowdown over 25%):
    python -m pytest benchmarks --benchmark-storage=benchmarks/baseline \
        --benchmark-compare --benchmark-compare-fail=median:25%
Smoke run (CI): python -m pytest benchmarks -m small --benchmark-disable
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sizes import SIZES


def pytest_configure(config):
    for size in SIZES:
        config.addinivalue_line("markers", f"{size}: benchmark at the {size} size")


def sized(sizes=tuple(SIZES)):
    """Parametrise a benchmark over sizes, each marked with its size name."""
    return pytest.mark.parametrize("size", [pytest.param(s, marks=getattr(pytest.mark, s)) for s in sizes])
