"""L-shaped (Benders) decomposition of the extensive model, for many scenarios.

Given the lots n, the second stage splits into independent (scenario, mineral)
pairs: the recourse of mineral m depends only on the holdings x_{., m}. The
decomposition works on the *same* :class:`LinearModel` the extensive form
solves, cut into blocks, so the plan it returns goes through the same results
and verifier code.

Master (MIP, small): min c_F (n, y) + sum_m theta_m over the first-stage rows
(programme, budget, storage) and the optimality cuts
    theta_m >= Q_m(n^k) + g_m^k . (n - n^k),   Q_m(n) = sum_s (expected recourse of pair (s, m)).

Recourse of a pair, given n:
* no lending variable in the pair: per (s, p, m), closed form (exact)
      served = min( sum_t min(g_t, rho x), (1 - phi) x ),   Q = pi b (sum_t g_t - served)
  with supergradient d served / dx = (1 - phi) if the floor binds, else rho * #{t : rho x < g_t};
* with lending: one LP per batch of pairs (all scenarios of a mineral), built
  once; only the right-hand sides (rho x, (1 - phi) x, sigma x) change between
  iterations. The cut comes from the row duals: dQ/dn = -lambda^T A_{rows, n}.

The lower bound is the master's proven dual bound, the upper bound the best
evaluated plan; the loop stops at the configured relative gap. A first phase on
the master's LP relaxation collects cuts cheaply before the MIP phase.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .backends import IncrementalLP, SolveOutcome, ortools_version, relative_gap, solve_model
from .instance import Instance
from .model import LinearModel

FIRST_STAGE_ROWS = ("program", "budget", "storage")
SECOND_STAGE_ROWS = ("demand", "rate", "floor", "lend_cap")
BATCH_COLUMNS = 2_000  # measured: docs/performance.md


@dataclass
class _Batch:
    """LP recourse of a set of (scenario, mineral) pairs, built once, re-solved warm."""

    lp: IncrementalLP
    cols: np.ndarray  # columns of the extensive model
    c: np.ndarray
    coupled: np.ndarray  # local rows whose bound moves with the lots
    ub0: np.ndarray  # their bound at n = 0
    A_n: sp.csr_matrix  # their coupling: bound = ub0 - A_n n
    col_mineral: np.ndarray  # mineral of each column, to split the objective by mineral


@dataclass
class _Closed:
    """Closed-form recourse of the pairs without lending, cell by cell (cells grouped by (s, p, m))."""

    cols_r: np.ndarray
    cols_u: np.ndarray
    g: np.ndarray
    group: np.ndarray  # group of each cell
    starts: np.ndarray  # first cell of each group
    rate: np.ndarray  # per group
    out: np.ndarray  # 1 - floor, per group
    cost: np.ndarray  # pi_s b_m, per group
    lot_col: np.ndarray  # lot variable (p, m) of each group
    lot: np.ndarray  # lot size per group
    init: np.ndarray  # initial holding per group
    mineral: np.ndarray  # per group


@dataclass
class BendersStats:
    iterations: int = 0
    lp_iterations: int = 0
    cuts: int = 0


def _row_pairs(lm: LinearModel, M: int) -> np.ndarray:
    """(scenario, mineral) key of each second-stage row; -1 for first-stage rows."""
    key = np.full(lm.A.shape[0], -1, dtype=np.int64)
    cell = lm.var_blocks["r"].coords
    for name in SECOND_STAGE_ROWS:
        b = lm.row_blocks[name]
        if "cell" in b.coords:
            c = b.coords["cell"]
            key[b.index] = cell["s"][c] * M + cell["m"][c]
        else:
            key[b.index] = b.coords["s"] * M + b.coords["m"]
    return key


def _col_pairs(lm: LinearModel, M: int) -> np.ndarray:
    key = np.full(lm.c.size, -1, dtype=np.int64)
    cell = lm.var_blocks["r"].coords
    pair = cell["s"] * M + cell["m"]
    key[lm.var_blocks["r"].index] = pair
    key[lm.var_blocks["u"].index] = pair
    key[lm.var_blocks["l"].index] = pair[lm.var_blocks["l"].coords["cell"]]
    return key


class Decomposition:
    """The extensive model cut into a master and recourse blocks."""

    def __init__(self, inst: Instance, lm: LinearModel, batch_columns: int = BATCH_COLUMNS):
        self.inst, self.lm = inst, lm
        P, M = len(inst.participants), len(inst.minerals)
        self.M = M
        nb, yb = lm.var_blocks["n"], lm.var_blocks["y"]
        self.first = np.concatenate([nb.index, yb.index])
        self.n_cols = nb.index
        row_key, col_key = _row_pairs(lm, M), _col_pairs(lm, M)
        self.col_mineral = np.where(col_key >= 0, col_key % M, -1)
        lend_pairs = np.unique(col_key[lm.var_blocks["l"].index])
        self.lp_pair = np.isin(col_key, lend_pairs) & (col_key >= 0)
        A = lm.A.tocsr()
        # ---- LP batches: pairs with lending
        lp_rows = np.nonzero(np.isin(row_key, lend_pairs))[0]
        lp_cols = np.nonzero(self.lp_pair)[0]
        self.batches: list[_Batch] = []
        if lp_cols.size:
            # batches of whole pairs, one mineral each, cut at every batch_columns columns: small
            # LPs re-solve faster from a warm basis, and batches run in parallel across threads
            pair_cols = np.bincount(np.searchsorted(lend_pairs, col_key[lp_cols]), minlength=lend_pairs.size)
            order = np.lexsort((lend_pairs // M, lend_pairs % M))  # by mineral, then scenario
            mineral = (lend_pairs % M)[order]
            cols_before = np.cumsum(pair_cols[order]) - pair_cols[order]
            first_of_mineral = np.r_[0, np.nonzero(np.diff(mineral))[0] + 1]
            within = cols_before - np.repeat(cols_before[first_of_mineral], np.diff(np.r_[first_of_mineral, order.size]))
            _, chunk = np.unique(np.column_stack([mineral, within // batch_columns]), axis=0, return_inverse=True)
            batch_of = np.empty(lend_pairs.size, dtype=np.int64)
            batch_of[order] = chunk.ravel()
            row_batch = batch_of[np.searchsorted(lend_pairs, row_key[lp_rows])]
            col_batch = batch_of[np.searchsorted(lend_pairs, col_key[lp_cols])]
            rows_sorted, cols_sorted = lp_rows[np.argsort(row_batch, kind="stable")], lp_cols[np.argsort(col_batch, kind="stable")]
            n_batches = int(batch_of.max()) + 1
            row_splits = np.cumsum(np.bincount(row_batch, minlength=n_batches))[:-1]
            col_splits = np.cumsum(np.bincount(col_batch, minlength=n_batches))[:-1]
            for rows, cols in zip(np.split(rows_sorted, row_splits), np.split(cols_sorted, col_splits)):
                self.batches.append(self._batch(A, np.sort(rows), np.sort(cols)))
        # ---- closed form: cells of pairs without lending
        rb, ub = lm.var_blocks["r"], lm.var_blocks["u"]
        cell = rb.coords
        keep = ~self.lp_pair[rb.index]
        s, p, m = cell["s"][keep], cell["p"][keep], cell["m"][keep]
        grp_key = (s * P + p) * M + m  # cells are sorted by (s, p, m, t), so groups are contiguous
        starts = np.r_[0, np.nonzero(np.diff(grp_key))[0] + 1] if grp_key.size else np.zeros(0, np.int64)
        gp, gm = p[starts], m[starts]
        self.closed = _Closed(
            cols_r=rb.index[keep], cols_u=ub.index[keep], g=lm.ub[rb.index[keep]],
            group=np.cumsum(np.r_[0, np.diff(grp_key) != 0]) if grp_key.size else np.zeros(0, np.int64),
            starts=starts, rate=inst.release_rate[gp], out=1.0 - inst.reserve_floor[gp],
            cost=lm.c[ub.index[keep]][starts] if starts.size else np.zeros(0),
            lot_col=gp * M + gm, lot=inst.lot[gm], init=inst.initial[gp, gm], mineral=gm,
        )
        # ---- master's first-stage rows
        first_rows = np.concatenate([lm.row_blocks[k].index for k in FIRST_STAGE_ROWS])
        self.F_rows = A[first_rows][:, self.first]
        self.F_lb, self.F_ub = lm.row_lb[first_rows], lm.row_ub[first_rows]

    def _batch(self, A: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> _Batch:
        lm = self.lm
        sub = A[rows]
        A_n = sub[:, self.n_cols].tocsr()
        coupled = np.nonzero(np.diff(A_n.indptr) > 0)[0]
        A_rc = sub[:, cols].tocsr()
        A_rc.sort_indices()
        lp = LinearModel(c=lm.c[cols], offset=0.0, A=A_rc, row_lb=lm.row_lb[rows], row_ub=lm.row_ub[rows],
                         lb=lm.lb[cols], ub=lm.ub[cols], integer=np.zeros(cols.size, dtype=bool),
                         var_blocks={}, row_blocks={})
        return _Batch(IncrementalLP(lp), cols, lm.c[cols], coupled, lm.row_ub[rows][coupled],
                      A_n[coupled], self.col_mineral[cols])

    # ------------------------------------------------------------------ recourse
    def evaluate(self, n: np.ndarray, pool: ThreadPoolExecutor | None, keep_solution: bool = False):
        """Expected recourse per mineral Q (M,), its subgradient on the lots (P*M,), and optionally
        the second-stage values of every column (for the final plan)."""
        M = self.M
        Q = np.zeros(M)
        grad = np.zeros(n.size)
        values = np.zeros(self.lm.c.size) if keep_solution else None
        # closed form
        cf = self.closed
        if cf.starts.size:
            x = cf.init + cf.lot * n[cf.lot_col]
            xc = x[cf.group]
            rate_c = cf.rate[cf.group]
            cap = np.minimum(cf.g, rate_c * xc)
            total_cap = np.add.reduceat(cap, cf.starts)
            limit = cf.out * x
            served = np.minimum(total_cap, limit)
            floor_binds = limit < total_cap
            rate_part = np.add.reduceat(np.where(rate_c * xc < cf.g, rate_c, 0.0), cf.starts)
            dserved = np.where(floor_binds, cf.out, rate_part)
            G = np.add.reduceat(cf.g, cf.starts)
            np.add.at(Q, cf.mineral, cf.cost * (G - served))
            np.add.at(grad, cf.lot_col, -cf.cost * dserved * cf.lot)
            if keep_solution:
                cum = np.cumsum(cap)
                before = np.r_[0.0, cum][cf.starts][cf.group]
                released = np.minimum(cum - before, limit[cf.group])
                prev = np.r_[0.0, released[:-1]]
                prev[cf.starts] = 0.0
                r = np.maximum(released - prev, 0.0)
                values[cf.cols_r] = r
                values[cf.cols_u] = cf.g - r
        # LP batches
        runs = (pool.map if pool else map)(lambda b: self._solve_batch(b, n), self.batches)
        for b, (x, dn) in zip(self.batches, runs):
            Q += np.bincount(b.col_mineral, weights=b.c * x, minlength=M)
            grad += dn
            if keep_solution:
                values[b.cols] = x
        return Q, grad, values

    @staticmethod
    def _solve_batch(b: _Batch, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, duals, _ = b.lp.solve(b.coupled, b.ub0 - b.A_n @ n)
        return x, -(b.A_n.T @ duals[b.coupled])  # dQ/dn = dQ/dbound . dbound/dn

    # ------------------------------------------------------------------ master
    def master_point(self, n: np.ndarray, y: np.ndarray, cuts: list[tuple[int, float, np.ndarray]]) -> np.ndarray:
        """A plan as a master solution: lots, programmes, and each theta_m at its highest cut."""
        theta = np.zeros(self.M)
        for m, q, coef in cuts:
            theta[m] = max(theta[m], q + coef @ n)
        return np.concatenate([n, y, theta])

    def first_stage_cost(self, n: np.ndarray, y: np.ndarray) -> float:
        return float(self.lm.c[self.first] @ np.concatenate([n, y]) + self.lm.offset)

    def master(self, cuts: list[tuple[int, float, np.ndarray]]) -> LinearModel:
        """min c_F z + sum_m theta_m  s.t. first-stage rows and theta_m >= q + g.(n - n^k).

        In dollars, like the extensive model: rescaling the master made SCIP up to 4.5x
        slower, and rescaling only its objective made it wrong (docs/numerics.md).
        """
        lm, M = self.lm, self.M
        nF = self.first.size
        nn = self.n_cols.size
        k = len(cuts)
        m_idx = np.array([c[0] for c in cuts], dtype=np.int64)
        G = np.array([c[2] for c in cuts]).reshape(k, nn)
        rhs = np.array([c[1] for c in cuts])
        # cut: theta_m - g.n >= q - g.n^k  (the constant is folded into c[1] by the caller)
        cut_rows = sp.hstack([sp.csr_matrix(-G), sp.csr_matrix((k, nF - nn)),
                              sp.csr_matrix((np.ones(k), (np.arange(k), m_idx)), shape=(k, M))]).tocsr()
        first_rows = sp.hstack([self.F_rows, sp.csr_matrix((self.F_rows.shape[0], M))]).tocsr()
        A = sp.vstack([first_rows, cut_rows]).tocsr()
        A.sort_indices()
        return LinearModel(
            c=np.r_[lm.c[self.first], np.ones(M)], offset=lm.offset, A=A,
            row_lb=np.r_[self.F_lb, rhs], row_ub=np.r_[self.F_ub, np.full(k, np.inf)],
            lb=np.r_[lm.lb[self.first], np.zeros(M)], ub=np.r_[lm.ub[self.first], np.full(M, np.inf)],
            integer=np.r_[lm.integer[self.first], np.zeros(M, dtype=bool)],
            var_blocks={}, row_blocks={},
        )


MASTER_SOLVER = "scip"


Progress = Callable[[str, float, float], None]  # (phase, best plan's cost, lower bound)


def solve_benders(inst: Instance, lm: LinearModel, time_limit_s: float, gap: float,
                  threads: int | None = None, progress: Progress | None = None
                  ) -> tuple[SolveOutcome, BendersStats]:
    """Run the L-shaped method to the relative gap; returns the full solution vector of lm.

    The master MIP is always solved by SCIP: HiGHS 1.12 (through MathOpt) returned
    a wrong "optimal" on masters whose cuts carry large coefficients, with or
    without scaling (tests/test_benders.py keeps such an instance). LPs go to GLOP.
    threads: recourse batches solved at once (None: every core).
    """
    threads = threads or os.cpu_count() or 1
    start = time.perf_counter()
    deadline = start + time_limit_s
    dec = Decomposition(inst, lm)
    nn = dec.n_cols.size
    M = dec.M
    stats = BendersStats()
    cuts: list[tuple[int, float, np.ndarray]] = []
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(dec.batches) > 1 else None

    def add_cuts(n: np.ndarray) -> np.ndarray:
        Q, grad, _ = dec.evaluate(n, pool)
        g = grad.reshape(-1, M)  # (P, M)
        for m in range(M):
            coef = np.zeros(nn)
            coef[m::M] = g[:, m]
            cuts.append((m, float(Q[m] - coef @ n), coef))
        stats.cuts = len(cuts)
        return Q

    def min_y(n: np.ndarray) -> np.ndarray:
        yb = lm.var_blocks["y"]
        return (n[yb.coords["p"] * M + yb.coords["m"]] > 0.5).astype(float)

    try:
        n0 = lm.lb[dec.n_cols].copy()  # the smallest plan is feasible (checked before the build)
        Q0 = add_cuts(n0)
        best = (dec.first_stage_cost(n0, min_y(n0)) + Q0.sum(), n0, min_y(n0))  # objective, n, y
        lb = -np.inf
        # phase 1: cuts from the LP relaxation of the master
        for _ in range(50):
            relax = dec.master(cuts)
            relax.integer[:] = False
            out = solve_model(relax, MASTER_SOLVER, max(1.0, deadline - time.perf_counter()), 0.0)
            if out.x is None:
                break
            if out.status == "optimal":  # the relaxed master's optimum bounds the true one from below
                lb = max(lb, out.objective)
            n = out.x[:nn]
            Q = add_cuts(n)
            stats.lp_iterations += 1
            upper = dec.first_stage_cost(n, out.x[nn:dec.first.size]) + Q.sum()
            if progress:
                progress(f"relaxation {stats.lp_iterations}", best[0], lb)
            relaxed_gap = relative_gap(upper, out.objective)
            if relaxed_gap is not None and relaxed_gap <= gap / 10:
                break
            if time.perf_counter() > deadline:
                break
        # phase 2: integer master, warm-started from the best plan so far
        while time.perf_counter() < deadline:
            out = solve_model(dec.master(cuts), MASTER_SOLVER, max(1.0, deadline - time.perf_counter()), gap / 4,
                              hint=dec.master_point(best[1], best[2], cuts))
            if out.x is None:
                break
            lb = max(lb, out.bound if out.bound is not None else -np.inf)
            n = np.rint(out.x[:nn])
            y = min_y(n)
            Q = add_cuts(n)
            stats.iterations += 1
            value = dec.first_stage_cost(n, y) + Q.sum()
            if value < best[0]:
                best = (value, n, y)
            g = relative_gap(best[0], lb)
            if progress:
                progress(f"iteration {stats.iterations}", best[0], lb)
            if g is not None and g <= gap:
                break
    finally:
        if pool:
            pool.shutdown()
    value, n, y = best
    _, _, values = dec.evaluate(n, None, keep_solution=True)
    values[dec.n_cols] = n
    values[lm.var_blocks["y"].index] = y
    seconds = time.perf_counter() - start
    g = relative_gap(value, lb)
    status = "optimal" if g is not None and g <= gap + 1e-12 else "feasible"
    return SolveOutcome(status, values, value, lb if np.isfinite(lb) else None, "scip+glop",
                        f"L-shaped: SCIP master, GLOP recourse, OR-tools {ortools_version()}", seconds,
                        f"{stats.lp_iterations} LP and {stats.iterations} MIP master iterations"), stats
