"""L-shaped (Benders) decomposition of the extensive model, for many scenarios.

The decomposition works on the *same* :class:`LinearModel` the extensive form
solves and cuts it along the model's own declarations (``model.Stage``): the
first-stage columns and rows form the master; every second-stage column and row
belongs to the recourse block of its key (today (scenario, mineral)), except the
families declared epigraph (the CVaR excess and its row), which span the blocks of a
scenario and are composed over their recourse (``Epigraph``). Nothing here knows a
family by name except the closed forms, which are used only for the blocks they are
proven to implement; every other block goes to the LP path. So a new family lands in
the right place by construction.

Master (MIP, small): min c_F z + sum_g theta_g over the first-stage rows and the
optimality cuts
    theta_g >= Q_g(z^k) + d_g^k . (z - z^k),
one theta per *aggregate* g: the key without its scenario (per mineral), so
Q_g(z) = sum of the expected recourse of the blocks of g; an epigraph adds thetas for
sum_s h_s max(0, L_s - F_s z + t_s(z)) over groups of its scenarios.

Recourse of a block, given z (``Recourse``):
* closed form (``ClosedForm``): blocks with only release r and unmet u, the demand
  row, a rate row per cell and a floor row per (s, p, m). With the row bounds
  b(z) = ub - A_F z read from the model,
      served = min( sum_t min(g_t, b_rate_t(z)), b_floor(z) ),   Q = cost (sum_t g_t - served)
  and the supergradient follows from the row binding: cost A_F[floor] if the floor
  binds, else the sum of cost A_F[rate_t] over the periods whose rate binds;
* pooled closed form (``Pooled``): blocks that also hold lending l and lending caps, when at z
  every group is exhausted (the closed form without lending already serves what the floor and
  rate rows let every participant draw), so nobody has stock to lend: then, with one unit cost c
  over the block and fees >= 0, Q(z) = B(z) = c (sum g - sum_f cap_f(z)), a lower bound of the
  LP's recourse at every point, and B's subgradient is a valid cut (proof in ``Pooled``);
* LP (``lp_batches``): one GLOP LP per batch of blocks of one aggregate, solved anew at each
  point with the coupled rows' bounds b(z); dQ/dz = -A_F^T lambda. A block gets its batch at
  the first point the closed forms cannot settle it; a batch is skipped at a point where the
  pooled closed form settles each of its blocks.

The lower bound is the master's proven bound, the upper bound the best evaluated
plan. The loop stops at the relative gap (at least 1e-9), at the time limit, or
when the master proposes a plan already evaluated (no cut can move it: the gap
left is the solvers' feasibility tolerance). A first phase on the master's LP
relaxation collects cuts cheaply.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from stockpile.enums import SolverName, Status
from stockpile.model.core import FIRST_KEY, SPAN_KEY, LinearModel, ModelError, Row, Var, coarsest_key
from stockpile.solver.backends import SolveOutcome, ortools_version, relative_gap, solve_lp, solve_model

log = logging.getLogger(__name__)

# Columns per recourse LP batch: batches run in parallel; 2,000 was the fastest of 500-8,000
# on the medium and large benchmarks.
BATCH_COLUMNS = 2_000
# The master MIP goes to SCIP. On a master whose coefficients reach CONFIRM_COEFFICIENT a bound
# that closes the gap is confirmed by HiGHS (and, once HiGHS masters, by SCIP), and the lower of the
# two stands: each has returned a wrong "optimal" on masters whose cuts carry coefficients near 1e10
# (tests/data/master_numerics_*.yaml, scip_bound.yaml: 1.35e10), never both on the same master. The
# bundled configs' masters stay under 1.3e7 and are not re-solved (HiGHS's bound at the master's gap
# share is looser than SCIP's, which cost them extra rounds for nothing).
MASTER_SOLVER = SolverName.SCIP
OTHER_SOLVER = {SolverName.SCIP: SolverName.HIGHS, SolverName.HIGHS: SolverName.SCIP}
CONFIRM_COEFFICIENT = 1e9
RELAXATION_ROUNDS = 50  # at most this many cut rounds on the master's LP relaxation
RELAXATION_GAP_SHARE = 0.1  # the relaxation phase stops at this share of the requested gap
MASTER_GAP_SHARE = 0.25  # the master MIP is solved to this share of the requested gap
# The solvers' feasibility tolerance: a repeated master plan ends the loop as optimal
# only while the gap left is within it.
REPEAT_GAP = 1e-6
MIN_MASTER_SECONDS = 0.01
# an epigraph theta's cut must raise it at the point by more than this (relative)
RAISE_TOL = 1e-9
# Thetas for an epigraph's scenarios (each bounds the sum over a group). Solve at 2,000 scenarios
# (w = 0.1, gap 1e-4): one theta failed in SCIP on the master's numerics; 10 took 4.5 s, 100 3.8 s,
# one per scenario 11.6 s (the master LP grew to thousands of dense cuts); w = 0 3.8 s. At 10,000,
# 30 and 100 took 22.5 s and 23.1 s (/tmp sweep around solve_benders, one run each)
EPIGRAPH_THETAS = 100

# The families the closed form implements, and nothing else.
CLOSED_FORM_COLUMNS = frozenset({Var.RELEASE, Var.UNMET})
CLOSED_FORM_ROWS = frozenset({Row.DEMAND, Row.RATE, Row.FLOOR})
# Lending, which the closed form takes on where it proves lending idle (Pooled)
POOLED_COLUMNS = frozenset({Var.LENT})
POOLED_ROWS = frozenset({Row.LEND_CAP})
POOLED_TOL = 1e-9  # relative: "every group exhausted" and "l = 0 keeps the lending rows"


def _family_of(blocks: dict, n: int) -> np.ndarray:
    """Family name of every element of a model's column or row blocks."""
    out = np.empty(n, dtype=object)
    for b in blocks.values():
        out[b.start : b.start + b.size] = b.name
    return out


def _scaled(W: sp.csr_matrix, w: np.ndarray) -> sp.csr_matrix:
    """Row i of W times w_i."""
    return sp.csr_matrix((W.data * np.repeat(w, np.diff(W.indptr)), W.indices, W.indptr), shape=W.shape)


@dataclass
class Epigraph:
    """The families declared epigraph (``model.EPIGRAPH``: the CVaR excess v_s and its row),
    composed over the recourse blocks they span instead of solved with them as one LP.

    Row k (one per key, e.g. scenario): v_k + F_k z - a . y >= L_k, with v_k (cost h_k >= 0,
    0 <= v_k, in no other row), first-stage columns z and the columns y of k's blocks, whose costs
    must be c_y = lam_k a_y (lam_k >= 0: the blocks' cost is a priced once). The recourse of k,
        phi_k(z) = min_y lam_k a.y + h_k max(0, L_k - F_k z + a.y) = f_k(t_k(z)),
        t_k(z) = min_y a.y = sum over k's blocks of their own recourse costed a,
    since f_k is nondecreasing (so the same y minimises both). The blocks are costed
    rho_k a_y (rho_k = lam_k + h_k: dollars, as the model's) and solved as under a risk-neutral
    objective, closed forms and all; each block's recourse counts lam_k / rho_k towards its
    primary theta (that is, the model's own cost c.y) and 1 / rho_k towards t_k. The master
    bounds zeta_k = h_k max(0, L_k - F_k z + t_k(z)), one theta per key, by the cuts
        zeta_k >= h_k (L_k - F_k z + t_k(z0) + dt_k . (z - z0))   where positive at z0,
    valid everywhere: t_k is convex, and max(0, .) convex and nondecreasing. A theta bounds the sum
    of zeta_k over a group of keys (EPIGRAPH_THETAS groups) by the sum of their cuts.
    """

    inner: LinearModel  # the model as the blocks see it: the blocks costed rho a
    dims: tuple[str, ...]  # the epigraph's key
    key: np.ndarray  # per row, sorted
    rows: np.ndarray
    cols: np.ndarray  # v of each row
    lb: np.ndarray  # L
    h: np.ndarray
    lam: np.ndarray
    rho: np.ndarray
    F: sp.csr_matrix  # first-stage coefficients (rows x first-stage columns)

    @classmethod
    def of(cls, lm: LinearModel) -> Epigraph | None:
        """The epigraph of a model that declares one (else None); ModelError when its rows break the form."""
        blocks = lm.var_blocks | lm.row_blocks
        epi = [b for b in blocks.values() if b.stage.epigraph]
        if not epi:
            return None
        axes = lm.axes
        assert axes is not None
        dims, col_key = lm.key_dims, lm.col_key  # the blocks' key (model.Builder.build)
        edims = coarsest_key([b.stage for b in epi])
        if not set(edims) < set(dims) or any(b.stage.key != edims for b in epi):
            raise ModelError(f"epigraph families {[b.name for b in epi]} must share one key coarser than {dims}")
        ekey = lambda blocks: np.concatenate([axes.key(b.coords, edims) for b in blocks if b.stage.epigraph])
        rows = np.concatenate([b.index for b in lm.row_blocks.values() if b.stage.epigraph])
        cols = np.concatenate([b.index for b in lm.var_blocks.values() if b.stage.epigraph])
        r_key, c_key = ekey(lm.row_blocks.values()), ekey(lm.var_blocks.values())
        order = np.argsort(r_key)
        rows, r_key = rows[order], r_key[order]
        sub = lm.A[rows].tocoo()
        kind = col_key[sub.col]
        problems = []
        # one v per row, its own, coefficient 1, in no other row; 0 <= v, cost >= 0, continuous
        is_v = kind == SPAN_KEY
        v_of = np.full(rows.size, -1)
        v_of[sub.row[is_v]] = sub.col[is_v]
        uses = np.bincount(lm.A.indices, minlength=lm.c.size)[cols]
        key_of = np.full(lm.c.size, -1)
        key_of[cols] = c_key
        if (
            np.bincount(sub.row[is_v], minlength=rows.size).max(initial=1) != 1
            or (v_of < 0).any()
            or (sub.data[is_v] != 1.0).any()
            or (uses != 1).any()
            or not np.array_equal(key_of[v_of], r_key)
        ):
            problems.append("each row must hold its own column, with coefficient 1, in no other row")
        if (
            (lm.lb[cols] != 0).any()
            or np.isfinite(lm.ub[cols]).any()
            or (lm.c[cols] < 0).any()
            or lm.integer[cols].any()
        ):
            problems.append("its columns must be continuous, from 0 unbounded, with a cost >= 0")
        if not np.isfinite(lm.row_lb[rows]).all() or np.isfinite(lm.row_ub[rows]).any():
            problems.append("its rows must be bounded below only")
        # the blocks' columns: of the row's key, costed lam_k times their coefficient
        is_y = kind >= 0
        y, row_of_y = sub.col[is_y], sub.row[is_y]
        y_key = axes.key(axes.coords(col_key[y], dims), edims)
        if not np.array_equal(y_key, r_key[row_of_y]):
            problems.append("a row holds columns of another key's blocks")
        a = np.zeros(lm.c.size)
        a[y] = -sub.data[is_y]
        blk = np.nonzero(col_key >= 0)[0]
        blk_key = axes.key(axes.coords(col_key[blk], dims), edims)
        blk_row = np.searchsorted(r_key, blk_key)
        inside = r_key[np.minimum(blk_row, rows.size - 1)] == blk_key
        blk, blk_row = blk[inside], blk_row[inside]
        ref = np.zeros(rows.size, np.int64)  # the largest coefficient of each row prices it
        big = np.full(rows.size, -1.0)
        np.maximum.at(big, row_of_y, np.abs(a[y]))
        hit = np.abs(a[y]) == big[row_of_y]
        ref[row_of_y[hit]] = y[hit]
        lam = np.where(big > 0, lm.c[ref] / np.where(a[ref] != 0, a[ref], 1.0), 0.0)
        if (lam < 0).any() or not np.allclose(lm.c[blk], lam[blk_row] * a[blk], rtol=1e-9, atol=0.0):
            problems.append("the costs of its blocks' columns must be one price (>= 0) times their coefficients")
        if problems:
            raise ModelError(f"epigraph families {[b.name for b in epi]}: " + "; ".join(problems))
        h = lm.c[v_of]
        rho = lam + h
        rho = np.where(rho > 0, rho, 1.0)
        c = lm.c.copy()
        c[blk] = rho[blk_row] * a[blk]
        inner = replace(lm, c=c)
        F = _columns(lm.A[rows], np.nonzero(col_key == FIRST_KEY)[0])
        return cls(inner, edims, r_key, rows, v_of, lm.row_lb[rows], h, lam, rho, F)

    def weights(self, keys: np.ndarray, primary: np.ndarray, n_primary: int) -> sp.csr_matrix:
        """Blocks x thetas: lam / rho towards the primary theta, 1 / rho towards t of the row."""
        axes = self.inner.axes
        assert axes is not None
        k = axes.key(axes.coords(keys, self.inner.key_dims), self.dims)
        pos = np.minimum(np.searchsorted(self.key, k), self.key.size - 1)
        mine = self.key[pos] == k
        w_primary = np.where(mine, self.lam[pos] / self.rho[pos], 1.0)
        i = np.arange(keys.size)
        return sp.csr_matrix(
            (
                np.r_[w_primary, 1.0 / self.rho[pos[mine]]],
                (np.r_[i, i[mine]], np.r_[primary, n_primary + pos[mine]]),
            ),
            shape=(keys.size, n_primary + self.key.size),
        )

    @property
    def thetas(self) -> int:
        return min(EPIGRAPH_THETAS, self.key.size)

    @cached_property
    def to_group(self) -> sp.csr_matrix:
        """Rows x thetas: contiguous groups of rows (scenarios), one theta each."""
        n = self.key.size
        return sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) * self.thetas // n)), shape=(n, self.thetas))

    def compose(
        self, z: np.ndarray, n_primary: int, Q: np.ndarray, grad: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The thetas and their gradient from the recourse sums: t_k and its gradient (the sums from
        n_primary on) become zeta_k and its cut, summed over each group of rows; fills v."""
        excess = self.lb - self.F @ z + Q[n_primary:]
        on = self.h * (excess > 0)
        values[self.cols] = np.maximum(excess, 0.0)
        return (
            np.r_[Q[:n_primary], self.to_group.T @ (self.h * np.maximum(excess, 0.0))],
            np.c_[grad[:, :n_primary], ((grad[:, n_primary:] - self.F.T.toarray()) * on) @ self.to_group],
        )


def _aggregate(lm: LinearModel, keys: np.ndarray, agg_dims: tuple[str, ...]) -> np.ndarray:
    """The aggregate over agg_dims of each recourse-block key."""
    axes = lm.axes
    assert axes is not None
    return axes.key(axes.coords(keys, lm.key_dims), agg_dims)


@dataclass
class Structure:
    """The model cut into first stage and recourse blocks, from the declarations only."""

    lm: LinearModel  # as the blocks see it (under an epigraph, Epigraph.inner)
    first_cols: np.ndarray
    first_rows: np.ndarray
    A_first: sp.csr_matrix  # first-stage rows over first-stage columns
    keys: np.ndarray  # every recourse block's key, sorted
    agg_dims: tuple[str, ...]
    primary: int  # thetas of the blocks' own cost, one per aggregate of agg_dims
    weights: sp.csr_matrix  # blocks (keys) x thetas: what each block's recourse adds to each
    epigraph: Epigraph | None = None

    @classmethod
    def of(cls, lm: LinearModel) -> Structure:
        # one theta per mineral (the key without its scenario): a multi-cut master; an epigraph adds
        # one per key of its own (Epigraph)
        epi = Epigraph.of(lm)
        lm = lm if epi is None else epi.inner
        agg_dims = tuple(d for d in lm.key_dims if d != "s")
        keys = np.unique(np.r_[lm.col_key[lm.col_key >= 0], lm.row_key[lm.row_key >= 0]])
        n_agg = int(np.prod(lm.axes.shape(agg_dims))) if lm.axes is not None and keys.size else 0
        first_cols, first_rows = lm.first_cols, np.nonzero(lm.row_key == FIRST_KEY)[0]
        A_first = lm.A[first_rows][:, first_cols].tocsr()
        primary = _aggregate(lm, keys, agg_dims)
        one = sp.csr_matrix((np.ones(keys.size), (np.arange(keys.size), primary)), shape=(keys.size, n_agg))
        weights = one if epi is None else epi.weights(keys, primary, n_agg)
        return cls(lm, first_cols, first_rows, A_first, keys, agg_dims, n_agg, weights, epi)

    @property
    def aggregates(self) -> int:
        """Number of recourse sums (under an epigraph, one per primary theta and one per epigraph row)."""
        return int(self.weights.shape[1])

    @property
    def thetas(self) -> int:
        """Number of thetas in the master."""
        return self.primary + (0 if self.epigraph is None else self.epigraph.thetas)

    @cached_property
    def col_family(self) -> np.ndarray:
        """Family name of every column."""
        return _family_of(self.lm.var_blocks, self.lm.c.size)

    @cached_property
    def row_family(self) -> np.ndarray:
        """Family name of every row."""
        return _family_of(self.lm.row_blocks, self.lm.A.shape[0])

    def aggregate(self, keys: np.ndarray) -> np.ndarray:
        """Primary theta of each recourse-block key."""
        return _aggregate(self.lm, keys, self.agg_dims)

    def spread(self, keys: np.ndarray) -> sp.csr_matrix:
        """Rows of ``weights`` of the given recourse-block keys."""
        return self.weights[np.searchsorted(self.keys, keys)]


# ----------------------------------------------------------------------------
# Recourse: closed form


@dataclass
class ClosedForm:
    """Exact recourse of the blocks that hold only release, unmet, demand, rate and floor rows."""

    cols_r: np.ndarray
    cols_u: np.ndarray
    g: np.ndarray  # shortfall per cell (the demand row's right-hand side)
    r_ub: np.ndarray
    group: np.ndarray  # (s, p, m) group of each cell; cells of a group are contiguous
    starts: np.ndarray  # first cell of each group
    cost: np.ndarray  # unit cost of unmet, per group
    W: sp.csr_matrix  # groups x thetas (Structure.weights of each group's block)
    W_floor: sp.csr_matrix  # ... of each floor row's group
    W_rate: sp.csr_matrix  # ... of each rate row's group
    rate_cell: np.ndarray  # cell of each rate row
    rate_ub: np.ndarray
    rate_F: sp.csr_matrix  # rate rows' first-stage coefficients
    floor_group: np.ndarray  # group of each floor row
    floor_ub: np.ndarray
    floor_F: sp.csr_matrix

    @classmethod
    def select(cls, st: Structure) -> tuple[ClosedForm | None, np.ndarray]:
        """The closed form over every block it provably implements, and the keys left to the LP path."""
        lm = st.lm
        other = np.r_[
            lm.col_key[(lm.col_key >= 0) & ~np.isin(st.col_family, list(CLOSED_FORM_COLUMNS))],
            lm.row_key[(lm.row_key >= 0) & ~np.isin(st.row_family, list(CLOSED_FORM_ROWS))],
        ]
        candidates = np.setdiff1d(st.keys, other)
        if candidates.size and {"r", "u", "demand"} <= set(lm.var_blocks) | set(lm.row_blocks):
            bad = cls._violations(st, candidates)
            if bad.size:
                log.debug("closed form refused on %d recourse blocks whose rows differ from its rules", bad.size)
            candidates = np.setdiff1d(candidates, bad)
        else:
            candidates = np.zeros(0, np.int64)
        lp_keys = np.setdiff1d(st.keys, candidates)
        return (cls._build(st, candidates) if candidates.size else None), lp_keys

    @staticmethod
    def _cells(st: Structure, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns r and u and the demand row of every cell of the given blocks, matched by label."""
        lm = st.lm
        axes = lm.axes
        assert axes is not None
        rb, ub, db = lm.var_blocks[Var.RELEASE], lm.var_blocks[Var.UNMET], lm.row_blocks[Row.DEMAND]
        dims = ("s", "p", "m", "t")
        sel = np.isin(lm.col_key[rb.index], keys)
        cell_key = axes.key({k: v[sel] for k, v in rb.coords.items()}, dims)
        u_key = axes.key(ub.coords, dims)
        d_key = axes.key(db.coords, dims)
        u_pos = np.searchsorted(u_key, cell_key)  # blocks are laid out in key order
        d_pos = np.searchsorted(d_key, cell_key)
        return rb.index[sel], ub.start + np.minimum(u_pos, ub.size - 1), db.start + np.minimum(d_pos, db.size - 1)

    @staticmethod
    def _bad_cells(lm: LinearModel, r: np.ndarray, u: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Cells whose release r, unmet u and demand row d (r + u [+ lending] = g) break the rules
        both closed forms rely on: one block, coefficient 1, an equality, r and u from 0, u up to
        g, and releases free of cost."""
        A = lm.A
        return (
            (lm.col_key[u] != lm.col_key[r])
            | (lm.row_key[d] != lm.col_key[r])
            | (np.asarray(A[d, r]).ravel() != 1.0)
            | (np.asarray(A[d, u]).ravel() != 1.0)
            | (lm.row_lb[d] != lm.row_ub[d])
            | (lm.lb[r] != 0)
            | (lm.lb[u] != 0)
            | (lm.ub[u] < lm.row_ub[d])
            | (lm.c[r] != 0)
        )

    @classmethod
    def _violations(cls, st: Structure, keys: np.ndarray) -> np.ndarray:
        """Keys of candidate blocks whose rows do not have exactly the closed form's structure."""
        lm = st.lm
        A = lm.A
        r, u, d = cls._cells(st, keys)
        second = lm.col_key >= 0
        bad = [lm.col_key[r][cls._bad_cells(lm, r, u, d) | (np.diff(A.indptr)[d] != 2)]]  # demand: r + u only
        # the unmet cost must be the same in every period of an (s, p, m) group: served is allocated by time
        axes = lm.axes
        assert axes is not None
        grp = axes.key(
            {k: lm.var_blocks[Var.RELEASE].coords[k][r - lm.var_blocks[Var.RELEASE].start] for k in "spm"},
            ("s", "p", "m"),
        )
        _, first = np.unique(grp, return_index=True)
        ref = lm.c[u][first][np.searchsorted(grp[first], grp)]
        bad.append(lm.col_key[r][lm.c[u] != ref])
        # rate rows: one release each; floor rows: every release of one (s, p, m) group. Coefficient 1,
        # bounded above only, and no other second-stage column
        cell_grp = np.full(lm.c.size, -1)
        cell_grp[r] = grp
        _, grp_of, grp_count = np.unique(grp, return_inverse=True, return_counts=True)
        size_of = np.zeros(lm.c.size, np.int64)
        size_of[r] = grp_count[grp_of]
        for name in (Row.RATE, Row.FLOOR):
            if name not in lm.row_blocks:
                continue
            rows = lm.row_blocks[name].index
            rows = rows[np.isin(lm.row_key[rows], keys)]
            sub = A[rows].tocoo()
            ss = second[sub.col]
            is_r = cell_grp[sub.col] >= 0
            wrong = np.zeros(rows.size, bool)
            wrong[sub.row[ss & ((sub.data != 1.0) | ~is_r)]] = True
            wrong |= np.isfinite(lm.row_lb[rows])
            count = np.bincount(sub.row[ss], minlength=rows.size)
            if name == Row.RATE:
                wrong |= count != 1
            else:
                rr = sub.row[ss & is_r]
                g_min = np.full(rows.size, np.iinfo(np.int64).max)
                g_max = np.full(rows.size, -1)
                np.minimum.at(g_min, rr, cell_grp[sub.col[ss & is_r]])
                np.maximum.at(g_max, rr, cell_grp[sub.col[ss & is_r]])
                want = np.zeros(rows.size, np.int64)
                want[rr] = size_of[sub.col[ss & is_r]]
                wrong |= (g_min != g_max) | (count != want)
            bad.append(lm.row_key[rows][wrong])
        return np.unique(np.concatenate(bad))

    @classmethod
    def _build(cls, st: Structure, keys: np.ndarray) -> ClosedForm:
        lm = st.lm
        axes = lm.axes
        assert axes is not None
        A = lm.A
        rb = lm.var_blocks[Var.RELEASE]
        r, u, d = cls._cells(st, keys)
        local = r - rb.start
        coords = {k: rb.coords[k][local] for k in "spmt"}
        grp_key = axes.key(coords, ("s", "p", "m"))  # r is laid out by (s, p, m, t): groups are contiguous
        starts = np.r_[0, np.nonzero(np.diff(grp_key))[0] + 1]
        group = np.cumsum(np.r_[0, np.diff(grp_key) != 0])
        cell_of = np.full(lm.c.size, -1)
        cell_of[r] = np.arange(r.size)
        F = st.first_cols

        def rows_of(name: str) -> tuple[np.ndarray, np.ndarray]:
            """Rows of a family in these blocks that hold a release, and the first cell each holds
            (rows of lending alone matter only to Pooled)."""
            if name not in lm.row_blocks:
                return np.zeros(0, np.int64), np.zeros(0, np.int64)
            rows = lm.row_blocks[name].index
            rows = rows[np.isin(lm.row_key[rows], keys)]
            sub = _columns(A[rows], r)  # its releases (with lending in Pooled's blocks)
            own = np.diff(sub.indptr) > 0
            return rows[own], cell_of[r[sub.indices[sub.indptr[:-1][own]]]]

        rate_rows, rate_cell = rows_of("rate")
        floor_rows, floor_first = rows_of("floor")
        W = st.spread(lm.col_key[r][starts])
        return cls(
            cols_r=r,
            cols_u=u,
            g=lm.row_ub[d],
            r_ub=lm.ub[r],
            group=group,
            starts=starts,
            cost=lm.c[u][starts],
            W=W,
            W_floor=W[group[floor_first]],
            W_rate=W[group[rate_cell]],
            rate_cell=rate_cell,
            rate_ub=lm.row_ub[rate_rows],
            rate_F=_columns(A[rate_rows], F),
            floor_group=group[floor_first],
            floor_ub=lm.row_ub[floor_rows],
            floor_F=_columns(A[floor_rows], F),
        )

    def serve(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per cell its release cap; per group what is served, its floor limit, whether the floor
        binds; per rate row whether it binds."""
        cap = self.r_ub.copy()
        rate_bound = self.rate_ub - self.rate_F @ z
        rate_binds = rate_bound < cap[self.rate_cell]
        cap[self.rate_cell] = np.minimum(cap[self.rate_cell], np.maximum(rate_bound, 0.0))
        limit = np.full(self.starts.size, np.inf)
        limit[self.floor_group] = np.maximum(self.floor_ub - self.floor_F @ z, 0.0)
        total_cap = np.add.reduceat(cap, self.starts)
        served = np.minimum(total_cap, limit)
        return cap, served, limit, limit < total_cap, rate_binds

    def fill(self, cap: np.ndarray, limit: np.ndarray, values: np.ndarray) -> None:
        """The releases and unmet of every cell: each group releases early, up to its caps and floor."""
        cum = np.cumsum(cap)
        before = np.r_[0.0, cum][self.starts][self.group]
        released = np.minimum(cum - before, limit[self.group])
        prev = np.r_[0.0, released[:-1]]
        prev[self.starts] = 0.0
        rel = np.maximum(released - prev, 0.0)
        values[self.cols_r] = rel
        values[self.cols_u] = self.g - rel

    def evaluate(self, z: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """Q per theta, its subgradient (first-stage columns x thetas); fills the recourse values."""
        cap, served, limit, floor_binds, rate_binds = self.serve(z)
        G = np.add.reduceat(self.g, self.starts)
        Q = self.W.T @ (self.cost * (G - served))
        w_floor = (self.cost * floor_binds)[self.floor_group]
        grp_rate = self.group[self.rate_cell]
        w_rate = np.where(rate_binds & ~floor_binds[grp_rate], self.cost[grp_rate], 0.0)
        grad = self.floor_F.T @ _scaled(self.W_floor, w_floor) + self.rate_F.T @ _scaled(self.W_rate, w_rate)
        self.fill(cap, limit, values)
        return Q, sp.csr_matrix(grad)


@dataclass
class Pooled:
    """Recourse blocks with lending whose no-lending closed form is proven optimal at z.

    In a block every tonne served leaves some group's outflow (its releases and what it
    lends), and each outflow column lies in one floor row f with coefficient 1; where every
    column of f also lies in its rate rows, their bounds cap it too:
        cap_f(z) = min(b_floor_f(z), sum_{rate rows of f} b_rate(z)),   b(z) = ub - A_F z.
    With one unit cost c of unmet over the block and lending fees >= 0, dropping the other
    rows gives a bound for every z:
        Q_LP(z) >= B(z) = c (sum of the block's shortfall g - sum_f cap_f(z)),
    convex (the caps are concave). When the closed form without lending already serves
    sum_f cap_f (every group exhausted: no one has stock left to lend) and l = 0 keeps the
    lending rows, it attains B(z), so it is optimal: Q(z) = B(z), and c sum_f A_F[active row
    of f] is a subgradient of B, a valid cut everywhere since Q_LP >= B. Any other block, or
    one whose rows differ from these rules, is solved as an LP.
    """

    closed: ClosedForm  # the blocks' own cells, lending left out
    keys: np.ndarray  # the blocks' keys, sorted
    group_block: np.ndarray  # block of each closed-form group
    shortfall: np.ndarray  # per block, the sum of g
    unit: np.ndarray  # unit cost of unmet, per block
    W: sp.csr_matrix  # blocks x thetas (Structure.weights)
    W_floor: sp.csr_matrix  # ... of each floor row's block
    W_rate: sp.csr_matrix  # ... of each rate row's block
    floor_block: np.ndarray
    floor_ub: np.ndarray
    floor_F: sp.csr_matrix
    covered: np.ndarray  # floor rows whose every column lies in a rate row
    rate_floor: np.ndarray  # floor row (index into the above) of each rate row
    rate_ub: np.ndarray
    rate_F: sp.csr_matrix
    other_block: np.ndarray  # the lending rows (l = 0 keeps them where lb <= A_F z <= ub)
    other_lb: np.ndarray
    other_ub: np.ndarray
    other_F: sp.csr_matrix

    @classmethod
    def select(cls, st: Structure, keys: np.ndarray) -> tuple[Pooled | None, np.ndarray]:
        """Pooled over the blocks of keys it applies to, and the keys left to the LP path alone."""
        lm = st.lm
        fams = CLOSED_FORM_COLUMNS | POOLED_COLUMNS
        other = np.r_[
            lm.col_key[np.isin(lm.col_key, keys) & ~np.isin(st.col_family, list(fams))],
            lm.row_key[np.isin(lm.row_key, keys) & ~np.isin(st.row_family, list(CLOSED_FORM_ROWS | POOLED_ROWS))],
        ]
        candidates = np.setdiff1d(keys, other)
        if not candidates.size or not {"r", "u", "l", "demand", "floor"} <= set(lm.var_blocks) | set(lm.row_blocks):
            return None, keys
        candidates = np.setdiff1d(candidates, cls._violations(st, candidates))
        if candidates.size:
            log.debug("%d recourse blocks with lending try the no-lending closed form first", candidates.size)
        return (cls._build(st, candidates) if candidates.size else None), keys

    @staticmethod
    def _outflow_rows(st: Structure, keys: np.ndarray, name: str) -> tuple[np.ndarray, sp.coo_matrix, np.ndarray]:
        """A row family's rows in these blocks, their second-stage entries (COO) and each entry's family."""
        lm = st.lm
        if name not in lm.row_blocks:
            return np.zeros(0, np.int64), sp.coo_matrix((0, lm.c.size)), np.zeros(0, dtype=object)
        rows = lm.row_blocks[name].index
        rows = rows[np.isin(lm.row_key[rows], keys)]
        sub = lm.A[rows].tocoo()
        second = lm.col_key[sub.col] >= 0
        sub = sp.coo_matrix((sub.data[second], (sub.row[second], sub.col[second])), shape=sub.shape)
        return rows, sub, st.col_family[sub.col]

    @classmethod
    def _violations(cls, st: Structure, keys: np.ndarray) -> np.ndarray:
        """Keys of candidate blocks whose rows break the bound's premises (class docstring)."""
        lm = st.lm
        A = lm.A
        r, u, d = ClosedForm._cells(st, keys)
        bad = [lm.col_key[r][ClosedForm._bad_cells(lm, r, u, d)]]
        # one unit cost of unmet over the whole block
        blk = np.searchsorted(keys, lm.col_key[u])
        ref = np.full(keys.size, np.nan)
        ref[blk[::-1]] = lm.c[u][::-1]
        bad.append(lm.col_key[u][lm.c[u] != ref[blk]])
        lend = np.nonzero(np.isin(lm.col_key, keys) & np.isin(st.col_family, list(POOLED_COLUMNS)))[0]
        bad.append(lm.col_key[lend][(lm.lb[lend] != 0) | (lm.c[lend] < 0)])
        # demand rows: the cell's release and unmet and lending, coefficient 1, no first stage
        rows, sub, fam = cls._outflow_rows(st, keys, "demand")
        wrong = np.zeros(rows.size, bool)
        wrong[sub.row[(sub.data != 1.0) | ~np.isin(fam, ["r", "u", *POOLED_COLUMNS])]] = True
        for one in ("r", "u"):
            wrong |= np.bincount(sub.row[fam == one], minlength=rows.size) != 1
        wrong |= np.bincount(sub.row, minlength=rows.size) != np.diff(A[rows].indptr)  # no first-stage term
        wrong |= ~np.isin(rows, d)
        bad.append(lm.row_key[rows][wrong])
        # floor rows: outflows (releases, lending) with coefficient 1, bounded above; each outflow in one
        f_rows, f_sub, f_fam = cls._outflow_rows(st, keys, "floor")
        out_fam = ["r", *POOLED_COLUMNS]
        wrong = np.isfinite(lm.row_lb[f_rows])
        wrong[f_sub.row[(f_sub.data != 1.0) | ~np.isin(f_fam, out_fam)]] = True
        bad.append(lm.row_key[f_rows][wrong])
        outflow = np.r_[r, lend]
        floor_of = np.full(lm.c.size, -1)
        floor_of[f_sub.col] = f_sub.row
        times = np.bincount(f_sub.col, minlength=lm.c.size)
        bad.append(lm.col_key[outflow][times[outflow] != 1])
        # a floor row's releases are one whole (s, p, m) group's, as in the closed form
        axes = lm.axes
        assert axes is not None
        rb = lm.var_blocks[Var.RELEASE]
        grp = axes.key({k: rb.coords[k][r - rb.start] for k in "spm"}, ("s", "p", "m"))
        _, grp_of, grp_count = np.unique(grp, return_inverse=True, return_counts=True)
        is_r = f_fam == Var.RELEASE
        cell = np.searchsorted(r, f_sub.col[is_r])
        g_min = np.full(f_rows.size, np.iinfo(np.int64).max)
        g_max = np.full(f_rows.size, -1)
        np.minimum.at(g_min, f_sub.row[is_r], grp_of[cell])
        np.maximum.at(g_max, f_sub.row[is_r], grp_of[cell])
        count = np.bincount(f_sub.row[is_r], minlength=f_rows.size)
        has = count > 0
        want = np.zeros(f_rows.size, np.int64)
        want[has] = grp_count[g_min[has]]
        bad.append(lm.row_key[f_rows][has & ((g_min != g_max) | (count != want))])
        # rate rows: outflows with coefficient 1, bounded above, at most one release, all of one floor row
        q_rows, q_sub, q_fam = cls._outflow_rows(st, keys, "rate")
        wrong = np.isfinite(lm.row_lb[q_rows])
        wrong[q_sub.row[(q_sub.data != 1.0) | ~np.isin(q_fam, out_fam)]] = True
        wrong |= np.bincount(q_sub.row[q_fam == Var.RELEASE], minlength=q_rows.size) > 1
        fl = floor_of[q_sub.col]
        lo = np.full(q_rows.size, np.iinfo(np.int64).max)
        hi = np.full(q_rows.size, -2)
        np.minimum.at(lo, q_sub.row, fl)
        np.maximum.at(hi, q_sub.row, fl)
        wrong |= (lo != hi) & (np.bincount(q_sub.row, minlength=q_rows.size) > 0)
        bad.append(lm.row_key[q_rows][wrong])
        in_rate = np.bincount(q_sub.col[q_fam == Var.RELEASE], minlength=lm.c.size)
        bad.append(lm.col_key[r][in_rate[r] > 1])
        # the lending rows hold lending only
        for name in POOLED_ROWS:
            l_rows, l_sub, l_fam = cls._outflow_rows(st, keys, name)
            bad.append(lm.row_key[l_rows][np.unique(l_sub.row[~np.isin(l_fam, list(POOLED_COLUMNS))])])
        return np.unique(np.concatenate(bad))

    @classmethod
    def _build(cls, st: Structure, keys: np.ndarray) -> Pooled:
        lm = st.lm
        F = st.first_cols
        closed = ClosedForm._build(st, keys)
        f_rows, f_sub, _ = cls._outflow_rows(st, keys, "floor")
        q_rows, q_sub, _ = cls._outflow_rows(st, keys, "rate")
        floor_of = np.full(lm.c.size, -1)
        floor_of[f_sub.col] = f_sub.row
        first = np.full(q_rows.size, -1)
        first[q_sub.row[::-1]] = q_sub.col[::-1]
        rated = np.zeros(lm.c.size, bool)
        rated[q_sub.col] = True
        covered = np.bincount(f_sub.row, ~rated[f_sub.col], minlength=f_rows.size) == 0
        keep = first >= 0  # a rate row with no outflow caps nothing
        o_rows = np.concatenate([cls._outflow_rows(st, keys, n)[0] for n in sorted(POOLED_ROWS)])
        block = lambda rows: np.searchsorted(keys, lm.row_key[rows])
        group_block = np.searchsorted(keys, lm.col_key[closed.cols_r][closed.starts])
        unit = np.zeros(keys.size)
        unit[group_block] = closed.cost  # one per block (checked)
        W = st.spread(keys)
        rate_floor = floor_of[first[keep]]
        return cls(
            closed=closed,
            keys=keys,
            group_block=group_block,
            shortfall=np.bincount(group_block, np.add.reduceat(closed.g, closed.starts), keys.size),
            unit=unit,
            W=W,
            W_floor=W[block(f_rows)],
            W_rate=W[block(f_rows)][rate_floor],
            floor_block=block(f_rows),
            floor_ub=lm.row_ub[f_rows],
            floor_F=_columns(lm.A[f_rows], F),
            covered=covered,
            rate_floor=rate_floor,
            rate_ub=lm.row_ub[q_rows[keep]],
            rate_F=_columns(lm.A[q_rows[keep]], F),
            other_block=block(o_rows),
            other_lb=lm.row_lb[o_rows],
            other_ub=lm.row_ub[o_rows],
            other_F=_columns(lm.A[o_rows], F),
        )

    def certify(self, z: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Which blocks the no-lending closed form solves exactly at z, and its state there."""
        n = self.keys.size
        state = self.closed.serve(z)
        served = np.bincount(self.group_block, state[1], n)
        floor_cap = self.floor_ub - self.floor_F @ z
        rate_bound = self.rate_ub - self.rate_F @ z
        rate_cap = np.where(self.covered, np.bincount(self.rate_floor, rate_bound, self.covered.size), np.inf)
        floor_binds = floor_cap <= rate_cap
        cap = np.minimum(floor_cap, rate_cap)
        total = np.bincount(self.floor_block, cap, n)
        # a negative bound makes the LP infeasible: left to it, to be reported as such
        negative = (floor_cap < 0) | (np.bincount(self.rate_floor, rate_bound < 0, self.covered.size) > 0)
        nonneg = np.bincount(self.floor_block, negative, n) == 0
        at_zero = self.other_F @ z  # the lending rows' activity with l = 0
        slack = POOLED_TOL * np.maximum(1.0, np.abs(at_zero))
        keeps = (self.other_lb <= at_zero + slack) & (at_zero <= self.other_ub + slack)
        keeps = np.bincount(self.other_block, ~keeps, n) == 0
        exhausted = served >= total - POOLED_TOL * np.maximum(1.0, np.abs(total))
        return exhausted & nonneg & keeps, (state, floor_binds)

    def evaluate(
        self, z: np.ndarray, counted: np.ndarray, values: np.ndarray, state: tuple
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Q per theta of the counted (certified) blocks and the subgradient of their bound B;
        fills the releases and unmet of every block's cells (an LP batch overwrites its own)."""
        (cap, served, limit, _, _), floor_binds = state
        served_b = np.bincount(self.group_block, served, self.keys.size)
        Q = self.W.T @ np.where(counted, self.unit * (self.shortfall - served_b), 0.0)
        w = np.where(counted, self.unit, 0.0)
        w_floor = w[self.floor_block] * floor_binds
        w_rate = (w[self.floor_block] * ~floor_binds)[self.rate_floor]
        grad = self.floor_F.T @ _scaled(self.W_floor, w_floor) + self.rate_F.T @ _scaled(self.W_rate, w_rate)
        self.closed.fill(cap, limit, values)
        return Q, sp.csr_matrix(grad)


# ----------------------------------------------------------------------------
# Recourse: LP batches


BatchAnswer = tuple[np.ndarray, np.ndarray, np.ndarray]  # recourse values, cost per theta, gradient


@dataclass
class _Batch:
    """LP recourse of a set of whole blocks, solved at each point that moves its bounds. Its blocks
    count towards one primary theta, and under an epigraph each towards its key's theta too, so the
    cost and its gradient are split by the batch's thetas through the blocks' weights."""

    model: LinearModel
    keys: np.ndarray  # its recourse blocks
    cols: np.ndarray  # columns of the extensive model
    c: np.ndarray
    aggs: np.ndarray  # the batch's thetas
    W_col: sp.csr_matrix  # columns x the batch's thetas (their block's weights)
    lo_rows: np.ndarray  # local coupled rows with a finite lower bound
    lo0: np.ndarray
    lo_F: sp.csr_matrix  # bound = lo0 - lo_F z
    W_lo: sp.csr_matrix  # their block's weights
    up_rows: np.ndarray
    up0: np.ndarray
    up_F: sp.csr_matrix
    W_up: sp.csr_matrix
    up_only: np.ndarray  # upper-bounded rows without a finite lower bound (their dual is not yet counted)
    last: tuple[np.ndarray, np.ndarray, BatchAnswer] | None = field(default=None, repr=False)  # bounds, answer

    @cached_property
    def weight_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The weights of a batch of one theta, as vectors (a sparse product per solve cost the
        large benchmark 13%)."""
        return tuple(W.toarray().ravel() for W in (self.W_col, self.W_lo, self.W_up))

    def solve(self, z: np.ndarray) -> BatchAnswer:
        """The recourse values, the cost of each of its thetas and the gradient (first stage x thetas).
        A point that leaves the batch's bounds as they were gets the last answer: the same LP (a
        fifth of the solves on the benchmarks, whose masters move a few minerals at a time)."""
        lo, up = self.lo0 - self.lo_F @ z, self.up0 - self.up_F @ z
        if self.last is not None and np.array_equal(lo, self.last[0]) and np.array_equal(up, self.last[1]):
            return self.last[2]
        out = self._solve(lo, up)
        self.last = (lo, up, out)
        return out

    def _solve(self, lo: np.ndarray, up: np.ndarray) -> BatchAnswer:
        x, duals, _ = solve_lp(self.model, self.lo_rows, lo, self.up_rows, up)
        # dQ/dz = dQ/dbound . dbound/dz; a row's dual is the same whichever of its bounds is active
        d_lo, d_up = duals[self.lo_rows], duals[self.up_rows] * self.up_only
        if self.aggs.size == 1:  # the usual case (one primary theta, no epigraph): vectors, not matrices
            w_col, w_lo, w_up = self.weight_vectors
            grad = self.lo_F.T @ (d_lo * w_lo) + self.up_F.T @ (d_up * w_up)
            return x, np.array([self.c @ (x * w_col)]), -grad[:, None]
        grad = self.lo_F.T @ _scaled(self.W_lo, d_lo) + self.up_F.T @ _scaled(self.W_up, d_up)
        return x, self.W_col.T @ (self.c * x), -grad.toarray()


def _columns(sub: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    """sub[:, cols] for sorted cols, by binary search of each nonzero's column: linear in the
    rows' nonzeros (scipy's fancy column indexing scans every column of the matrix). The column
    indices of each row stay sorted, as the solvers' builders expect."""
    pos = np.searchsorted(cols, sub.indices)
    hit = cols[np.minimum(pos, cols.size - 1)] == sub.indices if cols.size else np.zeros(sub.nnz, bool)
    row = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
    indptr = np.r_[0, np.cumsum(np.bincount(row[hit], minlength=sub.shape[0]))]
    return sp.csr_matrix((sub.data[hit], pos[hit], indptr), shape=(sub.shape[0], cols.size))


def lp_batches(st: Structure, keys: np.ndarray, batch_columns: int = BATCH_COLUMNS) -> list[_Batch]:
    """Batches of whole recourse blocks of one primary theta each, cut every batch_columns columns."""
    lm = st.lm
    if not keys.size:
        return []
    A = lm.A
    cols = np.nonzero(np.isin(lm.col_key, keys))[0]
    rows = np.nonzero(np.isin(lm.row_key, keys))[0]
    key_cols = np.bincount(np.searchsorted(keys, lm.col_key[cols]), minlength=keys.size)
    agg = st.aggregate(keys)
    order = np.lexsort((keys, agg))  # by aggregate, then key
    cols_before = np.cumsum(key_cols[order]) - key_cols[order]
    first_of_agg = np.r_[0, np.nonzero(np.diff(agg[order]))[0] + 1]
    within = cols_before - np.repeat(cols_before[first_of_agg], np.diff(np.r_[first_of_agg, order.size]))
    _, chunk = np.unique(np.column_stack([agg[order], within // batch_columns]), axis=0, return_inverse=True)
    batch_of = np.empty(keys.size, dtype=np.int64)
    batch_of[order] = chunk.ravel()
    row_batch = batch_of[np.searchsorted(keys, lm.row_key[rows])]
    col_batch = batch_of[np.searchsorted(keys, lm.col_key[cols])]
    n_batches = int(batch_of.max()) + 1
    rows_sorted = rows[np.argsort(row_batch, kind="stable")]
    cols_sorted = cols[np.argsort(col_batch, kind="stable")]
    batch_keys = np.split(
        keys[np.argsort(batch_of, kind="stable")], np.cumsum(np.bincount(batch_of, minlength=n_batches))[:-1]
    )
    row_splits = np.cumsum(np.bincount(row_batch, minlength=n_batches))[:-1]
    col_splits = np.cumsum(np.bincount(col_batch, minlength=n_batches))[:-1]
    out = []
    for b_keys, b_rows, b_cols in zip(batch_keys, np.split(rows_sorted, row_splits), np.split(cols_sorted, col_splits)):
        b_rows, b_cols = np.sort(b_rows), np.sort(b_cols)
        sub = A[b_rows]
        A_F = _columns(sub, st.first_cols)
        coupled = np.diff(A_F.indptr) > 0
        lo = np.nonzero(coupled & np.isfinite(lm.row_lb[b_rows]))[0]
        up = np.nonzero(coupled & np.isfinite(lm.row_ub[b_rows]))[0]
        A_rc = _columns(sub, b_cols)
        W = st.spread(b_keys)
        aggs = np.unique(W.indices)
        W = _columns(W, aggs)
        W_row = W[np.searchsorted(b_keys, lm.row_key[b_rows])]
        lp = LinearModel(
            c=lm.c[b_cols],
            offset=0.0,
            A=A_rc,
            row_lb=lm.row_lb[b_rows],
            row_ub=lm.row_ub[b_rows],
            lb=lm.lb[b_cols],
            ub=lm.ub[b_cols],
            integer=np.zeros(b_cols.size, dtype=bool),
            var_blocks={},
            row_blocks={},
        )
        out.append(
            _Batch(
                lp,
                b_keys,
                b_cols,
                lm.c[b_cols],
                aggs,
                W[np.searchsorted(b_keys, lm.col_key[b_cols])],
                lo,
                lm.row_lb[b_rows][lo],
                A_F[lo],
                W_row[lo],
                up,
                lm.row_ub[b_rows][up],
                A_F[up],
                W_row[up],
                ~np.isin(up, lo),
            )
        )
    return out


@dataclass
class Recourse:
    """Expected recourse of every block for a first-stage point: closed form, the pooled closed
    form where it is proven exact at the point, LP batches for the rest."""

    st: Structure
    closed: ClosedForm | None
    pooled: Pooled | None
    lp_keys: np.ndarray  # blocks that may need an LP (the pooled ones among them)
    batches: list[_Batch] = field(default_factory=list)
    pooled_batch: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # -1: no batch
    built: bool = False  # the batches of the blocks that are never settled in closed form

    @classmethod
    def of(cls, st: Structure) -> Recourse:
        """Batches are made as points need them (``_add_batches``)."""
        closed, lp_keys = ClosedForm.select(st)
        pooled, lp_keys = Pooled.select(st, lp_keys)
        size = 0 if pooled is None else pooled.keys.size
        return cls(st, closed, pooled, lp_keys, pooled_batch=np.full(size, -1))

    def _add_batches(self, keys: np.ndarray) -> None:
        """LP batches for blocks that need one for the first time: a block goes to the LP path only
        at a point where the closed forms cannot settle it, and stays there."""
        first = len(self.batches)
        self.batches += lp_batches(self.st, keys)
        self.built = True
        if self.pooled is not None and len(self.batches) > first:
            new = self.batches[first:]
            keys = np.concatenate([b.keys for b in new])
            batch = np.repeat(np.arange(first, len(self.batches)), [b.keys.size for b in new])
            pos = np.minimum(np.searchsorted(self.pooled.keys, keys), self.pooled.keys.size - 1)
            mine = self.pooled.keys[pos] == keys
            self.pooled_batch[pos[mine]] = batch[mine]
        log.debug("recourse: %d LP batches for %d more blocks", len(self.batches) - first, keys.size)

    def evaluate(
        self, z: np.ndarray, pool: ThreadPoolExecutor | None, deadline: float = np.inf
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Q per aggregate, its subgradient (first-stage columns x aggregates, dense) and the
        solution vector of the model at z (first stage z, recourse re-optimised); None when
        the deadline passes before every batch is solved (the time limit is kept even on the
        first plan of a large model)."""
        st = self.st
        values = np.zeros(st.lm.c.size)
        values[st.first_cols] = z
        Q = np.zeros(st.aggregates)
        grad = np.zeros((st.first_cols.size, st.aggregates))
        if self.closed is not None:
            q, gr = self.closed.evaluate(z, values)
            Q += q
            grad += gr.toarray()
        if self.pooled is None:
            if not self.built:
                self._add_batches(self.lp_keys)
            needed = np.ones(len(self.batches), bool)
        else:
            # a batch is solved unless the closed form settles each of its blocks; those it settles
            # outside a solved batch count here
            cert, state = self.pooled.certify(z)
            if not self.built:  # the LP path's other blocks, at the first point
                self._add_batches(np.setdiff1d(self.lp_keys, self.pooled.keys))
            unsettled = ~cert & (self.pooled_batch < 0)
            if unsettled.any():
                self._add_batches(self.pooled.keys[unsettled])
            inb = self.pooled_batch >= 0
            n = len(self.batches)
            open_ = np.bincount(self.pooled_batch[inb], ~cert[inb], n)
            pooled_in = np.bincount(self.pooled_batch[inb], minlength=n)
            needed = (open_ > 0) | (pooled_in < np.array([b.keys.size for b in self.batches], dtype=np.int64))
            counted = cert & ~np.r_[needed, False][self.pooled_batch]
            q, gr = self.pooled.evaluate(z, counted, values, state)
            Q += q
            grad += gr.toarray()

        def run(b: _Batch) -> BatchAnswer | None:
            return b.solve(z) if time.perf_counter() < deadline else None

        todo = [b for b, need in zip(self.batches, needed) if need]
        for b, out in zip(todo, (pool.map if pool else map)(run, todo)):
            if out is None:
                return None
            x, q, dz = out
            Q[b.aggs] += q
            grad[:, b.aggs] += dz
            values[b.cols] = x
        if st.epigraph is not None:
            Q, grad = st.epigraph.compose(z, st.primary, Q, grad, values)
        return Q, grad, values


# ----------------------------------------------------------------------------
# Master and cuts


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

    def model(self, cuts: Cuts, relax: bool = False) -> LinearModel:
        """In dollars, like the extensive model: rescaling the master made SCIP up to 4.5x slower,
        and rescaling only its objective made it wrong (docs/numerics.md)."""
        lm, st = self.st.lm, self.st
        F, G, k = st.first_cols, st.thetas, len(cuts)
        D = np.array(cuts.d).reshape(k, F.size)
        cut_rows = sp.hstack(
            [sp.csr_matrix(-D), sp.csr_matrix((np.ones(k), (np.arange(k), cuts.agg)), shape=(k, G))]
        ).tocsr()
        first = st.A_first
        A = sp.vstack([sp.hstack([first, sp.csr_matrix((first.shape[0], G))]), cut_rows]).tocsr()
        A.sort_indices()
        integer = np.r_[lm.integer[F], np.zeros(G, dtype=bool)]
        return LinearModel(
            c=np.r_[lm.c[F], np.ones(G)],
            offset=lm.offset,
            A=A,
            row_lb=np.r_[lm.row_lb[st.first_rows], cuts.q],
            row_ub=np.r_[lm.row_ub[st.first_rows], np.full(k, np.inf)],
            lb=np.r_[lm.lb[F], self.theta_lb],
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


# ----------------------------------------------------------------------------
# The loop


@dataclass
class BendersStats:
    iterations: int = 0
    lp_iterations: int = 0
    cuts: int = 0


Progress = Callable[[str, float, float], None]  # (phase, best plan's cost, lower bound)


def solve_benders(
    lm: LinearModel,
    time_limit_s: float,
    gap: float,
    threads: int | None = None,
    progress: Progress | None = None,
) -> tuple[SolveOutcome, BendersStats]:
    """Run the L-shaped method to the relative gap; returns the full solution vector of lm.

    threads: recourse batches solved at once (None: every core). The master MIP goes to
    SCIP, the LPs to GLOP.
    """
    threads = threads or os.cpu_count() or 1
    start = time.perf_counter()
    deadline = start + time_limit_s
    st = Structure.of(lm)
    rec = Recourse.of(st)
    # a theta is at least 0 where recourse costs are (an epigraph's always: h max(0, .))
    blocks = st.lm.col_key >= 0
    floor = 0.0 if (st.lm.c[blocks] >= 0).all() and (st.weights.data >= 0).all() else -np.inf
    master = Master(st, np.r_[np.full(st.primary, floor), np.zeros(st.thetas - st.primary)])
    F = st.first_cols
    stats = BendersStats()
    cuts = Cuts()
    seen: set[bytes] = set()  # every point evaluated
    pool = ThreadPoolExecutor(threads) if threads > 1 and rec.lp_keys.size > 1 else None

    best: tuple[float, np.ndarray | None] = (np.inf, None)

    def evaluate(z: np.ndarray) -> float:
        """Add the cuts at z and keep it as the best plan when it is one; its total cost
        (inf when the time limit stopped the evaluation)."""
        nonlocal best
        evaluated = rec.evaluate(z, pool, deadline)
        if evaluated is None:
            return np.inf
        Q, grad, values = evaluated
        cuts.add(z, Q, grad, master.theta_lb, st.primary)
        stats.cuts = len(cuts)
        value = master.cost(z) + float(Q.sum())
        seen.add(z.tobytes())
        integral = np.array_equal(z[lm.integer[F]], np.rint(z[lm.integer[F]]))
        if value < best[0] and integral and master.feasible(z):
            best = (value, values)  # the plan and its recourse, kept: no re-solve at the end
        return value

    def left() -> float:
        return deadline - time.perf_counter()

    lb = lb_relaxed = -np.inf
    repeated = False

    def checked(lb: float) -> float:
        """A lower bound above the cost of a plan in hand is no bound: SCIP has returned such dual
        bounds on masters whose cuts carry coefficients near 1e11 (tests/test_benders.py keeps one).
        Then the master is solved again exactly by the other backend, and its bound stands only
        if it is below that plan; otherwise the LP relaxation's bound, which the cuts prove."""
        if not lb > best[0] * (1 + 1e-9) + 1e-6:
            return lb
        log.info("the master's bound %.9g is above a plan costing %.9g: solving the master again", lb, best[0])
        exact = solve_model(master.model(cuts), SolverName.HIGHS, max(left(), MIN_MASTER_SECONDS), 0.0)
        fair = exact.bound if exact.status == Status.OPTIMAL else None
        return fair if fair is not None and fair <= best[0] * (1 + 1e-9) + 1e-6 else lb_relaxed

    def solve_master(solver: SolverName) -> SolveOutcome:
        hint = None if best[1] is None else np.r_[best[1][F], cuts.theta(best[1][F], master.theta_lb)]
        return solve_model(master.model(cuts), solver, max(left(), MIN_MASTER_SECONDS), gap * MASTER_GAP_SHARE, hint)

    try:
        # the smallest plan: a first cut, and a plan where it is feasible; inf when the limit passed first
        started = np.isfinite(evaluate(lm.lb[F].copy()))
        # phase 1: cuts from the LP relaxation of the master; its first round always runs (a tiny LP),
        # so even a run stopped at once reports a proven bound
        while started and stats.lp_iterations < RELAXATION_ROUNDS:
            out = solve_model(master.model(cuts, relax=True), MASTER_SOLVER, max(left(), MIN_MASTER_SECONDS), 0.0)
            if out.x is None or out.objective is None:
                break
            if out.status == Status.OPTIMAL:  # the relaxed master's optimum bounds the true one from below
                lb = lb_relaxed = max(lb, out.objective)
            if left() <= 0:
                break
            upper = evaluate(out.x[: F.size])
            stats.lp_iterations += 1
            if progress:
                progress(f"relaxation {stats.lp_iterations}", best[0], lb)
            relaxed_gap = relative_gap(upper, out.objective)
            if relaxed_gap is not None and relaxed_gap <= gap * RELAXATION_GAP_SHARE:
                break
        # phase 2: integer master, warm-started from the best plan so far
        solver = MASTER_SOLVER
        first_coefficient = float(np.abs(st.A_first.data).max(initial=0.0))
        while started and left() > 0:
            out = solve_master(solver)
            if out.x is None:
                break
            if out.bound is not None:
                lb = max(lb, out.bound)
            z = np.where(lm.integer[F], np.rint(out.x[: F.size]), out.x[: F.size])
            repeated = z.tobytes() in seen and out.status == Status.OPTIMAL
            if not repeated:
                evaluate(z)
            lb = checked(lb)
            stats.iterations += 1
            g = relative_gap(best[0], lb)
            if progress:
                progress(f"iteration {stats.iterations}", best[0], lb)
            closed = g is not None and (g <= gap or (repeated and g <= REPEAT_GAP))
            # confirmed where the master's largest coefficient (its first-stage rows' or a cut's) is extreme
            if (
                closed
                and max(first_coefficient, float(np.abs(np.array(cuts.d)).max(initial=0.0))) >= CONFIRM_COEFFICIENT
            ):
                # a bound that ends the run is the lower of both backends' bounds on this master
                other = solve_master(OTHER_SOLVER[solver])
                if other.bound is not None and other.bound < lb:
                    log.info("%s bounds the master at %.9g, below %s's %.9g", other.solver, other.bound, solver, lb)
                    lb = other.bound
                    g = relative_gap(best[0], lb)
                    closed = g is not None and (g <= gap or (repeated and g <= REPEAT_GAP))
                    if not closed:  # the other backend masters from here, starting from its plan
                        solver = OTHER_SOLVER[solver]
                        if other.x is not None:
                            evaluate(np.where(lm.integer[F], np.rint(other.x[: F.size]), other.x[: F.size]))
                        continue
            if closed:
                break
            if repeated:
                log.warning("the master repeats a plan with gap %.2e left: stopping", g)
                break
    finally:
        if pool:
            pool.shutdown()
    detail = f"{stats.lp_iterations} LP and {stats.iterations} MIP master iterations"
    value, values = best
    g = relative_gap(value, lb) if values is not None else None
    if values is None:
        status = Status.NO_SOLUTION
    elif g is not None and (g <= gap * (1 + 1e-9) or (repeated and g <= REPEAT_GAP)):
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE
    log.info("decomposition: %s, %d cuts, gap %s", detail, stats.cuts, "-" if g is None else f"{g:.2e}")
    return SolveOutcome(
        status,
        values,
        None if values is None else value,
        lb if np.isfinite(lb) else None,
        "scip+glop",
        f"L-shaped: SCIP master, GLOP recourse, OR-tools {ortools_version()}",
        time.perf_counter() - start,
        detail,
    ), stats
