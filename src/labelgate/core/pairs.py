"""Candidate pairs between two annotation sets, within groups, without Python loops.

Comparing a reference set with another set only ever pairs objects on the same image (and,
for same-class matching, of the same class). Both sides are sorted once by their group
key; every group then contributes the cross product of its rows, built with ``np.repeat``
and :func:`~labelgate.core.ragged.gather_ranges`. IoU and matching then run on the flat
pair list.

For boxes, :func:`box_pairs_above` skips most of that cross product: a pair can only reach
an IoU threshold when the two box centres are close along x, so both sides are sorted once
by (group, x centre) and each reference box only looks at a window of the other side.
"""

from __future__ import annotations

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.ragged import gather_ranges

__all__ = [
    "box_iou_matrix",
    "box_iou_pairs",
    "box_pairs_above",
    "box_pairs_overlapping",
    "box_pairs_overlapping_within",
    "group_pairs",
]


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


#: reference rows per block of the pair loop in :func:`box_pairs_above`: the block's pair
#: arrays (about 3 per row) then stay in the CPU cache between numpy calls
_BLOCK_ROWS = 8192


def box_pairs_above(
    key_a: IntArray,
    boxes_a: FloatArray,
    threshold_a: FloatArray,
    key_b: IntArray,
    boxes_b: FloatArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every ``(i, j)`` with ``key_a[i] == key_b[j]`` and box IoU >= ``threshold_a[i]``.

    The IoU is that of :func:`box_iou_pairs`, bit for bit. Only pairs that can reach the
    threshold are ever computed (see Notes), so the cost follows the number of nearby
    pairs, not the product of the group sizes.

    Parameters
    ----------
    key_a, key_b
        (n,) and (m,) int64 group keys, e.g. ``image_id * n_classes + class``.
    boxes_a, boxes_b
        (n, 4) and (m, 4) float64 xyxy boxes.
    threshold_a
        (n,) float64 IoU threshold of each ``a`` row; NaN: the row pairs with nothing.

    Returns
    -------
    tuple
        ``(rows_a, rows_b, iou)``, each (p,): the pairs, ``rows_a`` ascending, and their IoU.

    Notes
    -----
    Box IoU never exceeds the IoU of the x intervals (the y overlap is at most either
    height), and two intervals with IoU >= t > 0 have ``|a0 - b0| + |a1 - b1| <= (1 - t) / t
    * min(wa, wb)``; so twice their centres lie within ``(1 - t) / t * wa`` of each other.
    On one axis where each key owns a band (``band * span + x0 + x1``), every ``a`` row
    thus has a window, widened by a rounding margin, that holds all its candidates. One
    sort of the ``b`` positions together with every window's two ends counts the ``b`` rows
    before each end: those counts are the windows as ranges of sorted ``b``. The exact IoU
    of the pairs in the windows then decides.

    Examples
    --------
    >>> a, b, iou = box_pairs_above(np.array([1, 1]), np.array([[0.0, 0, 2, 2], [5, 5, 6, 6]]),
    ...                             np.array([0.1, 0.1]),
    ...                             np.array([1, 2]), np.array([[1.0, 1, 3, 3], [5, 5, 6, 6]]))
    >>> a.tolist(), b.tolist(), iou.round(4).tolist()
    ([0], [0], [0.1429])
    """
    return _box_pairs(key_a, boxes_a, threshold_a, key_b, boxes_b)


def box_pairs_overlapping(
    key_a: IntArray, boxes_a: FloatArray, key_b: IntArray, boxes_b: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every ``(i, j)`` with ``key_a[i] == key_b[j]`` and box IoU > 0, with that IoU.

    The pairs :func:`group_pairs` would give, less those whose IoU is 0, found the way
    :func:`box_pairs_above` finds its pairs: two boxes overlap only if twice their x
    centres are less than ``wa + wb`` apart, and ``wb`` is at most the widest ``b`` box
    of the key. The IoU is that of :func:`box_iou_pairs`, bit for bit.

    Parameters
    ----------
    key_a, key_b
        (n,) and (m,) int64 group keys.
    boxes_a, boxes_b
        (n, 4) and (m, 4) float64 xyxy boxes.

    Returns
    -------
    tuple
        ``(rows_a, rows_b, iou)``, each (p,), ``rows_a`` ascending.

    Examples
    --------
    >>> keys = np.array([1, 1, 1])
    >>> boxes = np.array([[0.0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]])
    >>> a, b, iou = box_pairs_overlapping(keys, boxes, keys, boxes)
    >>> a.tolist(), b.tolist()
    ([0, 0, 1, 1, 2], [0, 1, 0, 1, 2])
    """
    return _box_pairs(key_a, boxes_a, None, key_b, boxes_b)


def box_pairs_overlapping_within(
    key: IntArray, boxes: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every unordered pair of distinct rows of one set sharing a key with box IoU > 0, once.

    :func:`box_pairs_overlapping` of a set with itself, less the pairs of a row with
    itself, and with one of ``(i, j)`` and ``(j, i)``: half the work, for sums over ordered
    pairs that are symmetric (count each pair twice).

    Parameters
    ----------
    key
        (n,) int64 group keys.
    boxes
        (n, 4) float64 xyxy boxes.

    Returns
    -------
    tuple
        ``(rows_a, rows_b, iou)``, each (p,), ``rows_a != rows_b``, ``rows_a`` ascending.

    Examples
    --------
    >>> keys = np.array([1, 1, 1])
    >>> boxes = np.array([[0.0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]])
    >>> a, b, iou = box_pairs_overlapping_within(keys, boxes)
    >>> sorted(zip(a.tolist(), b.tolist()))  # (0, 1) or (1, 0): one of them
    [(0, 1)]
    """
    return _box_pairs(key, boxes, None, key, boxes, once=True)


def _box_pairs(
    key_a: IntArray,
    boxes_a: FloatArray,
    threshold_a: FloatArray | None,
    key_b: IntArray,
    boxes_b: FloatArray,
    *,
    once: bool = False,
) -> tuple[IntArray, IntArray, FloatArray]:
    """:func:`box_pairs_above` (thresholds given) or :func:`box_pairs_overlapping` (None).

    ``once``: ``a`` and ``b`` are the same rows; each unordered pair of distinct rows once.
    """
    key_a = np.asarray(key_a, dtype=np.int64)
    key_b = np.asarray(key_b, dtype=np.int64)
    some_dead = False
    live_a = np.arange(len(key_a))
    if threshold_a is not None:
        dead = np.isnan(threshold_a)
        some_dead = bool(dead.any())
        if some_dead:
            live_a = np.flatnonzero(~dead)
            key_a, boxes_a, threshold_a = key_a[live_a], boxes_a[live_a], threshold_a[live_a]
    if len(key_a) == 0 or len(key_b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    n_a = len(key_a)
    # (4, n) contiguous columns: the pair loop reads them with repeat and take
    cols_a = np.ascontiguousarray(boxes_a.T)
    centre_a = cols_a[0] + cols_a[2]  # twice the x centre: no halving, no rounding
    centre_b = boxes_b[:, 0] + boxes_b[:, 2]
    low = min(float(centre_a.min()), float(centre_b.min()))
    extent = max(float(centre_a.max()), float(centre_b.max())) - low + 1.0
    span = 3.0 * extent  # a window reaches at most extent: never into the next band
    band_a, band_b, n_bands = _bands(key_a, key_b)
    width_a = cols_a[2] - cols_a[0]
    if threshold_a is None:
        # overlap needs |2 ca - 2 cb| < wa + wb, and wb is at most its band's widest box
        widest_b = np.zeros(n_bands)
        np.maximum.at(widest_b, band_b, boxes_b[:, 2] - boxes_b[:, 0])
        reach = width_a + widest_b.take(band_a)
        t = np.zeros(1)
    else:
        t = threshold_a
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(t > 0, (1.0 - t) / t * width_a, np.inf)
    # rounding margin: positions carry a few ulps of error, the reach a few relative ulps;
    # and two quanta of _window_ranges, which sorts b rows before window starts at ties
    top = n_bands * span + 2.0 * extent
    margin = 16.0 * float(np.spacing(top)) + 1e-9 * extent
    margin += 2.0 * _quantum(top + 2.0 * margin, 2 * len(key_a) + len(key_b))
    np.clip(reach * (1.0 + 1e-9) + margin, -margin, extent, out=reach)
    position_a = band_a * span + (centre_a - low)
    start, stop, order_b = _window_ranges(
        position_a,
        reach,
        position_a if once else band_b * span + (centre_b - low),
        forward=once,
    )
    b0, b1, b2, b3 = (boxes_b[:, k].take(order_b) for k in range(4))
    a0, a1, a2, a3 = cols_a
    area_a = (a2 - a0) * (a3 - a1)
    area_b = (b2 - b0) * (b3 - b1)
    count = np.maximum(stop - start, 0)
    # one threshold for all (the usual case): compare with a scalar, not a repeated column
    t_low, t_high = float(t.min()), float(t.max())
    same_t: float | None = t_low if t_low == t_high else None
    positive = threshold_a is None  # overlapping pairs: IoU > 0, not >= a threshold
    out_a, out_b, out_iou = [], [], []
    # blocks of rows, not one pass: each block's pair arrays stay in cache between calls
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, n_a, _BLOCK_ROWS):
            hi = min(lo + _BLOCK_ROWS, n_a)
            n = count[lo:hi]
            total = int(n.sum())
            if total == 0:
                continue
            # rows_b: start, start + 1, ... within each row's window
            offset = np.cumsum(n)
            offset -= n
            rows_b = np.repeat(start[lo:hi] - offset, n)
            rows_b += np.arange(total)
            width = np.minimum(np.repeat(a2[lo:hi], n), b2.take(rows_b))
            width -= np.maximum(np.repeat(a0[lo:hi], n), b0.take(rows_b))
            height = np.minimum(np.repeat(a3[lo:hi], n), b3.take(rows_b))
            height -= np.maximum(np.repeat(a1[lo:hi], n), b1.take(rows_b))
            np.maximum(width, 0.0, out=width)
            np.maximum(height, 0.0, out=height)
            inter = width
            inter *= height
            union = np.repeat(area_a[lo:hi], n)
            union += area_b.take(rows_b)
            union -= inter
            # the union is 0 only for two empty boxes: 0 / 0 is NaN, box_iou_pairs says 0
            iou = inter
            iou /= union
            if t_low <= 0 and not positive:
                iou[union <= 0] = 0.0
            if positive:
                keep = np.flatnonzero(iou > 0.0)
            elif same_t is not None:
                keep = np.flatnonzero(iou >= same_t)
            else:
                keep = np.flatnonzero(iou >= np.repeat(t[lo:hi], n))
            out_a.append(np.repeat(np.arange(lo, hi), n).take(keep))
            out_b.append(rows_b.take(keep))
            out_iou.append(iou.take(keep))
    if not out_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    rows_a = np.concatenate(out_a)
    if some_dead:
        rows_a = live_a.take(rows_a)
    return rows_a, order_b.take(np.concatenate(out_b)), np.concatenate(out_iou)


def _window_ranges(
    centre_a: FloatArray, reach: FloatArray, position_b: FloatArray, *, forward: bool = False
) -> tuple[IntArray, IntArray, IntArray]:
    """Each window ``centre_a +- reach`` as a range of ``b`` rows sorted by position.

    Returns ``(start, stop, order_b)``: ``order_b`` sorts ``position_b``, and the ``b`` rows
    ``order_b[start[i]:stop[i]]`` are those with a position in window ``i`` (ends
    included). No ``searchsorted``: the window ends and the ``b`` positions are quantized
    and sorted together once, as one int64 each that also carries its own index, and a
    running count of ``b`` entries in that order gives every end's rank. Quantizing with
    ``floor`` keeps order, so no ``b`` row inside a window falls out of it.

    ``forward``: ``a`` and ``b`` are the same rows (``position_b`` is ``centre_a``), and
    each window starts just after its own row in the sorted order; so every pair of rows
    within each other's windows comes once, and no row with itself.
    """
    n_a, n_b = len(centre_a), len(position_b)
    if forward:
        events = np.concatenate([position_b, centre_a + reach])
    else:
        events = np.concatenate([position_b, centre_a - reach, centre_a + reach])
    n = len(events)
    index_bits = max(n - 1, 1).bit_length()
    base = float(events.min())
    levels = float(1 << (62 - index_bits))
    quantum = (float(events.max()) - base) / levels or 1.0
    events -= base
    events /= quantum
    packed = events.astype(np.int64)
    packed <<= index_bits
    packed |= np.arange(n, dtype=np.int64)
    # equal quantized positions sort by index: b rows first, then window starts, then ends
    # (callers widen windows by more than two quanta, so a b row level with a start is
    # outside that window anyway)
    packed.sort()
    packed &= (1 << index_bits) - 1
    index = packed
    is_b = index < n_b
    seen_b = np.cumsum(is_b)  # b rows up to each event
    order_b = index.compress(is_b)  # compress: several times faster than index[is_b]
    ends = ~is_b
    bounds = np.empty(len(events) - n_b, dtype=np.int64)
    bounds[index.compress(ends) - n_b] = seen_b.compress(ends)
    if forward:
        start = np.empty(n_a, dtype=np.int64)
        start[order_b] = np.arange(1, n_b + 1)  # one past the row's own place
        return start, bounds, order_b
    return bounds[:n_a], bounds[n_a:], order_b


def _quantum(top: float, n_events: int) -> float:
    """An upper bound of the quantum :func:`_window_ranges` uses for positions in [0, top]."""
    index_bits = max(n_events - 1, 1).bit_length()
    return (top + 1.0) / float(1 << (62 - index_bits))


def _bands(key_a: IntArray, key_b: IntArray) -> tuple[IntArray, IntArray, int]:
    """Dense band numbers ``0..k-1``, equal across sides for equal keys, and k.

    Keys spread over a wide range are renumbered to the keys present, so ``band * span``
    stays small and the positions of :func:`_window_ranges` are quantized finely.
    """
    low = int(min(key_a.min(), key_b.min()))
    size = int(max(key_a.max(), key_b.max())) - low + 1
    if size <= 1 << 22:  # few enough bands as they are (about 22 of some 40 quantized bits)
        return key_a - low, key_b - low, size
    if size <= 4 * (len(key_a) + len(key_b)):
        present = np.zeros(size, dtype=bool)
        present[key_a - low] = True
        present[key_b - low] = True
        rank = np.cumsum(present) - 1
        return rank.take(key_a - low), rank.take(key_b - low), int(rank[-1]) + 1
    bands, inverse = np.unique(np.concatenate([key_a, key_b]), return_inverse=True)
    inverse = inverse.ravel()
    return inverse[: len(key_a)], inverse[len(key_a) :], len(bands)
