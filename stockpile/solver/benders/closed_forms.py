"""Recourse in closed form, for the blocks it is proven to implement: release and unmet (with the
pieces of a damage curve) under the demand, rate and floor rows (``ClosedForm``), and lending proven
idle at a point (``Pooled``). The only place of the decomposition that knows families by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from stockpile.model.core import LinearModel, Row, Var
from stockpile.solver.benders.structure import Structure, column_slice, scaled_rows

log = logging.getLogger(__name__)

# The families the closed form implements, and nothing else.
CLOSED_FORM_COLUMNS = frozenset({Var.RELEASE, Var.UNMET, Var.DAMAGE})


CLOSED_FORM_ROWS = frozenset({Row.DEMAND, Row.RATE, Row.FLOOR, Row.DAMAGE})


# Lending, which the closed form takes on where it proves lending idle (Pooled)
POOLED_COLUMNS = frozenset({Var.LENT})


POOLED_ROWS = frozenset({Row.LEND_CAP})


POOLED_TOL = 1e-9  # relative: "the closed form attains the bound" and "l = 0 keeps the lending rows"
PIECES_TOL = 1e-9  # relative: the pieces of a curve reach the cell's shortfall


@dataclass
class Served:
    """The closed form at a point: per cell its release cap, per piece what is released from it,
    per group what it costs, the floor's price lam and whether the floor binds."""

    cap: np.ndarray  # (cells,)
    taken: np.ndarray  # (cells, J)
    cost: np.ndarray  # (groups,)
    lam: np.ndarray  # (groups,)
    floor_binds: np.ndarray  # (groups,)
    rate_binds: np.ndarray  # (rate rows,)


@dataclass
class PooledState:
    """Pooled's certificate at a point: the closed form's state, its cost and lam per block, and
    which floor rows cap their outflow (else their rate rows do)."""

    served: Served
    cost: np.ndarray
    lam: np.ndarray
    floor_binds: np.ndarray


@dataclass
class ClosedForm:
    """Exact recourse of the blocks that hold only release, unmet (and its damage pieces), demand,
    rate and floor rows.

    A group (s, p, m) has cells t with shortfall g_t, release caps cap_t(z) = min(g_t, b_rate_t(z))
    and a floor limit L(z) = b_floor(z) on sum_t r_t, with b(z) = ub - A_F z. Unmet u_t = g_t - r_t
    costs D_t(u_t): the cost of u itself plus the cheapest-first fill of its damage pieces
    (0 <= w_j <= ub_j, sum_j w_j = u), convex and piecewise linear. A cell's shortfall is so cut
    into pieces a_tj of cost b_tj (one piece for a cell without a curve). Releasing a tonne saves
    the cost of the dearest piece still unmet, so the recourse is a greedy over a laminar family
    (pieces within cells within the group), exact:
        released from the pieces of t, dearest first, up to cap_t (what t can get);
        the group takes these in the order (dearer, earlier period) up to L;
        Q = sum b_tj (a_tj - taken_tj).
    Its LP duals give the subgradient: lam (the floor's) is the cost of the piece that the limit
    L falls into when the floor binds, else 0; a rate row whose cap binds prices
    mu_t = max(0, beta_t - lam), beta_t the cost of the dearest piece of t the cap leaves unmet.
    Then dQ/dz = lam A_F[floor] + sum_t mu_t A_F[rate_t] (b(z) moves with -A_F z). With one
    segment of one cost c per group it reduces to served = min(sum_t cap_t, L), Q = c (sum g - served).
    """

    cols_r: np.ndarray
    cols_u: np.ndarray
    g: np.ndarray  # shortfall per cell (the demand row's right-hand side)
    r_ub: np.ndarray
    group: np.ndarray  # (s, p, m) group of each cell; cells of a group are contiguous
    starts: np.ndarray  # first cell of each group
    piece_cost: np.ndarray  # (cells, J): each cell's pieces, cheapest first (the fill order of unmet)
    amount: np.ndarray  # (cells, J): the shortfall on each piece
    above: np.ndarray  # (cells, J): the shortfall on the dearer pieces of its cell
    piece_col: np.ndarray  # (cells, J): a piece's damage column, -1 for unmet itself or padding
    order: np.ndarray  # flat (cell, piece) indices of every piece with shortfall, in the group's release order
    order_group: np.ndarray  # group of each of them
    order_cost: np.ndarray  # and its unit cost
    order_starts: np.ndarray  # first position of each group in order (groups+1 entries)
    full_cost: np.ndarray  # per group, the cost of its whole shortfall unmet
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
    def _pieces(st: Structure, keys: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The damage columns of these blocks, the cell (index into r) each belongs to by label, and
        its cell's damage row (-1 where a label has no cell or no row)."""
        lm = st.lm
        if Var.DAMAGE not in lm.var_blocks:
            return (np.zeros(0, np.int64),) * 3
        axes = lm.axes
        assert axes is not None
        dims = ("s", "p", "m", "t")
        rb, wb = lm.var_blocks[Var.RELEASE], lm.var_blocks[Var.DAMAGE]
        sel = np.isin(lm.col_key[wb.index], keys)
        w = wb.index[sel]
        cell_key = axes.key({k: v[r - rb.start] for k, v in rb.coords.items()}, dims)
        w_key = axes.key({k: wb.coords[k][sel] for k in dims}, dims)
        cell = np.minimum(np.searchsorted(cell_key, w_key), max(cell_key.size - 1, 0))
        cell = np.where(cell_key[cell] == w_key, cell, -1) if cell_key.size else np.full(w.size, -1)
        row = np.full(w.size, -1)
        if Row.DAMAGE in lm.row_blocks:
            db = lm.row_blocks[Row.DAMAGE]
            d_key = axes.key(db.coords, dims)
            pos = np.minimum(np.searchsorted(d_key, w_key), max(db.size - 1, 0))
            row = np.where((db.size > 0) & (d_key[pos] == w_key), db.start + pos, -1)
        return w, cell, row

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
    def _bad_pieces(cls, st: Structure, keys: np.ndarray, r: np.ndarray, u: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Keys of blocks whose damage pieces break the form both closed forms rely on: each piece
        w_j >= 0 of a cell lies in that cell's damage row alone, with coefficient -1; the row is
        u - sum_j w_j = 0 and holds nothing else; the pieces reach the cell's shortfall g."""
        lm = st.lm
        A = lm.A
        w, cell, row = cls._pieces(st, keys, r)
        bad = [lm.col_key[w][(cell < 0) | (row < 0)]]
        ok = (cell >= 0) & (row >= 0)
        w, cell, row = w[ok], cell[ok], row[ok]
        uses = np.bincount(A.indices, minlength=lm.c.size)[w]
        coef = np.asarray(A[row, w]).ravel() if w.size else np.zeros(0)
        bad.append(lm.col_key[w][(uses != 1) | (coef != -1.0) | (lm.lb[w] != 0)])
        if Row.DAMAGE in lm.row_blocks:
            rows = lm.row_blocks[Row.DAMAGE].index
            rows = rows[np.isin(lm.row_key[rows], keys)]
            # each row: its cell's u with +1 and that cell's pieces (counted by label) with -1
            row_cell = np.full(A.shape[0], -1)
            row_cell[row] = cell
            pieces = np.bincount(row, minlength=A.shape[0])[rows]
            mine = row_cell[rows] >= 0
            u_of = np.where(mine, u[np.maximum(row_cell[rows], 0)], 0)
            wrong = ~mine | (lm.row_lb[rows] != 0) | (lm.row_ub[rows] != 0)
            wrong |= np.diff(A.indptr)[rows] != pieces + 1
            if mine.any():
                wrong[mine] |= np.asarray(A[rows[mine], u_of[mine]]).ravel() != 1.0
            bad.append(lm.row_key[rows][wrong])
        reach = np.bincount(cell, lm.ub[w], r.size)
        has = np.bincount(cell, minlength=r.size) > 0
        g = lm.row_ub[d]
        bad.append(lm.col_key[r][has & (reach < g * (1 - PIECES_TOL))])
        return np.unique(np.concatenate(bad))

    @classmethod
    def _violations(cls, st: Structure, keys: np.ndarray) -> np.ndarray:
        """Keys of candidate blocks whose rows do not have exactly the closed form's structure."""
        lm = st.lm
        A = lm.A
        r, u, d = cls._cells(st, keys)
        second = lm.col_key >= 0
        bad = [lm.col_key[r][cls._bad_cells(lm, r, u, d) | (np.diff(A.indptr)[d] != 2)]]  # demand: r + u only
        bad.append(cls._bad_pieces(st, keys, r, u, d))
        # rate rows: one release each; floor rows: every release of one (s, p, m) group. Coefficient 1,
        # bounded above only, and no other second-stage column
        axes = lm.axes
        assert axes is not None
        grp = axes.key(
            {k: lm.var_blocks[Var.RELEASE].coords[k][r - lm.var_blocks[Var.RELEASE].start] for k in "spm"},
            ("s", "p", "m"),
        )
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
        g = lm.row_ub[d]
        piece_cost, amount, above, piece_col = cls._piece_table(st, keys, r, u, g)
        # release order within a group: dearer pieces first, then earlier periods, then a cell's top piece
        J = amount.shape[1]
        flat = np.nonzero(amount.ravel() > 0)[0]
        cell, j = np.divmod(flat, J)
        order = flat[np.lexsort((-j, cell, -piece_cost.ravel()[flat], group[cell]))]
        order_group = group[order // J]
        n_groups = starts.size
        order_starts = np.searchsorted(order_group, np.arange(n_groups + 1))

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
            g=g,
            r_ub=lm.ub[r],
            group=group,
            starts=starts,
            piece_cost=piece_cost,
            amount=amount,
            above=above,
            piece_col=piece_col,
            order=order,
            order_group=order_group,
            order_cost=piece_cost.ravel()[order],
            order_starts=order_starts,
            full_cost=np.bincount(group, (piece_cost * amount).sum(axis=1), n_groups),
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

    @classmethod
    def _piece_table(
        cls, st: Structure, keys: np.ndarray, r: np.ndarray, u: np.ndarray, g: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each cell's pieces as (cells, J) tables, cheapest first: their unit cost (the cost of u
        plus the piece's), the shortfall on each (unmet fills the cheapest first) and on the dearer
        ones, and their column. A cell without a curve is one piece, unmet itself, up to g."""
        lm = st.lm
        w, cell, _ = cls._pieces(st, keys, r)
        count = np.bincount(cell, minlength=r.size)
        J = max(1, int(count.max(initial=0)))
        cost = np.repeat(lm.c[u][:, None], J, axis=1)
        ub = np.zeros((r.size, J))
        col = np.full((r.size, J), -1)
        plain = count == 0
        ub[plain, 0] = g[plain]
        if w.size:
            by = np.lexsort((w, lm.c[w], cell))  # within a cell, cheapest first (ties in curve order)
            w, cell = w[by], cell[by]
            j = np.arange(w.size) - (np.cumsum(count) - count)[cell]  # sorted by cell: its rank within it
            cost[cell, j] += lm.c[w]
            ub[cell, j] = lm.ub[w]
            col[cell, j] = w
            last = np.repeat(np.maximum(count - 1, 0)[:, None], J, axis=1)
            pad = np.arange(J)[None, :] > last
            cost = np.where(pad, np.take_along_axis(cost, last, axis=1), cost)  # padding keeps the order
        lo = np.cumsum(ub, axis=1) - ub
        amount = np.clip(g[:, None] - lo, 0.0, ub)
        above = np.cumsum(amount[:, ::-1], axis=1)[:, ::-1] - amount
        return cost, amount, above, col

    def serve(self, z: np.ndarray) -> Served:
        """Each cell's cap, then the group greedy (class docstring) and its duals."""
        cap = self.r_ub.copy()
        rate_bound = self.rate_ub - self.rate_F @ z
        rate_binds = rate_bound < cap[self.rate_cell]
        cap[self.rate_cell] = np.minimum(cap[self.rate_cell], np.maximum(rate_bound, 0.0))
        limit = np.full(self.starts.size, np.inf)
        limit[self.floor_group] = np.maximum(self.floor_ub - self.floor_F @ z, 0.0)
        avail = np.clip(cap[:, None] - self.above, 0.0, self.amount)  # what each piece can get from its cell
        flat = avail.ravel()[self.order]
        cum = np.r_[0.0, np.cumsum(flat)]
        base = cum[self.order_starts]
        total = base[1:] - base[:-1]
        og = self.order_group
        before, after = cum[:-1] - base[og], cum[1:] - base[og]
        lim = limit[og]
        took = np.clip(lim - before, 0.0, flat)
        taken = np.zeros(self.amount.size)
        taken[self.order] = took
        cost_flat = self.order_cost
        cost = self.full_cost - np.bincount(og, cost_flat * took, total.size)
        floor_binds = limit < total
        lam = np.zeros(total.size)
        hit = floor_binds[og] & (before < lim) & (lim <= after)
        lam[og[hit]] = cost_flat[hit]
        empty = floor_binds & (limit <= 0)  # nothing may leave: the dearest piece it could get prices the floor
        if empty.any():
            dearest = np.zeros(total.size)
            np.maximum.at(dearest, og[flat > 0], cost_flat[flat > 0])
            lam[empty] = dearest[empty]
        return Served(cap, taken.reshape(self.amount.shape), cost, lam, floor_binds, rate_binds)

    def fill(self, state: Served, values: np.ndarray) -> None:
        """The releases, unmet and damage pieces of every cell from the greedy's releases."""
        rel = state.taken.sum(axis=1)
        values[self.cols_r] = rel
        values[self.cols_u] = self.g - rel
        real = self.piece_col >= 0
        values[self.piece_col[real]] = (self.amount - state.taken)[real]

    def rate_prices(self, state: Served) -> np.ndarray:
        """mu of each rate row: beta_t - lam where the row caps its cell, beta_t the cost of the dearest
        piece of t the cap leaves unmet (the pieces the cap reaches are cheaper than those it serves)."""
        left = (self.amount - np.clip(state.cap[:, None] - self.above, 0.0, self.amount)) > 0
        J = left.shape[1]
        top = J - 1 - np.argmax(left[:, ::-1], axis=1)
        beta = np.where(left.any(axis=1), np.take_along_axis(self.piece_cost, top[:, None], axis=1)[:, 0], 0.0)
        cells = self.rate_cell
        return np.where(state.rate_binds, np.maximum(beta[cells] - state.lam[self.group[cells]], 0.0), 0.0)

    def evaluate(self, z: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """Q per theta, its subgradient (first-stage columns x thetas); fills the recourse values."""
        state = self.serve(z)
        Q = self.W.T @ state.cost
        w_floor = state.lam[self.floor_group]
        grad = self.floor_F.T @ scaled_rows(self.W_floor, w_floor) + self.rate_F.T @ scaled_rows(
            self.W_rate, self.rate_prices(state)
        )
        self.fill(state, values)
        return Q, sp.csr_matrix(grad)


@dataclass
class Pooled:
    """Recourse blocks with lending whose no-lending closed form is proven optimal at z.

    In a block every tonne served leaves some group's outflow (its releases and what it
    lends), and each outflow column lies in one floor row f with coefficient 1; where every
    column of f also lies in its rate rows, their bounds cap it too:
        cap_f(z) = min(b_floor_f(z), sum_{rate rows of f} b_rate(z)),   b(z) = ub - A_F z.
    Pool the block's damage pieces (``ClosedForm``: piece p of cost b_p holds a_p tonnes of the
    shortfall) and let any tonne serve any of them. With lending fees >= 0, dropping the other
    rows gives a bound for every z:
        Q_LP(z) >= B(z) = sum_p b_p a_p - S(K(z)),   K(z) = sum_f cap_f(z),
    S(K) the cost of the K dearest tonnes of the pool (concave, nondecreasing; K concave in z, so
    B is convex). Where the closed form without lending (a feasible point when l = 0 keeps the
    lending rows) costs no more than B(z), it is optimal: Q(z) = B(z), and lam sum_f A_F[active
    row of f], lam the cost of the pool's piece that K falls into, is a subgradient of B, a
    valid cut everywhere since Q_LP >= B. With one unit cost over the block this is "every group
    exhausted": nobody has stock left to lend. Any other block, or one whose rows differ from
    these rules, is solved as an LP.
    """

    closed: ClosedForm  # the blocks' own cells, lending left out
    keys: np.ndarray  # the blocks' keys, sorted
    group_block: np.ndarray  # block of each closed-form group
    pool_cost: np.ndarray  # the blocks' pieces, dearest first within each block
    pool_cum: np.ndarray  # their cumulative tonnes (0 first), over all blocks
    pool_saving: np.ndarray  # their cumulative cost (0 first)
    pool_starts: np.ndarray  # first piece of each block (blocks+1 entries)
    full_cost: np.ndarray  # per block, the cost of its whole shortfall unmet
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
        bad = [lm.col_key[r][ClosedForm._bad_cells(lm, r, u, d)], ClosedForm._bad_pieces(st, keys, r, u, d)]
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
        # the closed form's pieces, pooled by block, dearest first
        blk = group_block[closed.order_group]
        by = np.lexsort((-closed.order_cost, blk))
        cost, blk = closed.order_cost[by], blk[by]
        amount = closed.amount.ravel()[closed.order][by]
        W = st.spread(keys)
        rate_floor = floor_of[first[keep]]
        return cls(
            closed=closed,
            keys=keys,
            group_block=group_block,
            pool_cost=cost,
            pool_cum=np.r_[0.0, np.cumsum(amount)],
            pool_saving=np.r_[0.0, np.cumsum(cost * amount)],
            pool_starts=np.searchsorted(blk, np.arange(keys.size + 1)),
            full_cost=np.bincount(group_block, closed.full_cost, keys.size),
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

    def bound(self, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """B per block at pooled supply K, and lam: the cost of the piece the K-th tonne falls in
        (the dearest where K <= 0; 0 where K exceeds the pool)."""
        if not self.pool_cost.size:
            return self.full_cost.copy(), np.zeros(K.size)
        lo, hi = self.pool_starts[:-1], self.pool_starts[1:]
        cum, saving = self.pool_cum, self.pool_saving
        target = cum[lo] + np.maximum(K, 0.0)
        i = np.searchsorted(cum, target, side="left") - 1  # cum[i] < target <= cum[i + 1]
        i = np.minimum(np.maximum(i, lo), np.maximum(hi - 1, lo))
        i = np.minimum(i, self.pool_cost.size - 1)
        short = (hi > lo) & (target <= cum[hi])
        lam = np.where(short, self.pool_cost[i], 0.0)
        got = np.where(short, saving[i] + lam * (target - cum[i]), saving[hi]) - saving[lo]
        return self.full_cost - got, lam

    def certify(self, z: np.ndarray) -> tuple[np.ndarray, PooledState]:
        """Which blocks the no-lending closed form solves exactly at z, and its state there."""
        n = self.keys.size
        state = self.closed.serve(z)
        cost = np.bincount(self.group_block, state.cost, n)
        floor_cap = self.floor_ub - self.floor_F @ z
        rate_bound = self.rate_ub - self.rate_F @ z
        rate_cap = np.where(self.covered, np.bincount(self.rate_floor, rate_bound, self.covered.size), np.inf)
        floor_binds = floor_cap <= rate_cap
        cap = np.minimum(floor_cap, rate_cap)
        B, lam = self.bound(np.bincount(self.floor_block, cap, n))
        # a negative bound makes the LP infeasible: left to it, to be reported as such
        negative = (floor_cap < 0) | (np.bincount(self.rate_floor, rate_bound < 0, self.covered.size) > 0)
        nonneg = np.bincount(self.floor_block, negative, n) == 0
        at_zero = self.other_F @ z  # the lending rows' activity with l = 0
        slack = POOLED_TOL * np.maximum(1.0, np.abs(at_zero))
        keeps = (self.other_lb <= at_zero + slack) & (at_zero <= self.other_ub + slack)
        keeps = np.bincount(self.other_block, ~keeps, n) == 0
        attains = cost <= B + POOLED_TOL * np.maximum(1.0, self.full_cost)
        return attains & nonneg & keeps, PooledState(state, cost, lam, floor_binds)

    def evaluate(
        self, z: np.ndarray, counted: np.ndarray, values: np.ndarray, state: PooledState
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Q per theta of the counted (certified) blocks and the subgradient of their bound B;
        fills the releases and unmet of every block's cells (an LP batch overwrites its own)."""
        Q = self.W.T @ np.where(counted, state.cost, 0.0)
        w = np.where(counted, state.lam, 0.0)
        w_floor = w[self.floor_block] * state.floor_binds
        w_rate = (w[self.floor_block] * ~state.floor_binds)[self.rate_floor]
        grad = self.floor_F.T @ scaled_rows(self.W_floor, w_floor) + self.rate_F.T @ scaled_rows(self.W_rate, w_rate)
        self.closed.fill(state.served, values)
        return Q, sp.csr_matrix(grad)
