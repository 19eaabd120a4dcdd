"""Ragged arrays in CSR form: one flat value array plus row offsets.

Polygon rings, RLE counts and keypoints differ in length from object to object. Storing them
as ``values`` (all rows concatenated) plus ``offsets`` (``n + 1`` row starts) keeps them in
one numpy array each, so selecting or concatenating objects never loops in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelgate.core._typing import IntArray
from labelgate.errors import ValidationError

__all__ = ["Ragged", "gather_ranges"]


def gather_ranges(starts: IntArray, stops: IntArray) -> IntArray:
    """Concatenate ``arange(start, stop)`` for every pair, without a Python loop.

    Parameters
    ----------
    starts, stops
        (k,) int arrays with ``stops >= starts``.

    Returns
    -------
    IntArray
        (sum(stops - starts),) the indices of every range, in order.

    Examples
    --------
    >>> gather_ranges(np.array([0, 5]), np.array([2, 8]))
    array([0, 1, 5, 6, 7])
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(stops, dtype=np.int64) - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # position within its range, plus the range's start: one repeat and one cumsum
    row_of = np.repeat(np.arange(len(starts)), lengths)
    first = np.cumsum(lengths) - lengths
    out: IntArray = starts[row_of] + (np.arange(total, dtype=np.int64) - first[row_of])
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Ragged:
    """Rows of varying length: ``values[offsets[i]:offsets[i + 1]]`` is row ``i``.

    Parameters
    ----------
    values
        (m, ...) the rows concatenated; trailing dimensions are shared by every row
        (``(m, 2)`` for polygon points, ``(m, 3)`` for keypoints, ``(m,)`` for RLE counts).
    offsets
        (n + 1,) int64, non-decreasing, ``offsets[0] == 0`` and ``offsets[-1] == m``.

    Examples
    --------
    >>> r = Ragged.from_rows([np.array([1, 2]), np.array([], dtype=np.int64), np.array([3])])
    >>> len(r), r.lengths.tolist(), r.row(0).tolist()
    (3, [2, 0, 1], [1, 2])
    >>> r.take(np.array([2, 0])).values.tolist()
    [3, 1, 2]
    """

    values: NDArray[Any]
    offsets: IntArray

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets)
        if offsets.ndim != 1 or len(offsets) < 1:
            raise ValidationError("expected a 1-d array of n + 1 row offsets", field="offsets")
        if offsets.dtype != np.int64:
            object.__setattr__(self, "offsets", offsets.astype(np.int64))
            offsets = self.offsets
        if offsets[0] != 0 or offsets[-1] != len(self.values):
            raise ValidationError(
                f"expected offsets from 0 to {len(self.values)}, got {offsets[0]}..{offsets[-1]}",
                field="offsets",
            )
        steps = offsets[1:] - offsets[:-1]  # np.diff costs more than the data on small rows
        if (steps < 0).any():
            bad = int(np.flatnonzero(steps < 0)[0])
            raise ValidationError("offsets must not decrease", field="offsets", row=bad)
        self.values.setflags(write=False)
        self.offsets.setflags(write=False)

    @classmethod
    def empty(cls, n: int, *, dtype: Any = np.float64, width: int | None = None) -> Ragged:
        """Return ``n`` empty rows; ``width`` adds a trailing dimension to the values."""
        shape: tuple[int, ...] = (0,) if width is None else (0, width)
        # valid by construction: the checks of __post_init__ are skipped
        self = object.__new__(cls)
        values, offsets = np.zeros(shape, dtype=dtype), np.zeros(n + 1, dtype=np.int64)
        values.setflags(write=False)
        offsets.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "offsets", offsets)
        return self

    @classmethod
    def from_rows(cls, rows: Sequence[NDArray[Any]], *, dtype: Any = None) -> Ragged:
        """Build from a sequence of arrays (one per row); use only at I/O boundaries."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if len(rows) and lengths.sum():
            values = np.concatenate([np.asarray(r) for r in rows if len(r)])
        else:
            # keep the rows' trailing shape, so empty keypoint rows stay (0, 3)
            trailing = np.asarray(rows[0]).shape[1:] if len(rows) else ()
            values = np.zeros((0, *trailing), dtype=dtype or np.float64)
        if dtype is not None:
            values = values.astype(dtype, copy=False)
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> IntArray:
        """(n,) the length of every row."""
        return self.offsets[1:] - self.offsets[:-1]

    def row(self, i: int) -> NDArray[Any]:
        """Return row ``i`` (a read-only view)."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def row_index(self) -> IntArray:
        """(m,) the row each value belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def take(self, index: IntArray) -> Ragged:
        """Select rows by an integer index array (order kept, repeats allowed)."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[:-1][index]
        stops = self.offsets[1:][index]
        flat = gather_ranges(starts, stops)
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(stops - starts, out=offsets[1:])
        return Ragged(self.values[flat], offsets)

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        """Concatenate rows of several ragged arrays (values must share trailing shape)."""
        if not parts:
            return Ragged.empty(0)
        values = np.concatenate([p.values for p in parts])
        shifts = np.cumsum([0] + [len(p.values) for p in parts[:-1]])
        offsets = np.concatenate(
            [np.zeros(1, dtype=np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]
        )
        return Ragged(values, offsets)

    def equals(self, other: Ragged) -> bool:
        """Return True when both hold the same rows with the same values."""
        return bool(
            np.array_equal(self.offsets, other.offsets)
            and self.values.shape == other.values.shape
            and np.array_equal(self.values, other.values, equal_nan=self.values.dtype.kind == "f")
        )
