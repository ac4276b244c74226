"""Recourse by LP: blocks the closed forms cannot settle, in batches of one aggregate solved in
parallel with the coupled rows' bounds at the point; the recourse of every block at a point, and
its subgradient, from both paths (``Recourse``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from stockpile.model.core import LinearModel
from stockpile.solver.backends import solve_lp
from stockpile.solver.benders.closed_forms import ClosedForm, Pooled
from stockpile.solver.benders.structure import Structure, column_slice, scaled_rows

log = logging.getLogger(__name__)
BatchAnswer = tuple[np.ndarray, np.ndarray, np.ndarray]  # recourse values, cost per theta, gradient

# Columns per recourse LP batch: batches run in parallel; 2,000 was the fastest of 500-8,000
# on the medium and large benchmarks.
BATCH_COLUMNS = 2_000


@dataclass
class Batch:
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
        grad = self.lo_F.T @ scaled_rows(self.W_lo, d_lo) + self.up_F.T @ scaled_rows(self.W_up, d_up)
        return x, self.W_col.T @ (self.c * x), -grad.toarray()


def lp_batches(st: Structure, keys: np.ndarray, batch_columns: int = BATCH_COLUMNS) -> list[Batch]:
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
        A_F = column_slice(sub, st.first_cols)
        coupled = np.diff(A_F.indptr) > 0
        lo = np.nonzero(coupled & np.isfinite(lm.row_lb[b_rows]))[0]
        up = np.nonzero(coupled & np.isfinite(lm.row_ub[b_rows]))[0]
        A_rc = column_slice(sub, b_cols)
        W = st.spread(b_keys)
        aggs = np.unique(W.indices)
        W = column_slice(W, aggs)
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
            Batch(
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
    batches: list[Batch] = field(default_factory=list)
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

        def run(b: Batch) -> BatchAnswer | None:
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
