"""COCO run-length encoding: the compressed string codec and vectorized mask extents.

COCO stores a mask as runs over the pixels in column-major (Fortran) order, starting with a
background run. ``Annotations.rle_counts`` keeps the *uncompressed* runs; files often carry
the compressed string form, which packs each run (after the third, as a difference from the
run two before) into 5-bit groups with a continuation bit, offset by 48 into printable ASCII.
Reference for both: the COCO API's ``maskApi.c`` (``rleToString`` / ``rleFrString``).
"""

from __future__ import annotations

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.ragged import Ragged
from labelgate.errors import ValidationError

__all__ = ["rle_bbox", "rle_from_string", "rle_to_string"]


def rle_from_string(text: str) -> IntArray:
    """Decode a COCO compressed RLE string into uncompressed run lengths.

    Examples
    --------
    >>> rle_from_string("0d04").tolist()
    [0, 20, 4]

    Raises
    ------
    ValidationError
        A character outside the code range, or a run that ends mid-group.
    """
    counts: list[int] = []
    position = 0
    data = text.encode("ascii", errors="replace")
    size = len(data)
    while position < size:
        value = 0
        shift = 0
        more = True
        while more:
            if position >= size:
                raise ValidationError("truncated RLE string", field="counts")
            code = data[position] - 48
            if not 0 <= code < 64:
                raise ValidationError(
                    f"unexpected character {chr(data[position])!r} in RLE string", field="counts"
                )
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return np.array(counts, dtype=np.int64)


def rle_to_string(counts: IntArray) -> str:
    """Encode uncompressed run lengths as a COCO compressed RLE string.

    Examples
    --------
    >>> rle_to_string(np.array([0, 20, 4]))
    '0d04'
    """
    out: list[str] = []
    values = np.asarray(counts, dtype=np.int64).tolist()
    for i, run in enumerate(values):
        value = run - values[i - 2] if i > 2 else run
        more = True
        while more:
            code = value & 0x1F
            value >>= 5
            more = not ((code & 0x10 == 0 and value == 0) or (code & 0x10 and value == -1))
            if more:
                code |= 0x20
            out.append(chr(code + 48))
    return "".join(out)


def rle_bbox(rle_counts: Ragged, rle_size: IntArray) -> FloatArray:
    """Tight ``x1, y1, x2, y2`` box of each RLE mask, vectorized over all masks -> (n, 4).

    Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so a single pixel at
    the origin gives ``[0, 0, 1, 1]`` (what ``pycocotools.mask.toBbox`` reports as xywh
    ``[0, 0, 1, 1]``). Empty masks give zeros.

    Examples
    --------
    >>> rle_bbox(Ragged(np.array([0, 20, 30]), np.array([0, 3])), np.array([[10, 5]])).tolist()
    [[0.0, 0.0, 2.0, 10.0]]
    """
    n = len(rle_counts)
    out = np.zeros((n, 4), dtype=np.float64)
    counts = rle_counts.values.astype(np.int64)
    if n == 0 or len(counts) == 0:
        return out
    owner = rle_counts.row_index()
    position = np.arange(len(counts)) - rle_counts.offsets[:-1][owner]
    total = np.cumsum(counts)
    # a run starts where the previous run of the same mask ended
    before_mask = np.concatenate([[0], total])[rle_counts.offsets[:-1]]
    start = total - counts - before_mask[owner]
    end = start + counts
    foreground = (position % 2 == 1) & (counts > 0)
    if not foreground.any():
        return out
    height = rle_size[owner, 0]
    fg_owner = owner[foreground]
    h = height[foreground]
    first = start[foreground]
    last = end[foreground] - 1
    col_first, row_first = first // h, first % h
    col_last, row_last = last // h, last % h
    same_column = col_first == col_last
    top = np.where(same_column, row_first, 0)
    bottom = np.where(same_column, row_last, h - 1)
    x1 = np.full(n, np.iinfo(np.int64).max)
    y1 = np.full(n, np.iinfo(np.int64).max)
    x2 = np.full(n, -1)
    y2 = np.full(n, -1)
    np.minimum.at(x1, fg_owner, col_first)
    np.minimum.at(y1, fg_owner, top)
    np.maximum.at(x2, fg_owner, col_last)
    np.maximum.at(y2, fg_owner, bottom)
    has = x2 >= 0
    out[has] = np.stack([x1[has], y1[has], x2[has] + 1, y2[has] + 1], axis=1).astype(np.float64)
    return out
