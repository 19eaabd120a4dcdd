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

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.pairs import box_iou_pairs, group_pairs
from labelgate.core.ragged import gather_ranges
from labelgate.core.taxonomy import Taxonomy

__all__ = ["Matching", "PairIoU", "match", "match_greedy"]

PairIoU = Callable[[Annotations, IntArray, Annotations, IntArray], FloatArray]


def _box_pair_iou(a: Annotations, rows_a: IntArray, b: Annotations, rows_b: IntArray) -> FloatArray:
    return box_iou_pairs(a.bbox[rows_a], b.bbox[rows_b])


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
    the result holds positions into them. The pair graph splits into connected components,
    solved in bulk where the answer is plain: a lone pair is taken, and a star (one node on
    either side) takes its heaviest pair. Only the remaining components go, one each, to
    ``linear_sum_assignment`` on a small dense matrix (non-edges weigh 0 and are dropped).
    """
    p = len(rows_a)
    if p == 0:
        return np.zeros(0, dtype=np.int64)
    # a pair whose two objects have no other candidate is matched as it is
    degree_a = np.bincount(rows_a)
    degree_b = np.bincount(rows_b)
    alone = (degree_a[rows_a] == 1) & (degree_b[rows_b] == 1)
    lone = np.flatnonzero(alone)
    shared = np.flatnonzero(~alone)
    if len(shared) == 0:
        return lone
    sub = _max_weight_shared(rows_a[shared], rows_b[shared], weight[shared])
    return np.sort(np.concatenate([lone, shared[sub]]))


def _max_weight_shared(rows_a: IntArray, rows_b: IntArray, weight: FloatArray) -> IntArray:
    """:func:`_max_weight_pairs` on pairs that share an object: components, then solvers."""
    p = len(rows_a)
    node_a, local_a = np.unique(rows_a, return_inverse=True)
    node_b, local_b = np.unique(rows_b, return_inverse=True)
    local_a, local_b = local_a.ravel(), local_b.ravel()
    n_a, n_b = len(node_a), len(node_b)
    graph = coo_matrix((np.ones(p, dtype=np.int8), (local_a, local_b + n_a)), (n_a + n_b,) * 2)
    _, label = connected_components(graph, directed=False)
    component = label[local_a]
    # nodes per component on each side
    count_a = np.bincount(label[:n_a], minlength=label.max() + 1)
    count_b = np.bincount(label[n_a:], minlength=label.max() + 1)
    star = (count_a[component] == 1) | (count_b[component] == 1)
    # heaviest pair of each star (a lone pair is a star of one); ties: the first pair
    first = np.flatnonzero(star)
    order = first[np.lexsort((-weight[first], component[first]))]
    head = np.ones(len(order), dtype=bool)
    head[1:] = component[order][1:] != component[order][:-1]
    chosen = [order[head]]
    rest = np.flatnonzero(~star)
    if len(rest):
        la, lb = local_a[rest], local_b[rest]
        comp = component[rest]
        order = np.argsort(comp, kind="stable")
        rest, la, lb, comp = rest[order], la[order], lb[order], comp[order]
        # local row/column index of each node inside its component: rank among its side
        row = _rank_within(comp, la)
        col = _rank_within(comp, lb)
        side = np.maximum(count_a, count_b)[comp]
        for size in range(2, _BRUTE_FORCE_MAX + 1):
            at = np.flatnonzero(side == size)
            if len(at):
                chosen.append(_brute_force(rest[at], comp[at], row[at], col[at], weight, size))
        large = np.flatnonzero(side > _BRUTE_FORCE_MAX)
        rest, row, col, comp = rest[large], row[large], col[large], comp[large]
        bounds = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1], True])
        if len(rest) == 0:
            bounds = bounds[:1]
        values = weight[rest]
        # one compiled call per large ambiguous component (rare: dense clusters)
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            r, c = row[lo:hi], col[lo:hi]
            dense = np.zeros((int(r.max()) + 1, int(c.max()) + 1))
            slot = np.full(dense.shape, -1, dtype=np.int64)
            dense[r, c] = values[lo:hi]
            slot[r, c] = np.arange(lo, hi)
            sel_r, sel_c = linear_sum_assignment(dense, maximize=True)
            picked = slot[sel_r, sel_c]
            chosen.append(rest[picked[picked >= 0]])
    return np.sort(np.concatenate(chosen))


#: components with at most this many nodes on each side are solved by trying every assignment
_BRUTE_FORCE_MAX = 4


def _brute_force(
    pairs: IntArray, comp: IntArray, row: IntArray, col: IntArray, weight: FloatArray, size: int
) -> IntArray:
    """Best assignment of many small components at once: every permutation, scored in bulk.

    Each component is padded to a ``size x size`` matrix (absent pairs weigh 0); a
    permutation's score is the sum of its entries, and the chosen pairs are the real ones
    on the best permutation. Weights are >= 0, so padding never beats a real pair.
    """
    _, which = np.unique(comp, return_inverse=True)
    which = which.ravel()
    n = int(which.max()) + 1
    matrix = np.zeros((n, size, size))
    slot = np.full((n, size, size), -1, dtype=np.int64)
    matrix[which, row, col] = weight[pairs]
    slot[which, row, col] = pairs
    perms = np.array(list(itertools.permutations(range(size))), dtype=np.int64)  # (P, size)
    lines = np.arange(size)
    score = matrix[:, lines[None, :], perms].sum(axis=2)  # (n, P)
    best = perms[np.argmax(score, axis=1)]  # (n, size)
    picked: IntArray = slot[np.arange(n)[:, None], lines[None, :], best].ravel()
    return picked[picked >= 0]


def _rank_within(component: IntArray, node: IntArray) -> IntArray:
    """For pairs sorted by component: each node's dense rank among its component's nodes."""
    key = np.stack([component, node], axis=1)
    unique, inverse = np.unique(key, axis=0, return_inverse=True)
    starts = np.flatnonzero(np.r_[True, unique[1:, 0] != unique[:-1, 0]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(unique)]))
    rank: IntArray = (np.arange(len(unique)) - first)[inverse.ravel()].astype(np.int64)
    return rank


def _group_keys(
    image_a: IntArray, class_a: IntArray, image_b: IntArray, class_b: IntArray
) -> tuple[IntArray, IntArray]:
    """One int64 key per (image, class) row, equal across both sides for equal tuples."""
    every_class = np.concatenate([class_a, class_b])
    if len(every_class) and every_class.min() >= 0 and every_class.max() < 1 << 20:
        classes = np.flatnonzero(np.bincount(every_class)).astype(np.int64)
    else:
        classes = np.unique(every_class)
    images = np.concatenate([image_a, image_b])
    if len(images) == 0:
        return image_a.astype(np.int64), image_b.astype(np.int64)
    low, high = int(images.min()), int(images.max())
    if (high - low + 1) * len(classes) >= 2**62:  # sparse huge ids: renumber them first
        uniq = np.unique(images)
        image_a, image_b = np.searchsorted(uniq, image_a), np.searchsorted(uniq, image_b)
        low = 0
    width = len(classes)
    key_a = (image_a.astype(np.int64) - low) * width + np.searchsorted(classes, class_a)
    key_b = (image_b.astype(np.int64) - low) * width + np.searchsorted(classes, class_b)
    return key_a, key_b


def _window_pairs(
    key_a: IntArray, x_a: FloatArray, reach_a: FloatArray, key_b: IntArray, x_b: FloatArray
) -> tuple[IntArray, IntArray]:
    """All ``(i, j)`` with ``key_a[i] == key_b[j]`` and ``|x_a[i] - x_b[j]| <= reach_a[i]``.

    Each key gets its own band of one float axis (``band * span + x``), so a single sort of
    ``b`` and two ``searchsorted`` calls find every window. The windows are widened by a
    rounding margin: callers compute the exact IoU of the returned pairs anyway.
    """
    if len(key_a) == 0 or len(key_b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low = min(float(x_a.min()), float(x_b.min()))
    extent = max(float(x_a.max()), float(x_b.max())) - low + 1.0
    span = 3.0 * extent
    top = int(max(key_a.max(), key_b.max()))
    if int(min(key_a.min(), key_b.min())) >= 0 and (top + 1) * span < 2.0**40:
        # keys are already small: each is its own band, no renumbering sort
        band_a, band_b, present, n_bands = key_a, key_b, np.ones(len(key_a), bool), top + 1
    else:
        bands = np.unique(key_b)
        band_b = np.searchsorted(bands, key_b)
        band_a = np.minimum(np.searchsorted(bands, key_a), len(bands) - 1)
        present, n_bands = bands[band_a] == key_a, len(bands)
    reach = np.clip(np.nan_to_num(reach_a, nan=-1.0), -1.0, extent)
    margin = 1e-9 * span * (n_bands + 1)
    position_b = band_b * span + (x_b - low)
    order = np.argsort(position_b, kind="stable")
    sorted_b = position_b[order]
    centre = band_a * span + (x_a - low)
    start = np.searchsorted(sorted_b, centre - reach - margin, side="left")
    stop = np.searchsorted(sorted_b, centre + reach + margin, side="right")
    stop = np.where(present & (reach >= 0), np.maximum(stop, start), start)
    rows_a = np.repeat(np.arange(len(key_a), dtype=np.int64), stop - start)
    rows_b = order[gather_ranges(start, stop)].astype(np.int64)
    return rows_a, rows_b


def _candidates(
    ref: Annotations,
    ref_rows: IntArray,
    key_ref: IntArray,
    other: Annotations,
    other_rows: IntArray,
    key_other: IntArray,
    threshold: FloatArray,
    boxes_only: bool,
) -> tuple[IntArray, IntArray]:
    """Candidate pairs with equal keys; for box IoU, only those that can reach the threshold.

    Box IoU never exceeds the IoU of the x intervals, so IoU >= t needs
    ``|x1_a - x1_b| <= (1 - t) / t * width_a``: a window per reference box on the sorted
    left edges. Other geometries (masks, polygons, keypoints) get every pair of the group.
    """
    if not boxes_only:
        pa, pb = group_pairs(key_ref, key_other)
        return ref_rows[pa], other_rows[pb]
    x_a = ref.bbox[ref_rows, 0]
    width = ref.bbox[ref_rows, 2] - x_a
    t = threshold[ref_rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(t > 0, (1.0 - t) / t * width, np.inf)
    reach = np.where(np.isnan(t), np.nan, reach)
    pa, pb = _window_pairs(key_ref, x_a, reach, key_other, other.bbox[other_rows, 0])
    return ref_rows[pa], other_rows[pb]


def match(
    ref: Annotations,
    other: Annotations,
    *,
    iou_threshold: float | None = None,
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
        One IoU threshold for every class. Exactly one of ``iou_threshold`` and ``taxonomy``.
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
    if (iou_threshold is None) == (taxonomy is None):
        raise ValueError(
            "match: expected exactly one of iou_threshold and taxonomy, got "
            f"iou_threshold={iou_threshold!r}, taxonomy={'given' if taxonomy else None}"
        )
    compute = pair_iou if pair_iou is not None else _box_pair_iou
    if taxonomy is not None:
        ref_threshold = taxonomy.thresholds(ref.class_id)
    else:
        ref_threshold = np.full(len(ref), float(iou_threshold), dtype=np.float64)  # type: ignore[arg-type]  # checked above: not None

    ref_live = np.flatnonzero(ref.kind != Kind.TAG)
    other_live = np.flatnonzero(other.kind != Kind.TAG)
    key_ref, key_other = _group_keys(
        ref.image_id[ref_live], ref.class_id[ref_live],
        other.image_id[other_live], other.class_id[other_live],
    )  # fmt: skip
    boxes_only = pair_iou is None
    rows_a, rows_b = _candidates(
        ref, ref_live, key_ref, other, other_live, key_other, ref_threshold, boxes_only
    )
    iou = compute(ref, rows_a, other, rows_b)
    keep = iou >= ref_threshold[rows_a]
    rows_a, rows_b, iou = rows_a[keep], rows_b[keep], iou[keep]
    chosen = _max_weight_pairs(rows_a, rows_b, iou)
    ref_rows, other_rows, matched_iou = rows_a[chosen], rows_b[chosen], iou[chosen]

    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    swap_a, swap_b, swap_iou = empty_i, empty_i, empty_f
    if swaps:
        left_ref = np.ones(len(ref), dtype=bool)
        left_ref[ref_rows] = False
        left_other = np.ones(len(other), dtype=bool)
        left_other[other_rows] = False
        ref_left = ref_live[left_ref[ref_live]]
        other_left = other_live[left_other[other_live]]
        sa, sb = _candidates(
            ref,
            ref_left,
            ref.image_id[ref_left],
            other,
            other_left,
            other.image_id[other_left],
            ref_threshold,
            boxes_only,
        )
        differ = ref.class_id[sa] != other.class_id[sb]
        sa, sb = sa[differ], sb[differ]
        s_iou = compute(ref, sa, other, sb)
        keep = s_iou >= ref_threshold[sa]
        sa, sb, s_iou = sa[keep], sb[keep], s_iou[keep]
        chosen = _max_weight_pairs(sa, sb, s_iou)
        swap_a, swap_b, swap_iou = sa[chosen], sb[chosen], s_iou[chosen]
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
