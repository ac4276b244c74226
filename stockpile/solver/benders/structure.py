"""The decomposition's view of a model: which columns and rows are first stage, which recourse
block (and aggregate theta) each second-stage element belongs to, and the epigraph composed over
a scenario's blocks. Derived from the families' declared stages alone (``model.core.Stage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from stockpile.model.core import FIRST_KEY, SPAN_KEY, Block, LinearModel, ModelError, coarsest_key

# Thetas for an epigraph's scenarios (each bounds the sum over a group). Solve at 2,000 scenarios
# (w = 0.1, gap 1e-4): one theta failed in SCIP on the master's numerics; 10 took 4.5 s, 100 3.8 s,
# one per scenario 11.6 s (the master LP grew to thousands of dense cuts); w = 0 3.8 s. At 10,000,
# 30 and 100 took 22.5 s and 23.1 s (/tmp sweep around solve_benders, one run each)
EPIGRAPH_THETAS = 100


def family_of(blocks: Mapping[str, Block], n: int) -> np.ndarray:
    """Family name of every element of a model's column or row blocks."""
    out = np.empty(n, dtype=object)
    for b in blocks.values():
        out[b.start : b.start + b.size] = b.name
    return out


def scaled_rows(W: sp.csr_matrix, w: np.ndarray) -> sp.csr_matrix:
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

        def ekey(blocks: Iterable[Block]) -> np.ndarray:
            return np.concatenate([axes.key(b.coords, edims) for b in blocks if b.stage.epigraph])

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
        F = column_slice(lm.A[rows], np.nonzero(col_key == FIRST_KEY)[0])
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


def aggregate_of(lm: LinearModel, keys: np.ndarray, agg_dims: tuple[str, ...]) -> np.ndarray:
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
        primary = aggregate_of(lm, keys, agg_dims)
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
        return family_of(self.lm.var_blocks, self.lm.c.size)

    @cached_property
    def row_family(self) -> np.ndarray:
        """Family name of every row."""
        return family_of(self.lm.row_blocks, self.lm.A.shape[0])

    def aggregate(self, keys: np.ndarray) -> np.ndarray:
        """Primary theta of each recourse-block key."""
        return aggregate_of(self.lm, keys, self.agg_dims)

    def spread(self, keys: np.ndarray) -> sp.csr_matrix:
        """Rows of ``weights`` of the given recourse-block keys."""
        return self.weights[np.searchsorted(self.keys, keys)]


def column_slice(sub: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    """sub[:, cols] for sorted cols, by binary search of each nonzero's column: linear in the
    rows' nonzeros (scipy's fancy column indexing scans every column of the matrix). The column
    indices of each row stay sorted, as the solvers' builders expect."""
    pos = np.searchsorted(cols, sub.indices)
    hit = cols[np.minimum(pos, cols.size - 1)] == sub.indices if cols.size else np.zeros(sub.nnz, bool)
    row = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
    indptr = np.r_[0, np.cumsum(np.bincount(row[hit], minlength=sub.shape[0]))]
    return sp.csr_matrix((sub.data[hit], pos[hit], indptr), shape=(sub.shape[0], cols.size))
