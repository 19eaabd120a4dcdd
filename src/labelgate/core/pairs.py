"""Candidate pairs between two annotation sets, within groups, without Python loops.

Comparing a reference set with another set only ever pairs objects on the same image (and,
for same-class matching, of the same class). Both sides are sorted once by their group
key; every group then contributes the cross product of its rows, built with ``np.repeat``
and :func:`~labelgate.core.ragged.gather_ranges`. IoU and matching then run on the flat
pair list.
"""

from __future__ import annotations

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.ragged import gather_ranges

__all__ = ["box_iou_matrix", "box_iou_pairs", "group_pairs"]


def group_pairs(keys_a: IntArray, keys_b: IntArray) -> tuple[IntArray, IntArray]:
    """All ``(i, j)`` with ``keys_a[i] == keys_b[j]``, grouped by key, ``i`` then ``j`` ascending.

    Parameters
    ----------
    keys_a, keys_b
        (n,) and (m,) int64 group keys, e.g. image ids, or ``image_id * n_classes + class``.

    Returns
    -------
    tuple of IntArray
        ``(rows_a, rows_b)``, each (p,), where p is the sum over keys of ``n_k * m_k``.

    Examples
    --------
    >>> a, b = group_pairs(np.array([5, 7, 5]), np.array([5, 5, 9]))
    >>> a.tolist(), b.tolist()
    ([0, 0, 2, 2], [0, 1, 0, 1])
    """
    keys_a = np.asarray(keys_a, dtype=np.int64)
    keys_b = np.asarray(keys_b, dtype=np.int64)
    order_a = np.argsort(keys_a, kind="stable")
    order_b = np.argsort(keys_b, kind="stable")
    sorted_b = keys_b[order_b]
    # for each row of a, the range of b rows with the same key
    start = np.searchsorted(sorted_b, keys_a[order_a], side="left")
    stop = np.searchsorted(sorted_b, keys_a[order_a], side="right")
    counts = stop - start
    rows_a = np.repeat(order_a, counts)
    rows_b = order_b[gather_ranges(start, stop)]
    return rows_a.astype(np.int64), rows_b.astype(np.int64)


def box_iou_pairs(boxes_a: FloatArray, boxes_b: FloatArray) -> FloatArray:
    """IoU of xyxy boxes row by row: (p, 4) x (p, 4) -> (p,); 0.0 where the union is empty.

    Continuous coordinates: a box ``[0, 0, 2, 2]`` has area 4 (no +1 pixel convention).

    Examples
    --------
    >>> box_iou_pairs(np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 3, 3]]))
    array([0.14285714])
    """
    width = np.minimum(boxes_a[:, 2], boxes_b[:, 2]) - np.maximum(boxes_a[:, 0], boxes_b[:, 0])
    height = np.minimum(boxes_a[:, 3], boxes_b[:, 3]) - np.maximum(boxes_a[:, 1], boxes_b[:, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a + area_b - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def box_iou_matrix(boxes_a: FloatArray, boxes_b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m); 0.0 for an empty union.

    Examples
    --------
    >>> box_iou_matrix(np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 3, 3], [0, 0, 2, 2]]))
    array([[0.14285714, 1.        ]])
    """
    a = boxes_a[:, None, :]
    b = boxes_b[None, :, :]
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out
