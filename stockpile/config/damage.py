"""Damage curves: what a tonne of disrupted supply not covered costs, by the depth of the shortage.

A curve is a list of segments (up_to_share w_j, usd_per_t b_j): the unmet tonnes of a period, as a
share phi of the participant's consumption in that period, cost b_j each while w_{j-1} < phi <= w_j.
Shares increase to exactly 1 and b_j never decreases, so the damage is convex in the unmet tonnes
and the model may split them freely between segments (the cheapest fill first).

``minerals.M.damage: {elasticity, choke_usd_per_t, shares}`` derives a curve from a constant-
elasticity demand curve (docs/model.md, "Damage curves"): losing a share phi of supply raises the
price of the last tonne to c (1 - phi)^(-1/epsilon), c the normal price; that tonne's loss is what
users would have paid above the normal price, capped where they stop buying (the choke price):
    b(phi) = min(c ((1 - phi)^(-1/epsilon) - 1), choke_usd_per_t)
and each segment costs the average of b over its depth, b_j = int_{w_{j-1}}^{w_j} b / (w_j - w_{j-1}).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

log = logging.getLogger(__name__)

Segments = tuple[tuple[float, float], ...]  # (up_to_share, usd_per_t), shares increasing to 1

# the last share must be 1 to within this
LAST_SHARE_TOL = 1e-9


def curve_problem(shares: Sequence[float], costs: Sequence[float]) -> str | None:
    """Why a list of segments is not a convex damage curve, naming the segment (1-based); None if it is."""
    for j, (w, b) in enumerate(zip(shares, costs, strict=True)):
        if j and w <= shares[j - 1]:
            return f"segment {j + 1}: up_to_share {w:g} is not above segment {j}'s {shares[j - 1]:g} (shares increase)"
        if j and b < costs[j - 1]:
            return (
                f"segment {j + 1}: usd_per_t {b:g} is below segment {j}'s {costs[j - 1]:g}: a deeper shortage "
                "cannot cost less per tonne (the curve must be convex)"
            )
    if shares and abs(shares[-1] - 1.0) > LAST_SHARE_TOL:
        return (
            f"the last segment ends at up_to_share {shares[-1]:g}: the segments must cover the whole shortage, to 1.0"
        )
    return None


def marginal_damage(phi: float, price: float, elasticity: float, choke: float) -> float:
    """b(phi) = min(c ((1 - phi)^(-1/epsilon) - 1), choke): the loss of the last tonne at depth phi."""
    if phi >= 1.0:
        return choke
    return float(min(price * ((1.0 - phi) ** (-1.0 / elasticity) - 1.0), choke))


def _integral(phi: float, price: float, elasticity: float) -> float:
    """int_0^phi c ((1 - x)^(-1/epsilon) - 1) dx, for phi < 1."""
    e = 1.0 / elasticity
    rest = 1.0 - phi
    if abs(e - 1.0) < 1e-12:
        head = -math.log(rest)
    else:
        head = (1.0 - rest ** (1.0 - e)) / (1.0 - e)
    return price * (head - phi)


def derived_segments(price: float, elasticity: float, choke: float, shares: Sequence[float]) -> Segments:
    """Each segment's average of b(phi) over its depth: exact (the integral in closed form, up to the
    depth phi* = 1 - (1 + choke / c)^(-epsilon) where b reaches the choke price, then the choke)."""
    star = 1.0 - (1.0 + choke / price) ** (-elasticity) if price > 0 else 0.0

    def area(phi: float) -> float:
        below = min(phi, star)
        return _integral(below, price, elasticity) + choke * max(phi - star, 0.0)

    out = []
    lo = 0.0
    for w in shares:
        out.append((float(w), float((area(w) - area(lo)) / (w - lo))))
        lo = w
    return tuple(out)
