"""Stage 6 of the flow: results -> files, always written atomically.

Every file is written to a temporary sibling and renamed into place, so a crash
never leaves a half-written file that a later resume would trust. A run folder
is complete when its ``summary.json`` exists: it is written last.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

if TYPE_CHECKING:
    from .results import Result

FLOAT_FORMAT = "%.10g"
_UMASK = os.umask(0)
os.umask(_UMASK)


def money(x: float | None) -> str:
    """USD for people: $2.63bn, $976.19m, $92.84k; a dash when there is no figure."""
    if x is None or x != x:
        return "–"
    for unit, div in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"${x / div:,.2f}{unit}"
    return f"${x:,.0f}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to path via a temporary sibling, fsync and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def write_json(data: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def write_result(result: "Result", out_dir: Path) -> Path:
    """The run folder: tables first, summary.json last (its presence marks a finished run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.config:
        atomic_write_text(out_dir / "config.resolved.yaml",
                          yaml.safe_dump(result.config, sort_keys=False, allow_unicode=True))
    write_csv(result.holdings, out_dir / "holdings.csv")
    write_csv(result.schedule, out_dir / "schedule.csv")
    write_csv(result.coverage, out_dir / "coverage.csv")
    write_csv(result.lending, out_dir / "lending.csv")
    if not result.expected_coverage.empty:
        write_csv(result.expected_coverage, out_dir / "expected_coverage.csv")
    write_json(result.summary, out_dir / "summary.json")
    return out_dir
