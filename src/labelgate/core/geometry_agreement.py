"""How much several annotators agree on geometry: matched rate, IoU, F1, Krippendorff's alpha.

Every pair of annotation sets (annotators) is matched one-to-one within (image, class) by
:func:`~labelgate.core.matching.match` at the class threshold (or one ``iou_threshold``).
Every figure is a ratio of sums over images, so the image bootstrap computes the per-image
sums once, as one sparse (images, columns) matrix, and each resample is one product of
image weights with that matrix.

Definitions, per pair of sets ``a``, ``b`` and class (``n_a``, ``n_b`` objects, ``m``
matched pairs):

- ``matched_rate = 2 m / (n_a + n_b)`` (Dice coefficient of the two sets of objects);
- ``mean_iou``: mean IoU of the matched pairs;
- ``f1``: with ``a`` as reference, precision ``m / n_b`` and recall ``m / n_a`` give
  ``f1 = 2 m / (n_a + n_b)``, which is the matched rate: symmetric in ``a`` and ``b``;
- ``krippendorff_alpha``: see :func:`geometry_agreement`, Notes.

A class figure is the mean over annotator pairs where it is defined; an overall figure the
mean over classes where it is defined.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.agreement import bootstrap_cis
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.matching import PairIoU, match, match_candidates
from labelgate.core.pairs import (
    box_pairs_overlapping,
    box_pairs_overlapping_within,
    group_pairs,
)
from labelgate.core.taxonomy import Taxonomy

__all__ = ["GeometryAgreement", "geometry_agreement", "geometry_scores"]

# per (pair, class) sums over images, in this order along the last axis
_N_A, _N_B, _MATCHED, _IOU_SUM, _SIMILARITY = range(5)
_N_STATS = 5
HEADLINE = ("matched_rate", "mean_iou", "krippendorff_alpha")


#: image rows of the sums matrix made dense at a time for the bootstrap product
_DENSE_ROWS = 16_384


def _weighted_sums(weights: FloatArray, sums: Any) -> FloatArray:
    """``weights @ sums`` for (b, images) weights and a sparse (images, columns) matrix.

    Most images hold most of the (pair, class, statistic) columns, so the matrix is
    nearly dense: a dense matrix product (BLAS) over blocks of images is many times
    faster than scipy's sparse-times-dense loop, and a block keeps memory bounded.
    """
    out = np.zeros((len(weights), sums.shape[1]))
    for lo in range(0, sums.shape[0], _DENSE_ROWS):  # blocks of images, not single images
        hi = min(lo + _DENSE_ROWS, sums.shape[0])
        out += weights[:, lo:hi] @ sums[lo:hi].toarray()
    return out


def _sorted_position(images: IntArray, values: IntArray) -> IntArray:
    """``np.searchsorted(images, values)`` for sorted unique ``images``, by table lookup.

    Image ids are usually dense: a table over their range answers in one gather, where
    millions of binary searches would each miss the cache.
    """
    if len(images) == 0 or len(values) == 0:
        return np.searchsorted(images, values)
    low, high = int(images[0]), int(images[-1])
    if high - low > 4 * (len(images) + len(values)):
        return np.searchsorted(images, values)
    present = np.zeros(high - low + 1, dtype=np.int64)
    present[images - low] = 1
    before = np.cumsum(present) - present  # images below each id of the range
    out: IntArray = before.take(np.clip(values - low, 0, high - low))
    out[values > high] = len(images)
    return out


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def geometry_scores(totals: FloatArray) -> dict[str, FloatArray]:
    """Per (pair, class) figures from summed counts: (..., pairs, classes, 5) -> (..., p, c).

    Parameters
    ----------
    totals
        Sums over images of ``n_a``, ``n_b``, matched pairs ``m``, IoU of matched pairs,
        and ``similarity``: the sum of IoU over ordered pairs of distinct objects of the
        class on the same image, both sets pooled.

    Returns
    -------
    dict of str to FloatArray
        ``matched_rate``, ``mean_iou``, ``f1``, ``precision``, ``recall`` (``a`` as
        reference) and ``krippendorff_alpha``, NaN where undefined.

    Examples
    --------
    Two identical boxes on each of two images (one pair, one class):

    >>> scores = geometry_scores(np.array([[[2.0, 2, 2, 2, 4]]]))
    >>> float(scores["matched_rate"][0, 0]), float(scores["krippendorff_alpha"][0, 0])
    (1.0, 1.0)
    """
    n_a, n_b = totals[..., _N_A], totals[..., _N_B]
    matched, iou_sum = totals[..., _MATCHED], totals[..., _IOU_SUM]
    matched_rate = _divide(2.0 * matched, n_a + n_b)
    # Krippendorff's alpha over units of two values: a matched pair (box_a, box_b) or an
    # unmatched object and the empty value; see geometry_agreement, Notes.
    empty = n_a + n_b - 2.0 * matched
    units = matched + empty
    values = 2.0 * units
    observed = _divide(matched - iou_sum + empty, units)
    similar = totals[..., _SIMILARITY] + empty * (empty - 1.0)
    expected = 1.0 - _divide(similar, values * (values - 1.0))
    return {
        "matched_rate": matched_rate,
        "mean_iou": _divide(iou_sum, matched),
        "f1": matched_rate,
        "precision": _divide(matched, n_b),
        "recall": _divide(matched, n_a),
        "krippendorff_alpha": 1.0 - _divide(observed, expected),
    }


def _mean(values: FloatArray, axis: int) -> FloatArray:
    """NaN-ignoring mean that returns NaN (without a warning) where nothing is defined."""
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return _divide(total, count.astype(np.float64))


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class GeometryAgreement:
    """Pairwise and pooled geometric agreement of several annotation sets.

    ``pairs`` lists the ``(a, b)`` set indices; ``pair_scores[name]`` is (pairs, classes),
    ``class_scores[name]`` (classes,), ``overall[name]`` a float; NaN where undefined.
    """

    class_ids: IntArray
    class_names: tuple[str, ...]
    iou_thresholds: FloatArray
    iou_threshold: float | None
    images: int
    annotators: int
    pairs: tuple[tuple[int, int], ...]
    pair_scores: dict[str, FloatArray]
    class_scores: dict[str, FloatArray]
    overall: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_resamples: int = 0
    confidence: float = 0.95

    def to_dict(self, annotators: Sequence[str] | None = None) -> dict[str, Any]:
        """The JSON document of ``labelgate agreement A B ... --json``; None for NaN."""
        names = list(annotators) if annotators is not None else None

        def who(index: int) -> Any:
            return names[index] if names is not None else index

        per_class = []
        for c, class_id in enumerate(self.class_ids.tolist()):
            per_class.append(
                {
                    "class_id": class_id,
                    "name": self.class_names[c],
                    "iou_threshold": float(self.iou_thresholds[c]),
                    **{
                        key: _finite(self.class_scores[key][c])
                        for key in ("matched_rate", "mean_iou", "f1", "krippendorff_alpha")
                    },
                    "pairs": [
                        {
                            "a": who(a),
                            "b": who(b),
                            **{
                                key: _finite(self.pair_scores[key][p, c])
                                for key in (
                                    "matched_rate",
                                    "mean_iou",
                                    "f1",
                                    "precision",
                                    "recall",
                                    "krippendorff_alpha",
                                )
                            },
                        }
                        for p, (a, b) in enumerate(self.pairs)
                    ],
                }
            )
        return {
            "annotators": names if names is not None else list(range(self.annotators)),
            "images": self.images,
            "iou_threshold": self.iou_threshold if self.iou_threshold is not None else "per-class",
            "overall": {
                key: _finite(self.overall[key])
                for key in ("matched_rate", "mean_iou", "f1", "krippendorff_alpha")
            },
            "per_class": per_class,
            "ci": {name: [_finite(low), _finite(high)] for name, (low, high) in self.ci.items()},
            "bootstrap": {"n_resamples": self.n_resamples, "confidence": self.confidence},
        }


def _self_similarity(
    ann: Annotations, key: IntArray, pair_iou: PairIoU | None
) -> tuple[IntArray, FloatArray]:
    """Rows and IoU summed over every ordered pair of distinct objects sharing a key.

    Returns one row of each pair and the IoU it adds. Pairs of IoU 0 add nothing: for
    boxes (``pair_iou`` None) only overlapping pairs are formed, each unordered pair once
    with twice its IoU (both orders; the two rows share image and class).
    """
    if pair_iou is None:
        rows_a, _, iou = box_pairs_overlapping_within(key, ann.bbox)
        return rows_a, 2.0 * iou
    rows_a, rows_b, iou = _pairs(ann, key, ann, key, pair_iou)
    distinct = np.flatnonzero(rows_a != rows_b)
    return rows_a.take(distinct), iou.take(distinct)


def _pairs(
    a: Annotations, key_a: IntArray, b: Annotations, key_b: IntArray, pair_iou: PairIoU | None
) -> tuple[IntArray, IntArray, FloatArray]:
    """Same-key pairs of ``a`` and ``b`` rows and their IoU; for boxes, those of IoU > 0."""
    if pair_iou is None:
        return box_pairs_overlapping(key_a, a.bbox, key_b, b.bbox)
    rows_a, rows_b = group_pairs(key_a, key_b)
    return rows_a, rows_b, pair_iou(a, rows_a, b, rows_b)


def geometry_agreement(
    sets: Sequence[Annotations],
    taxonomy: Taxonomy,
    *,
    iou_threshold: float | None = None,
    pair_iou: PairIoU | None = None,
    image_ids: IntArray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> GeometryAgreement:
    """Agreement of two or more annotation sets on the same images, per class and overall.

    Parameters
    ----------
    sets
        One :class:`Annotations` per annotator, at least two. Tags and objects of classes
        outside ``taxonomy`` are left out.
    taxonomy
        The classes reported and, unless ``iou_threshold``, each class's threshold.
    iou_threshold
        One IoU threshold for every class instead of the class thresholds.
    pair_iou
        IoU of row pairs, as in :func:`~labelgate.core.matching.match`; default box IoU.
    image_ids
        The images to resample; default every image holding an object in some set.
    n_resamples, confidence, seed
        Bootstrap over images (see :func:`labelgate.core.agreement.bootstrap_ci`) of the
        overall ``matched_rate``, ``mean_iou`` and ``krippendorff_alpha``; 0 skips it.

    Returns
    -------
    GeometryAgreement

    Raises
    ------
    ValueError
        Fewer than two sets.

    Notes
    -----
    Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability")
    for a pair of sets and a class, with a distance built on IoU. Values are objects plus
    an *empty* value. Units have two values each: a matched pair ``(x_a, x_b)``, or an
    unmatched object and the empty value. The distance is ``delta(x, y) = 1 - IoU(x, y)``
    for objects on the same image, ``1`` for objects on different images, ``1`` between an
    object and the empty value and ``0`` between two empty values. With ``U`` units,
    ``n = 2 U`` values, ``m`` matched pairs and ``e = n_a + n_b - 2 m`` unmatched objects:

    ``D_o = (1/n) sum_u 1/(m_u - 1) sum_{ordered pairs in u} delta
    = (sum_matched (1 - IoU) + e) / U``,

    ``D_e = 1/(n (n - 1)) sum_{ordered pairs of distinct values} delta
    = 1 - (S + e (e - 1)) / (n (n - 1))``,

    ``S`` being the sum of IoU over ordered pairs of distinct objects of the class on the
    same image (both sets pooled, within-unit pairs included, as in Krippendorff's
    coincidences), and ``alpha = 1 - D_o / D_e``. Identical sets give ``D_o = 0`` and
    alpha 1; sets that never overlap give ``D_o = 1 >= D_e`` and alpha <= 0. Every term
    is a sum over images, which is what makes the image bootstrap a matrix product.

    Examples
    --------
    >>> taxonomy = Taxonomy.from_names(["car"])
    >>> a = Annotations.create(image_id=[1, 2], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [0, 0, 4, 4]])
    >>> b = Annotations.create(image_id=[1, 2], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [8, 8, 9, 9]])
    >>> result = geometry_agreement([a, b], taxonomy, iou_threshold=0.5, n_resamples=0)
    >>> result.overall["matched_rate"], result.overall["mean_iou"]
    (0.5, 1.0)
    """
    if len(sets) < 2:
        raise ValueError(f"geometry_agreement: expected at least two sets, got {len(sets)}")
    n_classes = len(taxonomy)
    live = []
    class_of = []
    for ann in sets:
        position = taxonomy.position(ann.class_id)
        keep = (ann.kind != Kind.TAG) & (position < n_classes)
        every = bool(keep.all())  # the usual case: no copy of every column
        live.append(ann if every else ann[keep])
        class_of.append(position if every else position[keep])
    if image_ids is None:
        images = np.unique(np.concatenate([ann.image_id for ann in live]))
    else:
        images = np.unique(np.asarray(image_ids, dtype=np.int64))
    n_images = len(images)
    pairs = tuple(itertools.combinations(range(len(sets)), 2))
    width = len(pairs) * n_classes * _N_STATS

    image_of = [_sorted_position(images, ann.image_id) for ann in live]
    key = [image_of[s] * n_classes + class_of[s] for s in range(len(live))]
    self_rows = [_self_similarity(live[s], key[s], pair_iou) for s in range(len(live))]

    rows: list[IntArray] = []
    columns: list[IntArray] = []
    data: list[FloatArray] = []

    def add(p: int, stat: int, image: IntArray, klass: IntArray, value: FloatArray) -> None:
        # reduce to one entry per (image, class) first: pair lists of crowded images are long
        weights = np.broadcast_to(np.asarray(value, dtype=np.float64), image.shape)
        summed: FloatArray = np.bincount(
            image * n_classes + klass, weights, minlength=n_images * n_classes
        ).astype(np.float64, copy=False)
        cell = np.flatnonzero(summed)
        rows.append(cell // n_classes)
        columns.append((p * n_classes + cell % n_classes) * _N_STATS + stat)
        data.append(summed[cell])

    for p, (a, b) in enumerate(pairs):  # one vectorized matching per pair of annotators
        ann_a, ann_b = live[a], live[b]
        cross_a, cross_b, cross_iou = _pairs(ann_a, key[a], ann_b, key[b], pair_iou)
        if iou_threshold is None:
            threshold = taxonomy.thresholds(ann_a.class_id)
        else:
            threshold = np.full(len(ann_a), float(iou_threshold))
        if pair_iou is not None or float(threshold.min(initial=1.0)) > 0:
            # the similarity pairs hold every pair at or above a positive threshold: match
            # among them, as match() would after forming the same candidates itself
            keep = np.flatnonzero(cross_iou >= threshold.take(cross_a))
            matching = match_candidates(
                cross_a.take(keep),
                cross_b.take(keep),
                cross_iou.take(keep),
                n_ref=len(ann_a),
                n_other=len(ann_b),
            )
        else:  # a threshold of 0 matches pairs of IoU 0, which the pair list leaves out
            matching = match(ann_a, ann_b, iou_threshold=threshold, pair_iou=pair_iou, swaps=False)
        add(p, _N_A, image_of[a], class_of[a], np.ones(1))
        add(p, _N_B, image_of[b], class_of[b], np.ones(1))
        matched_image, matched_class = (
            image_of[a][matching.ref_rows],
            class_of[a][matching.ref_rows],
        )
        add(p, _MATCHED, matched_image, matched_class, np.ones(1))
        add(p, _IOU_SUM, matched_image, matched_class, matching.iou)
        for s in (a, b):
            self_a, self_iou = self_rows[s]
            add(p, _SIMILARITY, image_of[s][self_a], class_of[s][self_a], self_iou)
        # ordered pairs: (x_a, x_b) and (x_b, x_a)
        add(p, _SIMILARITY, image_of[a][cross_a], class_of[a][cross_a], 2.0 * cross_iou)

    sums = sp.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(columns))),
        shape=(n_images, width),
        dtype=np.float64,
    )
    shape = (len(pairs), n_classes, _N_STATS)

    last: dict[str, Any] = {}

    def headline(weights: FloatArray) -> dict[str, FloatArray]:
        # bootstrap_cis asks for each statistic of the same block in turn: compute them once
        if last.get("weights") is not weights:
            totals = _weighted_sums(weights, sums).reshape(len(weights), *shape)
            pair_scores = geometry_scores(totals)
            last["weights"] = weights
            last["scores"] = {name: _mean(_mean(pair_scores[name], 1), 1) for name in HEADLINE}
        scores: dict[str, FloatArray] = last["scores"]
        return scores

    totals = np.asarray(sums.sum(axis=0)).reshape(shape)
    pair_scores = geometry_scores(totals)
    class_scores = {name: _mean(values, 0) for name, values in pair_scores.items()}
    overall = {name: float(_mean(values, 0)) for name, values in class_scores.items()}

    def statistic(name: str) -> Callable[[FloatArray], FloatArray]:
        return lambda weights: headline(weights)[name]

    ci = bootstrap_cis(
        {name: statistic(name) for name in HEADLINE},
        n_images,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    thresholds = (
        taxonomy.thresholds(taxonomy.ids)
        if iou_threshold is None
        else np.full(n_classes, float(iou_threshold))
    )
    return GeometryAgreement(
        class_ids=taxonomy.ids,
        class_names=taxonomy.names,
        iou_thresholds=thresholds,
        iou_threshold=None if iou_threshold is None else float(iou_threshold),
        images=n_images,
        annotators=len(sets),
        pairs=pairs,
        pair_scores=pair_scores,
        class_scores=class_scores,
        overall=overall,
        ci=ci if n_resamples > 0 else {},
        n_resamples=n_resamples,
        confidence=confidence,
    )
