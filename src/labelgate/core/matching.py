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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]  # scipy ships no type hints
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.pairs import box_iou_pairs, group_pairs
from labelgate.core.taxonomy import Taxonomy

__all__ = ["Matching", "PairIoU", "match"]

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
    the result holds positions into them. Pairs whose objects have no other candidate are
    taken in bulk; the rest splits into connected components, each solved exactly by
    ``linear_sum_assignment`` on its small dense matrix (non-edges weigh 0 and are dropped).
    """
    p = len(rows_a)
    if p == 0:
        return np.zeros(0, dtype=np.int64)
    node_a, local_a = np.unique(rows_a, return_inverse=True)
    node_b, local_b = np.unique(rows_b, return_inverse=True)
    degree_a = np.bincount(local_a, minlength=len(node_a))
    degree_b = np.bincount(local_b, minlength=len(node_b))
    alone = (degree_a[local_a] == 1) & (degree_b[local_b] == 1)
    chosen = [np.flatnonzero(alone)]
    rest = np.flatnonzero(~alone)
    if len(rest):
        la, lb = local_a[rest], local_b[rest]
        n_a, n_b = len(node_a), len(node_b)
        graph = coo_matrix((np.ones(len(rest), dtype=np.int8), (la, lb + n_a)), (n_a + n_b,) * 2)
        _, label = connected_components(graph, directed=False)
        component = label[la]
        order = np.argsort(component, kind="stable")
        rest, la, lb, component = rest[order], la[order], lb[order], component[order]
        # local row/column index of each node inside its component: rank among its side
        row = _rank_within(component, la)
        col = _rank_within(component, lb)
        bounds = np.flatnonzero(np.r_[True, component[1:] != component[:-1], True])
        values = weight[rest]
        # one compiled call per ambiguous component; the benchmark measures how many there are
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


def _rank_within(component: IntArray, node: IntArray) -> IntArray:
    """For pairs sorted by component: each node's dense rank among its component's nodes."""
    key = np.stack([component, node], axis=1)
    unique, inverse = np.unique(key, axis=0, return_inverse=True)
    starts = np.flatnonzero(np.r_[True, unique[1:, 0] != unique[:-1, 0]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(unique)]))
    rank: IntArray = (np.arange(len(unique)) - first)[inverse.ravel()].astype(np.int64)
    return rank


def _dense_keys(*columns: IntArray) -> list[IntArray]:
    """Renumber equal tuples across several equal-length column groups to dense int keys."""
    sizes = [len(c) for c in columns[0::2]]
    stacked = np.stack(
        [np.concatenate(columns[0::2]), np.concatenate(columns[1::2])], axis=1
    ).astype(np.int64)
    if len(stacked) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in sizes]
    _, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.ravel().astype(np.int64)
    return np.split(inverse, np.cumsum(sizes)[:-1])


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
    key_ref, key_other = _dense_keys(
        ref.image_id[ref_live], ref.class_id[ref_live],
        other.image_id[other_live], other.class_id[other_live],
    )  # fmt: skip
    pa, pb = group_pairs(key_ref, key_other)
    rows_a, rows_b = ref_live[pa], other_live[pb]
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
        pa, pb = group_pairs(ref.image_id[ref_left], other.image_id[other_left])
        sa, sb = ref_left[pa], other_left[pb]
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
