"""Compare a label set with a reference: matches, misses, extras, swaps, IoU and box bias.

The reference (gold, or annotator A) and the labels under test are matched one-to-one per
image and class (:func:`labelgate.core.matching.match`); leftovers of different classes
that overlap become class swaps. Every figure is then counted per group -- class, scene
type, density bucket, annotator -- with ``np.bincount`` over group codes, and IoU
quantiles come from one sort by (group, IoU), so the cost does not grow with the number
of groups.

Definitions (per group, ref-side groups for ``ref_count``/``matched``/``missed``/
``class_swaps``, other-side groups for ``other_count``/``extra``):

- ``matched``: same-class pairs with IoU >= the threshold;
- ``class_swaps``: reference objects paired with an object of another class;
- ``missed``: reference objects with neither; ``extra``: other objects with neither;
- ``precision = matched / other_count``, ``recall = matched / ref_count``, ``f1`` their
  harmonic mean (null when undefined);
- ``iou``: mean, median, p10 and p90 of the matched pairs' IoU (numpy's linear quantiles);
- ``bias``: over matched pairs with positive size, the mean of ``log(w_other / w_ref)``
  and ``log(h_other / h_ref)`` (positive: looser boxes than the reference) and of the
  centre offset in reference-box units, ``(cx_other - cx_ref) / w_ref`` and likewise y.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.matching import Matching, PairIoU, match
from labelgate.core.summary import density_bucket, density_bucket_labels, objects_per_image

__all__ = ["Comparison", "compare"]

_QUANTILES = (0.5, 0.1, 0.9)


def _ratio(numerator: IntArray, denominator: IntArray) -> list[float | None]:
    out: list[float | None] = []
    for n, d in zip(numerator.tolist(), denominator.tolist()):
        out.append(round(n / d, 6) if d else None)
    return out


def _f1(precision: list[float | None], recall: list[float | None]) -> list[float | None]:
    out: list[float | None] = []
    for p, r in zip(precision, recall):
        out.append(
            round(2 * p * r / (p + r), 6) if p is not None and r is not None and p + r else None
        )
    return out


def _group_quantiles(
    groups: IntArray, values: FloatArray, size: int, value_order: IntArray | None = None
) -> FloatArray:
    """(size, len(_QUANTILES)) linear quantiles of ``values`` within each group; NaN if empty.

    ``value_order``, when given, is an order that sorts ``values`` (``np.argsort(values)``;
    equal values may come in any order, the sorted values are the same): callers that
    group the same values several ways sort them once, and each grouping is then one
    stable sort of small group codes (a radix sort for up to 65,536 groups).
    """
    out = np.full((size, len(_QUANTILES)), np.nan)
    if len(values) == 0:
        return out
    if value_order is None:
        value_order = np.argsort(values, kind="stable")
    codes = groups.take(value_order)
    if size <= 1 << 16:
        codes = codes.astype(np.uint16)
    # stable: equal groups keep the value order, as lexsort((values, groups)) would
    order = value_order.take(np.argsort(codes, kind="stable"))
    sorted_groups, sorted_values = groups.take(order), values.take(order)
    counts = np.bincount(sorted_groups, minlength=size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    for column, q in enumerate(_QUANTILES):
        position = starts[has] + q * (counts[has] - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, starts[has] + counts[has] - 1)
        fraction = position - low
        out[has, column] = (
            sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction
        )
    return out


def _mean(groups: IntArray, values: FloatArray, size: int) -> FloatArray:
    counts = np.bincount(groups, minlength=size)
    sums = np.bincount(groups, weights=values, minlength=size)
    out: FloatArray = np.divide(sums, counts, out=np.full(size, np.nan), where=counts > 0)
    return out


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


@dataclass(frozen=True, slots=True)
class _Pairs:
    """The matched and swapped pairs of one comparison, as rows of ``ref`` and ``other``."""

    ref_rows: IntArray
    other_rows: IntArray
    iou: FloatArray
    swap_ref_rows: IntArray
    swap_other_rows: IntArray
    missed: BoolArray  # (n_ref,)
    extra: BoolArray  # (n_other,)


@dataclass(frozen=True, slots=True)
class _PairStats:
    """What every grouping of one comparison's pairs needs, computed once per comparison.

    ``iou_order`` sorts the matched IoU (stable); ``sized`` indexes the matched pairs whose
    boxes both have positive size, and the four bias columns hold their values.
    """

    iou_order: IntArray
    sized: IntArray
    log_w: FloatArray
    log_h: FloatArray
    dx: FloatArray
    dy: FloatArray


def _pair_stats(pairs: _Pairs, ref: Annotations, other: Annotations) -> _PairStats:
    box_ref = np.take(ref.bbox, pairs.ref_rows, axis=0)  # take: fast, unlike bbox[rows]
    box_other = np.take(other.bbox, pairs.other_rows, axis=0)
    w_ref, h_ref = box_ref[:, 2] - box_ref[:, 0], box_ref[:, 3] - box_ref[:, 1]
    w_other, h_other = box_other[:, 2] - box_other[:, 0], box_other[:, 3] - box_other[:, 1]
    sized = np.flatnonzero((w_ref > 0) & (h_ref > 0) & (w_other > 0) & (h_other > 0))
    box_ref, box_other = box_ref.take(sized, axis=0), box_other.take(sized, axis=0)
    w_ref, h_ref, w_other, h_other = (v.take(sized) for v in (w_ref, h_ref, w_other, h_other))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_w = np.log(w_other / w_ref)
        log_h = np.log(h_other / h_ref)
        dx = ((box_other[:, 0] + box_other[:, 2]) - (box_ref[:, 0] + box_ref[:, 2])) / (2 * w_ref)
        dy = ((box_other[:, 1] + box_other[:, 3]) - (box_ref[:, 1] + box_ref[:, 3])) / (2 * h_ref)
    # any order of equal IoU gives the same sorted values, so no need for a stable sort
    return _PairStats(np.argsort(pairs.iou), sized, log_w, log_h, dx, dy)


def _figures(
    pairs: _Pairs,
    stats: _PairStats,
    ref_group: IntArray,
    other_group: IntArray,
    size: int,
) -> list[dict[str, Any]]:
    """Every figure for ``size`` groups at once (group codes of each ref and other row)."""
    ref_count = np.bincount(ref_group, minlength=size)
    other_count = np.bincount(other_group, minlength=size)
    pair_group = ref_group.take(pairs.ref_rows)
    matched = np.bincount(pair_group, minlength=size)
    swaps = np.bincount(ref_group.take(pairs.swap_ref_rows), minlength=size)
    missed = np.bincount(ref_group.compress(pairs.missed), minlength=size)
    extra = np.bincount(other_group.compress(pairs.extra), minlength=size)
    iou_mean = _mean(pair_group, pairs.iou, size)
    iou_q = _group_quantiles(pair_group, pairs.iou, size, stats.iou_order)
    g = pair_group.take(stats.sized)
    bias = [_mean(g, values, size) for values in (stats.log_w, stats.log_h, stats.dx, stats.dy)]

    precision = _ratio(matched, other_count)
    recall = _ratio(matched, ref_count)
    f1 = _f1(precision, recall)
    rows = []
    for k in range(size):
        rows.append(
            {
                "ref_count": int(ref_count[k]),
                "other_count": int(other_count[k]),
                "matched": int(matched[k]),
                "missed": int(missed[k]),
                "extra": int(extra[k]),
                "class_swaps": int(swaps[k]),
                "precision": precision[k],
                "recall": recall[k],
                "f1": f1[k],
                "iou": {
                    "mean": _value(iou_mean[k]),
                    "median": _value(iou_q[k, 0]),
                    "p10": _value(iou_q[k, 1]),
                    "p90": _value(iou_q[k, 2]),
                },
                "bias": {
                    "log_width_ratio": _value(bias[0][k]),
                    "log_height_ratio": _value(bias[1][k]),
                    "center_dx": _value(bias[2][k]),
                    "center_dy": _value(bias[3][k]),
                },
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of :func:`compare`; :meth:`to_dict` is the documented JSON."""

    iou_threshold: float | None
    overall: dict[str, Any]
    per_class: list[dict[str, Any]]
    confusion: dict[str, Any]
    by_scene: list[dict[str, Any]]
    by_density: list[dict[str, Any]]
    by_annotator: list[dict[str, Any]]
    #: how thresholds were set when ``iou_threshold`` is None: per class, or per object
    threshold_mode: str = "per-class"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``labelgate compare --json``, documented in docs/compare.md)."""
        return {
            "iou_threshold": (
                self.iou_threshold if self.iou_threshold is not None else self.threshold_mode
            ),
            "overall": self.overall,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "by_scene": self.by_scene,
            "by_density": self.by_density,
            "by_annotator": self.by_annotator,
        }


def _geometric(ann: Annotations) -> Annotations:
    live = ann.kind != Kind.TAG
    return ann if bool(live.all()) else ann[live]


def _match_per_annotator(
    ref: Annotations,
    other: Annotations,
    matcher: Callable[[Annotations, Annotations], Matching],
) -> tuple[_Pairs, Annotations, IntArray]:
    """Match each annotator of ``other`` separately against the reference of their images.

    With one annotator (or none recorded) this is one matching over every reference image.
    With several, each is held only to the images they labelled, and the reference rows
    are repeated per annotator, so the returned reference (``ref_all``) has one row per
    (annotator, reference object) and ``annotator_of_ref`` says whose it is.
    """
    annotators = np.unique(other.annotator_id)
    if len(annotators) <= 1:
        m = matcher(ref, other)
        pairs = _Pairs(
            m.ref_rows,
            m.other_rows,
            m.iou,
            m.swap_ref_rows,
            m.swap_other_rows,
            m.missed(),
            m.extra(),
        )
        who = int(annotators[0]) if len(annotators) else -1
        return pairs, ref, np.full(len(ref), who, dtype=np.int64)
    parts_ref: list[Annotations] = []
    owners: list[IntArray] = []
    ref_rows, other_rows, ious, swap_ref, swap_other = [], [], [], [], []
    missed_parts: list[BoolArray] = []
    extra = np.zeros(len(other), dtype=bool)
    offset = 0
    for annotator in annotators.tolist():  # a handful of annotators, each one vectorized call
        mine = np.flatnonzero(other.annotator_id == annotator)
        theirs = other.take(mine)
        on_images = np.flatnonzero(np.isin(ref.image_id, np.unique(theirs.image_id)))
        ref_part = ref.take(on_images)
        m = matcher(ref_part, theirs)
        ref_rows.append(m.ref_rows + offset)
        other_rows.append(mine[m.other_rows])
        ious.append(m.iou)
        swap_ref.append(m.swap_ref_rows + offset)
        swap_other.append(mine[m.swap_other_rows])
        missed_parts.append(m.missed())
        extra[mine] = m.extra()
        parts_ref.append(ref_part)
        owners.append(np.full(len(ref_part), annotator, dtype=np.int64))
        offset += len(ref_part)
    ref_all = Annotations.concat(
        [p.replace(id=np.arange(len(p)) + o) for p, o in _offsets(parts_ref)]
    )
    pairs = _Pairs(
        np.concatenate(ref_rows),
        np.concatenate(other_rows),
        np.concatenate(ious),
        np.concatenate(swap_ref),
        np.concatenate(swap_other),
        np.concatenate(missed_parts),
        extra,
    )
    return pairs, ref_all, np.concatenate(owners)


def _offsets(parts: Sequence[Annotations]) -> list[tuple[Annotations, int]]:
    out, total = [], 0
    for p in parts:
        out.append((p, total))
        total += len(p)
    return out


_ROW_THRESHOLD = "__row_iou_threshold"  # private column: per-row thresholds through subsets


def compare(
    reference: Dataset,
    other: Annotations,
    *,
    iou_threshold: float | None = None,
    row_thresholds: FloatArray | None = None,
    pair_iou: PairIoU | None = None,
    swaps: bool = True,
    matching: Callable[..., Matching] = match,
) -> Comparison:
    """Compare ``other`` with ``reference`` and count every figure per group.

    Parameters
    ----------
    reference
        The reference data set (its images give scene types, its taxonomy class names and
        per-class thresholds).
    other
        The labels under test, on the same images and class ids.
    iou_threshold
        One threshold for every class; ``None`` holds each class to its taxonomy tier.
    row_thresholds
        (n_ref,) one threshold per reference row instead (e.g. a spec's class threshold
        with its scene-type override, ``ProgramSpec.thresholds``); not with
        ``iou_threshold``. ``per_class`` still shows each class's taxonomy threshold.
    pair_iou
        IoU of row pairs; boxes by default.
    swaps
        Pair leftover objects of different classes as class swaps.
    matching
        The one-to-one matching, called as :func:`~labelgate.core.matching.match` is
        (``matching(ref, other, iou_threshold=... or taxonomy=..., pair_iou=..., swaps=...)``)
        and returning an equal :class:`~labelgate.core.matching.Matching`; default
        ``match``. ``functools.partial(labelgate.ml.distributed.match_sharded, shards=8)``
        shards it by image over Ray (:func:`labelgate.ml.distributed.compare_sharded`).
    """
    ref_labels = reference.annotations
    if row_thresholds is not None:
        if iou_threshold is not None:
            raise ValueError("give iou_threshold or row_thresholds, not both")
        values = np.asarray(row_thresholds, dtype=np.float64)
        if values.shape != (len(ref_labels),):
            raise ValueError(
                f"row_thresholds: expected one per reference row ({len(ref_labels)}), "
                f"got shape {values.shape}"
            )
        # carried as a column so that every row subset the matcher sees keeps its own
        ref_labels = ref_labels.with_attribute(
            _ROW_THRESHOLD, AttributeColumn(values, np.ones(len(values), dtype=bool))
        )
    ref = _geometric(ref_labels)
    other = _geometric(other)
    taxonomy = reference.taxonomy

    def matcher(a: Annotations, b: Annotations) -> Matching:
        if _ROW_THRESHOLD in a.attributes:
            per_row = a.attributes[_ROW_THRESHOLD].values
            return matching(a, b, iou_threshold=per_row, pair_iou=pair_iou, swaps=swaps)
        if iou_threshold is None:
            return matching(a, b, taxonomy=taxonomy, pair_iou=pair_iou, swaps=swaps)
        return matching(a, b, iou_threshold=iou_threshold, pair_iou=pair_iou, swaps=swaps)

    pairs, ref_all, annotator_of_ref = _match_per_annotator(ref, other, matcher)

    # classes: taxonomy order, then any class id the taxonomy does not know
    class_ids = np.unique(np.concatenate([taxonomy.ids, ref_all.class_id, other.class_id]))
    order = np.concatenate(
        [taxonomy.ids, np.setdiff1d(class_ids, taxonomy.ids, assume_unique=True)]
    ).astype(np.int64)
    ref_class = _position_in(order, ref_all.class_id)
    other_class = _position_in(order, other.class_id)
    names = taxonomy.names_of(order)
    thresholds = taxonomy.thresholds(order)

    n_classes = len(order)
    stats = _pair_stats(pairs, ref_all, other)
    per_class = _figures(pairs, stats, ref_class, other_class, n_classes)
    for k, row in enumerate(per_class):
        row_threshold = iou_threshold if iou_threshold is not None else _value(thresholds[k])
        per_class[k] = {
            "class_id": int(order[k]),
            "name": names[k],
            "iou_threshold": row_threshold,
            **row,
        }
    overall = _figures(
        pairs,
        stats,
        np.zeros(len(ref_all), np.int64),
        np.zeros(len(other), np.int64),
        1,
    )[0]

    # confusion: ref class rows x other class columns, plus "unmatched"
    unmatched = n_classes
    size = n_classes + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (ref_class[pairs.ref_rows], other_class[pairs.other_rows]), 1)
    np.add.at(matrix, (ref_class[pairs.swap_ref_rows], other_class[pairs.swap_other_rows]), 1)
    matrix[:n_classes, unmatched] = np.bincount(ref_class[pairs.missed], minlength=n_classes)
    matrix[unmatched, :n_classes] = np.bincount(other_class[pairs.extra], minlength=n_classes)
    confusion = {"labels": [*names, "unmatched"], "matrix": matrix.tolist()}

    # scene types (an image attribute), and density buckets by reference objects per image
    images = reference.images
    ref_image_row = images.index_of(ref_all.image_id)
    other_image_row = images.index_of(other.image_id)

    def by_image_group(
        code_of_image: IntArray, labels: list[str], key: str
    ) -> list[dict[str, Any]]:
        """Figures per group of images; rows on images outside the table form a dropped group."""
        size = len(labels)
        rows = _figures(
            pairs,
            stats,
            _lookup(code_of_image, ref_image_row, size),
            _lookup(code_of_image, other_image_row, size),
            size + 1,
        )
        return [{key: label, **row} for label, row in zip(labels, rows)]

    scene_names, image_scene = np.unique(images.scene_type.astype(str), return_inverse=True)
    by_scene = by_image_group(image_scene, scene_names.tolist(), "scene_type")
    by_density = by_image_group(
        density_bucket(objects_per_image(ref, images)), density_bucket_labels(), "bucket"
    )

    # annotators of the other set (when recorded)
    by_annotator: list[dict[str, Any]] = []
    annotators = np.unique(other.annotator_id)
    if len(annotators) and not (len(annotators) == 1 and annotators[0] < 0):
        # annotators is sorted (np.unique): codes by binary search
        ref_code = np.searchsorted(annotators, annotator_of_ref).astype(np.int64)
        other_code = np.searchsorted(annotators, other.annotator_id).astype(np.int64)
        rows = _figures(pairs, stats, ref_code, other_code, len(annotators) + 1)
        pair_code = ref_code[pairs.ref_rows]
        counts = np.bincount(pair_code, minlength=len(annotators) + 1)
        mean = _mean(pair_code, pairs.iou, len(annotators) + 1)
        squares = np.bincount(pair_code, weights=pairs.iou**2, minlength=len(annotators) + 1)
        variance = (
            np.divide(squares, counts, out=np.full(len(counts), np.nan), where=counts > 0) - mean**2
        )
        for i, annotator in enumerate(annotators.tolist()):
            row = rows[i]
            row["iou"]["variance"] = _value(max(variance[i], 0.0)) if counts[i] else None
            missed_rate = row["missed"] / row["ref_count"] if row["ref_count"] else None
            by_annotator.append(
                {
                    "annotator_id": annotator,
                    "missed_rate": None if missed_rate is None else round(missed_rate, 6),
                    **row,
                }
            )
    return Comparison(
        iou_threshold=iou_threshold,
        overall=overall,
        per_class=per_class,
        confusion=confusion,
        by_scene=by_scene,
        by_density=by_density,
        by_annotator=by_annotator,
        threshold_mode="per-object" if row_thresholds is not None else "per-class",
    )


def _position_in(order: IntArray, values: IntArray) -> IntArray:
    """Position of each value in ``order`` (distinct ids that hold every value)."""
    low = int(order.min()) if len(order) else 0
    span = int(order.max()) - low + 1 if len(order) else 0
    if 0 < span <= 4 * len(order) + 1024:  # small ids: one table lookup per row
        table = np.zeros(span, dtype=np.int64)
        table[order - low] = np.arange(len(order))
        out: IntArray = table.take(values - low)
        return out
    sorter = np.argsort(order)
    out = sorter[np.searchsorted(order[sorter], values)]
    return out


def _lookup(table: IntArray, rows: IntArray, missing: int) -> IntArray:
    """``table[rows]``, with ``missing`` where a row is -1 (an image not in the table)."""
    out: IntArray = np.where(rows >= 0, table[np.maximum(rows, 0)], missing)
    return out
