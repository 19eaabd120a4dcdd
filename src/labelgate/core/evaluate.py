"""COCO detection evaluation, vectorized over the whole data set, equal to pycocotools' COCOeval.

pycocotools evaluates one (image, class, area range) at a time with a triple Python loop
(detection, threshold, ground truth). Here every step runs on flat arrays:

1. Detections are sorted once by (image, class, -score) with one stable sort (the keys
   packed into an int64), which reproduces COCOeval's ``np.argsort(-scores,
   kind='mergesort')`` per image and class; each detection gets its rank in its group and
   ranks past ``max_dets[-1]`` are dropped.
2. Each detection's candidates are a contiguous range of the sorted ground truths; the
   (detection, ground truth) pairs are built and measured in cache-sized blocks, and pairs
   below the lowest threshold are dropped (they can never match).
3. Greedy matching. COCOeval's rule, restated: among the available ground truths with
   IoU >= threshold, a detection takes the one with the highest IoU, ties going to the
   *last* in COCO's order, looking at ignored ground truths (crowd or outside the area
   range, sorted last) only when no regular one qualifies. A detection none of whose
   candidates a better-ranked detection also has cannot find one taken, so its outcome at
   every threshold is fixed by how many thresholds its best candidate passes: one small
   count per (area range, detection), no (area, threshold, detection) arrays. The other,
   contested detections are matched in rounds over the detection *rank*: each round
   resolves the detections of that rank in every group at once, for every area range and
   threshold together.
4. Accumulation orders the detections per class by (-score, image, rank) - COCOeval's
   concatenation over images followed by a mergesort - and, per (area range, threshold),
   rebuilds the row of true positives and counted detections from those counts and works
   on the true-positive events. The 101-point interpolated precision is read without a
   per-class loop: ``searchsorted`` on recall becomes an exact integer search on the
   true-positive count, and the right-to-left max envelope becomes a range maximum over
   the recall thresholds' chunks.

Every floating-point expression that reaches ``stats`` is the one COCOeval evaluates
(``tp / (fp + tp + eps)``, ``tp / npig``, ``np.mean`` over the same array layout), so the
numbers are bit-for-bit pycocotools' on the same boxes. Boxes are held as xyxy: where a COCO
file gives ``x, w`` the right edge ``x + w`` is the one pycocotools computes, and the width is
recomputed as ``x2 - x1``, which can differ from ``w`` in the last bit; only an IoU within
~1e-15 of a threshold could then decide differently.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from labelgate.core._typing import AnyArray, BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.iou import COCO_SIGMAS, mask_iou_pairs, oks_pairs
from labelgate.core.ragged import Ragged
from labelgate.errors import ValidationError

__all__ = [
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_KEYPOINT_AREA_RANGES",
    "COCO_RECALL_THRESHOLDS",
    "Evaluation",
    "EvaluationPlan",
    "IouType",
    "Rasterize",
    "evaluate",
    "finish_evaluation",
    "pair_iou_of",
    "plan_evaluation",
    "rasterize_polygons",
]

IouType = Literal["bbox", "segm", "keypoints"]
#: ``rasterize(rings, height, width)``: an annotation's rings (flat ``x0, y0, x1, ...``
#: lists) -> the uncompressed COCO RLE counts of their union on a ``height x width`` image.
Rasterize = Callable[[list[list[float]], int, int], IntArray]

#: COCOeval's ``iouThrs``: 0.50, 0.55, ..., 0.95 (the same linspace call, so the same floats).
COCO_IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
#: COCOeval's ``recThrs``: 0.00, 0.01, ..., 1.00.
COCO_RECALL_THRESHOLDS: FloatArray = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1)
#: COCOeval's ``areaRng`` with its labels, in pixels squared; bounds are inclusive.
COCO_AREA_RANGES: Mapping[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
#: COCOeval's area ranges for ``iouType="keypoints"``.
COCO_KEYPOINT_AREA_RANGES: Mapping[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """COCO evaluation results, laid out as pycocotools' ``COCOeval.eval`` and ``stats``.

    Attributes
    ----------
    iou_type : str
        ``"bbox"``, ``"segm"`` or ``"keypoints"``.
    stats : (12,) or (10,) float64
        ``COCOeval.summarize()``'s numbers in its order; -1 where nothing was measurable.
    stats_names : tuple of str
        A short name per entry of ``stats`` (``AP``, ``AP50``, ..., ``AR_large``).
    precision : (T, R, K, A, M) float64
        Interpolated precision per IoU threshold, recall threshold, class, area range and
        max-detections setting; -1 for a class without a non-ignored ground truth.
    recall : (T, K, A, M) float64
        Final recall; -1 as in ``precision``.
    scores : (T, R, K, A, M) float64
        Score of the detection where each recall threshold is reached (0 past the end).
    class_ids : (K,) int64
        The evaluated classes (the taxonomy's ids, sorted); ``[-1]`` with ``use_cats=False``.
    iou_thresholds : (T,) float64
        With ``per_class_thresholds``, T is 1 and the thresholds are in ``class_thresholds``.
    class_thresholds : (K,) float64 or None
        Each class's IoU threshold when evaluated at its own tier.
    recall_thresholds : (R,) float64
    area_ranges : tuple of (name, low, high)
    max_dets : tuple of int
    images, gt, dt : int
        Images evaluated, ground-truth objects and detections taken into account.
    """

    iou_type: str
    stats: FloatArray
    stats_names: tuple[str, ...]
    precision: FloatArray
    recall: FloatArray
    scores: FloatArray
    class_ids: IntArray
    iou_thresholds: FloatArray
    class_thresholds: FloatArray | None
    recall_thresholds: FloatArray
    area_ranges: tuple[tuple[str, float, float], ...]
    max_dets: tuple[int, ...]
    images: int
    gt: int
    dt: int

    def class_ap(self, iou_threshold: float | None = None) -> FloatArray:
        """Per-class AP at all area sizes and the largest max-detections setting -> (K,).

        ``iou_threshold`` None averages over every threshold (COCO's AP); a value selects the
        threshold equal to it (0.5 gives AP50). -1 where the class has no ground truth or
        the threshold is not one of ``iou_thresholds``.
        """
        s = self.precision[:, :, :, self._area_index("all"), -1]  # (T, R, K)
        if iou_threshold is not None:
            s = s[np.flatnonzero(self.iou_thresholds == iou_threshold)]
        valid = s > -1
        counts = valid.sum(axis=(0, 1))
        sums = np.where(valid, s, 0.0).sum(axis=(0, 1))
        out: FloatArray = np.full(len(self.class_ids), -1.0)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out

    def pr_curve(
        self, class_index: int, *, iou_threshold: float = 0.5, area: str = "all"
    ) -> tuple[FloatArray, FloatArray]:
        """The interpolated precision-recall curve of one class: ``(recall, precision)``.

        Both (R,); precision is -1 throughout for a class without ground truth.
        """
        t = np.flatnonzero(self.iou_thresholds == iou_threshold)
        if len(t) == 0:
            raise ValidationError(
                f"expected one of {self.iou_thresholds.tolist()}, got {iou_threshold}",
                field="iou_threshold",
            )
        curve = self.precision[t[0], :, class_index, self._area_index(area), -1]
        return self.recall_thresholds.copy(), curve.copy()

    def _area_index(self, name: str) -> int:
        for index, (label, _, _) in enumerate(self.area_ranges):
            if label == name:
                return index
        raise ValidationError(f"no area range named {name!r}", field="area")


def evaluate(
    gt: Dataset,
    dt: Annotations,
    *,
    iou_type: IouType = "bbox",
    max_dets: Sequence[int] | None = None,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    iou_thresholds: FloatArray | Sequence[float] | None = None,
    use_cats: bool = True,
    per_class_thresholds: FloatArray | None = None,
    sigmas: FloatArray | Mapping[int, FloatArray] = COCO_SIGMAS,
) -> Evaluation:
    """Evaluate detections against ground truth exactly as pycocotools' COCOeval does.

    Parameters
    ----------
    gt
        Ground truth: its images (sorted ids) and taxonomy (sorted class ids) are COCOeval's
        ``imgIds`` and ``catIds``; ``iscrowd`` marks crowd regions; ``area`` is the area the
        area ranges test.
    dt
        Detections with ``score``. Rows on classes or images absent from ``gt`` are dropped,
        as COCOeval does.
    iou_type
        ``"bbox"`` (box IoU), ``"segm"`` (RLE mask IoU: every evaluated row needs a mask;
        rasterize polygons first with :func:`rasterize_polygons`, as COCOeval does) or
        ``"keypoints"`` (OKS; a ground truth without labelled keypoints is ignored). A
        detection's area, tested against the area ranges, is its box's ``w * h`` for bbox
        and keypoints, and its ``area`` for segm (its mask's pixel count where NaN): what
        ``COCO.loadRes`` sets, as :func:`~labelgate.formats.coco.read_coco` stores it for
        results (``w * h`` when the records carry a ``bbox``, even with a segmentation).
    max_dets
        Default ``(1, 10, 100)``, ``(20,)`` for keypoints; the last one bounds detections
        per image and class.
    area_ranges
        Name -> (low, high), inclusive; default :data:`COCO_AREA_RANGES`
        (:data:`COCO_KEYPOINT_AREA_RANGES` for keypoints).
    iou_thresholds
        (T,) default :data:`COCO_IOU_THRESHOLDS`; each is capped at ``1 - 1e-10`` as COCOeval
        caps it.
    use_cats
        False pools all classes (proposal recall), COCOeval's ``useCats=0``.
    per_class_thresholds
        (K,) one IoU threshold per taxonomy class (sorted by id): each class is evaluated at
        its own threshold, T is 1 and ``iou_thresholds`` is ignored.
    sigmas
        Keypoint sigmas for OKS (see :func:`~labelgate.core.iou.oks_pairs`).

    Returns
    -------
    Evaluation

    Raises
    ------
    ValidationError
        On an unsupported ``iou_type``, a detection without a score, thresholds of the
        wrong shape, or (segm) an evaluated row without an RLE mask.

    Examples
    --------
    >>> from labelgate.core.images import Images
    >>> from labelgate.core.taxonomy import Taxonomy
    >>> truth = Dataset(
    ...     Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [20, 20, 40, 40]]),
    ...     Images.create(id=[1], width=[100], height=[100]), Taxonomy.from_names(["car"]))
    >>> found = Annotations.create(image_id=[1, 1], class_id=[1, 1], score=[0.9, 0.8],
    ...                            bbox=[[0, 0, 10, 9], [50, 50, 60, 60]])
    >>> result = evaluate(truth, found)
    >>> result.stats_names[:3], result.stats[:3].round(4).tolist()  # 1 of 2 found, IoU 0.9
    (('AP', 'AP50', 'AP75'), [0.4545, 0.505, 0.505])
    """
    p = plan_evaluation(
        gt,
        dt,
        iou_type=iou_type,
        max_dets=max_dets,
        area_ranges=area_ranges,
        iou_thresholds=iou_thresholds,
        use_cats=use_cats,
        per_class_thresholds=per_class_thresholds,
    )
    # --- IoU on candidate pairs, keeping only pairs that can match at some threshold
    pair_iou = pair_iou_of(
        iou_type, gt.annotations, dt, p.g_take, p.d_take, p.g_crowd, p.g_area, sigmas
    )
    pair_d, pair_g, iou = _candidate_pairs(p.d_key, p.g_key, pair_iou, p.lowest)
    del pair_iou  # large at scale: gone before matching
    # COCOeval.accumulate, per class: each image's (sorted ids) rank-ordered list, then a
    # mergesort on -score; the detections are already in (image, rank) order
    matches = _greedy_match(
        pair_d,
        pair_g,
        iou,
        p.d_rank,
        p.d_class,
        p.threshold_table,
        p.g_ignore,
        p.g_crowd,
        p.g_void,
        np.take(p.d_outside, p.acc_order, axis=1),
        p.acc_order,
    )
    del pair_d, pair_g, iou
    return finish_evaluation(p, matches)


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    """What :func:`evaluate` settles before matching: COCOeval's objects, in its orders.

    The ground truths (``g_*``) and detections (``d_*``) COCOeval looks at (its ``imgIds``
    / ``catIds`` filters), with their sort keys (image, class group), ranks, areas, and the
    ignore / outside flags per area range; the matching and the accumulation read only
    these. :func:`labelgate.ml.distributed.evaluate_sharded` matches slices of them.
    """

    iou_type: str
    max_dets: tuple[int, ...]
    ranges: tuple[tuple[str, float, float], ...]
    class_ids: IntArray
    image_ids: IntArray
    use_cats: bool
    group_classes: int
    thresholds: FloatArray
    class_thresholds: FloatArray | None
    threshold_table: FloatArray  # (T, K), capped at 1 - 1e-10
    lowest: float
    g_take: IntArray
    g_key: IntArray
    g_class: IntArray
    g_crowd: BoolArray
    g_area: FloatArray
    g_ignore: BoolArray  # (A, G)
    g_void: BoolArray
    d_take: IntArray
    d_key: IntArray
    d_class: IntArray
    d_rank: IntArray
    d_score: FloatArray
    d_outside: BoolArray  # (A, D)
    acc_class: IntArray
    acc_order: IntArray


def plan_evaluation(
    gt: Dataset,
    dt: Annotations,
    *,
    iou_type: IouType = "bbox",
    max_dets: Sequence[int] | None = None,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    iou_thresholds: FloatArray | Sequence[float] | None = None,
    use_cats: bool = True,
    per_class_thresholds: FloatArray | None = None,
) -> EvaluationPlan:
    """The objects, orders and flags :func:`evaluate` matches (its parameters and errors)."""
    if iou_type not in ("bbox", "segm", "keypoints"):
        raise ValidationError(
            f"expected iou_type 'bbox', 'segm' or 'keypoints', got {iou_type!r}",
            field="iou_type",
        )
    keypoints = iou_type == "keypoints"
    default_dets = (20,) if keypoints else (1, 10, 100)
    max_dets = tuple(int(m) for m in (max_dets if max_dets is not None else default_dets))
    if area_ranges is None:
        area_ranges = COCO_KEYPOINT_AREA_RANGES if keypoints else COCO_AREA_RANGES
    ranges = tuple((str(name), float(lo), float(hi)) for name, (lo, hi) in area_ranges.items())
    class_ids = np.unique(gt.taxonomy.ids).astype(np.int64)
    image_ids = np.unique(gt.images.id).astype(np.int64)
    n_classes = len(class_ids)

    if per_class_thresholds is not None:
        class_thresholds = np.asarray(per_class_thresholds, dtype=np.float64).reshape(-1)
        if class_thresholds.shape != (n_classes,):
            raise ValidationError(
                f"expected one threshold per class ({n_classes}), got {class_thresholds.shape}",
                field="per_class_thresholds",
            )
        thresholds = np.array([np.nan])
        threshold_table = class_thresholds[None, :]  # (1, K)
    else:
        class_thresholds = None
        thresholds = np.asarray(
            iou_thresholds if iou_thresholds is not None else COCO_IOU_THRESHOLDS, dtype=np.float64
        ).reshape(-1)
        threshold_table = np.repeat(thresholds[:, None], max(n_classes, 1), axis=1)
    # COCOeval: ``iou = min([t, 1 - 1e-10])``
    threshold_table = np.minimum(threshold_table, 1 - 1e-10)

    # --- the objects COCOeval looks at (its imgIds / catIds filters), in its order
    g = gt.annotations
    g_take, g_key, g_class = _ground_truth_order(g, class_ids, image_ids, use_cats)
    g_crowd = g.iscrowd[g_take]
    g_area = g.area[g_take]
    d_take, d_key, d_class, d_rank, d_score, score_rank = _detection_order(
        dt, class_ids, image_ids, use_cats, max_dets[-1]
    )
    if iou_type == "segm":
        for side, container, rows in (("gt", g, g_take), ("dt", dt, d_take)):
            missing = np.flatnonzero(container.rle_counts.lengths[rows] == 0)
            if len(missing):
                raise ValidationError(
                    "expected an RLE mask on every row for segm (rasterize_polygons first)",
                    field=side,
                    row=int(rows[missing[0]]),
                )
        # the detection's own area: what COCO.loadRes sets, as the COCO results reader
        # stores it (the box's w * h when the records carry a bbox, else the mask's pixels)
        d_area = dt.area[d_take]
        unknown = np.flatnonzero(np.isnan(d_area))
        d_area[unknown] = _mask_area(dt.rle_counts, d_take[unknown])
    else:
        # COCO.loadRes replaces a result's area by the box's (w * h), whatever the file says
        # (column by column: no (D, 4) copy of the whole set)
        d_area = (dt.bbox[:, 2][d_take] - dt.bbox[:, 0][d_take]) * (
            dt.bbox[:, 3][d_take] - dt.bbox[:, 1][d_take]
        )

    lows = np.array([r[1] for r in ranges], dtype=np.float64)[:, None]
    highs = np.array([r[2] for r in ranges], dtype=np.float64)[:, None]
    g_flagged = g_crowd
    if keypoints:
        # COCOeval: ``gt['ignore'] = (gt['num_keypoints'] == 0) or gt['ignore']``
        labelled = g.keypoints.values[:, 2] > 0
        counts = np.bincount(g.keypoints.row_index(), weights=labelled, minlength=len(g))
        g_flagged = g_crowd | (counts[g_take] == 0)
    g_ignore = g_flagged[None, :] | (g_area[None, :] < lows) | (g_area[None, :] > highs)  # (A, G)
    d_outside = (d_area[None, :] < lows) | (d_area[None, :] > highs)  # (A, D)
    acc_class = d_class if use_cats else np.zeros_like(d_class)
    return EvaluationPlan(
        iou_type=iou_type,
        max_dets=max_dets,
        ranges=ranges,
        class_ids=class_ids,
        image_ids=image_ids,
        use_cats=use_cats,
        group_classes=n_classes if use_cats else 1,
        thresholds=thresholds,
        class_thresholds=class_thresholds,
        threshold_table=threshold_table,
        lowest=float(threshold_table.min()) if threshold_table.size else np.inf,
        g_take=g_take,
        g_key=g_key,
        g_class=g_class,
        g_crowd=g_crowd,
        g_area=g_area,
        g_ignore=g_ignore,
        # COCOeval stores the matched gt *id* and tests it for truth: a gt with id 0 counts
        # as no match at all (it is still taken); kept for exactness.
        g_void=g.id[g_take] == 0,
        d_take=d_take,
        d_key=d_key,
        d_class=d_class,
        d_rank=d_rank,
        d_score=d_score,
        d_outside=d_outside,
        acc_class=acc_class,
        # COCOeval.accumulate, per class: each image's (sorted ids) rank-ordered list, then
        # a mergesort on -score; the detections are already in (image, rank) order
        acc_order=_stable_order([acc_class, score_rank]),
    )


def pair_iou_of(
    iou_type: str,
    g: Annotations,
    dt: Annotations,
    g_take: IntArray,
    d_take: IntArray,
    g_crowd: BoolArray,
    g_area: FloatArray,
    sigmas: FloatArray | Mapping[int, FloatArray] = COCO_SIGMAS,
) -> _PairIou:
    """IoU (or OKS) of candidate pairs, positions into ``d_take`` / ``g_take``."""
    if iou_type == "segm":

        def segm(pair_d: IntArray, pair_g: IntArray) -> FloatArray:
            crowd = g_crowd[pair_g]
            return mask_iou_pairs(dt, d_take[pair_d], g, g_take[pair_g], crowd_b=crowd)

        return segm
    if iou_type == "keypoints":

        def oks(pair_d: IntArray, pair_g: IntArray) -> FloatArray:
            # COCOeval.computeOks ignores iscrowd; crowds still absorb detections when matching
            rows_d, rows_g = d_take[pair_d], g_take[pair_g]
            return oks_pairs(dt, rows_d, g, rows_g, sigmas=sigmas, area=g_area[pair_g])

        return oks
    # boxes column by column: no (D, 4) copies of the whole set
    d_columns = [dt.bbox[:, i][d_take] for i in range(4)]
    g_columns = [g.bbox[:, i][g_take] for i in range(4)]
    return _BoxIou(d_columns, g_columns, g_crowd)


def finish_evaluation(p: EvaluationPlan, matches: _Matches) -> Evaluation:
    """Accumulate the matches (in ``p.acc_order``) and summarize, as COCOeval does."""
    g_group_class = p.g_class if p.use_cats else np.zeros_like(p.g_class)
    npig = np.stack(  # (K, A) regular (non-ignored) ground truths per class and area range
        [
            np.bincount(g_group_class, weights=~p.g_ignore[a], minlength=p.group_classes)
            for a in range(len(p.ranges))
        ],
        axis=1,
    ).astype(np.int64)
    order = p.acc_order
    precision, recall, scores = _accumulate(
        matches,
        p.d_score[order],
        p.acc_class[order],
        p.d_rank[order],
        npig,
        p.max_dets,
        p.group_classes,
    )
    if p.iou_type == "keypoints":
        stats, names = _summarize_keypoints(precision, recall, p.thresholds, p.ranges, p.max_dets)
    else:
        stats, names = _summarize(precision, recall, p.thresholds, p.ranges, p.max_dets)
    return Evaluation(
        iou_type=p.iou_type,
        stats=stats,
        stats_names=names,
        precision=precision,
        recall=recall,
        scores=scores,
        class_ids=p.class_ids if p.use_cats else np.array([-1], dtype=np.int64),
        iou_thresholds=p.thresholds,
        class_thresholds=p.class_thresholds,
        recall_thresholds=COCO_RECALL_THRESHOLDS.copy(),
        area_ranges=p.ranges,
        max_dets=p.max_dets,
        images=len(p.image_ids),
        gt=len(p.g_take),
        dt=len(p.d_take),
    )


def _ground_truth_order(
    g: Annotations, class_ids: IntArray, image_ids: IntArray, use_cats: bool
) -> tuple[IntArray, IntArray, IntArray]:
    """The ground truths COCOeval evaluates, in its order -> (rows, group key, class index).

    COCO's order inside an (image, class) group is file order; with ``use_cats=False`` the
    group is the image and its list is built class by class (sorted ids), then file order.
    """
    rows = np.flatnonzero(g.kind != Kind.TAG)  # columns only: no container rebuilt
    g_class = _lookup(class_ids, g.class_id[rows])  # the Dataset knows them all
    key = _lookup(image_ids, g.image_id[rows])
    if use_cats:
        key *= len(class_ids)
        key += g_class
        order = _stable_order([key])
    else:
        order = _stable_order([key, g_class])
    return rows[order], key[order], g_class[order]


def _detection_order(
    dt: Annotations, class_ids: IntArray, image_ids: IntArray, use_cats: bool, max_det: int
) -> tuple[IntArray, IntArray, IntArray, IntArray, FloatArray, IntArray]:
    """The detections COCOeval evaluates, in its order.

    Rows on classes or images outside the evaluation are dropped; the rest are sorted by
    (image, class) group, then as COCOeval's per-group ``argsort(-score, kind="mergesort")``
    (file order among equal scores; class first when classes are pooled), and only the
    first ``max_det`` of each group are kept.

    Returns
    -------
    tuple
        ``(rows, group key, class index, rank in group, score, dense rank of -score)``.
    """
    d_class = _lookup(class_ids, dt.class_id)
    key = _lookup(image_ids, dt.image_id)
    rows = np.flatnonzero((d_class >= 0) & (key >= 0) & (dt.kind != Kind.TAG))
    score = dt.score[rows]
    if np.isnan(score).any():
        row = int(rows[np.flatnonzero(np.isnan(score))[0]])
        raise ValidationError("expected a score on every detection", field="score", row=row)
    d_class, key = d_class[rows], key[rows]
    if use_cats:
        key *= len(class_ids)
        key += d_class
    score_rank = _score_rank(score)
    order = _stable_order([key, score_rank] if use_cats else [key, score_rank, d_class])
    key = key[order]
    starts = _segment_starts(key)
    sizes = np.diff(np.r_[starts, len(key)])
    rank = np.arange(len(key)) - np.repeat(starts, sizes)
    if len(rank) and int(sizes.max()) > max_det:
        within = np.flatnonzero(rank < max_det)
        order, key, rank = order[within], key[within], rank[within]
    return rows[order], key, d_class[order], rank, score[order], score_rank[order]


def _segment_starts(keys: IntArray) -> IntArray:
    """Positions where a sorted key array changes value (always including 0 when non-empty)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]).astype(np.int64)


def _lookup(ids: IntArray, values: IntArray) -> IntArray:
    """Position of each value in the sorted unique ``ids``; -1 where it is absent.

    A lookup table when the ids are compact enough (a gather instead of a binary search
    per value), ``searchsorted`` otherwise.
    """
    values = np.asarray(values, dtype=np.int64)
    if len(ids) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    low, high = int(ids[0]), int(ids[-1])
    if high - low < 4 * (len(ids) + len(values)) + 1024:
        table = np.full(high - low + 2, -1, dtype=np.int64)  # the last cell: out of range
        table[ids - low] = np.arange(len(ids))
        shifted = values - low
        shifted[(shifted < 0) | (shifted > high - low)] = high - low + 1
        return table[shifted]
    position = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    return np.where(ids[position] == values, position, -1)


def _score_rank(score: FloatArray) -> IntArray:
    """Dense rank of ``-score``: 0 for the highest score; equal scores share a rank."""
    n = len(score)
    rank = np.zeros(n, dtype=np.int64)
    if n == 0:
        return rank
    negative = -score
    by_score = np.argsort(negative)  # not stable: equal scores get one rank below anyway
    ordered = negative[by_score]
    step = np.zeros(n, dtype=np.int64)
    step[1:] = ordered[1:] != ordered[:-1]
    rank[by_score] = np.cumsum(step)
    return rank


def _stable_order(keys: Sequence[IntArray]) -> IntArray:
    """Stable argsort by non-negative int ``keys`` (the first the most significant).

    The keys and the row index are packed into one int64 when they fit: all values are
    then distinct, so numpy's plain (SIMD) sort of the values gives the stable order, an
    order of magnitude faster than ``np.lexsort`` or a stable argsort.
    """
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = max(1, (n - 1).bit_length())
    spans = [int(key.max()) + 1 for key in keys]
    if math.prod(spans) < 2 ** (63 - bits):
        packed = np.array(keys[0], dtype=np.int64)
        for key, span in zip(keys[1:], spans[1:]):
            packed *= span
            packed += key
        packed <<= bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        packed &= (1 << bits) - 1
        return packed
    return np.lexsort(tuple(keys[::-1]))


class _PairIou(Protocol):
    def __call__(self, pair_d: IntArray, pair_g: IntArray) -> FloatArray: ...


class _BoxIou:
    """Box IoU of (detection, ground truth) pairs with COCO's crowd rule, on flat columns.

    The same floating-point expressions as pycocotools' ``bbIou`` on xyxy boxes (see
    :func:`~labelgate.core.iou.box_iou_pairs_crowd`): ``inter / (area_d + area_g - inter)``,
    ``inter / area_d`` against a crowd, 0 without overlap. Pairs whose boxes do not overlap
    along x are given 0 without reading their y coordinates.
    """

    def __init__(self, d: list[FloatArray], g: list[FloatArray], g_crowd: BoolArray) -> None:
        self.d, self.g = d, g  # x1, y1, x2, y2 columns
        self.d_area = (d[2] - d[0]) * (d[3] - d[1])
        self.g_area = (g[2] - g[0]) * (g[3] - g[1])
        self.g_crowd = g_crowd
        self.any_crowd = bool(g_crowd.any())

    def __call__(self, pair_d: IntArray, pair_g: IntArray) -> FloatArray:
        (dx1, dy1, dx2, dy2), (gx1, gy1, gx2, gy2) = self.d, self.g
        width = np.minimum(dx2[pair_d], gx2[pair_g])
        width -= np.maximum(dx1[pair_d], gx1[pair_g])
        overlap = np.flatnonzero(width > 0)
        rows_d, rows_g = pair_d[overlap], pair_g[overlap]
        height = np.minimum(dy2[rows_d], gy2[rows_g])
        height -= np.maximum(dy1[rows_d], gy1[rows_g])
        inside = np.flatnonzero(height > 0)
        overlap, rows_d, rows_g = overlap[inside], rows_d[inside], rows_g[inside]
        inter = width[overlap] * height[inside]
        union = self.d_area[rows_d] + self.g_area[rows_g] - inter
        if self.any_crowd:
            crowd = self.g_crowd[rows_g]
            union[crowd] = self.d_area[rows_d[crowd]]
        out = np.zeros(len(pair_d), dtype=np.float64)
        out[overlap] = inter / union
        return out


#: pairs measured per block: the block's temporaries (~0.5 MB each) stay in the CPU cache,
#: which made box IoU ~25% faster than 1M-pair blocks
_PAIR_CHUNK = 1 << 16


def _candidate_pairs(
    d_key: IntArray, g_key: IntArray, pair_iou: _PairIou, lowest: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every (detection, ground truth) pair of a group with IoU >= ``lowest``.

    ``d_key`` and ``g_key`` are sorted, so each detection's candidates are one contiguous
    range of ground truths. The cross products are built and measured about
    ``_PAIR_CHUNK`` pairs at a time, and only the pairs that can match are kept: memory
    stays bounded by the chunk, not by the number of candidate pairs.

    Returns
    -------
    tuple
        ``(pair_d, pair_g, iou)``, each (p,), in (detection, ground truth) order.
    """
    start = np.searchsorted(g_key, d_key, side="left")
    counts = np.searchsorted(g_key, d_key, side="right") - start
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    cuts = np.searchsorted(ends, np.arange(_PAIR_CHUNK, total, _PAIR_CHUNK), side="left")
    edges = np.unique(np.r_[0, cuts, len(d_key)]).tolist() if total else [0]
    parts_d, parts_g, parts_iou = [], [], []
    for lo, hi in itertools.pairwise(edges):
        size = counts[lo:hi]
        # position of each pair inside its detection's range, plus the range's start
        shift = start[lo:hi] - (ends[lo:hi] - size) + (int(ends[lo]) - int(size[0]))
        pair_g = np.repeat(shift, size)
        pair_g += np.arange(len(pair_g))
        pair_d = np.repeat(np.arange(lo, hi, dtype=np.int64), size)
        iou = pair_iou(pair_d, pair_g)
        keep = np.flatnonzero(iou >= lowest)
        parts_d.append(pair_d[keep])
        parts_g.append(pair_g[keep])
        parts_iou.append(iou[keep])
    if not parts_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return np.concatenate(parts_d), np.concatenate(parts_g), np.concatenate(parts_iou)


@dataclass(frozen=True, slots=True, eq=False)
class _Matches:
    """Every detection's matching outcome, in accumulation order: A area ranges, D detections.

    An uncontested detection's outcome at every threshold follows from two counts: it
    matches a regular ground truth at threshold t where ``rank[t] < regular``, else an
    ignored one where ``rank[t] < ignored`` (``rank`` places each threshold in ascending
    order). Contested detections carry their outcome per threshold instead. Counts and
    flags are (A, D) small integers, not (A, T, D) arrays.
    """

    regular: AnyArray  # (A, D) unsigned: thresholds passed by the best regular candidate
    ignored: AnyArray  # (A, D) the same for the best ignored candidate
    void: BoolArray | None  # (A, D) the regular candidate has id 0; None when no gt has
    outside: BoolArray  # (A, D) the detection's area is outside the range
    rank: IntArray  # (T,)
    contested: IntArray  # (c,) positions of the contested detections
    contested_tp: BoolArray  # (c, A, T)
    contested_counted: BoolArray  # (c, A, T)

    def counted_somewhere(self, a: int) -> BoolArray:
        """(D,) detections counted (not ignored) at one threshold at least, area ``a``."""
        # inside the range: counted unless matched to an ignored gt at every threshold;
        # outside it: counted only where a true positive
        matched = self.regular[a] > 0
        positive = matched if self.void is None else matched & ~self.void[a]
        some: BoolArray = np.where(
            self.outside[a], positive, matched | (self.ignored[a] < len(self.rank))
        )
        some[self.contested] = self.contested_counted[:, a, :].any(axis=1)
        return some


def _greedy_match(
    pair_d: IntArray,
    pair_g: IntArray,
    iou: FloatArray,
    d_rank: IntArray,
    d_class: IntArray,
    threshold_table: FloatArray,
    g_ignore: BoolArray,
    g_crowd: BoolArray,
    g_void: BoolArray,
    outside: BoolArray,
    out_order: IntArray,
) -> _Matches:
    """COCOeval's greedy matching for every area range and threshold -> :class:`_Matches`.

    ``pair_d, pair_g`` are in (group, detection rank, gt) order; ``threshold_table`` is
    (T, K), the same thresholds for every class or one threshold per class (T = 1).
    ``outside`` (A, D) and the result are in ``out_order``.

    A detection none of whose non-crowd candidates is a candidate of a better-ranked
    detection cannot find one taken: it takes its best candidate by (tier, IoU, order), the
    same at every threshold that candidate passes, which is what the counts record. Only
    the remaining, contested detections go through rounds, one detection rank per round;
    within a rank every detection belongs to a different (image, class) group, so a round
    resolves all of them.
    """
    n_area, n_gt = g_ignore.shape
    n_dt = len(d_rank)
    n_thr = threshold_table.shape[0]
    count_type = np.uint8 if n_thr < 255 else np.int64
    if (threshold_table == threshold_table[:, :1]).all():
        ascending = np.sort(threshold_table[:, 0])
        pair_count = np.searchsorted(ascending, iou, side="right").astype(count_type)
        rank = np.empty(n_thr, dtype=np.int64)
        rank[np.argsort(threshold_table[:, 0], kind="stable")] = np.arange(n_thr)
    elif n_thr == 1:  # one threshold per class
        pair_count = (iou >= threshold_table[0, d_class[pair_d]]).astype(count_type)
        rank = np.zeros(1, dtype=np.int64)
    else:
        raise ValueError("per-class thresholds come one per class")  # not reachable
    slot = np.empty(n_dt, dtype=np.int64)  # each detection's place in out_order
    slot[out_order] = np.arange(n_dt)
    regular = np.zeros((n_area, n_dt), dtype=count_type)
    ignored = np.zeros((n_area, n_dt), dtype=count_type)
    any_void = bool(g_void.any())
    void = np.zeros((n_area, n_dt), dtype=bool) if any_void else None
    no_contest = np.zeros((0, n_area, n_thr), dtype=bool)
    if len(pair_d) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Matches(regular, ignored, void, outside, rank, empty, no_contest, no_contest)

    pair_rank = d_rank[pair_d]
    first_rank = np.full(n_gt, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_rank, pair_g, pair_rank)
    contested_pair = (pair_rank > first_rank[pair_g]) & ~g_crowd[pair_g]
    contested_det = np.zeros(n_dt, dtype=bool)
    contested_det[pair_d[contested_pair]] = True
    contested = contested_det[pair_d]

    # --- uncontested detections: the best candidate per tier, as a threshold count
    taken_cells: list[tuple[IntArray, IntArray]] = []
    if not contested.all():
        direct = ~contested
        wanted = np.zeros(n_gt, dtype=bool)
        wanted[pair_g[contested]] = True
        cells = _uncontested(
            _Outcome(regular, ignored, void, rank),
            slot[pair_d[direct]],
            pair_g[direct],
            iou[direct],
            pair_count[direct],
            g_ignore,
            g_void,
            wanted,
        )
        taken_cells.append(cells)

    # --- contested detections: one rank per round, reading what better ranks took
    c_dets = np.flatnonzero(contested_det)
    if len(c_dets) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Matches(regular, ignored, void, outside, rank, empty, no_contest, no_contest)
    c_tp, c_counted = _contested_rounds(
        pair_d[contested],
        pair_g[contested],
        iou[contested],
        pair_rank[contested],
        c_dets,
        d_class,
        threshold_table,
        g_ignore,
        g_crowd,
        g_void if any_void else None,
        np.take(outside, slot[c_dets], axis=1),
        taken_cells,
    )
    return _Matches(regular, ignored, void, outside, rank, slot[c_dets], c_tp, c_counted)


@dataclass(frozen=True, slots=True, eq=False)
class _Outcome:
    """The arrays :func:`_uncontested` fills in (see :class:`_Matches`)."""

    regular: AnyArray
    ignored: AnyArray
    void: BoolArray | None
    rank: IntArray


def _uncontested(
    out: _Outcome,
    places: IntArray,
    gts: IntArray,
    iou: FloatArray,
    counts: AnyArray,
    g_ignore: BoolArray,
    g_void: BoolArray,
    wanted: BoolArray,
) -> tuple[IntArray, IntArray]:
    """Match the uncontested detections: each takes its best candidate by (tier, IoU, order).

    The pairs (their detections' ``places`` in the output order, ``gts``, ``iou`` and the
    number of thresholds each IoU passes, ``counts``) are grouped by detection. Fills
    ``out`` and returns the (gt, area * T + threshold) cells taken of the ``wanted``
    ground truths, the ones a contested detection may also want.
    """
    n_area = g_ignore.shape[0]
    n_thr = len(out.rank)
    segments = _Segments(_segment_starts(places), len(places))
    owner = places[segments.starts]
    pair_ignored = np.take(g_ignore, gts, axis=1)  # (A, p)
    seg_regular = np.zeros((n_area, segments.count), dtype=counts.dtype)
    seg_ignored = np.zeros_like(seg_regular)
    zero = counts.dtype.type(0)
    for a in range(n_area):
        # the count is monotone in the IoU: the best IoU's count is the largest count
        seg_regular[a] = segments.maximum(np.where(pair_ignored[a], zero, counts))
        seg_ignored[a] = segments.maximum(np.where(pair_ignored[a], counts, zero))
        out.regular[a, owner] = seg_regular[a]
        out.ignored[a, owner] = seg_ignored[a]
    relevant = np.flatnonzero(np.logical_or.reduceat(wanted[gts], segments.starts))
    which = relevant if out.void is None else np.arange(segments.count)
    if len(which) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    regular_gt = segments.winners(iou, ~pair_ignored, gts, which)
    ignored_gt = segments.winners(iou, pair_ignored, gts, which)
    if out.void is not None:
        for a in range(n_area):
            out.void[a, owner] = g_void[regular_gt[a]] & (regular_gt[a] >= 0)
        regular_gt, ignored_gt = regular_gt[:, relevant], ignored_gt[:, relevant]
    passed = out.rank[None, :, None]
    chosen = np.where(
        seg_regular[:, None, relevant] > passed,
        regular_gt[:, None, :],
        np.where(seg_ignored[:, None, relevant] > passed, ignored_gt[:, None, :], -1),
    ).reshape(n_area * n_thr, -1)  # (A * T, r)
    # only the wanted ground truths are tracked through the rounds
    combo, column = np.nonzero((chosen >= 0) & wanted[np.maximum(chosen, 0)])
    return chosen[combo, column], combo


def _contested_rounds(
    pair_d: IntArray,
    pair_g: IntArray,
    iou: FloatArray,
    pair_rank: IntArray,
    c_dets: IntArray,
    d_class: IntArray,
    threshold_table: FloatArray,
    g_ignore: BoolArray,
    g_crowd: BoolArray,
    g_void: BoolArray | None,
    c_outside: BoolArray,
    taken_cells: list[tuple[IntArray, IntArray]],
) -> tuple[BoolArray, BoolArray]:
    """COCOeval's matching of the contested detections -> (tp, counted), each (c, A, T).

    One round per detection rank. The arrays hold one row per pair or ground truth and one
    column per (area, threshold): reductions over pairs run down axis 0, where numpy
    vectorizes over the columns. ``taken_cells`` are (gt, column) cells already taken by
    uncontested detections, of ground truths of the pairs: only those are tracked.
    """
    n_area = g_ignore.shape[0]
    n_thr = threshold_table.shape[0]
    n_combo = n_area * n_thr
    wanted = np.unique(pair_g)
    row_of = np.zeros(int(wanted[-1]) + 1, dtype=np.int64)
    row_of[wanted] = np.arange(len(wanted))
    taken = np.zeros((len(wanted), n_combo), dtype=bool)
    flat_taken = taken.reshape(-1)
    for gts, combos in taken_cells:  # all of them among the wanted
        flat_taken[row_of[gts] * n_combo + combos] = True
    order = np.argsort(pair_rank, kind="stable")  # (group, det, gt) within each rank
    pair_d, pair_g, iou, ranks = pair_d[order], pair_g[order], iou[order], pair_rank[order]
    pair_slot = row_of[pair_g]  # each pair's row in ``taken``
    column = np.zeros(int(c_dets[-1]) + 1, dtype=np.int64)
    column[c_dets] = np.arange(len(c_dets))
    match = np.full((len(c_dets), n_area, n_thr), -1, dtype=np.int64)
    flat_match = match.reshape(-1)
    eligible = iou[:, None] >= threshold_table[:, d_class[pair_d]].T  # (P, T)
    pair_ignored = np.take(g_ignore, pair_g, axis=1).T[:, :, None]  # (P, A, 1)
    pair_crowd = g_crowd[pair_g]
    bounds = np.flatnonzero(np.r_[True, ranks[1:] != ranks[:-1], True])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        dets = pair_d[lo:hi]
        seg = _segment_starts(dets)
        seg_of = np.cumsum(np.r_[False, dets[1:] != dets[:-1]])
        free = ~taken[pair_slot[lo:hi]].reshape(-1, n_area, n_thr)
        free |= pair_crowd[lo:hi, None, None]
        free &= eligible[lo:hi, None, :]  # (p, A, T)
        ignored_now = pair_ignored[lo:hi]
        regular = free & ~ignored_now
        any_regular = np.logical_or.reduceat(regular, seg, axis=0)  # (s, A, T)
        tier = np.where(any_regular[seg_of], regular, free & ignored_now)
        key = np.where(tier, iou[lo:hi, None, None], -np.inf)
        best_now = np.maximum.reduceat(key, seg, axis=0)
        winner = tier & (key == best_now[seg_of])
        position = np.maximum.reduceat(
            np.where(winner, np.arange(hi - lo)[:, None, None], -1), seg, axis=0
        ).reshape(len(seg), n_combo)
        which, combo = np.nonzero(position >= 0)
        won_pair = position[which, combo] + lo
        won = pair_g[won_pair]
        flat_taken[pair_slot[won_pair] * n_combo + combo] = True
        flat_match[column[dets[seg[which]]] * n_combo + combo] = won
    # COCOeval's dtm / dtIg, from the matched gt
    matched = match >= 0
    safe = np.maximum(match, 0)
    has_match = matched & ~g_void[safe] if g_void is not None else matched
    area_index = np.arange(n_area)[None, :, None]
    ignored_dt = (matched & g_ignore.T[safe, area_index]) | (~has_match & c_outside.T[:, :, None])
    return has_match & ~ignored_dt, ~ignored_dt


class _Segments:
    """Consecutive segments of a pair list (``starts``), most of them one pair long."""

    def __init__(self, starts: IntArray, n_pairs: int) -> None:
        self.starts = starts
        self.count = len(starts)
        sizes = np.diff(np.r_[starts, n_pairs])
        self.multi = np.flatnonzero(sizes > 1)
        lengths = sizes[self.multi]
        #: the pairs of the longer segments, and where each one starts among them
        self.sub_starts = np.cumsum(lengths) - lengths
        self.rows = np.repeat(starts[self.multi] - self.sub_starts, lengths)
        self.rows += np.arange(len(self.rows))

    def maximum(self, values: AnyArray) -> AnyArray:
        """(count,) the maximum of ``values`` (p,) over each segment."""
        out = values[self.starts]
        if len(self.multi):
            out[self.multi] = np.maximum.reduceat(values[self.rows], self.sub_starts)
        return out

    def winners(
        self, values: FloatArray, tier: BoolArray, gts: IntArray, which: IntArray
    ) -> IntArray:
        """(A, len(which)): per row of ``tier`` (A, p), the gt of the best value in the tier.

        Ties go to the last pair (COCOeval's ``iou >= best`` replaces its pick); -1 where no
        pair of the segment is in the tier.
        """
        sizes = np.diff(np.r_[self.starts, len(values)])[which]
        sub_starts = np.cumsum(sizes) - sizes
        rows = np.repeat(self.starts[which] - sub_starts, sizes)
        rows += np.arange(len(rows))
        owner = np.repeat(np.arange(len(which)), sizes)
        sub_values, sub_gts = values[rows], gts[rows]
        out = np.full((len(tier), len(which)), -1, dtype=np.int64)
        for a, row_tier in enumerate(np.take(tier, rows, axis=1)):
            key = np.where(row_tier, sub_values, -np.inf)
            best = np.maximum.reduceat(key, sub_starts)
            hit = row_tier & (key == best[owner])
            last = np.maximum.reduceat(np.where(hit, np.arange(len(rows)), -1), sub_starts)
            out[a] = np.where(last >= 0, sub_gts[np.maximum(last, 0)], -1)
        return out


def _accumulate(
    matches: _Matches,
    score: FloatArray,
    d_class: IntArray,
    d_rank: IntArray,
    npig: IntArray,
    max_dets: tuple[int, ...],
    n_classes: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """COCOeval.accumulate on flat arrays -> precision (T,R,K,A,M), recall (T,K,A,M), scores.

    The detections come in COCOeval's accumulation order: by class, then (-score, image,
    rank). Each (area, threshold) row of true positives and counted (not ignored)
    detections is built from ``matches`` when it is needed, on the detections that the
    max-detections setting keeps and that count somewhere.

    Precision only rises at a true positive, so the max envelope ``max(pr[i:])`` at a
    recall threshold is the max over the true positives from the one that reaches it: the
    arithmetic runs on true-positive events, not on every detection. At a true positive the
    counts are ``tp`` = its rank among the class's true positives and ``fp + tp`` = its rank
    among the class's counted detections, so ``pr = tp / (fp + tp + eps)`` needs no
    cumulative sum where every detection counts (area "all" without crowds).
    """
    n_area = matches.outside.shape[0]
    n_thr = len(matches.rank)
    rec_thr = COCO_RECALL_THRESHOLDS
    n_rec = len(rec_thr)
    precision = np.full((n_thr, n_rec, n_classes, n_area, len(max_dets)), -1.0)
    recall = np.full((n_thr, n_classes, n_area, len(max_dets)), -1.0)
    scores = np.full_like(precision, -1.0)
    need = _recall_need(npig)  # (K, A, R)
    classes = np.arange(n_classes + 1)
    eps = np.spacing(1)
    # per max-detections setting: the detections it keeps and each class's first score
    settings = []
    for max_det in max_dets:
        kept = d_rank < max_det
        bounds = np.searchsorted(d_class[kept], classes)  # (K + 1,)
        has_dets = bounds[1:] > bounds[:-1]
        top_score = np.where(has_dets, np.r_[score[kept], 0.0][bounds[:-1]], 0.0)  # (K,)
        settings.append((kept, has_dets, top_score))
    for a in range(n_area):
        valid = npig[:, a] > 0
        # detections ignored at every threshold only shift positions: leave them out
        some = matches.counted_somewhere(a)
        count = np.maximum(need[:, a, :], 1)  # (K, R): events to reach each threshold
        for m, (kept, has_dets, top_score) in enumerate(settings):
            rows = _RowMaker(matches, a, kept & some)
            a_cls, a_scores = rows.take(d_class), rows.take(score)
            a_bounds = np.searchsorted(a_cls, classes)
            first = a_bounds[:-1]
            for t in range(n_thr):
                tp_row, row_counted = rows.make(t)
                events: IntArray = np.flatnonzero(tp_row)
                n_events = len(events)
                event_bounds = np.searchsorted(events, a_bounds)  # (K + 1,)
                event_start, event_end = event_bounds[:-1], event_bounds[1:]
                total_tp = event_end - event_start  # (K,)
                with np.errstate(divide="ignore", invalid="ignore"):
                    rc_last = total_tp / npig[:, a]
                recall[t, :, a, m] = np.where(valid, np.where(has_dets, rc_last, 0.0), -1.0)
                # fp + tp at an event: its rank among the class's counted detections
                seen: IntArray
                if row_counted is None:  # all count: its position in the class, plus one
                    seen = events - np.repeat(first - 1, total_tp)
                else:
                    running = np.cumsum(row_counted, dtype=np.int64)
                    before = np.zeros(n_classes, dtype=np.int64)
                    later = first > 0
                    before[later] = running[first[later] - 1]
                    seen = running[events]
                    seen -= np.repeat(before, total_tp)
                tp = np.arange(1, n_events + 1)
                tp -= np.repeat(event_start, total_tp)
                pr = np.empty(n_events + 1)  # one more, 0, for the chunk bounds at the end
                np.divide(tp, seen + eps, out=pr[:n_events])
                pr[n_events] = 0.0
                # recall threshold r is reached at the count-th event (need 0: the first)
                inside = count <= total_tp[:, None]  # (K, R)
                start = np.minimum(event_start[:, None] + count - 1, event_end[:, None])
                # max(pr[start_r:end]) as the max over chunks [start_r, start_r+1) ... [.., end)
                chunk_bounds = np.concatenate([start, event_end[:, None]], axis=1)  # (K, R+1)
                chunk = np.maximum.reduceat(pr, chunk_bounds.ravel())
                chunk = chunk.reshape(n_classes, n_rec + 1)[:, :-1]
                chunk = np.where(chunk_bounds[:, 1:] > chunk_bounds[:, :-1], chunk, 0.0)
                envelope = np.maximum.accumulate(chunk[:, ::-1], axis=1)[:, ::-1]
                q = np.where(inside, envelope, 0.0)
                ss = np.zeros_like(q)
                if n_events:
                    reached = events[np.minimum(start, n_events - 1)]
                    ss = np.where(inside, a_scores[reached], 0.0)
                ss = np.where(need[:, a, :] == 0, top_score[:, None], ss)
                precision[t, :, :, a, m] = np.where(valid[:, None], q, -1.0).T
                scores[t, :, :, a, m] = np.where(valid[:, None], ss, -1.0).T
    return precision, recall, scores


class _RowMaker:
    """One area range's (tp, counted) rows at each threshold, on a subset of detections.

    Folded into three counts per detection so that a row costs two or three comparisons:
    a true positive where ``rank[t] < positive``; counted (not ignored) where
    ``rank[t] < kept`` or ``rank[t] >= dropped``, ``dropped`` being where an unmatched
    detection inside the range starts to count again (never, outside the range).
    """

    def __init__(self, matches: _Matches, a: int, columns: BoolArray) -> None:
        self.columns = None if columns.all() else np.flatnonzero(columns)
        regular = self.take(matches.regular[a])
        outside = self.take(matches.outside[a])
        n_thr = len(matches.rank)
        # outside the range an unmatched detection is ignored at every threshold
        self.dropped = np.where(outside, n_thr, self.take(matches.ignored[a]))
        if matches.void is None:
            self.positive = self.kept = regular
        else:
            # a match with gt id 0 is no match: ignored outside the range, else counted
            void = self.take(matches.void[a])
            zero = regular.dtype.type(0)
            self.positive = np.where(void, zero, regular)
            self.kept = np.where(void & outside, zero, regular)
        self.rank = matches.rank
        # the contested detections among the columns, and their place there
        contested = matches.contested
        if self.columns is not None:
            inside = columns[contested]
            self.places = np.searchsorted(self.columns, contested[inside])
            self.contested_tp = matches.contested_tp[inside, a, :]
            self.contested_counted = matches.contested_counted[inside, a, :]
        else:
            self.places = contested
            self.contested_tp = matches.contested_tp[:, a, :]
            self.contested_counted = matches.contested_counted[:, a, :]
        #: every detection counts at every threshold (area "all" without crowds)
        self.all_counted = not self.dropped.any() and bool(self.contested_counted.all())

    def take(self, values: AnyArray) -> AnyArray:
        """``values`` (D,) on the columns."""
        return values if self.columns is None else np.take(values, self.columns)

    def make(self, t: int) -> tuple[BoolArray, BoolArray | None]:
        """(tp, counted) at threshold ``t``: COCOeval's ``dtm != 0 & ~dtIg`` and ``~dtIg``.

        ``counted`` is None where every detection counts.
        """
        rank = self.rank[t]
        tp = self.positive > rank
        counted = None
        if not self.all_counted:
            counted = self.kept > rank if self.kept is not self.positive else tp.copy()
            counted |= self.dropped <= rank
            counted[self.places] = self.contested_counted[:, t]
        tp[self.places] = self.contested_tp[:, t]
        return tp, counted


def _recall_need(npig: IntArray) -> IntArray:
    """(K, A, R): the smallest true-positive count whose recall reaches each threshold.

    ``searchsorted(tp / npig, recThrs)`` in floating point: fl(x / n) is monotone in x, so
    a search on recall is a search on tp counts; candidates around ``floor(r * n)`` are
    tested with COCOeval's own division. Unreachable thresholds get a huge count.
    """
    rec_thr = COCO_RECALL_THRESHOLDS
    base = np.floor(rec_thr[None, None, :] * npig[:, :, None]).astype(np.int64) - 2
    need = np.full(base.shape, np.iinfo(np.int64).max // 4, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for step in range(4, -1, -1):
            candidate = np.maximum(base + step, 0)
            reached = candidate / npig[:, :, None] >= rec_thr[None, None, :]
            need = np.where(reached, candidate, need)
    return need


def _summarize(
    precision: FloatArray,
    recall: FloatArray,
    thresholds: FloatArray,
    ranges: tuple[tuple[str, float, float], ...],
    max_dets: tuple[int, ...],
) -> tuple[FloatArray, tuple[str, ...]]:
    """COCOeval.summarize's 12 numbers (``_summarizeDets``), same selections, same means."""
    big = max_dets[2] if len(max_dets) > 2 else max_dets[-1]
    small = max_dets[0]
    middle = max_dets[1] if len(max_dets) > 1 else max_dets[-1]
    rows: list[tuple[str, bool, float | None, str, int]] = [
        ("AP", True, None, "all", 100),  # COCOeval hard-codes 100 here (-1 without it)
        ("AP50", True, 0.5, "all", big),
        ("AP75", True, 0.75, "all", big),
        ("AP_small", True, None, "small", big),
        ("AP_medium", True, None, "medium", big),
        ("AP_large", True, None, "large", big),
        (f"AR{small}", False, None, "all", small),
        (f"AR{middle}", False, None, "all", middle),
        (f"AR{big}", False, None, "all", big),
        ("AR_small", False, None, "small", big),
        ("AR_medium", False, None, "medium", big),
        ("AR_large", False, None, "large", big),
    ]
    return _summary(precision, recall, thresholds, ranges, max_dets, rows)


def _summarize_keypoints(
    precision: FloatArray,
    recall: FloatArray,
    thresholds: FloatArray,
    ranges: tuple[tuple[str, float, float], ...],
    max_dets: tuple[int, ...],
) -> tuple[FloatArray, tuple[str, ...]]:
    """COCOeval.summarize's 10 keypoint numbers (``_summarizeKps``), at ``maxDets=20``."""
    rows: list[tuple[str, bool, float | None, str, int]] = [
        ("AP", True, None, "all", 20),
        ("AP50", True, 0.5, "all", 20),
        ("AP75", True, 0.75, "all", 20),
        ("AP_medium", True, None, "medium", 20),
        ("AP_large", True, None, "large", 20),
        ("AR", False, None, "all", 20),
        ("AR50", False, 0.5, "all", 20),
        ("AR75", False, 0.75, "all", 20),
        ("AR_medium", False, None, "medium", 20),
        ("AR_large", False, None, "large", 20),
    ]
    return _summary(precision, recall, thresholds, ranges, max_dets, rows)


def _summary(
    precision: FloatArray,
    recall: FloatArray,
    thresholds: FloatArray,
    ranges: tuple[tuple[str, float, float], ...],
    max_dets: tuple[int, ...],
    rows: list[tuple[str, bool, float | None, str, int]],
) -> tuple[FloatArray, tuple[str, ...]]:
    """COCOeval.summarize's ``_summarize`` for each (name, ap, iou, area, max_det) row."""
    labels = [r[0] for r in ranges]

    def one(ap: bool, iou: float | None, area: str, max_det: int) -> float:
        a_index = [i for i, label in enumerate(labels) if label == area]
        m_index = [i for i, m in enumerate(max_dets) if m == max_det]
        s: Any = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == thresholds)[0]]
        s = s[:, :, :, a_index, m_index] if ap else s[:, :, a_index, m_index]
        kept = s[s > -1]
        return -1.0 if len(kept) == 0 else float(np.mean(kept))

    stats = np.array([one(ap, iou, area, m) for _, ap, iou, area, m in rows], dtype=np.float64)
    return stats, tuple(r[0] for r in rows)


def _mask_area(rle: Ragged, rows: IntArray) -> FloatArray:
    """Foreground pixels (the odd runs) of the RLE masks of ``rows`` -> (len(rows),)."""
    lengths = rle.lengths[rows]
    flat = np.repeat(rle.offsets[:-1][rows], lengths)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat += position
    owner = np.repeat(np.arange(len(rows)), lengths)
    foreground = np.where(position % 2 == 1, rle.values[flat], 0).astype(np.float64)
    out: FloatArray = np.asarray(
        np.bincount(owner, weights=foreground, minlength=len(rows)), dtype=np.float64
    )
    return out


def rasterize_polygons(ann: Annotations, images: Images, rasterize: Rasterize) -> Annotations:
    """Polygon rows turned into RLE masks (``Kind.MASK``) the way COCOeval sees them.

    COCOeval compares segmentations as masks: it rasterizes each polygon annotation on its
    image (``COCO.annToRLE``: ``frPyObjects`` then ``merge``) before any IoU. labelgate's
    core keeps polygons continuous and has no rasterizer, so the caller passes one (the CLI
    passes pycocotools'). Rows that already hold a mask, and rows without rings, are
    unchanged; a keypoint row that also has rings keeps its kind and gains the mask.

    Parameters
    ----------
    ann
        The annotations; polygon rows need their image in ``images``.
    images
        Gives each row's image ``height`` and ``width``.
    rasterize
        ``(rings, height, width) -> uncompressed RLE counts``; see :data:`Rasterize`.

    Raises
    ------
    ValidationError
        A polygon on an image missing from ``images``.
    """
    targets = np.flatnonzero((np.diff(ann.ring_offsets) > 0) & (ann.rle_counts.lengths == 0))
    if not len(targets):
        return ann
    position = images.index_of(ann.image_id[targets])
    if (position < 0).any():
        row = int(targets[np.flatnonzero(position < 0)[0]])
        raise ValidationError("polygon on an unknown image", field="image_id", row=row)
    heights = images.height[position].tolist()
    widths = images.width[position].tolist()
    rle = ann.rle_counts
    counts: list[IntArray] = np.split(rle.values, rle.offsets[1:-1])
    size = ann.rle_size.copy()
    starts, stops = ann.ring_offsets[:-1], ann.ring_offsets[1:]
    # one call per polygon: the rasterizer is a Python callable (pycocotools loops too)
    for row, height, width in zip(targets.tolist(), heights, widths):
        points = ann.rings.offsets[int(starts[row]) : int(stops[row]) + 1]
        rings = [
            ann.rings.values[lo:hi].reshape(-1).tolist()
            for lo, hi in zip(points[:-1].tolist(), points[1:].tolist())
        ]
        counts[row] = np.asarray(rasterize(rings, int(height), int(width)), dtype=np.int64)
        size[row] = (height, width)
    kind = ann.kind.copy()
    kind[targets[kind[targets] == Kind.POLYGON]] = Kind.MASK
    return ann.replace(
        kind=kind, rle_counts=Ragged.from_rows(counts, dtype=np.int64), rle_size=size
    )
