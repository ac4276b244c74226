"""Numbers for people, shared by the terminal and the reports (no heavy imports)."""

from __future__ import annotations


def money(x: float | None, short: bool = False) -> str:
    """USD for people: $2.63bn, $976.19m, $92.84k; short: three significant figures for narrow
    tables ($2.63bn, $976m, $91.8k); a dash when there is no figure."""
    if x is None or x != x:
        return "–"
    if x < 0:
        return "-" + money(-x, short) if x <= -0.5 else "$0"
    units = (("bn", 1e9), ("m", 1e6), ("k", 1e3))
    for i, (unit, div) in enumerate(units):
        if x >= div:
            v = x / div
            decimals = max(0, 3 - len(str(int(v)))) if short else 2
            if i > 0 and round(v, decimals) >= 1000:  # $999.999m rounds to the next unit: $1.00bn
                return money(units[i - 1][1], short)
            return f"${v:,.{decimals}f}{unit}"
    return f"${x:,.0f}"


def tonnes(x: float) -> str:
    """Tonnes for narrow tables, three significant figures: 6, 650, 1.56k, 11k."""
    if x < 1000:
        return f"{x:,.3g}" if x < 100 else f"{x:,.0f}"
    v = x / 1000
    return f"{v:,.{max(0, 3 - len(str(int(v))))}f}k"
