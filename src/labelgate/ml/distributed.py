"""Scale-out over Ray: pre-labeling, label-error detection and COCO evaluation sharded by image.

Every function here returns exactly what its single-process counterpart returns on the same
input (the tests compare them with ``np.array_equal`` and exact dict equality); only the
work is spread over Ray tasks (the ``[ray]`` extra). Images are split into contiguous
ranges of image ids (:func:`plan_shards`, balanced by object count), so all objects of an
image land in one shard, and each shard is one remote task:

- **pre-labeling** (:func:`prelabel_sharded`): any :class:`~labelgate.ml.predictors.Predictor`
  over contiguous rows of the image table, pickled to the workers (a
  :class:`~labelgate.ml.predictors.CascadePredictor` reloads its native classifiers there);
  one that cannot be pickled travels as a factory that each task calls once;
- **label-error detection** (:func:`find_label_errors_sharded`): the one global statistic,
  confident learning's per-class thresholds (a mean over the whole data set), is computed
  first, on the driver; given the thresholds every subscore is a function of one image's
  labels and predictions, so each shard scores its images and the driver merges: per-row
  arrays are scattered back to their rows, and the error and image lists are re-sorted
  with the single-process keys (stable: ties only ever occur within one image, hence
  within one shard, whose order is the global one);
- **COCO evaluation** (:func:`evaluate_sharded`): COCOeval's greedy matching is
  independent per (image, class); the driver computes the global orders (detections by
  group and score, COCOeval's accumulation order) as :func:`~labelgate.core.evaluate.evaluate`
  does, the shards build the candidate pairs, their IoU and the matching of their images,
  and the driver scatters the per-detection outcomes into the accumulation order and
  accumulates. The floating-point work happens in the same expressions on the same
  values, so the numbers are bit-for-bit those of ``evaluate``;
- **matching** (:func:`match_sharded`): :func:`~labelgate.core.matching.match` per image
  range, the pairs put back in ascending reference row, as ``match`` lists them;
- **comparison** (:func:`compare_sharded`): :func:`~labelgate.core.compare.compare` with
  ``match_sharded`` as its matching; every figure is then counted on the driver from the
  same pair list.

Ray is started on first use (``ray.init(address)``; a local instance when ``address`` is
None) unless the caller already started it.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations
from labelgate.core.compare import Comparison, compare
from labelgate.core.dataset import Dataset
from labelgate.core.evaluate import (
    Evaluation,
    IouType,
    _candidate_pairs,
    _greedy_match,
    _Matches,
    finish_evaluation,
    pair_iou_of,
    plan_evaluation,
)
from labelgate.core.images import Images
from labelgate.core.iou import COCO_SIGMAS
from labelgate.core.matching import Matching, PairIoU, match, reference_thresholds
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import LabelgateError, ValidationError
from labelgate.ml.errors import ErrorReport, _class_table, find_label_errors
from labelgate.ml.predictors import Pixels, Predictor

__all__ = [
    "ShardPlan",
    "compare_sharded",
    "evaluate_sharded",
    "find_label_errors_sharded",
    "match_sharded",
    "plan_shards",
    "prelabel_sharded",
    "ray_session",
]


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """Contiguous image-id ranges: shard ``k`` holds the ids in ``[starts[k], starts[k+1])``.

    Attributes
    ----------
    starts : (s,) int64
        The first image id of each shard but the first (which starts at -inf); the last
        shard reaches +inf, so every image id belongs to exactly one shard.
    """

    starts: IntArray

    def __len__(self) -> int:
        return len(self.starts) + 1

    def shard_of(self, image_id: IntArray) -> IntArray:
        """(n,) the shard of each image id."""
        out: IntArray = np.searchsorted(self.starts, image_id, side="right").astype(np.int64)
        return out

    def rows(self, image_id: IntArray) -> list[IntArray]:
        """Per shard, the rows whose image is in it, in row order (one stable sort)."""
        shard = self.shard_of(np.asarray(image_id, dtype=np.int64))
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(len(self) + 1))
        return [order[lo:hi] for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def plan_shards(
    image_ids: IntArray, n_shards: int, *, weights: FloatArray | None = None
) -> ShardPlan:
    """Split image ids into at most ``n_shards`` contiguous ranges of about equal weight.

    Parameters
    ----------
    image_ids
        (k,) image ids (any order, repeats allowed: each repeat adds ``weights`` of its row,
        so passing every object's image id balances by objects).
    n_shards
        Shards wanted, >= 1; fewer come back when there are fewer distinct ids.
    weights
        (k,) weight of each entry; default 1.

    Examples
    --------
    >>> plan = plan_shards(np.array([1, 1, 1, 2, 3, 4, 5, 6]), 2)
    >>> len(plan), plan.starts.tolist(), plan.shard_of(np.array([0, 1, 3, 9])).tolist()
    (2, [3], [0, 0, 1, 1])
    """
    if n_shards < 1:
        raise ValidationError(f"expected at least 1 shard, got {n_shards}", field="shards")
    ids = np.asarray(image_ids, dtype=np.int64)
    if n_shards == 1 or len(ids) == 0:
        return ShardPlan(np.zeros(0, dtype=np.int64))
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    low, high = int(ids.min()), int(ids.max())
    if high - low <= 4 * len(ids) + 1024:  # compact ids: one count per id, no sort
        counts = np.bincount(ids - low, weights=w)
        present = np.flatnonzero(counts > 0) if w is None else np.unique(ids - low)
        unique, per_image = present + low, counts[present].astype(np.float64)
    else:
        unique, inverse = np.unique(ids, return_inverse=True)
        per_image = np.bincount(inverse.ravel(), weights=w, minlength=len(unique)).astype(
            np.float64
        )
    if len(unique) <= 1:
        return ShardPlan(np.zeros(0, dtype=np.int64))
    before = np.r_[0.0, np.cumsum(per_image)]  # weight before image b, b = 0..k
    total = float(before[-1])
    cuts: list[int] = []
    last = 0
    for k in range(n_shards - 1):  # one step per shard: each splits what is left evenly
        target = before[last] + (total - before[last]) / (n_shards - k)
        b = int(np.searchsorted(before, target))
        if b > 0 and target - before[b - 1] < before[min(b, len(unique))] - target:
            b -= 1  # the boundary nearest the target
        b = max(b, last + 1)
        if b >= len(unique):
            break
        cuts.append(b)
        last = b
    return ShardPlan(unique[np.asarray(cuts, dtype=np.int64)])


# --------------------------------------------------------------------------------- Ray


def ray_session(address: str | None = None) -> Any:
    """The ``ray`` module, initialized: an already running session, else ``ray.init(address)``.

    ``address`` None (or ``"local"``) starts a local instance on this machine's cores;
    ``"auto"`` or ``"ray://host:10001"`` joins a running cluster.

    Raises
    ------
    ValidationError
        When Ray is not installed (the ``[ray]`` extra), or cannot start or reach
        ``address``.
    """
    try:
        import ray
    except ImportError as exc:
        raise ValidationError(
            f"Ray is not installed ({exc}): pip install 'labelgate[ray]'", field="ray"
        ) from exc
    if not ray.is_initialized():
        try:
            ray.init(
                address=None if address in (None, "local") else address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local Ray instance" if address in (None, "local") else repr(address)
            raise ValidationError(f"cannot start or join {where}: {exc}", field="ray") from exc
    return ray


def _default_shards(ray: Any) -> int:
    """Two tasks per CPU of the cluster: a slow shard does not hold the others up."""
    return max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))


@functools.cache
def _remote(function: Callable[..., Any]) -> Any:
    import ray

    return ray.remote(num_cpus=1)(function)


def _run(ray: Any, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``function(*args)`` for each call as Ray tasks; results in call order.

    A task's labelgate error (bad input found inside a shard) is raised as itself, not
    wrapped in Ray's ``RayTaskError``.
    """
    task = _remote(function)
    refs = [task.remote(*args) for args in calls]
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, LabelgateError):
            raise cause from None
        raise


def _sub_dataset(labels: Dataset, label_rows: IntArray, image_rows: IntArray) -> Dataset:
    """The shard's rows of a checked data set: the same checks pass on any image subset."""
    return Dataset(labels.annotations.take(label_rows), labels.images[image_rows], labels.taxonomy)


# ------------------------------------------------------------------------- pre-labeling


def _prelabel_shard(
    predictor: Predictor | Callable[[], Predictor],
    images: Images,
    pixels: Sequence[Pixels] | None,
    root: Path | None,
) -> Annotations:
    model = predictor if isinstance(predictor, Predictor) else predictor()
    return model.predict(images, pixels, root=root)


def prelabel_sharded(
    predictor: Predictor | Callable[[], Predictor],
    images: Images,
    pixels: Sequence[Pixels] | None = None,
    *,
    root: Path | None = None,
    shards: int | None = None,
    address: str | None = None,
) -> Annotations:
    """``predictor.predict(images, pixels, root=root)`` over Ray, one task per image range.

    Parameters
    ----------
    predictor
        A :class:`~labelgate.ml.predictors.Predictor`, pickled to the workers (a
        ``CascadePredictor`` included: it reloads its classifiers there), or a
        zero-argument factory returning one, called once per task: for predictors holding
        native objects that do not pickle (``functools.partial(MyPredictor, ...)``).
    images
        The batch.
    pixels
        One decoded array per row of ``images`` (each task gets its rows'); or None, and
        the predictor reads ``root / file_name`` on the worker (a shared file system).
    root
        Folder of the image files.
    shards
        Tasks; default two per CPU of the Ray cluster.
    address
        Ray address (see :func:`ray_session`).

    Returns
    -------
    Annotations
        The shards' predictions in image-table order, ids renumbered ``1..`` as
        :func:`~labelgate.ml.predictors.postprocess` numbers a batch: equal to a single
        ``predict`` call for a predictor that treats each image on its own (both adapters).
    """
    if pixels is not None and len(pixels) != len(images):
        raise ValidationError(
            f"expected one pixel array per image ({len(images)}), got {len(pixels)}",
            field="pixels",
        )
    ray = ray_session(address)
    n = max(1, min(shards or _default_shards(ray), len(images)))
    bounds = np.linspace(0, len(images), n + 1).round().astype(np.int64).tolist()
    try:
        shipped = ray.put(predictor)
    except TypeError as exc:
        raise ValidationError(
            f"the predictor cannot be sent to Ray workers ({exc}); pass a factory instead, "
            "a zero-argument callable that builds it on the worker (functools.partial)",
            field="predictor",
        ) from exc
    calls = [
        (shipped, images[lo:hi], None if pixels is None else list(pixels[lo:hi]), root)
        for lo, hi in itertools.pairwise(bounds)
        if hi > lo
    ]
    parts = [p for p in _run(ray, _prelabel_shard, calls) if len(p)]
    if not parts:
        return Annotations.empty()
    starts = np.cumsum([0] + [len(p) for p in parts]) + 1
    return Annotations.concat(
        [p.replace(id=np.arange(s, s + len(p), dtype=np.int64)) for p, s in zip(parts, starts)]
    )


# --------------------------------------------------------------------- label errors


def _errors_shard(
    labels: Dataset,
    predictions: Annotations,
    label_rows: IntArray,
    image_rows: IntArray,
    pred_rows: IntArray,
    options: dict[str, Any],
) -> ErrorReport:
    shard = _sub_dataset(labels, label_rows, image_rows)
    return find_label_errors(shard, predictions.take(pred_rows), **options)


def find_label_errors_sharded(
    labels: Dataset,
    predictions: Annotations,
    *,
    thresholds: Mapping[int, float] | float | None = None,
    shards: int | None = None,
    address: str | None = None,
    **options: Any,
) -> ErrorReport:
    """:func:`~labelgate.ml.errors.find_label_errors` over Ray, sharded by image; equal result.

    Parameters
    ----------
    labels, predictions, thresholds
        As in ``find_label_errors``; the per-class thresholds (confident learning's mean
        self-confidence, over the whole data set) are resolved here, before sharding.
    shards
        Tasks; default two per CPU of the Ray cluster.
    address
        Ray address (see :func:`ray_session`).
    **options
        The other keywords of ``find_label_errors`` (``iou_weight``, ``min_score``...).

    Returns
    -------
    ErrorReport
        Array for array equal to ``find_label_errors(labels, predictions, ...)``.
    """
    ann = labels.annotations
    score = np.nan_to_num(predictions.score, nan=0.0)
    if len(score) and (score.min() < 0 or score.max() > 1):
        raise ValidationError(
            f"expected prediction scores in [0, 1], got {score.min()}..{score.max()}",
            field="score",
        )
    match_iou = float(options.get("match_iou", 0.5))
    # the one global statistic: every shard scores with the data set's thresholds
    table = _class_table(thresholds, ann, predictions.replace(score=score), match_iou)
    ray = ray_session(address)
    n_shards = shards or _default_shards(ray)
    plan = plan_shards(np.concatenate([ann.image_id, predictions.image_id]), n_shards)
    label_parts = plan.rows(ann.image_id)
    image_parts = plan.rows(labels.images.id)
    pred_parts = plan.rows(predictions.image_id)
    labels_ref, pred_ref = ray.put(labels), ray.put(predictions)
    calls = [
        (labels_ref, pred_ref, rows_l, rows_i, rows_p, {**options, "thresholds": table})
        for rows_l, rows_i, rows_p in zip(label_parts, image_parts, pred_parts)
        if len(rows_l) or len(rows_i) or len(rows_p)
    ]
    kept = [
        (rows_l, rows_p)
        for rows_l, rows_i, rows_p in zip(label_parts, image_parts, pred_parts)
        if len(rows_l) or len(rows_i) or len(rows_p)
    ]
    reports: list[ErrorReport] = _run(ray, _errors_shard, calls)
    return _merge_reports(reports, kept, len(ann), len(predictions), table)


def _merge_reports(
    reports: list[ErrorReport],
    rows: list[tuple[IntArray, IntArray]],
    n_labels: int,
    n_predictions: int,
    table: dict[int, float],
) -> ErrorReport:
    """One report from per-shard reports, sorted as ``find_label_errors`` sorts its own."""

    def cat(name: str, dtype: Any) -> Any:
        parts = [getattr(r, name) for r in reports]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    image_id, annotation_id = cat("image_id", np.int64), cat("annotation_id", np.int64)
    prediction_id, kind = cat("prediction_id", np.int64), cat("type", object)
    score = cat("score", np.float64)
    images, image_score = cat("images", np.int64), cat("image_score", np.float64)
    # stable: equal keys only within one image, i.e. one shard, already in global order
    order = np.lexsort((annotation_id, image_id, -score))
    image_order = np.lexsort((images, -image_score))
    subscores = np.zeros((n_labels, 4))
    overlooked = np.zeros(n_predictions)
    for report, (rows_l, rows_p) in zip(reports, rows):
        subscores[rows_l] = report.label_subscores
        overlooked[rows_p] = report.overlooked
    return ErrorReport(
        image_id=image_id[order],
        annotation_id=annotation_id[order],
        prediction_id=prediction_id[order],
        type=kind[order],
        score=score[order],
        images=images[image_order],
        image_score=image_score[image_order],
        label_subscores=subscores,
        overlooked=overlooked,
        thresholds=table,
    )


# ------------------------------------------------------------------------- matching


def _match_shard(
    ref: Annotations,
    other: Annotations,
    ref_rows: IntArray,
    other_rows: IntArray,
    threshold: FloatArray,
    options: dict[str, Any],
) -> Matching:
    return match(
        ref.take(ref_rows), other.take(other_rows), iou_threshold=threshold[ref_rows], **options
    )


def match_sharded(
    ref: Annotations,
    other: Annotations,
    *,
    iou_threshold: float | FloatArray | None = None,
    taxonomy: Taxonomy | None = None,
    pair_iou: PairIoU | None = None,
    swaps: bool = True,
    shards: int | None = None,
    address: str | None = None,
) -> Matching:
    """:func:`~labelgate.core.matching.match` over Ray, sharded by image; an equal result.

    Matching is per (image, class), swaps per image: each shard matches its images, and
    the pairs, mapped back to the input rows, are put in ascending reference row as
    ``match`` returns them. The matching of :func:`compare_sharded`.

    Parameters are those of ``match``, plus ``shards`` (tasks; default two per CPU of the
    Ray cluster) and ``address`` (see :func:`ray_session`).
    """
    # each shard gets its rows' thresholds (a taxonomy's per-class tiers included)
    threshold = reference_thresholds(ref, iou_threshold, taxonomy)
    ray = ray_session(address)
    plan = plan_shards(
        np.concatenate([ref.image_id, other.image_id]), shards or _default_shards(ray)
    )
    ref_parts, other_parts = plan.rows(ref.image_id), plan.rows(other.image_id)
    options: dict[str, Any] = {"pair_iou": pair_iou, "swaps": swaps}
    ref_ref, other_ref = ray.put(ref), ray.put(other)
    kept = [(r, o) for r, o in zip(ref_parts, other_parts) if len(r) and len(o)]
    calls = [(ref_ref, other_ref, r, o, threshold, options) for r, o in kept]
    parts: list[Matching] = _run(ray, _match_shard, calls) if calls else []

    def gather(
        ref_field: str, other_field: str, iou_field: str
    ) -> tuple[IntArray, IntArray, FloatArray]:
        a = [r[getattr(m, ref_field)] for m, (r, _) in zip(parts, kept)]
        b = [o[getattr(m, other_field)] for m, (_, o) in zip(parts, kept)]
        v = [getattr(m, iou_field) for m in parts]
        if not a:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        rows_a, rows_b, iou = np.concatenate(a), np.concatenate(b), np.concatenate(v)
        order = np.argsort(rows_a, kind="stable")  # match lists pairs by reference row
        return rows_a[order], rows_b[order], iou[order]

    ref_rows, other_rows, iou = gather("ref_rows", "other_rows", "iou")
    swap_ref, swap_other, swap_iou = gather("swap_ref_rows", "swap_other_rows", "swap_iou")
    return Matching(
        ref_rows=ref_rows.astype(np.int64),
        other_rows=other_rows.astype(np.int64),
        iou=iou.astype(np.float64),
        swap_ref_rows=swap_ref.astype(np.int64),
        swap_other_rows=swap_other.astype(np.int64),
        swap_iou=swap_iou.astype(np.float64),
        n_ref=len(ref),
        n_other=len(other),
    )


def compare_sharded(
    reference: Dataset,
    other: Annotations,
    *,
    iou_threshold: float | None = None,
    row_thresholds: FloatArray | None = None,
    pair_iou: PairIoU | None = None,
    swaps: bool = True,
    shards: int | None = None,
    address: str | None = None,
) -> Comparison:
    """:func:`~labelgate.core.compare.compare` with its matching sharded by image over Ray.

    Parameters are those of ``compare``, plus ``shards`` (tasks per matching; default two
    per CPU of the Ray cluster) and ``address`` (see :func:`ray_session`). The matching
    (one per annotator of ``other``) is :func:`match_sharded`, whose pairs equal
    ``match``'s; the figures are counted on the driver from them, so the result (and its
    ``to_dict()``) equals ``compare(reference, other, ...)``. ``pair_iou`` travels to the
    workers: a module-level function, not a lambda.
    """
    ray_session(address)  # a bad address fails here, before anything is read or matched
    return compare(
        reference,
        other,
        iou_threshold=iou_threshold,
        row_thresholds=row_thresholds,
        pair_iou=pair_iou,
        swaps=swaps,
        matching=functools.partial(match_sharded, shards=shards, address=address),
    )


# ----------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _EvalShard:
    """What one shard's matching needs besides the two containers (slices of the globals)."""

    iou_type: str
    d_take: IntArray
    d_key: IntArray
    d_rank: IntArray
    d_class: IntArray
    g_take: IntArray
    g_key: IntArray
    g_crowd: BoolArray
    g_area: FloatArray
    g_ignore: BoolArray  # (A, g)
    g_void: BoolArray
    outside: BoolArray  # (A, d) in the shard's (group, rank) order
    threshold_table: FloatArray
    lowest: float
    sigmas: Any


def _eval_shard(gt: Annotations, dt: Annotations, s: _EvalShard) -> _Matches:
    """Candidate pairs, IoU and greedy matching of one shard, as ``evaluate`` computes them."""
    pair_iou = pair_iou_of(s.iou_type, gt, dt, s.g_take, s.d_take, s.g_crowd, s.g_area, s.sigmas)
    pair_d, pair_g, iou = _candidate_pairs(s.d_key, s.g_key, pair_iou, s.lowest)
    # each shard keeps its own (group, rank) order; the driver scatters into COCO's order
    return _greedy_match(
        pair_d,
        pair_g,
        iou,
        s.d_rank,
        s.d_class,
        s.threshold_table,
        s.g_ignore,
        s.g_crowd,
        s.g_void,
        s.outside,
        np.arange(len(s.d_take), dtype=np.int64),
    )


def evaluate_sharded(
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
    shards: int | None = None,
    address: str | None = None,
) -> Evaluation:
    """:func:`~labelgate.core.evaluate.evaluate` with the matching sharded by image over Ray.

    Parameters are those of ``evaluate``, plus ``shards`` (tasks; default two per CPU of
    the Ray cluster) and ``address`` (see :func:`ray_session`). The result is equal, array
    for array, to ``evaluate(gt, dt, ...)``: the driver computes the global orders and
    accumulates; the shards compute the candidate pairs, their IoU and the matching.
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
    # --- shards: contiguous image ranges, i.e. contiguous ranges of both sorted key arrays
    ray = ray_session(address)
    n_shards = shards or _default_shards(ray)
    per_image = len(p.class_ids) if p.use_cats else 1
    plan = plan_shards(np.concatenate([p.d_key, p.g_key]) // per_image, n_shards)
    key_starts = plan.starts * per_image
    n_dt, n_gt = len(p.d_take), len(p.g_take)
    d_bounds = np.r_[0, np.searchsorted(p.d_key, key_starts), n_dt].tolist()
    g_bounds = np.r_[0, np.searchsorted(p.g_key, key_starts), n_gt].tolist()
    shared_sigmas = sigmas if iou_type == "keypoints" else None
    calls, spans = [], []
    gt_ref, dt_ref = ray.put(gt.annotations), ray.put(dt)
    for k in range(len(plan)):
        d0, d1, g0, g1 = d_bounds[k], d_bounds[k + 1], g_bounds[k], g_bounds[k + 1]
        if d1 == d0 and k > 0:
            continue  # no detection, nothing to match (one shard always runs: the rank)
        shard = _EvalShard(
            iou_type=iou_type,
            d_take=p.d_take[d0:d1],
            d_key=p.d_key[d0:d1],
            d_rank=p.d_rank[d0:d1],
            d_class=p.d_class[d0:d1],
            g_take=p.g_take[g0:g1],
            g_key=p.g_key[g0:g1],
            g_crowd=p.g_crowd[g0:g1],
            g_area=p.g_area[g0:g1],
            g_ignore=p.g_ignore[:, g0:g1],
            g_void=p.g_void[g0:g1],
            outside=p.d_outside[:, d0:d1],
            threshold_table=p.threshold_table,
            lowest=p.lowest,
            sigmas=shared_sigmas,
        )
        calls.append((gt_ref, dt_ref, shard))
        spans.append((d0, d1))
    parts: list[_Matches] = _run(ray, _eval_shard, calls)
    outside = np.take(p.d_outside, p.acc_order, axis=1)
    return finish_evaluation(p, _merge_matches(parts, spans, p.acc_order, outside))


def _merge_matches(
    parts: list[_Matches],
    spans: list[tuple[int, int]],
    acc_order: IntArray,
    outside: BoolArray,
) -> _Matches:
    """The shards' outcomes (each in its (group, rank) order) in COCO's accumulation order."""
    n_dt = len(acc_order)
    slot = np.empty(n_dt, dtype=np.int64)
    slot[acc_order] = np.arange(n_dt)
    first = parts[0]
    n_area = outside.shape[0]
    regular = np.zeros((n_area, n_dt), dtype=first.regular.dtype)
    ignored = np.zeros((n_area, n_dt), dtype=first.ignored.dtype)
    any_void = any(p.void is not None for p in parts)
    void = np.zeros((n_area, n_dt), dtype=bool) if any_void else None
    contested, tp, counted = [], [], []
    for part, (d0, d1) in zip(parts, spans):
        slots = slot[d0:d1]
        regular[:, slots] = part.regular
        ignored[:, slots] = part.ignored
        if void is not None and part.void is not None:
            void[:, slots] = part.void
        contested.append(slots[part.contested])
        tp.append(part.contested_tp)
        counted.append(part.contested_counted)
    return _Matches(
        regular,
        ignored,
        void,
        outside,
        first.rank,
        np.concatenate(contested),
        np.concatenate(tp),
        np.concatenate(counted),
    )
