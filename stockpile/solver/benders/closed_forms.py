"""Recourse in closed form, for the blocks it is proven to implement: release and unmet under
the demand, rate and floor rows (``ClosedForm``), and lending proven idle at a point (``Pooled``).
The only place of the decomposition that knows families by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from stockpile.model.core import LinearModel, Row, Var
from stockpile.solver.benders.structure import Structure, column_slice, scaled_rows

PooledState = tuple[tuple[np.ndarray, ...], np.ndarray]  # the closed form's serve() at z, and which floors bind

log = logging.getLogger(__name__)

# The families the closed form implements, and nothing else.
CLOSED_FORM_COLUMNS = frozenset({Var.RELEASE, Var.UNMET})


CLOSED_FORM_ROWS = frozenset({Row.DEMAND, Row.RATE, Row.FLOOR})


# Lending, which the closed form takes on where it proves lending idle (Pooled)
POOLED_COLUMNS = frozenset({Var.LENT})


POOLED_ROWS = frozenset({Row.LEND_CAP})


POOLED_TOL = 1e-9  # relative: "every group exhausted" and "l = 0 keeps the lending rows"


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
        return np.asarray(
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
            sub = column_slice(A[rows], r)  # its releases (with lending in Pooled's blocks)
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
            rate_F=column_slice(A[rate_rows], F),
            floor_group=group[floor_first],
            floor_ub=lm.row_ub[floor_rows],
            floor_F=column_slice(A[floor_rows], F),
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
        grad = self.floor_F.T @ scaled_rows(self.W_floor, w_floor) + self.rate_F.T @ scaled_rows(self.W_rate, w_rate)
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

        def block(rows: np.ndarray) -> np.ndarray:
            return np.asarray(np.searchsorted(keys, lm.row_key[rows]))

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
            floor_F=column_slice(lm.A[f_rows], F),
            covered=covered,
            rate_floor=rate_floor,
            rate_ub=lm.row_ub[q_rows[keep]],
            rate_F=column_slice(lm.A[q_rows[keep]], F),
            other_block=block(o_rows),
            other_lb=lm.row_lb[o_rows],
            other_ub=lm.row_ub[o_rows],
            other_F=column_slice(lm.A[o_rows], F),
        )

    def certify(self, z: np.ndarray) -> tuple[np.ndarray, PooledState]:
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
        self, z: np.ndarray, counted: np.ndarray, values: np.ndarray, state: PooledState
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Q per theta of the counted (certified) blocks and the subgradient of their bound B;
        fills the releases and unmet of every block's cells (an LP batch overwrites its own)."""
        (cap, served, limit, _, _), floor_binds = state
        served_b = np.bincount(self.group_block, served, self.keys.size)
        Q = self.W.T @ np.where(counted, self.unit * (self.shortfall - served_b), 0.0)
        w = np.where(counted, self.unit, 0.0)
        w_floor = w[self.floor_block] * floor_binds
        w_rate = (w[self.floor_block] * ~floor_binds)[self.rate_floor]
        grad = self.floor_F.T @ scaled_rows(self.W_floor, w_floor) + self.rate_F.T @ scaled_rows(self.W_rate, w_rate)
        self.closed.fill(cap, limit, values)
        return Q, sp.csr_matrix(grad)
