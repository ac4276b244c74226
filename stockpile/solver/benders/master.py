"""The master problem: the first-stage columns and rows with one theta per aggregate, and the
optimality cuts that bound the thetas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from stockpile.enums import SolverName
from stockpile.model.core import LinearModel
from stockpile.solver.backends import SolveOutcome, solve_model
from stockpile.solver.benders.structure import Structure

# an epigraph theta's cut must raise it at the point by more than this (relative)
RAISE_TOL = 1e-9
# HiGHS sees the master's largest money figure with about this many digits before the point
HIGHS_MONEY_DIGITS = 4


@dataclass
class Cuts:
    """Optimality cuts theta_g >= q + d . z, one row each."""

    agg: list[int] = field(default_factory=list)
    q: list[float] = field(default_factory=list)
    d: list[np.ndarray] = field(default_factory=list)

    def add(self, z: np.ndarray, Q: np.ndarray, grad: np.ndarray, floor: np.ndarray, primary: int) -> None:
        """A cut at z for each theta: theta_g >= Q_g(z) + d_g . (z' - z). Every primary theta's cut is
        kept: a cut exact at z still bounds theta elsewhere, and fewer cuts cost the benchmark
        instances a round more. Of the epigraph's thetas (one per scenario under CVaR) only the cuts
        that raise theta_g at z above its cuts so far and its floor, the L-shaped method's rule:
        most scenarios are far from the tail, where every cut would be theta_g >= 0."""
        have = self.theta(z, floor)[primary:]
        keep = np.r_[
            np.arange(primary),
            primary + np.nonzero(have + RAISE_TOL * np.maximum(1.0, np.abs(Q[primary:])) < Q[primary:])[0],
        ]
        self.agg.extend(keep.tolist())
        self.q.extend((Q[keep] - grad[:, keep].T @ z).tolist())
        self.d.extend(grad[:, keep].T.copy())

    def __len__(self) -> int:
        return len(self.agg)

    def theta(self, z: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """Each theta at its highest cut at z, and at least its floor (its lower bound in the master)."""
        out = floor.copy()
        if not self.agg:
            return out
        np.maximum.at(out, np.array(self.agg, dtype=np.int64), np.array(self.q) + np.array(self.d) @ z)
        return out


@dataclass
class Master:
    """min c_F z + sum_g theta_g over the first-stage rows and the cuts."""

    st: Structure
    theta_lb: np.ndarray  # per theta

    def solve(
        self,
        cuts: Cuts,
        solver: SolverName,
        time_limit_s: float,
        gap: float,
        hint: np.ndarray | None = None,
        relax: bool = False,
    ) -> SolveOutcome:
        """The master (its LP relaxation with relax). SCIP solves it in dollars, like the extensive model: rescaling it made
        SCIP up to 4.5x slower, and rescaling only its objective made it wrong. HiGHS solves it with
        thetas, cuts and objective in a unit of dollars near the master's scale (highs_unit): in dollars it returned as optimal a plan
        2.7e-5 above a feasible one (`stockpile generate --years 3 --seed 2`; docs/numerics.md).
        The outcome is in dollars either way."""
        unit = self.highs_unit(cuts) if solver is SolverName.HIGHS else 1.0
        G = self.st.thetas
        scale = np.r_[np.ones(self.st.first_cols.size), np.full(G, unit)]
        out = solve_model(
            self.model(cuts, relax, unit), solver, time_limit_s, gap, None if hint is None else hint / scale
        )
        return dataclasses.replace(
            out,
            x=None if out.x is None else out.x * scale,
            objective=None if out.objective is None else out.objective * unit,
            bound=None if out.bound is None else out.bound * unit,
        )

    def highs_unit(self, cuts: Cuts) -> float:
        """A power of ten of dollars putting the master's largest money figure (a cut's constant or a
        first-stage cost) near 1e4: large instances reach 1e10 (then $1m), tiny ones stay in dollars
        (in millions their cuts fell under HiGHS's tolerances and the master repeated plans)."""
        top = max(
            float(np.abs(np.array(cuts.q)).max(initial=0.0)),
            float(np.abs(self.st.lm.c[self.st.first_cols]).max(initial=0.0)),
        )
        return float(10.0 ** max(0, round(np.log10(max(top, 1.0))) - HIGHS_MONEY_DIGITS))

    def largest_coefficient(self, cuts: Cuts, solver: SolverName, first: float) -> float:
        """The master's largest coefficient as solver sees it: first (the first-stage rows') or a
        cut's, in the unit of money Master.solve gives solver."""
        unit = self.highs_unit(cuts) if solver is SolverName.HIGHS else 1.0
        return max(first, float(np.abs(np.array(cuts.d)).max(initial=0.0)) / unit)

    def model(self, cuts: Cuts, relax: bool = False, unit: float = 1.0) -> LinearModel:
        """The master with its objective, thetas and cut rows in units of `unit` dollars
        (the first-stage rows as built)."""
        lm, st = self.st.lm, self.st
        F, G, k = st.first_cols, st.thetas, len(cuts)
        D = np.array(cuts.d).reshape(k, F.size) / unit
        cut_rows = sp.hstack(
            [sp.csr_matrix(-D), sp.csr_matrix((np.ones(k), (np.arange(k), cuts.agg)), shape=(k, G))]
        ).tocsr()
        first = st.A_first
        A = sp.vstack([sp.hstack([first, sp.csr_matrix((first.shape[0], G))]), cut_rows]).tocsr()
        A.sort_indices()
        integer = np.r_[lm.integer[F], np.zeros(G, dtype=bool)]
        return LinearModel(
            c=np.r_[lm.c[F] / unit, np.ones(G)],
            offset=lm.offset / unit,
            A=A,
            row_lb=np.r_[lm.row_lb[st.first_rows], np.array(cuts.q) / unit],
            row_ub=np.r_[lm.row_ub[st.first_rows], np.full(k, np.inf)],
            lb=np.r_[lm.lb[F], self.theta_lb / unit],
            ub=np.r_[lm.ub[F], np.full(G, np.inf)],
            integer=np.zeros_like(integer) if relax else integer,
            var_blocks={},
            row_blocks={},
        )

    def cost(self, z: np.ndarray) -> float:
        lm = self.st.lm
        return float(lm.c[self.st.first_cols] @ z + lm.offset)

    def feasible(self, z: np.ndarray, tol: float = 1e-9) -> bool:
        lm, st = self.st.lm, self.st
        act = st.A_first @ z
        scale = tol * np.maximum(1.0, np.abs(act))
        return bool(np.all(act >= lm.row_lb[st.first_rows] - scale) and np.all(act <= lm.row_ub[st.first_rows] + scale))
