"""Label-error detection: rank labels (and images) by how likely a model says they are wrong.

A detector's predictions on labelled images disagree with the labels in telling ways: a
confident prediction with no label under it is an **overlooked** object; a label under a
confident prediction of another class has a **swapped class**; a label next to a confident
same-class prediction that it does not cover well is **badly located**; two same-class
labels on one object, only one of which a prediction supports, are a **duplicate**; and a
label whose attribute values differ from those the model predicts for the same object is
**attribute inconsistent**. Each gets a suspicion score in [0, 1] (higher: more likely an
error); each image gets the soft maximum of its scores, so a single bad label is enough to
bring an image to the top.

The scoring is written from the published ideas, not from any implementation:

- per-class confidence thresholds are **confident learning**'s: the threshold of class ``c``
  is the mean self-confidence of the predictions of class ``c`` on objects labelled ``c``
  (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
  Labels", JAIR 70, 2021, doi:10.1613/jair.1.12125);
- the overlooked / swap / badly-located subscores, the similarity of two boxes as a blend
  of IoU and centre distance, and soft-min pooling of object scores into an image score
  follow **ObjectLab** (Tkachenko, Thyagarajan & Mueller, "ObjectLab: Automated Diagnosis
  of Mislabeled Images in Object Detection Data", ICML 2023 workshop, arXiv:2309.00832);
- a class mismatch scored by the prediction's confidence and a localization mismatch
  scored by ``1 - IoU`` are FiftyOne's **mistakenness** (``compute_mistakenness``).

Everything runs on flat pair lists over the whole data set: candidate (label, prediction)
pairs come from :func:`~labelgate.core.pairs.box_pairs_overlapping` on enlarged boxes,
geometry-aware IoU from :func:`~labelgate.core.iou.pair_iou` (polygons, masks, keypoints
OKS), one-to-one matches from :func:`~labelgate.core.matching.match`, and every per-label,
per-prediction and per-image reduction is a sort or a ``ufunc.at``: no loop over images.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray, ObjectArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.iou import pair_iou
from labelgate.core.matching import match
from labelgate.core.pairs import box_pairs_overlapping, box_pairs_overlapping_within
from labelgate.errors import ValidationError

__all__ = [
    "LABEL_TYPES",
    "ErrorReport",
    "ErrorType",
    "confident_thresholds",
    "find_label_errors",
    "injected_recall",
    "softmax_pool",
]


class ErrorType(enum.StrEnum):
    """Kinds of suspected label error; the values are the JSON ``type`` strings."""

    OVERLOOKED = "overlooked"  # an object with no label (annotation_id is None)
    SWAPPED_CLASS = "swapped_class"
    BADLY_LOCATED = "badly_located"
    DUPLICATE = "duplicate"
    ATTRIBUTE_INCONSISTENT = "attribute_inconsistent"


#: the label-side error types, in the column order of ``ErrorReport.label_subscores``
LABEL_TYPES = (
    ErrorType.SWAPPED_CLASS,
    ErrorType.BADLY_LOCATED,
    ErrorType.DUPLICATE,
    ErrorType.ATTRIBUTE_INCONSISTENT,
)


@dataclass(frozen=True, slots=True, eq=False)
class ErrorReport:
    """Suspected label errors, most suspicious first, and a score for every image.

    Attributes
    ----------
    image_id, annotation_id : (e,) int64
        Each suspected error's image and label id; ``annotation_id`` is -1 for an
        overlooked object (``None`` in :meth:`to_dict`).
    prediction_id : (e,) int64
        The prediction that raised the suspicion; -1 for a duplicate nobody predicted.
    type : (e,) object
        :class:`ErrorType` values.
    score : (e,) float64
        Suspicion in [0, 1], descending.
    images : (k,) int64
        Every image (labels' image table and any image with a prediction), most suspicious
        first; ties by image id.
    image_score : (k,) float64
        The soft maximum (:func:`softmax_pool`) of the image's label and overlooked scores;
        0 for an image with neither.
    label_subscores : (n, 4) float64
        Per label row (the input order), the four label-side subscores in the order of
        ``LABEL_TYPES``: swapped class, badly located, duplicate, attribute inconsistent.
    overlooked : (m,) float64
        Per prediction row, its overlooked score (0 where not confident).
    thresholds : dict
        The per-class confidence thresholds used, class id -> threshold.
    """

    image_id: IntArray
    annotation_id: IntArray
    prediction_id: IntArray
    type: ObjectArray
    score: FloatArray
    images: IntArray
    image_score: FloatArray
    label_subscores: FloatArray = field(repr=False)
    overlooked: FloatArray = field(repr=False)
    thresholds: dict[int, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.score)

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """The JSON document of ``labelgate errors``: ``errors`` (first ``top``) and ``images``.

        Examples
        --------
        >>> from labelgate.core.images import Images
        >>> from labelgate.core.taxonomy import Taxonomy
        >>> labels = Dataset(Annotations.create(image_id=[1], class_id=[1],
        ...                                     bbox=[[0, 0, 10, 10]]),
        ...                  Images.create(id=[1, 2], width=[50, 50], height=[50, 50]),
        ...                  Taxonomy.from_names(["car"]))
        >>> pred = Annotations.create(image_id=[1, 1], class_id=[1, 1], score=[0.9, 0.9],
        ...                           bbox=[[0, 0, 10, 10], [30, 30, 40, 40]])
        >>> doc = find_label_errors(labels, pred).to_dict()
        >>> doc["errors"][0]["type"], doc["errors"][0]["annotation_id"]
        ('overlooked', None)
        >>> [row["image_id"] for row in doc["images"]]
        [1, 2]
        """
        n = len(self) if top is None else min(top, len(self))
        ann = self.annotation_id[:n].tolist()
        pred = self.prediction_id[:n].tolist()
        errors = [
            {
                "image_id": image,
                "annotation_id": a if a >= 0 else None,
                "type": str(kind),
                "score": round(score, 6),
                "prediction_id": p if p >= 0 else None,
            }
            for image, a, kind, score, p in zip(
                self.image_id[:n].tolist(), ann, self.type[:n].tolist(),
                self.score[:n].tolist(), pred,
            )
        ]  # fmt: skip
        images = [
            {"image_id": image, "score": round(score, 6)}
            for image, score in zip(self.images.tolist(), self.image_score.tolist())
        ]
        return {
            "errors": errors,
            "images": images,
            "total_errors": len(self),
            "thresholds": {str(k): round(v, 6) for k, v in self.thresholds.items()},
        }


def softmax_pool(
    group: IntArray, values: FloatArray, n_groups: int, *, temperature: float
) -> FloatArray:
    """Soft maximum of ``values`` within each group: ``sum(v e^(v/T)) / sum(e^(v/T))``.

    ObjectLab's soft-min pooling of quality scores, written for suspicion (``1 -
    quality``): as ``T -> 0`` the image score is its worst object's, as ``T`` grows it
    tends to the mean, so one clear error outweighs many clean objects without ignoring
    them. Computed in a numerically safe form (each group's maximum subtracted first).

    Parameters
    ----------
    group
        (p,) group of each value, in ``0..n_groups-1``.
    values
        (p,) values.
    n_groups
        Number of groups; empty groups get 0.
    temperature
        ``T`` > 0.

    Examples
    --------
    >>> softmax_pool(np.array([0, 0, 1]), np.array([0.9, 0.1, 0.3]), 3, temperature=0.1)
    array([0.89973172, 0.3       , 0.        ])
    """
    out = np.zeros(n_groups, dtype=np.float64)
    if len(values) == 0:
        return out
    top = np.full(n_groups, -np.inf)
    np.maximum.at(top, group, values)
    weight = np.exp((values - top[group]) / temperature)
    total = np.bincount(group, weights=weight, minlength=n_groups)
    weighted = np.bincount(group, weights=weight * values, minlength=n_groups)
    has = total > 0
    out[has] = weighted[has] / total[has]
    return out


def confident_thresholds(
    labels: Annotations,
    predictions: Annotations,
    *,
    iou_threshold: float = 0.5,
    default: float = 0.5,
) -> dict[int, float]:
    """Confident learning's per-class thresholds: mean self-confidence of each class.

    The threshold of class ``c`` is the mean score of the predictions of class ``c`` that
    match (one-to-one, IoU >= ``iou_threshold``) a label of class ``c``: how confident the
    model is, on average, when it agrees with a label of that class (Northcutt et al.
    2021, eq. 2, with a detector's matched score as the self-confidence).

    Parameters
    ----------
    labels, predictions
        Labels and scored predictions.
    iou_threshold
        IoU a prediction needs to agree with a label; default 0.5.
    default
        Threshold of a predicted class that no prediction of it agrees with; default 0.5.

    Returns
    -------
    dict
        Class id -> threshold, for every class that has a prediction.

    Examples
    --------
    >>> labels = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                             bbox=[[0, 0, 10, 10], [20, 20, 30, 30]])
    >>> pred = Annotations.create(image_id=[1, 1, 1], class_id=[1, 1, 2],
    ...                           score=[0.9, 0.7, 0.8],
    ...                           bbox=[[0, 0, 10, 10], [20, 20, 30, 31], [5, 5, 6, 6]])
    >>> confident_thresholds(labels, pred)
    {1: 0.8, 2: 0.5}
    """
    m = match(
        labels,
        predictions,
        iou_threshold=iou_threshold,
        swaps=False,
        pair_iou=_iou_for(labels, predictions),
    )
    classes = np.unique(predictions.class_id)
    score = predictions.score[m.other_rows]
    cls = predictions.class_id[m.other_rows]
    position = np.searchsorted(classes, cls)
    total = np.bincount(position, weights=score, minlength=len(classes))
    count = np.bincount(position, minlength=len(classes))
    mean = np.divide(total, count, out=np.full(len(classes), default), where=count > 0)
    return {int(c): round(float(t), 12) for c, t in zip(classes.tolist(), mean.tolist())}


def _iou_for(a: Annotations, b: Annotations) -> Any:
    """``pair_iou`` when either side holds polygons, masks or keypoints; else None (boxes)."""
    plain = {int(Kind.BOX), int(Kind.TAG)}
    if set(np.unique(a.kind).tolist()) <= plain and set(np.unique(b.kind).tolist()) <= plain:
        return None
    return _pair_iou_gt_second


def _pair_iou_gt_second(
    ref: Annotations, ref_rows: IntArray, other: Annotations, other_rows: IntArray
) -> FloatArray:
    # pair_iou reads its second side as the ground truth (OKS areas, crowd): the labels
    return pair_iou(other, other_rows, ref, ref_rows)


def _class_table(
    thresholds: Mapping[int, float] | float | None,
    labels: Annotations,
    predictions: Annotations,
    match_iou: float,
) -> dict[int, float]:
    classes = np.unique(np.concatenate([labels.class_id, predictions.class_id])).tolist()
    if thresholds is None:
        table = confident_thresholds(labels, predictions, iou_threshold=match_iou)
    elif isinstance(thresholds, Mapping):
        table = {int(k): float(v) for k, v in thresholds.items()}
        if not set(classes) <= set(table):  # the matching only for classes left to fill
            auto = confident_thresholds(labels, predictions, iou_threshold=match_iou)
            table = {**auto, **table}
    else:
        table = {}
        for c in classes:
            table[int(c)] = float(thresholds)
    for c, t in table.items():
        if not 0.0 <= t <= 1.0:
            raise ValidationError(
                f"expected a confidence threshold in [0, 1] for class {c}, got {t}",
                field="thresholds",
            )
    return {int(c): table.get(int(c), 0.5) for c in classes}


def _lookup(table: dict[int, float], class_id: IntArray) -> FloatArray:
    keys = np.array(sorted(table), dtype=np.int64)
    values = np.array([table[k] for k in keys.tolist()], dtype=np.float64)
    if len(keys) == 0:
        return np.full(len(class_id), 0.5)
    pos = np.clip(np.searchsorted(keys, class_id), 0, len(keys) - 1)
    return np.where(keys[pos] == class_id, values[pos], 0.5)


def _enlarged(bbox: FloatArray, factor: float) -> FloatArray:
    """Boxes scaled by ``factor`` about their centres: the neighbourhood of each object."""
    centre = (bbox[:, :2] + bbox[:, 2:]) / 2
    half = (bbox[:, 2:] - bbox[:, :2]) * (factor / 2)
    return np.concatenate([centre - half, centre + half], axis=1)


def _best_per_group(group: IntArray, value: FloatArray, n: int) -> tuple[FloatArray, IntArray]:
    """Per group, the largest value (0 where none) and the position holding it (-1).

    Ties go to the first position, as a stable sort by (group, -value) would put it; one
    stable sort by group (none when the groups already come sorted, as label rows of the
    candidate pairs do), a ``maximum.reduceat`` per run and the first position reaching it.

    Examples
    --------
    >>> best, where = _best_per_group(np.array([2, 0, 2, 2]), np.array([0.5, 0.1, 0.7, 0.7]), 4)
    >>> best.tolist(), where.tolist()
    ([0.1, 0.0, 0.7, 0.0], [1, -1, 2, -1])
    """
    best = np.zeros(n, dtype=np.float64)
    where = np.full(n, -1, dtype=np.int64)
    m = len(value)
    if m == 0:
        return best, where
    if np.isnan(value).any():  # NaN sorts last: the rare case keeps the plain two-key sort
        by_value = np.lexsort((-value, group))
        first = np.ones(m, dtype=bool)
        first[1:] = group[by_value[1:]] != group[by_value[:-1]]
        top = by_value[first]
        best[group[top]] = value[top]
        where[group[top]] = top
        return best, where
    order: IntArray | None = None
    if not bool(np.all(group[1:] >= group[:-1])):
        order = np.argsort(group, kind="stable")  # timsort: runs of equal groups are cheap
    g = group if order is None else group[order]
    v = value if order is None else value[order]
    new = np.empty(m, dtype=bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1  # each sorted position's run (group)
    hit = np.flatnonzero(v == np.maximum.reduceat(v, starts)[run])
    first_hit = np.empty(len(hit), dtype=bool)
    first_hit[0] = True  # every run holds its maximum, so ``hit`` is never empty here
    np.not_equal(run[hit[1:]], run[hit[:-1]], out=first_hit[1:])
    at = hit[first_hit]  # sorted position of each group's first maximum
    head = at if order is None else order[at]
    best[g[at]] = value[head]
    where[g[at]] = head
    return best, where


def _owner(at: IntArray, rows: IntArray) -> IntArray:
    """``rows[at]`` where ``at >= 0``, else -1."""
    if len(rows) == 0:
        return np.full(len(at), -1, dtype=np.int64)
    return np.where(at >= 0, rows[np.maximum(at, 0)], -1).astype(np.int64)


def find_label_errors(
    labels: Dataset,
    predictions: Annotations,
    *,
    thresholds: Mapping[int, float] | float | None = None,
    iou_weight: float = 0.8,
    match_iou: float = 0.5,
    duplicate_iou: float = 0.5,
    neighbourhood: float = 2.0,
    temperature: float = 0.1,
    min_score: float = 0.3,
    confidence_floor: float = 1.0,
) -> ErrorReport:
    """Rank suspected label errors and every image by a model's disagreement with the labels.

    Parameters
    ----------
    labels
        The labels under test, with the image table (every image gets a score) and the
        taxonomy. Boxes, polygons, masks and keypoints; tags are ignored.
    predictions
        A model's scored predictions on the same images (``score`` in [0, 1]), of the same
        taxonomy; NaN scores count as 0.
    thresholds
        Per-class confidence thresholds (class id -> threshold), one number for every
        class, or None (default): confident learning's mean self-confidence per class
        (:func:`confident_thresholds`); classes missing from a mapping get theirs too.
    iou_weight
        ``alpha`` of the similarity ``alpha IoU + (1 - alpha) exp(-d / s)``, ``d`` the
        distance of the two centres and ``s`` the mean of the two box diagonals; default 0.8.
    match_iou
        IoU of a one-to-one label-prediction match (duplicates, attributes, thresholds);
        default 0.5.
    duplicate_iou
        IoU at which two same-class labels may be one object labelled twice; default 0.5.
    neighbourhood
        Objects are compared with predictions whose boxes, scaled by this factor about their
        centres, overlap theirs; default 2.0.
    temperature
        Of the soft maximum pooling object scores into image scores; default 0.1.
    min_score
        Suspicions below this are not listed in ``errors`` (they still count in the image
        scores); default 0.3.
    confidence_floor
        A prediction takes part when its score is at least this share of its class
        threshold; default 1.0 (confident learning: ``score >= t``). Lower values let
        less confident predictions in, each weighted by ``c(p)``.

    Returns
    -------
    ErrorReport

    Raises
    ------
    ValidationError
        For scores outside [0, 1] or thresholds outside [0, 1].

    Notes
    -----
    With ``c(p) = min(1, score_p / t_class(p))`` a prediction's confidence relative to its
    class threshold (1 for every confident prediction at the default floor), ``sim`` the
    similarity above, and "confident" meaning ``score >= confidence_floor * t``:

    - overlooked(p) = ``c(p) (1 - max_l sim(l, p))`` over labels ``l`` of any class, for a
      confident ``p`` (a label of another class under ``p`` is a swap, scored on the
      label) that overlaps no same-class label it is the most similar prediction of (that
      label is badly located instead);
    - swapped(l) = ``A_other(l) (1 - A_same(l))`` with ``A(l) = max_p c(p) sim(l, p)`` over
      confident predictions of another / the same class;
    - badly located(l) = ``c(p) (1 - sim(l, p))`` for the confident same-class prediction
      ``p`` most similar to ``l``, when ``l`` is also the label most similar to ``p``;
    - duplicate: for two same-class labels ``a, b`` with ``IoU >= duplicate_iou``, the one
      with the weaker one-to-one match (confidence ``c``, 0 if unmatched; ties: the later
      row) scores ``IoU(a, b) (1 - min(c_a, c_b))``;
    - attribute inconsistent(l) = ``c(p) IoU(l, p)`` for its one-to-one match ``p`` when
      an attribute present on both has different values.

    Each label is listed once, under its largest subscore.

    Examples
    --------
    >>> from labelgate.core.images import Images
    >>> from labelgate.core.taxonomy import Taxonomy
    >>> labels = Dataset(
    ...     Annotations.create(id=[10, 11], image_id=[1, 2], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [0, 0, 10, 10]]),
    ...     Images.create(id=[1, 2], width=[50, 50], height=[50, 50]),
    ...     Taxonomy.from_names(["car", "person"]))
    >>> pred = Annotations.create(image_id=[1, 2], class_id=[1, 2], score=[0.9, 0.9],
    ...                           bbox=[[0, 0, 10, 10], [0, 0, 10, 10]])
    >>> report = find_label_errors(labels, pred, thresholds=0.5)
    >>> report.annotation_id.tolist(), report.type.tolist(), report.images.tolist()
    ([11], ['swapped_class'], [2, 1])
    """
    ann, pred = labels.annotations, predictions
    score = np.nan_to_num(pred.score, nan=0.0)
    if len(score) and (score.min() < 0 or score.max() > 1):
        raise ValidationError(
            f"expected prediction scores in [0, 1], got {score.min()}..{score.max()}",
            field="score",
        )
    table = _class_table(thresholds, ann, pred.replace(score=score), match_iou)
    label_rows = np.flatnonzero(ann.kind != Kind.TAG)
    pred_rows = np.flatnonzero(pred.kind != Kind.TAG)
    n, m = len(ann), len(pred)
    threshold_p = _lookup(table, pred.class_id)
    confident = (score >= confidence_floor * threshold_p) & (pred.kind != Kind.TAG)
    relative = np.divide(score, threshold_p, out=np.ones(m), where=threshold_p > 0)
    conf = np.minimum(relative, 1.0)

    # --- (label, prediction) pairs in each other's neighbourhood, with their similarity
    pa, pb, _ = box_pairs_overlapping(
        ann.image_id[label_rows],
        _enlarged(ann.bbox[label_rows], neighbourhood),
        pred.image_id[pred_rows],
        _enlarged(pred.bbox[pred_rows], neighbourhood),
    )
    rl, rp = label_rows[pa], pred_rows[pb]
    iou = pair_iou(pred, rp, ann, rl)
    centre_l = (ann.bbox[rl, :2] + ann.bbox[rl, 2:]) / 2
    centre_p = (pred.bbox[rp, :2] + pred.bbox[rp, 2:]) / 2
    distance = np.hypot(*(centre_l - centre_p).T)
    diag = (
        np.hypot(*(ann.bbox[rl, 2:] - ann.bbox[rl, :2]).T)
        + np.hypot(*(pred.bbox[rp, 2:] - pred.bbox[rp, :2]).T)
    ) / 2
    closeness = np.exp(-np.divide(distance, diag, out=np.zeros_like(distance), where=diag > 0))
    sim = iou_weight * iou + (1.0 - iou_weight) * closeness
    same = ann.class_id[rl] == pred.class_id[rp]
    pair_conf = confident[rp]

    # --- swapped class: another class predicted over the label, its own class not
    strength = conf[rp] * sim
    keep = same & pair_conf
    same_best, _ = _best_per_group(rl[keep], strength[keep], n)
    keep = ~same & pair_conf
    other_best, other_at = _best_per_group(rl[keep], strength[keep], n)
    swap = other_best * (1.0 - same_best)
    swap_pred = _owner(other_at, rp[keep])

    # --- badly located: the mutual best same-class confident prediction covers it poorly
    keep = np.flatnonzero(same & pair_conf)
    best_for_pred, _ = _best_per_group(rp[keep], sim[keep], m)
    mutual = sim[keep] >= best_for_pred[rp[keep]]
    sel = keep[mutual]
    near_sim, near_at = _best_per_group(rl[sel], sim[sel], n)
    near_pred = _owner(near_at, rp[sel])
    near_conf = np.append(conf, 0.0)[near_pred]  # -1 (no prediction) reads the 0 appended
    badloc = np.where(near_pred >= 0, near_conf * (1.0 - near_sim), 0.0)

    # --- overlooked: confident predictions that no label (of any class) resembles; a
    # prediction overlapping the label it is the mutual best of is that label's badly
    # located box, not a second object
    covered, _ = _best_per_group(rp, sim, m)
    claimed = np.zeros(m, dtype=bool)
    chosen = sel[near_at[near_at >= 0]]  # each label's pair with its mutual best prediction
    claimed[rp[chosen[iou[chosen] > 0]]] = True
    overlooked = np.where(confident & ~claimed, conf * (1.0 - covered), 0.0)

    # --- one-to-one matches: duplicate and attribute checks
    matching = match(ann, pred, iou_threshold=match_iou, swaps=False, pair_iou=_iou_for(ann, pred))
    matched_pred = np.full(n, -1, dtype=np.int64)
    matched_pred[matching.ref_rows] = matching.other_rows
    matched_conf = np.zeros(n)
    matched_conf[matching.ref_rows] = conf[matching.other_rows]
    duplicate = _duplicates(ann, label_rows, matched_conf, duplicate_iou)
    attribute, attribute_pred = _attribute_mismatch(
        ann, pred, matching.ref_rows, matching.other_rows, conf
    )

    subscores = np.stack([swap, badloc, duplicate, attribute], axis=1)
    label_pred = np.stack([swap_pred, near_pred, matched_pred, attribute_pred], axis=1)
    return _report(
        labels, pred, subscores, label_pred, overlooked, table,
        temperature=temperature, min_score=min_score,
    )  # fmt: skip


def _duplicates(
    ann: Annotations, rows: IntArray, matched_conf: FloatArray, duplicate_iou: float
) -> FloatArray:
    """Per label, its duplicate score (see :func:`find_label_errors`, Notes)."""
    n = len(ann)
    out = np.zeros(n)
    if len(rows) < 2:
        return out
    keys = np.unique(
        np.stack([ann.image_id[rows], ann.class_id[rows]], axis=1), axis=0, return_inverse=True
    )[1].ravel()
    a, b, box_iou = box_pairs_overlapping_within(keys, ann.bbox[rows])
    ra, rb = rows[a], rows[b]
    plain = (ann.kind[ra] == Kind.BOX) & (ann.kind[rb] == Kind.BOX)
    iou = box_iou.copy()
    if not plain.all():
        iou[~plain] = pair_iou(ann, ra[~plain], ann, rb[~plain])
    keep = iou >= duplicate_iou
    ra, rb, iou = ra[keep], rb[keep], iou[keep]
    ca, cb = matched_conf[ra], matched_conf[rb]
    # the copy nobody predicted is the suspect; ties: the later row
    later = np.maximum(ra, rb)
    earlier = np.minimum(ra, rb)
    c_later, c_earlier = matched_conf[later], matched_conf[earlier]
    suspect = np.where(c_earlier < c_later, earlier, later)
    value = iou * (1.0 - np.minimum(ca, cb))
    np.maximum.at(out, suspect, value)
    return out


def _attribute_mismatch(
    ann: Annotations,
    pred: Annotations,
    label_rows: IntArray,
    pred_rows: IntArray,
    conf: FloatArray,
) -> tuple[FloatArray, IntArray]:
    """Per label, ``c(p) * IoU`` of its match when a shared attribute differs; and ``p``."""
    n = len(ann)
    differs = np.zeros(len(label_rows), dtype=bool)
    for name in sorted(set(ann.attributes) & set(pred.attributes)):  # one pass per column
        a, p = ann.attributes[name], pred.attributes[name]
        both = a.present[label_rows] & p.present[pred_rows]
        va, vp = a.values[label_rows], p.values[pred_rows]
        if va.dtype.kind == "O" or vp.dtype.kind == "O":
            unequal = va.astype(str) != vp.astype(str)
        else:
            unequal = va.astype(np.float64) != vp.astype(np.float64)
        differs |= both & unequal
    out = np.zeros(n)
    where = np.full(n, -1, dtype=np.int64)
    if differs.any():
        lr, pr = label_rows[differs], pred_rows[differs]
        iou = pair_iou(pred, pr, ann, lr)
        out[lr] = conf[pr] * iou
        where[lr] = pr
    return out, where


def _report(
    labels: Dataset,
    pred: Annotations,
    subscores: FloatArray,
    label_pred: IntArray,
    overlooked: FloatArray,
    table: dict[int, float],
    *,
    temperature: float,
    min_score: float,
) -> ErrorReport:
    ann = labels.annotations
    n = len(ann)
    kind = np.argmax(subscores, axis=1) if n else np.zeros(0, dtype=np.int64)
    best = subscores[np.arange(n), kind] if n else np.zeros(0)
    best_pred = label_pred[np.arange(n), kind] if n else np.zeros(0, dtype=np.int64)
    type_names = np.array([str(t) for t in LABEL_TYPES], dtype=object)

    # image scores: soft maximum over the image's labels and overlooked predictions
    image_ids = np.union1d(labels.images.id, pred.image_id).astype(np.int64)
    live_p = np.flatnonzero(overlooked > 0)
    item_image = np.concatenate([ann.image_id, pred.image_id[live_p]])
    item_value = np.concatenate([best, overlooked[live_p]])
    group = np.searchsorted(image_ids, item_image)
    pooled = softmax_pool(group, item_value, len(image_ids), temperature=temperature)
    image_order = np.lexsort((image_ids, -pooled))

    # the error list: labels under their largest subscore, then overlooked predictions
    listed_l = np.flatnonzero(best >= min_score)
    listed_p = live_p[overlooked[live_p] >= min_score]
    e_image = np.concatenate([ann.image_id[listed_l], pred.image_id[listed_p]])
    e_ann = np.concatenate([ann.id[listed_l], np.full(len(listed_p), -1, dtype=np.int64)])
    e_pred_row = np.concatenate([best_pred[listed_l], listed_p])
    e_pred = (
        np.where(e_pred_row >= 0, pred.id[np.maximum(e_pred_row, 0)], -1)
        if len(pred)
        else np.full(len(e_pred_row), -1, dtype=np.int64)
    )
    e_type = np.concatenate(
        [type_names[kind[listed_l]], np.full(len(listed_p), str(ErrorType.OVERLOOKED), object)]
    )
    e_score = np.concatenate([best[listed_l], overlooked[listed_p]])
    order = np.lexsort((e_ann, e_image, -e_score))
    return ErrorReport(
        image_id=e_image[order].astype(np.int64),
        annotation_id=e_ann[order].astype(np.int64),
        prediction_id=np.asarray(e_pred, dtype=np.int64)[order],
        type=e_type[order].astype(object),
        score=e_score[order].astype(np.float64),
        images=image_ids[image_order],
        image_score=pooled[image_order],
        label_subscores=subscores,
        overlooked=overlooked,
        thresholds=table,
    )


def injected_recall(
    report: ErrorReport, error_images: IntArray, *, top_fraction: float = 0.05
) -> float:
    """Share of injected errors whose image ranks within the top ``top_fraction`` of images.

    Parameters
    ----------
    report
        The ranking.
    error_images
        (e,) the image of each injected error (repeats count once per error).
    top_fraction
        Share of the ranked images looked at; default 0.05.

    Examples
    --------
    >>> r = ErrorReport(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
    ...                 np.zeros(0, object), np.zeros(0), np.arange(1, 41),
    ...                 np.linspace(1, 0, 40), np.zeros((0, 4)), np.zeros(0))
    >>> injected_recall(r, np.array([1, 2, 3, 40]))
    0.5
    """
    k = max(1, round(top_fraction * len(report.images)))
    top: BoolArray = np.isin(error_images, report.images[:k])
    return float(top.mean()) if len(top) else 0.0
