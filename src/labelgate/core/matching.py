"""One-to-one, class-aware matching of a reference set to another set, per image.

:func:`match` finds, per (image, class), the pairs with IoU >= threshold of maximum total IoU:
what ``scipy.optimize.linear_sum_assignment`` gives on each IoU matrix with sub-threshold
entries set to 0. It runs on the flat list of candidate pairs of the whole data set: pairs
whose two objects have no other candidate are matched in bulk, and only the connected
components of the remaining pair graph (the genuinely ambiguous ones: crowds, clusters) go
to the assignment solver, one small dense matrix each. A second pass pairs leftover objects
of different classes that overlap >= threshold: class swaps.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.pairs import box_iou_pairs, box_pairs_above, group_pairs
from labelgate.core.taxonomy import Taxonomy

__all__ = [
    "Matching",
    "PairIoU",
    "match",
    "match_candidates",
    "match_greedy",
    "reference_thresholds",
]

PairIoU = Callable[[Annotations, IntArray, Annotations, IntArray], FloatArray]


@dataclass(frozen=True, slots=True, eq=False)
class Matching:
    """The result of matching a reference set to another set.

    Attributes
    ----------
    ref_rows, other_rows : (k,) int64
        Matched pairs of the same class: reference rows and the other set's rows.
    iou : (k,) float64
        IoU of each matched pair.
    swap_ref_rows, swap_other_rows : (s,) int64
        Leftover reference rows paired with a leftover other row of another class.
    swap_iou : (s,) float64
        IoU of each swap pair.
    n_ref, n_other : int
        Row counts of the two sets.
    """

    ref_rows: IntArray
    other_rows: IntArray
    iou: FloatArray
    swap_ref_rows: IntArray
    swap_other_rows: IntArray
    swap_iou: FloatArray
    n_ref: int
    n_other: int

    def ref_matched(self) -> BoolArray:
        """(n_ref,) True where a reference row has a same-class match."""
        out = np.zeros(self.n_ref, dtype=bool)
        out[self.ref_rows] = True
        return out

    def other_matched(self) -> BoolArray:
        """(n_other,) True where an other row has a same-class match."""
        out = np.zeros(self.n_other, dtype=bool)
        out[self.other_rows] = True
        return out

    def missed(self) -> BoolArray:
        """(n_ref,) reference rows with neither a match nor a swap."""
        out = ~self.ref_matched()
        out[self.swap_ref_rows] = False
        return out

    def extra(self) -> BoolArray:
        """(n_other,) other rows with neither a match nor a swap."""
        out = ~self.other_matched()
        out[self.swap_other_rows] = False
        return out


def _max_weight_pairs(rows_a: IntArray, rows_b: IntArray, weight: FloatArray) -> IntArray:
    """Indices of the pairs of a maximum-weight one-to-one matching of a bipartite pair list.

    ``rows_a, rows_b`` name the two sides of each candidate pair (every pair is an edge);
    the result holds positions into them, ascending. The pair graph splits into connected
    components, solved in bulk where the answer is plain: a lone pair is taken, and a star
    (one node on either side) takes its heaviest pair. Only the remaining components go to
    a solver: every assignment scored at once for small ones, ``linear_sum_assignment`` on
    a small dense matrix (non-edges weigh 0 and are dropped) for the rest.
    """
    p = len(rows_a)
    if p == 0:
        return np.zeros(0, dtype=np.int64)
    # a pair whose two objects have no other candidate is matched as it is
    degree_a = np.bincount(rows_a)
    degree_b = np.bincount(rows_b)
    alone = degree_a.take(rows_a) == 1
    alone &= degree_b.take(rows_b) == 1
    shared = np.flatnonzero(~alone)
    if len(shared) == 0:
        return np.arange(p, dtype=np.int64)
    sub = _max_weight_shared(rows_a.take(shared), rows_b.take(shared), weight.take(shared))
    chosen = alone
    chosen[shared.take(sub)] = True
    return np.flatnonzero(chosen)


def _compact(rows: IntArray) -> tuple[IntArray, int]:
    """Dense ids ``0..k-1`` for the distinct values of ``rows`` (ascending), and k."""
    present = np.zeros(int(rows.max()) + 1, dtype=bool)
    present[rows] = True
    ids = np.cumsum(present) - 1
    return ids.take(rows), int(ids[-1]) + 1


def _max_weight_shared(rows_a: IntArray, rows_b: IntArray, weight: FloatArray) -> IntArray:
    """:func:`_max_weight_pairs` on pairs that share an object: components, then solvers."""
    p = len(rows_a)
    local_a, n_a = _compact(rows_a)
    local_b, n_b = _compact(rows_b)
    graph = coo_matrix((np.ones(p, dtype=np.int8), (local_a, local_b + n_a)), (n_a + n_b,) * 2)
    n_components, label = connected_components(graph, directed=False)
    label_a, label_b = label[:n_a], label[n_a:]
    component = label_a.take(local_a)
    # nodes per component on each side
    count_a = np.bincount(label_a, minlength=n_components)
    count_b = np.bincount(label_b, minlength=n_components)
    star = (count_a.take(component) == 1) | (count_b.take(component) == 1)
    # heaviest pair of each star; ties: the first pair
    first = np.flatnonzero(star)
    order = first.take(np.lexsort((-weight.take(first), component.take(first))))
    head = np.ones(len(order), dtype=bool)
    head[1:] = component.take(order[1:]) != component.take(order[:-1])
    chosen = [order[head]]
    rest = np.flatnonzero(~star)
    if len(rest) == 0:
        return np.sort(chosen[0])
    # local row/column of each node inside its component: its rank among its side's nodes
    rank_a = _rank_within(label_a, count_a)
    rank_b = _rank_within(label_b, count_b)
    comp = component.take(rest)
    row, col = rank_a.take(local_a.take(rest)), rank_b.take(local_b.take(rest))
    # solve with the smaller side as rows
    flip = count_a.take(comp) > count_b.take(comp)
    row, col = np.where(flip, col, row), np.where(flip, row, col)
    small = np.minimum(count_a, count_b).take(comp)
    large = np.maximum(count_a, count_b).take(comp)
    by_shape = np.lexsort((comp, large, small))
    rest, comp, row, col = rest[by_shape], comp[by_shape], row[by_shape], col[by_shape]
    small, large = small[by_shape], large[by_shape]
    bounds = np.flatnonzero(
        np.r_[True, (small[1:] != small[:-1]) | (large[1:] != large[:-1]), True]
    )
    solver = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        m, s = int(small[lo]), int(large[lo])
        if math.perm(s, m) <= _BRUTE_FORCE_MAX:
            chosen.append(
                _brute_force(rest[lo:hi], comp[lo:hi], row[lo:hi], col[lo:hi], weight, m, s)
            )
        else:
            solver.append(np.arange(lo, hi))
    if solver:
        at = np.concatenate(solver)
        chosen.append(_solve_each(rest[at], comp[at], row[at], col[at], weight))
    return np.sort(np.concatenate(chosen))


#: components whose number of assignments (``s! / (s - m)!`` for an m x s matrix, m <= s) is
#: at most this are solved by scoring every assignment at once
_BRUTE_FORCE_MAX = 720

#: at most this many (component, assignment, row) scores are held at once
_BRUTE_FORCE_BLOCK = 4_000_000


@functools.cache
def _assignments(s: int, m: int) -> IntArray:
    """(s! / (s - m)!, m) every way to give m rows distinct columns among s, read-only."""
    out = np.array(list(itertools.permutations(range(s), m)), dtype=np.int64).reshape(-1, m)
    out.setflags(write=False)
    return out


def _brute_force(
    pairs: IntArray,
    comp: IntArray,
    row: IntArray,
    col: IntArray,
    weight: FloatArray,
    m: int,
    s: int,
) -> IntArray:
    """Best assignment of many m x s components (m <= s) at once: every one, scored in bulk.

    Each component is an ``m x s`` matrix (absent pairs weigh 0); an assignment gives each
    row its own column, and its score is the sum of its entries; the chosen pairs are the
    real ones on the best assignment. Weights are >= 0, so padding never beats a real pair.
    """
    which = np.cumsum(np.r_[0, comp[1:] != comp[:-1]])
    n = int(which[-1]) + 1
    matrix = np.zeros((n, m, s))
    slot = np.full((n, m, s), -1, dtype=np.int64)
    matrix[which, row, col] = weight.take(pairs)
    slot[which, row, col] = pairs
    assignments = _assignments(s, m)  # (P, m)
    lines = np.arange(m)
    best = np.empty((n, m), dtype=np.int64)
    step = max(1, _BRUTE_FORCE_BLOCK // (len(assignments) * m))
    for lo in range(0, n, step):  # blocks of components, to bound the (n, P, m) scores
        score = matrix[lo : lo + step, lines[None, :], assignments].sum(axis=2)  # (n, P)
        best[lo : lo + step] = assignments[np.argmax(score, axis=1)]  # (n, m)
    picked: IntArray = slot[np.arange(n)[:, None], lines[None, :], best].ravel()
    return picked[picked >= 0]


def _solve_each(
    pairs: IntArray, comp: IntArray, row: IntArray, col: IntArray, weight: FloatArray
) -> IntArray:
    """``linear_sum_assignment`` per component (pairs sorted by component): large clusters."""
    order = np.argsort(comp, kind="stable")
    pairs, comp, row, col = pairs[order], comp[order], row[order], col[order]
    bounds = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1], True])
    values = weight.take(pairs)
    chosen = []
    # one compiled call per large ambiguous component (rare: dense clusters)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        r, c = row[lo:hi], col[lo:hi]
        dense = np.zeros((int(r.max()) + 1, int(c.max()) + 1))
        slot = np.full(dense.shape, -1, dtype=np.int64)
        dense[r, c] = values[lo:hi]
        slot[r, c] = pairs[lo:hi]
        sel_r, sel_c = linear_sum_assignment(dense, maximize=True)
        chosen.append(slot[sel_r, sel_c])
    picked = np.concatenate(chosen)
    return picked[picked >= 0]


def _rank_within(label: IntArray, count: IntArray) -> IntArray:
    """Each node's rank among the nodes of its component (nodes in ascending order)."""
    order = np.argsort(label, kind="stable")
    first = np.cumsum(count) - count
    rank = np.empty(len(label), dtype=np.int64)
    rank[order] = np.arange(len(label)) - first.take(label.take(order))
    return rank


def _group_keys(
    image_a: IntArray, class_a: IntArray, image_b: IntArray, class_b: IntArray
) -> tuple[IntArray, IntArray]:
    """One int64 key per (image, class) row, equal across both sides for equal tuples."""
    if len(image_a) + len(image_b) == 0:
        return image_a.astype(np.int64), image_b.astype(np.int64)
    low_class = min(_min(class_a), _min(class_b))
    high_class = max(_max(class_a), _max(class_b))
    if low_class >= 0 and high_class < 1 << 20:
        # class -> dense rank by table lookup: no sort, no search
        present = np.zeros(high_class + 1, dtype=bool)
        present[class_a] = True
        present[class_b] = True
        rank = np.cumsum(present) - 1
        width = int(rank[-1]) + 1
        rank_a, rank_b = rank.take(class_a), rank.take(class_b)
    else:
        classes = np.unique(np.concatenate([class_a, class_b]))
        width = len(classes)
        rank_a, rank_b = np.searchsorted(classes, class_a), np.searchsorted(classes, class_b)
    low = min(_min(image_a), _min(image_b))
    high = max(_max(image_a), _max(image_b))
    if (high - low + 1) * width >= 2**62:  # sparse huge ids: renumber them first
        uniq = np.unique(np.concatenate([image_a, image_b]))
        image_a, image_b = np.searchsorted(uniq, image_a), np.searchsorted(uniq, image_b)
        low = 0
    key_a = (image_a.astype(np.int64) - low) * width + rank_a
    key_b = (image_b.astype(np.int64) - low) * width + rank_b
    return key_a, key_b


def _min(values: IntArray) -> int:
    return int(values.min()) if len(values) else 0


def _max(values: IntArray) -> int:
    return int(values.max()) if len(values) else 0


def _candidates(
    ref: Annotations,
    ref_rows: IntArray,
    key_ref: IntArray,
    other: Annotations,
    other_rows: IntArray,
    key_other: IntArray,
    threshold: FloatArray,
    compute: PairIoU | None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs with equal keys and IoU >= the reference row's threshold, with their IoU.

    Boxes (``compute`` None) go through :func:`box_pairs_above`, which only computes the IoU
    of pairs that can reach the threshold. Other geometries (masks, polygons, keypoints)
    get every pair of the group.
    """
    if compute is not None:
        pa, pb = group_pairs(key_ref, key_other)
        rows_a, rows_b = ref_rows[pa], other_rows[pb]
        iou = compute(ref, rows_a, other, rows_b)
        keep = iou >= threshold[rows_a]
        return rows_a[keep], rows_b[keep], iou[keep]
    pa, pb, iou = box_pairs_above(
        key_ref,
        _take_rows(ref.bbox, ref_rows),
        _take_rows(threshold, ref_rows),
        key_other,
        _take_rows(other.bbox, other_rows),
    )
    return ref_rows.take(pa), other_rows.take(pb), iou


_Rows = TypeVar("_Rows", FloatArray, IntArray)


def _take_rows(values: _Rows, rows: IntArray) -> _Rows:
    """``values[rows]`` along the first axis; the array itself when rows is every row."""
    if len(rows) == len(values):  # rows are ascending and distinct: all of them
        return values
    out: _Rows = np.take(values, rows, axis=0)
    return out


def reference_thresholds(
    ref: Annotations, iou_threshold: float | FloatArray | None, taxonomy: Taxonomy | None
) -> FloatArray:
    """(n,) IoU threshold of each reference row: ``match``'s ``iou_threshold``/``taxonomy``.

    Raises
    ------
    ValueError
        Neither or both given, or an array that is not one threshold per reference row.
    """
    if (iou_threshold is None) == (taxonomy is None):
        raise ValueError(
            "match: expected exactly one of iou_threshold and taxonomy, got "
            f"iou_threshold={iou_threshold!r}, taxonomy={'given' if taxonomy else None}"
        )
    if taxonomy is not None:
        return taxonomy.thresholds(ref.class_id)
    threshold = np.asarray(iou_threshold, dtype=np.float64)
    if threshold.ndim == 0:
        return np.full(len(ref), float(threshold), dtype=np.float64)
    if threshold.shape != (len(ref),):
        raise ValueError(
            f"match: expected one threshold or ({len(ref)},) thresholds, one per "
            f"reference row, got shape {threshold.shape}"
        )
    return threshold


def match(
    ref: Annotations,
    other: Annotations,
    *,
    iou_threshold: float | FloatArray | None = None,
    taxonomy: Taxonomy | None = None,
    pair_iou: PairIoU | None = None,
    swaps: bool = True,
) -> Matching:
    """Match ``other`` to ``ref`` one-to-one within (image, class), maximising total IoU.

    Parameters
    ----------
    ref, other
        The reference set (gold, or annotator A) and the set under test. Tags never match.
    iou_threshold
        One IoU threshold for every class, or an (n_ref,) array: one per reference row (NaN:
        the row never matches). Exactly one of ``iou_threshold`` and ``taxonomy``.
    taxonomy
        Per-class thresholds: a pair needs IoU >= the reference object's class threshold;
        reference objects of classes outside the taxonomy never match.
    pair_iou
        ``(ref, ref_rows, other, other_rows) -> (p,)`` IoU of row pairs; default box IoU.
        Pass :func:`labelgate.core.iou.pair_iou` for polygons, masks and keypoints.
    swaps
        Whether to pair leftover objects of different classes (class swaps); default True.

    Returns
    -------
    Matching
        Per (image, class), the matching of maximum total IoU over pairs >= threshold, equal
        in count and IoU sum to ``linear_sum_assignment`` on each IoU matrix (ties may pick
        other pairs); swaps are the maximum-IoU matching of the leftovers across classes.

    Raises
    ------
    ValueError
        When both or neither of ``iou_threshold`` and ``taxonomy`` are given.

    Examples
    --------
    >>> ref = Annotations.create(image_id=[1, 1], class_id=[1, 2],
    ...                          bbox=[[0, 0, 10, 10], [20, 20, 30, 30]])
    >>> other = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                            bbox=[[1, 0, 10, 10], [20, 20, 30, 31]])
    >>> m = match(ref, other, iou_threshold=0.5)
    >>> m.ref_rows.tolist(), m.other_rows.tolist(), m.iou.round(2).tolist()
    ([0], [0], [0.9])
    >>> m.swap_ref_rows.tolist(), m.swap_other_rows.tolist()
    ([1], [1])
    """
    ref_threshold = reference_thresholds(ref, iou_threshold, taxonomy)
    ref_live = np.flatnonzero(ref.kind != Kind.TAG)
    other_live = np.flatnonzero(other.kind != Kind.TAG)
    key_ref, key_other = _group_keys(
        _take_rows(ref.image_id, ref_live), _take_rows(ref.class_id, ref_live),
        _take_rows(other.image_id, other_live), _take_rows(other.class_id, other_live),
    )  # fmt: skip
    rows_a, rows_b, iou = _candidates(
        ref, ref_live, key_ref, other, other_live, key_other, ref_threshold, pair_iou
    )
    chosen = _max_weight_pairs(rows_a, rows_b, iou)
    ref_rows, other_rows, matched_iou = _by_ref_row(
        rows_a.take(chosen), rows_b.take(chosen), iou.take(chosen), len(ref)
    )

    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    swap_a, swap_b, swap_iou = empty_i, empty_i, empty_f
    if swaps:
        left_ref = np.ones(len(ref), dtype=bool)
        left_ref[ref_rows] = False
        left_other = np.ones(len(other), dtype=bool)
        left_other[other_rows] = False
        ref_left = ref_live[left_ref[ref_live]]
        other_left = other_live[left_other[other_live]]
        sa, sb, s_iou = _candidates(
            ref,
            ref_left,
            ref.image_id[ref_left],
            other,
            other_left,
            other.image_id[other_left],
            ref_threshold,
            pair_iou,
        )
        differ = np.flatnonzero(ref.class_id.take(sa) != other.class_id.take(sb))
        sa, sb, s_iou = sa.take(differ), sb.take(differ), s_iou.take(differ)
        chosen = _max_weight_pairs(sa, sb, s_iou)
        swap_a, swap_b, swap_iou = _by_ref_row(
            sa.take(chosen), sb.take(chosen), s_iou.take(chosen), len(ref)
        )
    return Matching(
        ref_rows=ref_rows.astype(np.int64),
        other_rows=other_rows.astype(np.int64),
        iou=matched_iou.astype(np.float64),
        swap_ref_rows=swap_a.astype(np.int64),
        swap_other_rows=swap_b.astype(np.int64),
        swap_iou=swap_iou.astype(np.float64),
        n_ref=len(ref),
        n_other=len(other),
    )


def match_candidates(
    rows_a: IntArray, rows_b: IntArray, iou: FloatArray, *, n_ref: int, n_other: int
) -> Matching:
    """The one-to-one matching of maximum total IoU among given candidate pairs; no swaps.

    What :func:`match` does with ``swaps=False`` once it has its candidates, for a caller
    that already holds them: every pair with IoU >= its threshold, within (image, class).

    Parameters
    ----------
    rows_a, rows_b
        (p,) reference and other rows of each candidate pair, each pair at most once.
    iou
        (p,) IoU of each pair, >= 0.
    n_ref, n_other
        Row counts of the two sets.

    Returns
    -------
    Matching

    Examples
    --------
    >>> m = match_candidates(np.array([0, 0, 1]), np.array([0, 1, 0]),
    ...                      np.array([0.9, 0.6, 0.8]), n_ref=2, n_other=2)
    >>> m.ref_rows.tolist(), m.other_rows.tolist()
    ([0, 1], [1, 0])
    """
    rows_a = np.asarray(rows_a, dtype=np.int64)
    rows_b = np.asarray(rows_b, dtype=np.int64)
    iou = np.asarray(iou, dtype=np.float64)
    chosen = _max_weight_pairs(rows_a, rows_b, iou)
    ref_rows, other_rows, matched_iou = _by_ref_row(
        rows_a.take(chosen), rows_b.take(chosen), iou.take(chosen), n_ref
    )
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return Matching(
        ref_rows=ref_rows,
        other_rows=other_rows,
        iou=matched_iou,
        swap_ref_rows=empty_i,
        swap_other_rows=empty_i,
        swap_iou=empty_f,
        n_ref=n_ref,
        n_other=n_other,
    )


def _by_ref_row(
    ref_rows: IntArray, other_rows: IntArray, iou: FloatArray, n_ref: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """Matched pairs in ascending reference row.

    Each reference row appears at most once, so a scatter into a per-row table orders the
    pairs in linear time, without a sort.
    """
    if len(ref_rows) < 2 or bool((ref_rows[1:] > ref_rows[:-1]).all()):
        return ref_rows, other_rows, iou
    at = np.full(n_ref, -1, dtype=np.int64)
    at[ref_rows] = np.arange(len(ref_rows))
    order = at[at >= 0]
    return ref_rows.take(order), other_rows.take(order), iou.take(order)


def match_greedy(gt: Annotations, dt: Annotations, *, iou_threshold: float) -> Matching:
    """COCO evaluation's greedy matching of detections to ground truth at one IoU threshold.

    As pycocotools' ``evaluateImg`` (area range "all", no detection limit): per (image,
    class), detections by score descending (stable) each take the free non-crowd ground
    truth of highest IoU >= ``min(iou_threshold, 1 - 1e-10)`` (ties: the later one), or
    else the best crowd region, which any number of detections may match. IoU against a
    crowd region is the intersection over the detection's area. One round per detection
    rank: all detections of equal rank belong to different groups, so a round is vectorized.

    Parameters
    ----------
    gt, dt
        Ground truth (``iscrowd`` marks crowd regions) and scored detections, boxes.
    iou_threshold
        The IoU threshold.

    Returns
    -------
    Matching
        ``ref_rows`` are ground-truth rows (a crowd row may repeat), ``other_rows`` the
        detections matched to them; no swaps.

    Examples
    --------
    >>> gt = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 10, 10]])
    >>> dt = Annotations.create(image_id=[1, 1], class_id=[1, 1], score=[0.5, 0.9],
    ...                         bbox=[[0, 0, 10, 10], [1, 0, 10, 10]])
    >>> match_greedy(gt, dt, iou_threshold=0.5).other_rows.tolist()
    [1]
    """
    threshold = min(float(iou_threshold), 1 - 1e-10)
    gt_live = np.flatnonzero(gt.kind != Kind.TAG)
    dt_live = np.flatnonzero(dt.kind != Kind.TAG)
    key_gt, key_dt = _group_keys(
        gt.image_id[gt_live], gt.class_id[gt_live], dt.image_id[dt_live], dt.class_id[dt_live]
    )
    # detection rank within its group: score descending, stable (mergesort on -score)
    order = np.lexsort((np.arange(len(dt_live)), -dt.score[dt_live], key_dt))
    sorted_key = key_dt[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if len(order) else order
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(dt_live), dtype=np.int64)
    rank[order] = np.arange(len(order)) - group_start
    pd, pg = group_pairs(key_dt, key_gt)
    rows_d, rows_g = dt_live[pd], gt_live[pg]
    crowd = gt.iscrowd[rows_g]
    box_d, box_g = dt.bbox[rows_d], gt.bbox[rows_g]
    iou = box_iou_pairs(box_d, box_g)
    if crowd.any():
        width = np.minimum(box_d[:, 2], box_g[:, 2]) - np.maximum(box_d[:, 0], box_g[:, 0])
        height = np.minimum(box_d[:, 3], box_g[:, 3]) - np.maximum(box_d[:, 1], box_g[:, 1])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        area = (box_d[:, 2] - box_d[:, 0]) * (box_d[:, 3] - box_d[:, 1])
        crowd_iou = np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)
        iou = np.where(crowd, crowd_iou, iou)
    keep = iou >= threshold
    rows_d, rows_g, iou, crowd = rows_d[keep], rows_g[keep], iou[keep], crowd[keep]
    # COCO's gt order: non-crowd first, then by row; a later equal IoU replaces the best
    pair_rank = rank[np.searchsorted(dt_live, rows_d)]
    by = np.lexsort((rows_g, crowd, rows_d, pair_rank))
    rows_d, rows_g, iou, crowd, pair_rank = (
        rows_d[by], rows_g[by], iou[by], crowd[by], pair_rank[by]
    )  # fmt: skip
    taken = np.zeros(len(gt), dtype=bool)
    out_d, out_g, out_iou = [], [], []
    bounds = np.flatnonzero(np.r_[True, pair_rank[1:] != pair_rank[:-1], True])
    if len(rows_d) == 0:
        bounds = bounds[:1]
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        d, g, v, c = rows_d[lo:hi], rows_g[lo:hi], iou[lo:hi], crowd[lo:hi]
        free = ~taken[g] | c
        seg = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        seg_of = np.cumsum(np.r_[False, d[1:] != d[:-1]])
        regular = free & ~c
        any_regular = np.logical_or.reduceat(regular, seg)
        tier = np.where(any_regular[seg_of], regular, free & c)
        key = np.where(tier, v, -np.inf)
        best = np.maximum.reduceat(key, seg)
        winner = tier & (key == best[seg_of])
        last = np.maximum.reduceat(np.where(winner, np.arange(hi - lo), -1), seg)
        last = last[last >= 0]
        taken[g[last]] = True
        out_d.append(d[last])
        out_g.append(g[last])
        out_iou.append(v[last])
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return Matching(
        ref_rows=np.concatenate([empty_i, *out_g]).astype(np.int64),
        other_rows=np.concatenate([empty_i, *out_d]).astype(np.int64),
        iou=np.concatenate([empty_f, *out_iou]).astype(np.float64),
        swap_ref_rows=empty_i,
        swap_other_rows=empty_i,
        swap_iou=empty_f,
        n_ref=len(gt),
        n_other=len(dt),
    )
