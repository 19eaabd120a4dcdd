"""IoU for every geometry on flat pair lists: boxes, polygons, RLE masks and keypoints (OKS).

Every function takes two containers and two (p,) row arrays (typically from
:func:`~labelgate.core.pairs.group_pairs`) and returns the (p,) similarity of each pair, with
the first side read as the detection / annotation under test and the second (``b``) as the
ground truth / reference. This order matters only for COCO's crowd rule and for OKS, which
both read the ground truth's side.

Semantics follow the COCO API (pycocotools) exactly:

- **Crowd.** Where the ground truth is a crowd region, the union is the detection's area
  alone: ``iou = inter / area(a)`` (``maskUtils.iou(d, g, iscrowd)``).
- **Masks** are compared on their run-length encodings without decoding a single image.
  The foreground runs of all masks sit in one sorted key array (mask, position) with the
  running count of foreground pixels, so the pixels of a mask before any position are one
  ``np.interp`` (the count is piecewise linear, exact on integers); the overlap of a run
  ``[s, e)`` with the other mask is then ``C(e) - C(s)``. Per pair only the side with fewer
  runs in the columns both masks' boxes span asks, all pairs in one call. Intersections are
  whole pixels, so the IoU is bit-for-bit pycocotools' ``rleIou``.
- **Polygons** use shapely 2 vectorized over the pair list. An annotation's rings are the
  separate parts of one region (COCO semantics: pycocotools rasterizes each ring and merges
  the masks), so overlapping rings count once. Rings that are not valid (self-intersecting,
  overlapping parts) are repaired with ``shapely.make_valid(..., method="structure")``,
  which unions the parts; a self-intersecting "bow tie" ring becomes its two lobes.
- **OKS** is COCOeval.computeOks: ``e = d^2 / (2 sigma)^2 / (area + eps) / 2`` averaged as
  ``exp(-e)`` over the ground truth's labelled keypoints (``v > 0``); without any, the
  distance to the ground truth's box enlarged by its size on every side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.pairs import box_iou_pairs, group_pairs
from labelgate.core.ragged import Ragged, gather_ranges
from labelgate.errors import ValidationError

__all__ = [
    "COCO_SIGMAS",
    "box_iou_pairs_crowd",
    "iou_matrix",
    "mask_iou_pairs",
    "oks_pairs",
    "pair_iou",
    "polygon_geometry",
    "polygon_iou_pairs",
]

#: The 17 COCO person keypoint sigmas (pycocotools ``Params.kpt_oks_sigmas``).
_PERSON_SIGMAS = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62]
COCO_SIGMAS: FloatArray = np.array([*_PERSON_SIGMAS, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0
COCO_SIGMAS.setflags(write=False)

# Look up at most this many run boundaries in one go: bounds memory on large pair lists.
_QUERIES_PER_CHUNK = 1 << 22


def _rows(rows: Any, n: int, side: str) -> IntArray:
    out = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(out) and (out.min() < 0 or out.max() >= n):
        raise ValidationError(f"row index out of range for {n} annotations", field=side)
    return out


def _check_pairs(rows_a: IntArray, rows_b: IntArray) -> None:
    if rows_a.shape != rows_b.shape:
        raise ValidationError(
            f"rows_a {rows_a.shape} and rows_b {rows_b.shape} must have equal length",
            field="rows_b",
        )


def _crowd(crowd_b: BoolArray | None, p: int) -> BoolArray:
    if crowd_b is None:
        return np.zeros(p, dtype=bool)
    crowd = np.asarray(crowd_b, dtype=bool).reshape(-1)
    if crowd.shape != (p,):
        raise ValidationError(f"expected ({p},) crowd flags, got {crowd.shape}", field="crowd_b")
    return crowd


def _ratio(inter: FloatArray, union: FloatArray) -> FloatArray:
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)
    return out


# --- boxes --------------------------------------------------------------------------------


def box_iou_pairs_crowd(
    a_boxes: FloatArray, b_boxes: FloatArray, crowd_b: BoolArray | None = None
) -> FloatArray:
    """IoU of xyxy boxes row by row with COCO's crowd rule: (p, 4), (p, 4), (p,) -> (p,).

    Where ``crowd_b`` is True the union is the area of the ``a`` box alone, so a box inside
    a crowd region has IoU 1 however small it is (pycocotools ``bbIou``).

    Parameters
    ----------
    a_boxes, b_boxes
        (p, 4) xyxy boxes: ``a`` the detections, ``b`` the ground truth.
    crowd_b
        (p,) True where the ``b`` box is a crowd region; None for no crowd.

    Examples
    --------
    >>> a = np.array([[0.0, 0, 2, 2], [0.0, 0, 2, 2]])
    >>> b = np.array([[1.0, 1, 3, 3], [0.0, 0, 10, 10]])
    >>> box_iou_pairs_crowd(a, b, np.array([False, True]))
    array([0.14285714, 1.        ])
    """
    out = box_iou_pairs(a_boxes, b_boxes)
    crowd = _crowd(crowd_b, len(out))
    if crowd.any():
        a, b = a_boxes[crowd], b_boxes[crowd]
        width = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        height = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
        out[crowd] = _ratio(inter, area_a)
    return out


# --- masks --------------------------------------------------------------------------------


class _Runs:
    """Foreground intervals of some masks, flattened, in one global sorted coordinate.

    Mask ``i`` (a position in the selected rows) owns intervals ``offsets[i]:offsets[i + 1]``;
    an interval ``[start, stop)`` is in column-major pixel positions. Keys add
    ``i * stride``, so every mask's intervals sort after the previous mask's and one
    search serves all masks. ``keys`` / ``covered`` interleave every interval's start and
    stop (after a sentinel) with the foreground pixels before them, summed over all masks:
    the pixels of a mask in ``[0, x)`` are then one lookup, see :meth:`covered_before`.
    """

    def __init__(self, rle: Ragged, size: IntArray, stride: int) -> None:
        counts = rle.values.astype(np.int64, copy=False)
        total = np.cumsum(counts)
        n = len(rle)
        before = np.concatenate([[0], total])[rle.offsets[:-1]]
        # odd runs are foreground: mask i's are offsets[i] + 1, + 3, ... (no per-run parity)
        per_mask = rle.lengths // 2
        owner = np.repeat(np.arange(n, dtype=np.int64), per_mask)
        first = np.cumsum(per_mask) - per_mask
        index = rle.offsets[:-1][owner] + 1 + 2 * (np.arange(len(owner)) - first[owner])
        # empty runs would put a start after its stop
        nonempty = np.flatnonzero(counts[index] > 0)
        index, owner = index[nonempty], owner[nonempty]
        length = counts[index]
        self.stop = total[index] - before[owner]
        self.start = self.stop - length
        self.offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n), out=self.offsets[1:])
        self.key_start = owner * stride + self.start
        self.key_stop = owner * stride + self.stop
        pixels = np.concatenate([[0], np.cumsum(length)])
        self.area = (pixels[self.offsets[1:]] - pixels[self.offsets[:-1]]).astype(np.float64)
        keys = np.empty(2 * len(length) + 1, dtype=np.int64)
        keys[0] = -1
        keys[1::2] = self.key_start
        keys[2::2] = self.key_stop
        covered = np.empty_like(keys)
        covered[0] = 0
        covered[1::2] = pixels[:-1]
        covered[2::2] = pixels[1:]
        # runs split by an empty background run touch: drop the shared boundary twice
        touching = np.flatnonzero(keys[2:-1:2] == keys[3::2])
        drop = np.concatenate([2 * touching + 2, 2 * touching + 3])
        keep = np.ones(len(keys), dtype=bool)
        keep[drop] = False
        # float64 holds these integers exactly (below 2**53): np.interp then is exact
        self.keys = keys[keep].astype(np.float64)
        self.covered = covered[keep].astype(np.float64)
        self.height = size[:, 0]
        self.bbox = self._bbox(self.height, owner)

    def _bbox(self, height: IntArray, owner: IntArray) -> IntArray:
        """(n, 4) xyxy pixel box of every mask; all zeros (no overlap ever) when empty."""
        n = len(self.offsets) - 1
        out = np.zeros((n, 4), dtype=np.int64)
        filled = np.flatnonzero(np.diff(self.offsets) > 0)
        if not len(filled):
            return out
        h = height[owner]
        last = self.stop - 1
        one_column = self.start // h == last // h
        top = np.where(one_column, self.start % h, 0)
        bottom = np.where(one_column, last % h, h - 1) + 1
        first_interval = self.offsets[:-1][filled]
        out[filled, 0] = self.start[first_interval] // height[filled]
        out[filled, 2] = last[self.offsets[1:][filled] - 1] // height[filled] + 1
        out[filled, 1] = np.minimum.reduceat(top, first_interval)
        out[filled, 3] = np.maximum.reduceat(bottom, first_interval)
        return out

    def covered_before(self, key: IntArray) -> FloatArray:
        """Foreground pixels of all masks before global position ``key``.

        The count is piecewise linear in the key (slope 1 inside a run, 0 between runs),
        so ``np.interp`` evaluates it exactly; its search starts from the previous answer,
        which makes nearly sorted keys cheap.
        """
        out: FloatArray = np.interp(key.astype(np.float64), self.keys, self.covered)
        return out


def _covered_pairs(
    query: _Runs,
    begin: IntArray,
    end: IntArray,
    table: _Runs,
    table_mask: IntArray,
    stride: int,
) -> FloatArray:
    """Pixels of ``query``'s intervals ``begin:end`` covered by mask ``table_mask``, per pair.

    The overlap of an interval ``[s, e)`` with a mask is ``C(e) - C(s)``, where ``C`` counts
    the mask's pixels before a position, so no pair's runs are merged or sorted.
    """
    p = len(begin)
    out = np.zeros(p, dtype=np.float64)
    # visit pairs by table mask: the searches then walk the table nearly in order
    order = np.argsort(table_mask, kind="stable")
    sizes = (end - begin)[order]
    cum = np.cumsum(sizes)
    chunk_of = (cum - 1) // _QUERIES_PER_CHUNK
    bounds = (np.flatnonzero(np.diff(chunk_of)) + 1).tolist()
    # a loop over a few large chunks bounds memory on huge pair lists
    for lo, hi in zip([0, *bounds], [*bounds, p]):
        pairs = order[lo:hi]
        index = gather_ranges(begin[pairs], end[pairs])
        if not len(index):
            continue
        base = np.repeat(table_mask[pairs] * stride, sizes[lo:hi])
        # starts and stops interleaved keep the keys ascending within a pair
        bounds_key = np.empty(2 * len(index), dtype=np.int64)
        bounds_key[0::2] = base + query.start[index]
        bounds_key[1::2] = base + query.stop[index]
        covered = table.covered_before(bounds_key)
        totals = np.concatenate([[0.0], np.cumsum(covered[1::2] - covered[0::2])])
        stops = np.cumsum(sizes[lo:hi])
        out[pairs] = totals[stops] - totals[stops - sizes[lo:hi]]
    return out


def _selected(ragged: Ragged, unique: IntArray) -> Ragged:
    """Rows ``unique`` (sorted, distinct) of ``ragged``, without a copy when that is all."""
    if len(unique) == len(ragged):
        return ragged
    return ragged.take(unique)


def _mask_inter(
    runs_a: _Runs, ia: IntArray, runs_b: _Runs, ib: IntArray, stride: int
) -> FloatArray:
    """Intersection in pixels of masks ``ia`` (of ``runs_a``) and ``ib`` pair by pair."""
    inter = np.zeros(len(ia), dtype=np.float64)
    box_a, box_b = runs_a.bbox[ia], runs_b.bbox[ib]
    lo = np.maximum(box_a, box_b)
    hi = np.minimum(box_a, box_b)
    pairs = np.flatnonzero((hi[:, 2] > lo[:, 0]) & (hi[:, 3] > lo[:, 1]))
    if not len(pairs):
        return inter
    # only intervals reaching into the columns both boxes span can meet
    height = runs_a.height[ia[pairs]]
    first, last = lo[pairs, 0] * height, hi[pairs, 2] * height
    spans = []
    for runs, index in ((runs_a, ia[pairs]), (runs_b, ib[pairs])):
        base = index * stride
        begin = np.searchsorted(runs.key_stop, base + first, side="right")
        end = np.maximum(np.searchsorted(runs.key_start, base + last, side="left"), begin)
        spans.append((begin, end))
    (begin_a, end_a), (begin_b, end_b) = spans
    # look the side with fewer intervals up in the other one
    a_asks = (end_a - begin_a) <= (end_b - begin_b)
    ask, answer = pairs[a_asks], pairs[~a_asks]
    inter[ask] = _covered_pairs(runs_a, begin_a[a_asks], end_a[a_asks], runs_b, ib[ask], stride)
    inter[answer] = _covered_pairs(
        runs_b, begin_b[~a_asks], end_b[~a_asks], runs_a, ia[answer], stride
    )
    return inter


def mask_iou_pairs(
    a: Annotations,
    rows_a: IntArray,
    b: Annotations,
    rows_b: IntArray,
    *,
    crowd_b: BoolArray | None = None,
) -> FloatArray:
    """IoU of the RLE masks of row pairs, computed on the run lengths: (p,) -> (p,).

    Equal to ``pycocotools.mask.iou([a], [b], [crowd])`` pair by pair, bit for bit: the
    intersection is counted in whole pixels on the runs (one search per run of the smaller
    side, all pairs at once), never by decoding images. Empty masks have IoU 0.

    Parameters
    ----------
    a, b
        Containers holding the masks (``rle_counts``, ``rle_size``).
    rows_a, rows_b
        (p,) rows of ``a`` and ``b`` forming the pairs.
    crowd_b
        (p,) True where the ``b`` mask is a crowd region: the union is then ``a``'s area.

    Raises
    ------
    ValidationError
        A row without a mask, or a pair of masks of different image sizes.

    Examples
    --------
    >>> from labelgate.core.ragged import Ragged
    >>> # 4x4 masks: the first two columns, and the second and third columns
    >>> masks = Annotations.create(
    ...     image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 2, 4], [1, 0, 3, 4]],
    ...     kind=[Kind.MASK, Kind.MASK], rle_size=[[4, 4], [4, 4]],
    ...     rle_counts=Ragged(np.array([0, 8, 8, 4, 8, 4]), np.array([0, 3, 6])))
    >>> mask_iou_pairs(masks, np.array([0, 0]), masks, np.array([0, 1]))
    array([1.        , 0.33333333])
    >>> mask_iou_pairs(masks, np.array([1]), masks, np.array([0]), crowd_b=np.array([True]))
    array([0.5])
    """
    rows_a = _rows(rows_a, len(a), "rows_a")
    rows_b = _rows(rows_b, len(b), "rows_b")
    _check_pairs(rows_a, rows_b)
    crowd = _crowd(crowd_b, len(rows_a))
    if not len(rows_a):
        return np.zeros(0, dtype=np.float64)
    unique_a, ia = np.unique(rows_a, return_inverse=True)
    unique_b, ib = np.unique(rows_b, return_inverse=True)
    for side, container, unique in (("rows_a", a, unique_a), ("rows_b", b, unique_b)):
        missing = container.rle_counts.lengths[unique] == 0
        if missing.any():
            row = int(unique[np.flatnonzero(missing)[0]])
            raise ValidationError("expected an RLE mask, the row has none", field=side, row=row)
    size_a, size_b = a.rle_size[rows_a], b.rle_size[rows_b]
    differ = (size_a != size_b).any(axis=1)
    if differ.any():
        k = int(np.flatnonzero(differ)[0])
        raise ValidationError(
            f"pair {k}: masks of different sizes: a row {rows_a[k]} is {size_a[k].tolist()} "
            f"(h, w), b row {rows_b[k]} is {size_b[k].tolist()}",
            field="rle_size",
        )
    stride = int(max(np.prod(a.rle_size[unique_a], axis=1).max(initial=0), 0)) + 1
    if (max(len(unique_a), len(unique_b)) + 1) * stride >= 2**53:
        # the global keys are searched as float64, exact only below 2**53
        raise ValidationError(
            "too many mask pixels for one call: split the pair list", field="rle_size"
        )
    runs_a = _Runs(_selected(a.rle_counts, unique_a), a.rle_size[unique_a], stride)
    same = b is a and np.array_equal(unique_a, unique_b)
    runs_b = (
        runs_a if same else _Runs(_selected(b.rle_counts, unique_b), b.rle_size[unique_b], stride)
    )
    inter = _mask_inter(runs_a, ia, runs_b, ib, stride)
    area_a = runs_a.area[ia]
    union = np.where(crowd, area_a, area_a + runs_b.area[ib] - inter)
    return _ratio(inter, union)


# --- polygons -----------------------------------------------------------------------------


def polygon_geometry(ann: Annotations, rows: IntArray) -> tuple[Any, FloatArray]:
    """One shapely (multi)polygon per row (its rings as parts, made valid) and its area."""
    starts = ann.ring_offsets[:-1][rows]
    stops = ann.ring_offsets[1:][rows]
    if ((stops - starts) == 0).any():
        row = int(rows[np.flatnonzero(stops == starts)[0]])
        raise ValidationError("expected a polygon, the row has no rings", field="rings", row=row)
    ring_index = gather_ranges(starts, stops)
    rings = ann.rings.take(ring_index)
    # linearrings closes every ring; each ring is one polygon, each row one multipolygon
    linear = shapely.linearrings(rings.values, indices=rings.row_index())
    parts = shapely.polygons(linear)
    owner = np.repeat(np.arange(len(rows)), stops - starts)
    geometry = shapely.multipolygons(parts, indices=owner)
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        # "structure" unions the parts (COCO merges ring masks); "linework" would XOR them
        geometry[invalid] = shapely.make_valid(
            geometry[invalid], method="structure", keep_collapsed=False
        )
    return geometry, shapely.area(geometry)


def polygon_iou_pairs(
    a: Annotations,
    rows_a: IntArray,
    b: Annotations,
    rows_b: IntArray,
    *,
    crowd_b: BoolArray | None = None,
) -> FloatArray:
    """IoU of the polygons of row pairs with shapely 2, vectorized: (p,) -> (p,).

    Each annotation's rings are the parts of one region (a multipolygon; overlapping rings
    count once); invalid rings are repaired with ``shapely.make_valid`` (method
    ``"structure"``). Geometry is continuous: no rasterization, no +1 pixel.

    Parameters
    ----------
    a, b
        Containers holding the polygons (``rings``, ``ring_offsets``).
    rows_a, rows_b
        (p,) rows of ``a`` and ``b`` forming the pairs.
    crowd_b
        (p,) True where the ``b`` polygon is a crowd region: the union is then ``a``'s area.

    Raises
    ------
    ValidationError
        A row without rings.

    Examples
    --------
    >>> from labelgate.core.ragged import Ragged
    >>> square = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    >>> polys = Annotations.create(
    ...     image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 1, 1], [0.5, 0, 1.5, 1]],
    ...     kind=[Kind.POLYGON, Kind.POLYGON], ring_offsets=[0, 1, 2],
    ...     rings=Ragged(np.concatenate([square, square + [0.5, 0]]), np.array([0, 4, 8])))
    >>> polygon_iou_pairs(polys, np.array([0, 0]), polys, np.array([1, 0]))
    array([0.33333333, 1.        ])
    """
    rows_a = _rows(rows_a, len(a), "rows_a")
    rows_b = _rows(rows_b, len(b), "rows_b")
    _check_pairs(rows_a, rows_b)
    crowd = _crowd(crowd_b, len(rows_a))
    out = np.zeros(len(rows_a), dtype=np.float64)
    if not len(rows_a):
        return out
    unique_a, ia = np.unique(rows_a, return_inverse=True)
    unique_b, ib = np.unique(rows_b, return_inverse=True)
    geometry_a, area_a = polygon_geometry(a, unique_a)
    geometry_b, area_b = polygon_geometry(b, unique_b)
    bounds_a, bounds_b = shapely.bounds(geometry_a)[ia], shapely.bounds(geometry_b)[ib]
    lo, hi = np.maximum(bounds_a, bounds_b), np.minimum(bounds_a, bounds_b)
    # the exact intersection only where the bounding boxes overlap
    candidates = np.flatnonzero((hi[:, 2] > lo[:, 0]) & (hi[:, 3] > lo[:, 1]))
    inter = np.zeros(len(rows_a), dtype=np.float64)
    left, right = geometry_a[ia[candidates]], geometry_b[ib[candidates]]
    # an unchanged copy (an accepted pre-label) is common, and overlaying a polygon with
    # itself is GEOS's slowest case (all edges collinear): equal vertices give the area
    same = shapely.equals_exact(left, right, tolerance=0.0)
    inter[candidates[same]] = area_a[ia[candidates[same]]]
    inter[candidates[~same]] = shapely.area(shapely.intersection(left[~same], right[~same]))
    pair_area_a = area_a[ia]
    union = np.where(crowd, pair_area_a, pair_area_a + area_b[ib] - inter)
    out[:] = _ratio(inter, union)
    return out


# --- keypoints ----------------------------------------------------------------------------


def _dense(keypoints: Ragged, rows: IntArray, k: int, side: str) -> FloatArray:
    """(p, k, 3) keypoints of ``rows``, zero-padded (COCO's ``v = 0``)."""
    lengths = keypoints.lengths[rows]
    if (lengths > k).any():
        at = int(np.flatnonzero(lengths > k)[0])
        raise ValidationError(
            f"expected at most {k} keypoints (one per sigma), got {lengths[at]}",
            field=side,
            row=int(rows[at]),
        )
    out = np.zeros((len(rows), k, 3), dtype=np.float64)
    flat = gather_ranges(keypoints.offsets[:-1][rows], keypoints.offsets[1:][rows])
    pair = np.repeat(np.arange(len(rows)), lengths)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[pair, position] = keypoints.values[flat]
    return out


def _oks(
    d: FloatArray, g: FloatArray, box: FloatArray, area: FloatArray, sigmas: FloatArray
) -> FloatArray:
    """COCOeval.computeOks on (p, k, 3) detections ``d`` and ground truths ``g``."""
    variances = (sigmas * 2) ** 2
    visible = g[:, :, 2] > 0
    labelled: BoolArray = np.any(visible, axis=1)[:, None]
    x, y = box[:, 0:1], box[:, 1:2]
    width, height = box[:, 2:3] - box[:, 0:1], box[:, 3:4] - box[:, 1:2]
    x0, x1 = x - width, x + width * 2
    y0, y1 = y - height, y + height * 2
    xd, yd = d[:, :, 0], d[:, :, 1]
    # without labelled keypoints: the distance to the box enlarged by its size on every side
    outside_x = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
    outside_y = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
    dx = np.where(labelled, xd - g[:, :, 0], outside_x)
    dy = np.where(labelled, yd - g[:, :, 1], outside_y)
    e = (dx**2 + dy**2) / variances / (area[:, None] + np.spacing(1)) / 2
    counted = np.where(labelled, visible, True)
    total = np.where(counted, np.exp(-e), 0.0).sum(axis=1)
    out: FloatArray = total / counted.sum(axis=1)
    return out


def oks_pairs(
    a: Annotations,
    rows_a: IntArray,
    b: Annotations,
    rows_b: IntArray,
    *,
    sigmas: FloatArray | Mapping[int, FloatArray] = COCO_SIGMAS,
    area: FloatArray | None = None,
) -> FloatArray:
    """Object Keypoint Similarity of row pairs, as COCOeval.computeOks: (p,) -> (p,).

    ``b`` is the ground truth: its labelled keypoints (``v > 0``), box and ``area`` set the
    scale; ``a``'s visibility is ignored. Rows with fewer keypoints than sigmas are padded
    with unlabelled ones.

    Parameters
    ----------
    a, b
        Containers holding the keypoints.
    rows_a, rows_b
        (p,) rows of ``a`` (detections) and ``b`` (ground truth) forming the pairs.
    sigmas
        (k,) per-keypoint sigmas (default the 17 COCO person sigmas), or a mapping from
        ``b``'s class id to its sigmas.
    area
        (p,) the ground truth's area per pair; default ``b.area[rows_b]``.

    Notes
    -----
    ``kappa = 2 sigma``, ``e = d^2 / kappa^2 / (area + eps) / 2``, ``oks = mean(exp(-e))``
    over the ground truth's labelled keypoints (https://cocodataset.org/#keypoints-eval).

    Examples
    --------
    >>> from labelgate.core.ragged import Ragged
    >>> points = np.array([[10.0, 10, 2], [20, 20, 2], [12.0, 10, 2], [20, 20, 0]])
    >>> people = Annotations.create(
    ...     image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 30, 30]] * 2, area=[900, 900],
    ...     kind=[Kind.KEYPOINTS] * 2, keypoints=Ragged(points, np.array([0, 2, 4])))
    >>> oks_pairs(people, np.array([0, 1]), people, np.array([0, 0]), sigmas=np.array([0.1, 0.1]))
    array([1.        , 0.97297973])
    """
    rows_a = _rows(rows_a, len(a), "rows_a")
    rows_b = _rows(rows_b, len(b), "rows_b")
    _check_pairs(rows_a, rows_b)
    p = len(rows_a)
    gt_area = b.area[rows_b] if area is None else np.asarray(area, dtype=np.float64)
    if gt_area.shape != (p,):
        raise ValidationError(f"expected ({p},) areas, got {gt_area.shape}", field="area")
    out = np.zeros(p, dtype=np.float64)
    if isinstance(sigmas, Mapping):
        classes = b.class_id[rows_b]
        groups = [(np.flatnonzero(classes == c), s) for c, s in sigmas.items()]
        covered = np.isin(classes, np.fromiter(sigmas.keys(), dtype=np.int64, count=len(sigmas)))
        if not covered.all():
            at = int(np.flatnonzero(~covered)[0])
            raise ValidationError(
                f"no sigmas for class {classes[at]}", field="sigmas", row=int(rows_b[at])
            )
    else:
        groups = [(np.arange(p), sigmas)]
    # one vectorized call per class (a handful of keypoint classes)
    for index, class_sigmas in groups:
        if not len(index):
            continue
        s = np.asarray(class_sigmas, dtype=np.float64).reshape(-1)
        d = _dense(a.keypoints, rows_a[index], len(s), "rows_a")
        g = _dense(b.keypoints, rows_b[index], len(s), "rows_b")
        out[index] = _oks(d, g, b.bbox[rows_b[index]], gt_area[index], s)
    return out


# --- dispatch -----------------------------------------------------------------------------


def pair_iou(
    a: Annotations,
    rows_a: IntArray,
    b: Annotations,
    rows_b: IntArray,
    *,
    crowd_b: BoolArray | None = None,
    sigmas: FloatArray | Mapping[int, FloatArray] = COCO_SIGMAS,
) -> FloatArray:
    """Geometry-aware similarity of row pairs: (p,) -> (p,).

    Per pair, by the kinds of both sides:

    =====================  ====================================================
    both MASK              :func:`mask_iou_pairs`
    both POLYGON           :func:`polygon_iou_pairs`
    both KEYPOINTS         :func:`oks_pairs` (``b`` is the ground truth)
    anything else          :func:`box_iou_pairs_crowd` on ``bbox``
    =====================  ====================================================

    A polygon paired with a mask is compared by box: rasterizing the polygon would tie the
    result to one pixel convention, and labelgate keeps polygons continuous. TAG rows (NaN
    boxes) get 0. The pair list is split by type, each part computed in one call.

    Parameters
    ----------
    a, b
        The two containers.
    rows_a, rows_b
        (p,) rows forming the pairs.
    crowd_b
        (p,) True where ``b`` is a crowd region (ignored by OKS, as in COCO).
    sigmas
        Passed to :func:`oks_pairs`.

    Examples
    --------
    >>> boxes = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                            bbox=[[0, 0, 2, 2], [1, 1, 3, 3]])
    >>> pair_iou(boxes, np.array([0, 0]), boxes, np.array([0, 1]))
    array([1.        , 0.14285714])
    """
    rows_a = _rows(rows_a, len(a), "rows_a")
    rows_b = _rows(rows_b, len(b), "rows_b")
    _check_pairs(rows_a, rows_b)
    crowd = _crowd(crowd_b, len(rows_a))
    kind_a, kind_b = a.kind[rows_a], b.kind[rows_b]
    same = kind_a == kind_b
    masks = same & (kind_a == Kind.MASK)
    polygons = same & (kind_a == Kind.POLYGON)
    keypoints = same & (kind_a == Kind.KEYPOINTS)
    boxes = ~(masks | polygons | keypoints)
    out = np.zeros(len(rows_a), dtype=np.float64)
    if masks.any():
        out[masks] = mask_iou_pairs(a, rows_a[masks], b, rows_b[masks], crowd_b=crowd[masks])
    if polygons.any():
        out[polygons] = polygon_iou_pairs(
            a, rows_a[polygons], b, rows_b[polygons], crowd_b=crowd[polygons]
        )
    if keypoints.any():
        out[keypoints] = oks_pairs(a, rows_a[keypoints], b, rows_b[keypoints], sigmas=sigmas)
    if boxes.any():
        box_a, box_b = a.bbox[rows_a[boxes]], b.bbox[rows_b[boxes]]
        with np.errstate(invalid="ignore"):
            iou = box_iou_pairs_crowd(box_a, box_b, crowd[boxes])
        out[boxes] = np.nan_to_num(iou, nan=0.0)
    return out


def iou_matrix(
    a: Annotations,
    b: Annotations,
    *,
    crowd_b: BoolArray | None = None,
    sigmas: FloatArray | Mapping[int, FloatArray] = COCO_SIGMAS,
) -> FloatArray:
    """Similarity of every row of ``a`` with every row of ``b``: (n, m), via :func:`pair_iou`.

    Meant for small inputs; data sets go through :func:`~labelgate.core.pairs.group_pairs`
    and :func:`pair_iou` on the flat pair list.

    Parameters
    ----------
    a, b
        The two containers.
    crowd_b
        (m,) True where a row of ``b`` is a crowd region.
    sigmas
        Passed to :func:`oks_pairs`.

    Examples
    --------
    >>> boxes = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                            bbox=[[0, 0, 2, 2], [1, 1, 3, 3]])
    >>> iou_matrix(boxes, boxes)
    array([[1.        , 0.14285714],
           [0.14285714, 1.        ]])
    """
    rows_a, rows_b = group_pairs(np.zeros(len(a), dtype=np.int64), np.zeros(len(b), np.int64))
    crowd = None if crowd_b is None else np.asarray(crowd_b, dtype=bool)[rows_b]
    values = pair_iou(a, rows_a, b, rows_b, crowd_b=crowd, sigmas=sigmas)
    return values.reshape(len(a), len(b))
