"""Numbers for people, shared by the terminal and the reports (no heavy imports)."""

from __future__ import annotations


def money(x: float | None, short: bool = False) -> str:
    """USD for people: $2.63bn, $976.19m, $92.84k; short: three significant figures for narrow
    tables ($2.63bn, $976m, $91.8k); a dash when there is no figure."""
    if x is None or x != x:
        return "–"
    if x < 0:
        return "-" + money(-x, short) if x <= -0.5 else "$0"
    for unit, div in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if x >= div:
            v = x / div
            decimals = max(0, 3 - len(str(int(v)))) if short else 2
            return f"${v:,.{decimals}f}{unit}"
    return f"${x:,.0f}"
