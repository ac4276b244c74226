"""Labelled dimensions: coordinates (s, p, m, t, a, ...) to flat keys and back.

The one place where positions over several dimensions are combined into a single
integer: the model's row and column blocks, the decomposition's recourse blocks
and the result tables all go through :class:`Axes`, so no stage writes index
arithmetic such as ``((s * P + p) * M + m) * T + t`` by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Axes:
    """Sizes of the labelled dimensions of one instance: s scenario, p participant, m mineral,
    t period (0-based inside, 1-based for users), a lending arc."""

    sizes: Mapping[str, int]

    def shape(self, dims: Sequence[str]) -> tuple[int, ...]:
        return tuple(int(self.sizes[d]) for d in dims)

    def key(self, coords: Mapping[str, np.ndarray], dims: Sequence[str]) -> np.ndarray:
        """Flat key of each element over dims, row-major (the last dimension varies fastest)."""
        if not dims:
            n = len(next(iter(coords.values()))) if coords else 0
            return np.zeros(n, dtype=np.int64)
        return np.ravel_multi_index(tuple(np.asarray(coords[d], dtype=np.intp) for d in dims), self.shape(dims)).astype(
            np.int64
        )

    def coords(self, key: np.ndarray, dims: Sequence[str]) -> dict[str, np.ndarray]:
        """The inverse of :meth:`key`: coordinates over dims of each flat key."""
        if not dims:
            return {}
        return {
            d: c.astype(np.int64) for d, c in zip(dims, np.unravel_index(np.asarray(key, np.intp), self.shape(dims)))
        }

    def unique(self, coords: Mapping[str, np.ndarray], dims: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Distinct coordinate tuples over dims (sorted by key) and, per element, which one it is."""
        uniq, inverse = np.unique(self.key(coords, dims), return_inverse=True)
        return self.coords(uniq, dims), inverse.ravel()

    def grid(self, dims: Sequence[str]) -> dict[str, np.ndarray]:
        """Every coordinate tuple over dims, in key order."""
        return self.coords(np.arange(int(np.prod(self.shape(dims)))), dims)
