"""Numbers for people, shared by the terminal and the reports (no heavy imports)."""

from __future__ import annotations


def money(x: float | None) -> str:
    """USD for people: $2.63bn, $976.19m, $92.84k; a dash when there is no figure."""
    if x is None or x != x:
        return "–"
    if x < 0:
        return "-" + money(-x) if x <= -0.5 else "$0"
    for unit, div in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if x >= div:
            return f"${x / div:,.2f}{unit}"
    return f"${x:,.0f}"


def money_short(x: float | None) -> str:
    """USD in three significant figures for narrow tables: $2.63bn, $976m, $91.8k."""
    if x is None or x != x:
        return "–"
    if x < 0:
        return "-" + money_short(-x) if x <= -0.5 else "$0"
    for unit, div in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if x >= div:
            v = x / div
            return f"${v:,.{max(0, 2 - len(str(int(abs(v)))) + 1)}f}{unit}"
    return f"${x:,.0f}"
