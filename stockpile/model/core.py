"""The model's vocabulary: stages, blocks, cost kinds, family names, the builder and its checks.

A family of variables or rows (``families.py``) declares where it is defined:

* its **stage**: first stage (decided before the scenario is known) or second
  stage with its **decomposition key**, the labelled dimensions of one recourse
  block (today every second-stage family is keyed by (scenario, mineral));
* for variables, its **cost terms** by kind (``CostKind``). The objective vector is
  their sum, and the reported cost breakdown is computed from the same terms, so
  the two cannot drift apart.

The decomposition (``solver/benders``) cuts the model along these declarations, and
:meth:`Builder.build` refuses a model whose rows cross them. Consumers name families by
``Var`` and ``Row``, never by their letters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from stockpile.enums import CostKind as CostKind  # the model's cost kinds, light enough for the CLI
from stockpile.model.instance import Instance
from stockpile.model.labels import Axes

log = logging.getLogger(__name__)


FEAS_TOL = 1e-9


class ModelError(RuntimeError):
    """A model whose families break the declared structure: a bug in a define_* function."""


@dataclass(frozen=True)
class Stage:
    """First stage (empty key) or second stage keyed by labelled dimensions, e.g. ('s', 'm').

    epigraph: the family bounds a function of the recourse cost of every block of its (coarser)
    key, as v_k >= cost of k's blocks - first-stage terms; the decomposition composes those
    blocks' recourse instead of solving them as one (benders.Epigraph checks the rows' form)."""

    key: tuple[str, ...] = ()
    epigraph: bool = False

    @property
    def first(self) -> bool:
        return not self.key


FIRST = Stage()


PAIR = Stage(("s", "m"))  # second stage: one recourse block per (scenario, mineral)


EPIGRAPH = Stage(("s",), epigraph=True)  # over a whole scenario's blocks: the CVaR excess v_s and its row


FIRST_KEY = -1  # col_key / row_key of the first stage


SPAN_KEY = -2  # ... of a family whose key is coarser than the blocks' (it spans several)


def coarsest_key(stages: list[Stage]) -> tuple[str, ...]:
    """The decomposition key: the coarsest key declared, which every other key must refine."""
    keys = {s.key for s in stages if not s.first}
    if not keys:
        return ()
    coarsest = min(keys, key=len)
    if any(not set(coarsest) <= set(k) for k in keys):
        raise ModelError(
            f"second-stage families declare keys {sorted(keys)} that do not nest; the decomposition "
            "needs one key that every family's key refines"
        )
    return coarsest


def block_keys(axes: Axes, blocks: dict[str, Block], n: int, dims: tuple[str, ...]) -> np.ndarray:
    """Recourse-block key over dims of every element: FIRST_KEY for the first stage, SPAN_KEY for
    a family whose key does not hold every one of dims."""
    out = np.full(n, FIRST_KEY, dtype=np.int64)
    for b in blocks.values():
        if not b.stage.first:
            span = not set(dims) <= set(b.stage.key)
            out[b.start : b.start + b.size] = SPAN_KEY if span else axes.key(b.coords, dims)
    return out


def check_coupling(A: sp.csr_matrix, col_key: np.ndarray, row_key: np.ndarray, row_blocks: dict[str, Block]) -> None:
    """A first-stage row may hold only first-stage columns; a second-stage row only its own
    block's columns (and first-stage ones, which couple it to the master). Anything else would
    be lost by the decomposition, so it is refused, naming the family. Rows that span blocks
    are the epigraph's, checked where it is composed."""
    ck = col_key[A.indices]
    rk = np.repeat(row_key, np.diff(A.indptr))
    bad = (ck != FIRST_KEY) & (ck != rk) & (rk != SPAN_KEY)
    if bad.any():
        row = int(np.searchsorted(A.indptr, np.argmax(bad), side="right") - 1)
        family = next(b.name for b in row_blocks.values() if b.start <= row < b.start + b.size)
        what = "a first-stage row" if row_key[row] == FIRST_KEY else "a row of one recourse block"
        raise ModelError(
            f"family {family}: {what} holds second-stage columns of another block; "
            "declare its stage and key to match the columns it couples"
        )


class Var(StrEnum):
    """The variable families, by the name each is declared with (the export names them so)."""

    LOTS = "n"  # lots bought, per (p, m, y)
    PROGRAMME = "y"  # a programme opened, per (p, m)
    RELEASE = "r"  # release of own stock, per cell (s, p, m, t)
    UNMET = "u"  # shortfall left unmet, per cell
    DAMAGE = "w"  # unmet on one segment of a damage curve, per (cell, segment d)
    LENT = "l"  # stock lent on an arc, per (s, a, m, t)
    ETA = "eta"  # CVaR's value at risk
    EXCESS = "v"  # CVaR's excess over it, per scenario
    OFFTAKE = "o"  # offtake units committed, per (p, j)
    AGREED = "z"  # an offtake agreement signed, per (p, j)
    OFFTAKE_USED = "f"  # offtake serving the taker's own shortfall, per cell
    OFFTAKE_LENT = "e"  # offtake lent onward on an arc


class Row(StrEnum):
    """The row families, by the name each is declared with."""

    DEMAND = "demand"
    DAMAGE = "damage"
    RATE = "rate"
    FLOOR = "floor"
    LEND_CAP = "lend_cap"
    PROGRAMME = "program"
    BUDGET = "budget"
    STORAGE = "storage"
    MIN_DAYS = "min_days"
    CVAR = "cvar"
    CAPACITY = "capacity"
    AGREEMENT = "agreement"
    OFFTAKE = "offtake"


@dataclass
class Block:
    """A family of variables or rows: its position, labelled coordinates and stage."""

    name: str
    start: int
    size: int
    coords: dict[str, np.ndarray]
    stage: Stage
    costs: dict[CostKind, np.ndarray] = field(default_factory=dict)  # variables only

    @property
    def index(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)

    def values(self, x: np.ndarray) -> np.ndarray:
        return x[self.start : self.start + self.size]


@dataclass
class LinearModel:
    """min c x + offset  s.t.  row_lb <= A x <= row_ub,  lb <= x <= ub,  x_j integer where flagged.

    col_key / row_key: the recourse block of each second-stage column / row (a flat key
    over ``key_dims``), FIRST_KEY for the first stage, SPAN_KEY for an epigraph family (it spans
    the blocks of its coarser key). ``offsets``: constant cost terms per kind
    and participant (the holding cost of the initial stock).
    """

    c: np.ndarray
    offset: float
    A: sp.csr_matrix
    row_lb: np.ndarray
    row_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    var_blocks: dict[str, Block]
    row_blocks: dict[str, Block]
    axes: Axes | None = None
    key_dims: tuple[str, ...] = ()
    col_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    row_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    offsets: dict[CostKind, np.ndarray] = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "variables": int(self.c.size),
            "integer_variables": int(self.integer.sum()),
            "constraints": int(self.A.shape[0]),
            "nonzeros": int(self.A.nnz),
        }

    @property
    def first_cols(self) -> np.ndarray:
        return np.nonzero(self.col_key == FIRST_KEY)[0]

    def cost_breakdown(
        self, x: np.ndarray, participants: int
    ) -> tuple[dict[CostKind, np.ndarray], dict[CostKind, float]]:
        """Each cost kind per participant (who pays: the block's ``p``) for a solution x, and the
        shared kinds (no payer) as totals.

        Summed over kinds (and participants) this is c x + offset exactly: the same terms the
        objective vector was built from.
        """
        out = {
            kind: self.offsets.get(kind, np.zeros(participants)).astype(float) for kind in CostKind if not kind.shared
        }
        shared = {kind: 0.0 for kind in CostKind if kind.shared}
        for block in self.var_blocks.values():
            xb = block.values(x)
            for kind, coef in block.costs.items():
                if kind.shared:
                    shared[kind] += float(coef @ xb)
                else:
                    out[kind] += np.bincount(block.coords["p"], coef * xb, participants)
        return out, shared


class Builder:
    """Collects variable and row families with their stage and cost terms, then assembles one CSR matrix.

    The extension point of the model: a ``define_*`` function adds its family with
    :meth:`add_vars` or :meth:`add_rows` and its coefficients with :meth:`add_terms`;
    :meth:`build` checks the declared structure before anything is solved.
    """

    def __init__(self, axes: Axes) -> None:
        self.axes = axes
        self.n_vars = 0
        self.n_rows = 0
        self.cols: dict[str, list[np.ndarray]] = {"lb": [], "ub": [], "int": []}
        self.rows: dict[str, list[np.ndarray]] = {"lb": [], "ub": []}
        self.terms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.var_blocks: dict[str, Block] = {}
        self.row_blocks: dict[str, Block] = {}
        self.offsets: dict[CostKind, np.ndarray] = {}

    @staticmethod
    def _size(name: str, coords: Mapping[str, np.ndarray]) -> int:
        if not coords:
            return 1  # a single variable or row without labels (e.g. eta)
        sizes = {len(v) for v in coords.values()}
        if len(sizes) != 1:
            raise ModelError(f"family {name}: coordinates of different lengths {sorted(sizes)}")
        return sizes.pop()

    def _check_stage(self, name: str, coords: Mapping[str, np.ndarray], stage: Stage) -> None:
        missing = [d for d in stage.key if d not in coords]
        if missing:
            raise ModelError(f"family {name}: second-stage key {stage.key} needs coordinates {missing}")
        if name in self.var_blocks or name in self.row_blocks:
            raise ModelError(f"family {name} is defined twice")

    def add_vars(
        self,
        name: str,
        coords: dict[str, np.ndarray],
        stage: Stage,
        *,
        lb: ArrayLike,
        ub: ArrayLike,
        costs: Mapping[CostKind, np.ndarray | float] | None = None,
        integer: bool | np.ndarray = False,
    ) -> np.ndarray:
        """Add a variable family; costs by kind (their sum is the objective coefficient); integer
        for the whole family or per variable."""
        self._check_stage(name, coords, stage)
        size = self._size(name, coords)
        if "p" not in coords and any(not CostKind(k).shared for k in (costs or {})):
            raise ModelError(f"family {name}: a cost needs the participant who pays (coordinate p)")
        if np.any(integer) and not stage.first:
            raise ModelError(f"family {name}: integer variables must be first stage (the recourse is an LP)")
        block = Block(
            name,
            self.n_vars,
            size,
            coords,
            stage,
            {k: np.broadcast_to(np.asarray(v, dtype=float), (size,)).copy() for k, v in (costs or {}).items()},
        )
        self.var_blocks[name] = block
        for key, value in (("lb", lb), ("ub", ub)):
            self.cols[key].append(np.broadcast_to(np.asarray(value, dtype=float), (size,)))
        self.cols["int"].append(np.broadcast_to(np.asarray(integer, dtype=bool), (size,)))
        self.n_vars += size
        return block.index

    def add_rows(
        self, name: str, coords: dict[str, np.ndarray], stage: Stage, *, lb: ArrayLike, ub: ArrayLike
    ) -> np.ndarray:
        self._check_stage(name, coords, stage)
        size = self._size(name, coords)
        block = Block(name, self.n_rows, size, coords, stage)
        self.row_blocks[name] = block
        self.rows["lb"].append(np.broadcast_to(np.asarray(lb, dtype=float), (size,)))
        self.rows["ub"].append(np.broadcast_to(np.asarray(ub, dtype=float), (size,)))
        self.n_rows += size
        return block.index

    def add_terms(self, rows: np.ndarray, cols: np.ndarray, vals: ArrayLike) -> None:
        vals = np.broadcast_to(np.asarray(vals, dtype=float), rows.shape)
        self.terms.append((rows, cols, vals))

    def add_offset(self, kind: CostKind, per_participant: np.ndarray) -> None:
        """A constant cost (it does not depend on any decision), per participant."""
        self.offsets[kind] = self.offsets.get(kind, 0.0) + np.asarray(per_participant, dtype=float)

    def build(self) -> LinearModel:
        def cat(xs: list[np.ndarray], dt: type = float) -> np.ndarray:
            return np.concatenate(xs) if xs else np.zeros(0, dtype=dt)

        rows = cat([t[0] for t in self.terms], np.int64)
        cols = cat([t[1] for t in self.terms], np.int64)
        vals = cat([t[2] for t in self.terms])
        keep = vals != 0
        A = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(self.n_rows, self.n_vars))
        A.sum_duplicates()
        A.sort_indices()
        c = np.zeros(self.n_vars)
        for block in self.var_blocks.values():
            for coef in block.costs.values():
                c[block.start : block.start + block.size] += coef
        # the blocks' key; an epigraph family spans several blocks (SPAN_KEY), checked where composed
        dims = coarsest_key([b.stage for b in (self.var_blocks | self.row_blocks).values() if not b.stage.epigraph])
        col_key = block_keys(self.axes, self.var_blocks, self.n_vars, dims)
        row_key = block_keys(self.axes, self.row_blocks, self.n_rows, dims)
        check_coupling(A, col_key, row_key, self.row_blocks)
        offsets = {k: np.broadcast_to(v, (self.axes.sizes["p"],)).copy() for k, v in self.offsets.items()}
        return LinearModel(
            c=c,
            offset=float(sum(v.sum() for v in offsets.values())),
            A=A,
            row_lb=cat(self.rows["lb"]),
            row_ub=cat(self.rows["ub"]),
            lb=cat(self.cols["lb"]),
            ub=cat(self.cols["ub"]),
            integer=cat(self.cols["int"], bool),
            var_blocks=self.var_blocks,
            row_blocks=self.row_blocks,
            axes=self.axes,
            key_dims=dims,
            col_key=col_key,
            row_key=row_key,
            offsets=offsets,
        )


def export_names(lm: LinearModel, inst: Instance) -> tuple[list[str], list[str]]:
    """Readable variable and row names for LP/MPS export, e.g. r(drc_ban,US,cobalt,3)."""
    label = {
        "s": np.array([_safe(x) for x in inst.scenarios], dtype=object),
        "p": np.array([_safe(x) for x in inst.participants], dtype=object),
        "m": np.array([_safe(x) for x in inst.minerals], dtype=object),
        "a": np.array(
            [
                f"{_safe(inst.participants[f])}>{_safe(inst.participants[t])}"
                for f, t in zip(inst.arc_from, inst.arc_to)
            ],
            dtype=object,
        ),
    }

    def block_names(block: Block) -> list[str]:
        coords = {k: v for k, v in block.coords.items() if k != "y" or inst.years > 1}  # Y = 1: one year, unnamed
        parts = [label[k][v] if k in label else (v + 1).astype(str).astype(object) for k, v in coords.items()]
        if not parts:
            return [block.name] * block.size
        joined = parts[0]
        for extra in parts[1:]:
            joined = joined + "," + extra
        return [f"{block.name}({j})" for j in joined]

    var = [n for b in lm.var_blocks.values() for n in block_names(b)]
    row = [n for b in lm.row_blocks.values() for n in block_names(b)]
    return var, row


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in text)
