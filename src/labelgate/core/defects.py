"""Defect analytics: what is wrong with each label, how often, where, and which rule to fix.

The seed: "Defect rate is a necessary but insufficient quality signal", and a defect rate
is worth most when it is broken down "by error type and by annotator cohort, which means
quality problems can be identified and corrected at the source". Three steps:

- :func:`classify_defects` compares labels under test with a reference and gives every
  defect a :class:`DefectType` and a :class:`Severity` (one row per defect, columnar), plus
  the *exposure*: every object the audit looked at, one row each;
- :func:`defect_rates` divides defect counts by exposure per annotator, cohort, class,
  scene type and density bucket, split by type and severity (``np.bincount`` over group
  codes, no per-object loop);
- :func:`root_causes` reads a :class:`~labelgate.core.compare.Comparison` (and optionally a
  per-class agreement) and names the guideline to fix: confused class pairs, classes whose
  agreement is below the seed's 0.70 floor, annotators whose boxes are consistently loose
  or tight, densities where the missing rate climbs.

How :func:`classify_defects` decides, per annotator of the labels under test, against the
reference objects of the images that annotator labelled:

1. objects are paired one-to-one within (image, class) at the identity threshold
   (:data:`~labelgate.core.calibration.MATCH_IOU`, 0.1), not the class threshold, so that a
   badly drawn box is a geometry defect of a found object rather than a miss plus an extra;
2. a pair below its class threshold is ``loose_geometry`` when the box under test is larger
   than the reference (``log(area_other / area_ref) >= 0``), ``tight_geometry`` when
   smaller; for keypoint objects it is ``keypoint_error``; any pair whose occlusion,
   truncation or shared attribute values differ adds an ``attribute_error``;
3. leftovers of different classes overlapping by >= :data:`SWAP_IOU` are ``wrong_class``
   (counted on the reference class); other unpaired reference objects are ``missing``;
4. an unpaired object under test overlapping a paired object of the same annotator, image
   and class by >= :data:`DUPLICATE_IOU` (box IoU, for every kind) is a ``duplicate``,
   otherwise ``extra``;
5. an object under test with no area, or reaching past its image by more than
   :data:`~labelgate.core.dataset.OUTSIDE_TOLERANCE_PX`, is ``invalid_geometry`` (instead
   of ``extra``/``duplicate`` when unpaired; in addition to the pair's checks when paired).

Exposure is the reference objects (one row per annotator held to them) plus the unpaired
objects under test: each object counts once, so a defect rate is defects per audited object.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.calibration import MATCH_IOU
from labelgate.core.dataset import OUTSIDE_TOLERANCE_PX, Dataset
from labelgate.core.images import Images
from labelgate.core.matching import PairIoU, match
from labelgate.core.pairs import box_pairs_overlapping_within
from labelgate.core.summary import density_bucket, density_bucket_labels
from labelgate.core.taxonomy import Taxonomy

__all__ = [
    "AGREEMENT_FLOOR",
    "BIAS_LIMIT",
    "CONFUSION_SHARE",
    "DEFAULT_SEVERITY",
    "DEFECT_TYPES",
    "DENSITY_MISS_RATIO",
    "DUPLICATE_IOU",
    "GEOMETRY_MAJOR_MARGIN",
    "MIN_SUPPORT",
    "SEVERITIES",
    "SWAP_IOU",
    "DefectRates",
    "DefectType",
    "Defects",
    "Exposure",
    "Severity",
    "classify_defects",
    "defect_rates",
    "root_causes",
]


class DefectType(enum.StrEnum):
    """What is wrong with one label; stored as its position in :data:`DEFECT_TYPES`."""

    MISSING = "missing"  # a reference object nobody labelled
    EXTRA = "extra"  # a label on no object
    WRONG_CLASS = "wrong_class"  # the object is there, under another class
    LOOSE_GEOMETRY = "loose_geometry"  # below the class tier, larger than the object
    TIGHT_GEOMETRY = "tight_geometry"  # below the class tier, smaller than the object
    ATTRIBUTE_ERROR = "attribute_error"  # occlusion, truncation or an attribute differs
    DUPLICATE = "duplicate"  # a second label on an object already labelled
    INVALID_GEOMETRY = "invalid_geometry"  # no area, or outside its image
    KEYPOINT_ERROR = "keypoint_error"  # a skeleton below the class's OKS threshold


class Severity(enum.StrEnum):
    """How much one defect matters; stored as its position in :data:`SEVERITIES`."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


#: Every defect type, in code order.
DEFECT_TYPES: tuple[DefectType, ...] = tuple(DefectType)
#: Every severity, most severe first, in code order.
SEVERITIES: tuple[Severity, ...] = tuple(Severity)

#: Default severity of each type.
DEFAULT_SEVERITY: dict[DefectType, Severity] = {
    # the seed: "Missed objects (false negatives in ground truth) have a larger model impact
    # than slightly imprecise boxes": the detector learns the object is background
    DefectType.MISSING: Severity.MAJOR,
    # the mirror image: background taught as an object, a false positive in every epoch
    DefectType.EXTRA: Severity.MAJOR,
    # "class confusion" is the seed's example of a systematic error that "only surface[s]
    # during model evaluation": it moves a decision boundary
    DefectType.WRONG_CLASS: Severity.MAJOR,
    # the object is found and named; only its edges are off. Minor unless far below the tier
    # (see GEOMETRY_MAJOR_MARGIN), where it stops counting as the object at all
    DefectType.LOOSE_GEOMETRY: Severity.MINOR,
    DefectType.TIGHT_GEOMETRY: Severity.MINOR,
    # box and class are right; the seed ties attribute inconsistency to "unreliable
    # confidence scores in occluded scenarios", a second-order effect
    DefectType.ATTRIBUTE_ERROR: Severity.MINOR,
    # the object is labelled; the copy is found mechanically (self-IoU) and dropped
    DefectType.DUPLICATE: Severity.MINOR,
    # a box of no area or outside its image breaks loaders and augmentation, or is dropped
    # silently by them: it can stop a training run, not just bias it
    DefectType.INVALID_GEOMETRY: Severity.CRITICAL,
    # a misplaced or left/right-swapped joint teaches a wrong pose, not a looser one
    DefectType.KEYPOINT_ERROR: Severity.MAJOR,
}

#: A geometry defect more than this below its class threshold is major: 0.15 is the width
#: of the loose and tight tiers, so such a box would not meet even the next looser tier.
GEOMETRY_MAJOR_MARGIN = 0.15
#: Unpaired leftovers of different classes overlapping this much are the same object under
#: another class (COCO's loosest match); below it they are a miss and an extra.
SWAP_IOU = 0.5
#: An unpaired label overlapping a paired one of its annotator, image and class this much
#: is a second copy of the same object.
DUPLICATE_IOU = 0.5

#: The seed: "An IAA below 0.70 on any class in a safety-relevant program warrants
#: guideline revision before full-scale annotation begins."
AGREEMENT_FLOOR = 0.70
#: Mean log size ratio (``(log w + log h) / 2``) beyond which an annotator's boxes are
#: consistently loose (+) or tight (-): 0.05 is 5 % larger or smaller per side.
BIAS_LIMIT = 0.05
#: Fewest objects (or matched pairs, for bias) behind a hint: fewer cannot tell a habit
#: from chance.
MIN_SUPPORT = 30
#: Share of a class's reference objects labelled as one other class that names the pair:
#: one in twenty is more than the 2 % release defect limit spent on a single confusion.
CONFUSION_SHARE = 0.05
#: The densest bucket's missed rate at least this multiple of the sparsest's is a climb.
DENSITY_MISS_RATIO = 2.0
#: ... and at least this much higher in absolute terms, so 0.1 % vs 0.3 % is not a climb.
DENSITY_MISS_GAP = 0.02


def _codes(values: Any, table: Sequence[str], name: str, n: int) -> IntArray:
    """Codes of names or codes into ``table``; raises on an unknown name or code."""
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"Defects: expected {name} of shape ({n},), got {array.shape}")
    if array.dtype.kind in "iu":
        codes = array.astype(np.int64)
    else:
        lookup = {v: i for i, v in enumerate(table)}
        # look up the few distinct names, then spread their codes over the rows
        distinct, inverse = np.unique(array.astype(str), return_inverse=True)
        unknown = sorted(set(distinct.tolist()) - set(lookup))
        if unknown:
            raise ValueError(f"Defects: unknown {name} {unknown}; expected one of {list(table)}")
        table_codes = np.array([lookup[v] for v in distinct.tolist()], dtype=np.int64)
        codes = table_codes[inverse.reshape(-1)]
    if len(codes) and (codes.min() < 0 or codes.max() >= len(table)):
        raise ValueError(f"Defects: {name} codes must lie in 0..{len(table) - 1}")
    return codes


@dataclass(frozen=True, slots=True, eq=False)
class Defects:
    """Every defect found, one row each (columnar).

    Attributes
    ----------
    type : (d,) int64
        Position in :data:`DEFECT_TYPES`.
    severity : (d,) int64
        Position in :data:`SEVERITIES`.
    annotator_id, class_id, image_id : (d,) int64
        Who made the defect, the class it is counted on, and its image.
    iou : (d,) float64
        IoU of the pair behind a geometry, keypoint, attribute or class defect; NaN else.
    """

    type: IntArray
    severity: IntArray
    annotator_id: IntArray
    class_id: IntArray
    image_id: IntArray
    iou: FloatArray

    def __len__(self) -> int:
        return len(self.type)

    @classmethod
    def create(
        cls,
        type: Any,  # the column's name
        annotator_id: npt.ArrayLike,
        class_id: npt.ArrayLike,
        image_id: npt.ArrayLike,
        *,
        severity: Any = None,
        iou: npt.ArrayLike | None = None,
    ) -> Defects:
        """Build from names (``"missing"``) or codes; severity defaults by type.

        Examples
        --------
        >>> d = Defects.create(["missing", "extra"], [1, 1], [3, 3], [10, 11])
        >>> d.names(), [SEVERITIES[s].value for s in d.severity.tolist()]
        (['missing', 'extra'], ['major', 'major'])
        """
        n = len(np.asarray(type))
        codes = _codes(type, DEFECT_TYPES, "type", n)
        if severity is None:
            default = np.array([SEVERITIES.index(DEFAULT_SEVERITY[t]) for t in DEFECT_TYPES])
            severities = default[codes].astype(np.int64)
        else:
            severities = _codes(severity, SEVERITIES, "severity", n)
        columns = [np.asarray(v, dtype=np.int64) for v in (annotator_id, class_id, image_id)]
        for name, column in zip(("annotator_id", "class_id", "image_id"), columns):
            if column.shape != (n,):
                raise ValueError(f"Defects: expected {name} of shape ({n},), got {column.shape}")
        ious = np.full(n, np.nan) if iou is None else np.asarray(iou, dtype=np.float64)
        annotators, classes, images = columns
        return cls(codes, severities, annotators, classes, images, ious)

    @staticmethod
    def concat(parts: Sequence[Defects]) -> Defects:
        """Stack defect tables."""
        if not parts:
            return Defects.create(np.zeros(0, np.int64), [], [], [])
        return Defects(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("type", "severity", "annotator_id", "class_id", "image_id", "iou")
            )
        )

    def names(self) -> list[str]:
        """The type name of each row."""
        return [DEFECT_TYPES[t].value for t in self.type.tolist()]

    def counts(self) -> dict[str, int]:
        """Defects per type, every type listed."""
        counts = np.bincount(self.type, minlength=len(DEFECT_TYPES))
        return {t.value: int(c) for t, c in zip(DEFECT_TYPES, counts.tolist())}


@dataclass(frozen=True, slots=True, eq=False)
class Exposure:
    """Every audited object, one row each: the denominators of :func:`defect_rates`.

    Attributes
    ----------
    annotator_id, class_id, image_id : (e,) int64
        Who was responsible for the object, its class and its image.
    """

    annotator_id: IntArray
    class_id: IntArray
    image_id: IntArray

    def __len__(self) -> int:
        return len(self.annotator_id)

    @classmethod
    def create(
        cls, annotator_id: npt.ArrayLike, class_id: npt.ArrayLike, image_id: npt.ArrayLike
    ) -> Exposure:
        """Build from three equal-length arrays."""
        columns = [np.asarray(v, dtype=np.int64).reshape(-1) for v in (annotator_id, class_id)]
        columns.append(np.asarray(image_id, dtype=np.int64).reshape(-1))
        if len({len(c) for c in columns}) > 1:
            raise ValueError(f"Exposure: expected equal lengths, got {[len(c) for c in columns]}")
        return cls(*columns)


# --- classification ---------------------------------------------------------------------------


def _geometric(ann: Annotations) -> Annotations:
    live = ann.kind != Kind.TAG
    return ann if bool(live.all()) else ann[live]


def _invalid(ann: Annotations, images: Images) -> BoolArray:
    """(n,) no area, or reaching past a known image size by more than the tolerance."""
    width = ann.bbox[:, 2] - ann.bbox[:, 0]
    height = ann.bbox[:, 3] - ann.bbox[:, 1]
    # a keypoint object may have a single visible point: its box has no area, it does
    no_area = (ann.computed_area() <= 0) & (ann.kind != Kind.KEYPOINTS)
    no_box = ~((width > 0) & (height > 0)) & (ann.kind == Kind.BOX)
    row = images.index_of(ann.image_id)
    safe = np.maximum(row, 0)
    image_w = images.width[safe].astype(np.float64) if len(images) else np.zeros(len(ann))
    image_h = images.height[safe].astype(np.float64) if len(images) else np.zeros(len(ann))
    known = (row >= 0) & (image_w > 0) & (image_h > 0)
    tol = OUTSIDE_TOLERANCE_PX
    beyond = (
        (ann.bbox[:, 0] < -tol)
        | (ann.bbox[:, 1] < -tol)
        | (ann.bbox[:, 2] > image_w + tol)
        | (ann.bbox[:, 3] > image_h + tol)
    )
    out: BoolArray = no_area | no_box | (known & beyond)
    return out


def _attribute_mismatch(
    ref: Annotations, ref_rows: IntArray, other: Annotations, other_rows: IntArray
) -> BoolArray:
    """(k,) pairs whose occluded, truncated or any shared attribute value differs."""
    differ = ref.occluded.take(ref_rows) != other.occluded.take(other_rows)
    differ |= ref.truncated.take(ref_rows) != other.truncated.take(other_rows)
    for name in sorted(set(ref.attributes) & set(other.attributes)):  # a few attributes
        a, b = ref.attributes[name], other.attributes[name]
        both = a.present.take(ref_rows) & b.present.take(other_rows)
        values_a, values_b = a.values.take(ref_rows), b.values.take(other_rows)
        if values_a.dtype.kind == "O" or values_b.dtype.kind == "O":
            values_a, values_b = values_a.astype(str), values_b.astype(str)
        differ |= both & (values_a != values_b)
    out: BoolArray = differ
    return out


def _classify_one(
    ref: Annotations,
    other: Annotations,
    annotator: int,
    threshold_of: Callable[[IntArray], FloatArray],
    images: Images,
    *,
    match_iou: float,
    pair_iou: PairIoU | None,
    swap_iou: float,
    duplicate_iou: float,
    major_margin: float,
) -> tuple[Defects, Exposure]:
    """Defects and exposure of one annotator's labels against their reference objects."""
    m = match(ref, other, iou_threshold=match_iou, pair_iou=pair_iou, swaps=True)
    real_swap = m.swap_iou >= swap_iou
    swap_ref, swap_other = m.swap_ref_rows[real_swap], m.swap_other_rows[real_swap]
    ref_paired = np.zeros(len(ref), dtype=bool)
    ref_paired[m.ref_rows] = True
    ref_paired[swap_ref] = True
    other_paired = np.zeros(len(other), dtype=bool)
    other_paired[m.other_rows] = True
    other_paired[swap_other] = True
    invalid = _invalid(other, images)

    kinds: list[IntArray] = []
    severities: list[IntArray] = []
    rows_class: list[IntArray] = []
    rows_image: list[IntArray] = []
    rows_iou: list[FloatArray] = []

    def add(
        defect: DefectType | IntArray,
        severity: Severity | IntArray,
        class_id: IntArray,
        image_id: IntArray,
        iou: FloatArray | None = None,
    ) -> None:
        n = len(class_id)
        kinds.append(np.broadcast_to(np.asarray(_code(defect), dtype=np.int64), (n,)))
        severities.append(np.broadcast_to(np.asarray(_severity_code(severity)), (n,)))
        rows_class.append(class_id)
        rows_image.append(image_id)
        rows_iou.append(np.full(n, np.nan) if iou is None else iou)

    # pairs below their class threshold: loose, tight, or a keypoint error
    threshold = threshold_of(ref.class_id.take(m.ref_rows))
    below = np.flatnonzero(m.iou < threshold)
    b_ref, b_other = m.ref_rows.take(below), m.other_rows.take(below)
    area_ref = ref.computed_area().take(b_ref)
    area_other = other.computed_area().take(b_other)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(area_other / area_ref)
    loose = ~(log_ratio < 0)  # NaN (no area) counts as loose: invalid rows say the rest
    geometry = np.where(
        loose,
        DEFECT_TYPES.index(DefectType.LOOSE_GEOMETRY),
        DEFECT_TYPES.index(DefectType.TIGHT_GEOMETRY),
    )
    keypoint = ref.kind.take(b_ref) == Kind.KEYPOINTS
    geometry = np.where(keypoint, DEFECT_TYPES.index(DefectType.KEYPOINT_ERROR), geometry)
    far = m.iou.take(below) < threshold.take(below) - major_margin
    default = np.where(
        keypoint,
        SEVERITIES.index(DEFAULT_SEVERITY[DefectType.KEYPOINT_ERROR]),
        SEVERITIES.index(DEFAULT_SEVERITY[DefectType.LOOSE_GEOMETRY]),
    )
    severity = np.where(far, np.minimum(default, SEVERITIES.index(Severity.MAJOR)), default)
    add(geometry, severity, ref.class_id.take(b_ref), ref.image_id.take(b_ref), m.iou.take(below))

    # attributes of every same-class pair
    wrong = np.flatnonzero(_attribute_mismatch(ref, m.ref_rows, other, m.other_rows))
    a_ref = m.ref_rows.take(wrong)
    add(
        DefectType.ATTRIBUTE_ERROR,
        DEFAULT_SEVERITY[DefectType.ATTRIBUTE_ERROR],
        ref.class_id.take(a_ref),
        ref.image_id.take(a_ref),
        m.iou.take(wrong),
    )

    # wrong class, missing
    add(
        DefectType.WRONG_CLASS,
        DEFAULT_SEVERITY[DefectType.WRONG_CLASS],
        ref.class_id.take(swap_ref),
        ref.image_id.take(swap_ref),
        m.swap_iou[real_swap],
    )
    missing = np.flatnonzero(~ref_paired)
    add(
        DefectType.MISSING,
        DEFAULT_SEVERITY[DefectType.MISSING],
        ref.class_id.take(missing),
        ref.image_id.take(missing),
    )

    # unpaired labels: invalid, duplicate of a paired label, or extra
    leftover = ~other_paired
    duplicate = np.zeros(len(other), dtype=bool)
    if leftover.any() and other_paired.any():
        _, key = np.unique(
            np.stack([other.image_id, other.class_id], axis=1), axis=0, return_inverse=True
        )
        rows_a, rows_b, iou = box_pairs_overlapping_within(
            key.reshape(-1).astype(np.int64), other.bbox
        )
        close = iou >= duplicate_iou
        rows_a, rows_b = rows_a[close], rows_b[close]
        duplicate[rows_a[leftover[rows_a] & other_paired[rows_b]]] = True
        duplicate[rows_b[leftover[rows_b] & other_paired[rows_a]]] = True
    invalid_rows = np.flatnonzero(invalid)
    add(
        DefectType.INVALID_GEOMETRY,
        DEFAULT_SEVERITY[DefectType.INVALID_GEOMETRY],
        other.class_id.take(invalid_rows),
        other.image_id.take(invalid_rows),
    )
    dup_rows = np.flatnonzero(leftover & duplicate & ~invalid)
    add(
        DefectType.DUPLICATE,
        DEFAULT_SEVERITY[DefectType.DUPLICATE],
        other.class_id.take(dup_rows),
        other.image_id.take(dup_rows),
    )
    extra_rows = np.flatnonzero(leftover & ~duplicate & ~invalid)
    add(
        DefectType.EXTRA,
        DEFAULT_SEVERITY[DefectType.EXTRA],
        other.class_id.take(extra_rows),
        other.image_id.take(extra_rows),
    )

    type_codes = np.concatenate(kinds).astype(np.int64)
    defects = Defects(
        type=type_codes,
        severity=np.concatenate(severities).astype(np.int64),
        annotator_id=np.full(len(type_codes), annotator, dtype=np.int64),
        class_id=np.concatenate(rows_class).astype(np.int64),
        image_id=np.concatenate(rows_image).astype(np.int64),
        iou=np.concatenate(rows_iou).astype(np.float64),
    )
    unpaired = np.flatnonzero(leftover)
    exposure = Exposure(
        annotator_id=np.full(len(ref) + len(unpaired), annotator, dtype=np.int64),
        class_id=np.concatenate([ref.class_id, other.class_id.take(unpaired)]),
        image_id=np.concatenate([ref.image_id, other.image_id.take(unpaired)]),
    )
    return defects, exposure


def _code(defect: DefectType | IntArray) -> int | IntArray:
    return DEFECT_TYPES.index(defect) if isinstance(defect, DefectType) else defect


def _severity_code(severity: Severity | IntArray) -> int | IntArray:
    return SEVERITIES.index(severity) if isinstance(severity, Severity) else severity


def classify_defects(
    reference: Dataset,
    other: Annotations,
    *,
    iou_threshold: float | None = None,
    match_iou: float = MATCH_IOU,
    pair_iou: PairIoU | None = None,
    swap_iou: float = SWAP_IOU,
    duplicate_iou: float = DUPLICATE_IOU,
    major_margin: float = GEOMETRY_MAJOR_MARGIN,
) -> tuple[Defects, Exposure]:
    """Find and type every defect of ``other`` against ``reference`` (module docstring).

    Parameters
    ----------
    reference
        The reference (gold) data set: its taxonomy gives each class's threshold, its
        images the sizes that make a box invalid.
    other
        The labels under test; several annotators (``annotator_id``) are each held to the
        reference objects of the images they labelled.
    iou_threshold
        One threshold for every class instead of each class's tier threshold.
    match_iou
        IoU at which two objects are the same object (pairing); default 0.1.
    pair_iou
        IoU of row pairs for polygons, masks and keypoints (OKS); default box IoU.
    swap_iou, duplicate_iou, major_margin
        See :data:`SWAP_IOU`, :data:`DUPLICATE_IOU`, :data:`GEOMETRY_MAJOR_MARGIN`.

    Returns
    -------
    tuple of Defects and Exposure

    Examples
    --------
    >>> from labelgate.core.images import Images
    >>> ref = Dataset(Annotations.create(image_id=[1, 1, 1], class_id=[1, 1, 2],
    ...                                  bbox=[[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]),
    ...               Images.create(id=[1], width=[100], height=[100]),
    ...               Taxonomy.from_names(["car", "bus"]))
    >>> other = Annotations.create(image_id=[1, 1, 1, 1], class_id=[1, 1, 1, 1],
    ...     bbox=[[0, 0, 10, 10], [0, 0, 10, 10.5], [17, 0, 33, 13], [40, 0, 50, 10]],
    ...     annotator_id=[7, 7, 7, 7])
    >>> defects, exposure = classify_defects(ref, other)
    >>> defects.names(), len(exposure)
    (['loose_geometry', 'wrong_class', 'duplicate'], 4)
    """
    ref = _geometric(reference.annotations)
    other = _geometric(other)
    taxonomy = reference.taxonomy
    ids = taxonomy.ids
    thresholds = (
        taxonomy.thresholds(ids) if iou_threshold is None else np.full(len(ids), iou_threshold)
    )
    # per class id -> threshold table; unknown classes never fall below (NaN compares False)
    table = np.append(thresholds, np.nan)

    def threshold_of(class_id: IntArray) -> FloatArray:
        position = taxonomy.position(class_id)
        out: FloatArray = table[np.where(position >= 0, position, len(ids))]
        return out

    annotators = np.unique(other.annotator_id)
    parts: list[tuple[Defects, Exposure]] = []
    options: dict[str, Any] = {
        "match_iou": match_iou,
        "pair_iou": pair_iou,
        "swap_iou": swap_iou,
        "duplicate_iou": duplicate_iou,
        "major_margin": major_margin,
    }
    images = reference.images
    if len(annotators) <= 1:
        who = int(annotators[0]) if len(annotators) else -1
        parts.append(_classify_one(ref, other, who, threshold_of, images, **options))
    else:
        for annotator in annotators.tolist():  # a handful of annotators, each vectorized
            theirs = other[other.annotator_id == annotator]
            mine = ref[np.isin(ref.image_id, np.unique(theirs.image_id))]
            parts.append(_classify_one(mine, theirs, annotator, threshold_of, images, **options))
    defects = Defects.concat([d for d, _ in parts])
    exposure = Exposure(
        *(
            np.concatenate([getattr(e, name) for _, e in parts])
            for name in ("annotator_id", "class_id", "image_id")
        )
    )
    return defects, exposure


# --- rates ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DefectRates:
    """Defect rates per group; :meth:`to_dict` is the documented JSON (docs/defects.md).

    Every row holds ``exposure`` (audited objects), ``defects``, ``rate`` (defects per
    audited object, None without exposure), ``by_type`` (``{type: {"count", "rate"}}``,
    every type) and ``by_severity`` (``{severity: count}``).
    """

    overall: dict[str, Any]
    by_annotator: list[dict[str, Any]]
    by_cohort: list[dict[str, Any]] = field(default_factory=list)
    by_class: list[dict[str, Any]] = field(default_factory=list)
    by_scene: list[dict[str, Any]] = field(default_factory=list)
    by_density: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "severity": {t.value: DEFAULT_SEVERITY[t].value for t in DEFECT_TYPES},
            "overall": self.overall,
            "by_annotator": self.by_annotator,
            "by_cohort": self.by_cohort,
            "by_class": self.by_class,
            "by_scene": self.by_scene,
            "by_density": self.by_density,
        }


def _rate(count: int, exposure: int) -> float | None:
    return round(count / exposure, 6) if exposure else None


def _table(
    defects: Defects, defect_group: IntArray, exposure_group: IntArray, size: int
) -> list[dict[str, Any]]:
    """Rows for groups ``0..size-1`` from group codes of every defect and exposure row."""
    n_types, n_severities = len(DEFECT_TYPES), len(SEVERITIES)
    exposure = np.bincount(exposure_group, minlength=size)
    by_type = np.bincount(defect_group * n_types + defects.type, minlength=size * n_types).reshape(
        size, n_types
    )
    by_severity = np.bincount(
        defect_group * n_severities + defects.severity, minlength=size * n_severities
    ).reshape(size, n_severities)
    rows = []
    for g in range(size):  # groups, not objects
        e = int(exposure[g])
        counts = by_type[g].tolist()
        rows.append(
            {
                "exposure": e,
                "defects": int(sum(counts)),
                "rate": _rate(int(sum(counts)), e),
                "by_type": {
                    t.value: {"count": c, "rate": _rate(c, e)} for t, c in zip(DEFECT_TYPES, counts)
                },
                "by_severity": {
                    s.value: int(c) for s, c in zip(SEVERITIES, by_severity[g].tolist())
                },
            }
        )
    return rows


def _encode(*columns: IntArray) -> tuple[IntArray, list[Any]]:
    """Dense codes over the concatenation of ``columns`` and the distinct values, sorted."""
    values, codes = np.unique(np.concatenate(columns), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), values.tolist()


def defect_rates(
    defects: Defects,
    exposure: Exposure,
    *,
    taxonomy: Taxonomy | None = None,
    images: Images | None = None,
    objects_per_image: IntArray | None = None,
    cohort_of: Mapping[int, str] | None = None,
) -> DefectRates:
    """Defect rate by type and severity per annotator, cohort, class, scene and density.

    Parameters
    ----------
    defects
        One row per defect (:func:`classify_defects`, or built by hand with
        :meth:`Defects.create`).
    exposure
        One row per audited object: the denominators.
    taxonomy
        Names the classes (``name`` key); classes it does not know get ``"?<id>"``.
    images
        Gives ``by_scene`` (``Images.scene_type``) and ``by_density``; without it both are
        empty.
    objects_per_image
        (len(images),) objects on each image that set its density bucket
        (:data:`~labelgate.core.summary.DENSITY_BUCKETS`), e.g.
        :func:`~labelgate.core.summary.objects_per_image` of the reference, as
        ``labelgate compare`` buckets; default the exposure rows per image.
    cohort_of
        Annotator id -> cohort name (``crowd``, ``managed``, a pool); gives ``by_cohort``.
        Annotators absent from it form the cohort ``"unassigned"``.

    Returns
    -------
    DefectRates

    Examples
    --------
    Annotator 1 audited on 10 objects with 2 misses, annotator 2 on 5 with one extra:

    >>> defects = Defects.create(["missing", "missing", "extra"], [1, 1, 2], [1, 1, 1],
    ...                          [1, 2, 3])
    >>> exposure = Exposure.create([1] * 10 + [2] * 5, [1] * 15, [1] * 15)
    >>> rates = defect_rates(defects, exposure, cohort_of={1: "crowd", 2: "managed"})
    >>> [(r["annotator_id"], r["rate"]) for r in rates.by_annotator]
    [(1, 0.2), (2, 0.2)]
    >>> rates.overall["by_type"]["missing"], rates.overall["by_severity"]["major"]
    ({'count': 2, 'rate': 0.133333}, 3)
    >>> [(r["cohort"], r["defects"]) for r in rates.by_cohort]
    [('crowd', 2), ('managed', 1)]
    """
    n_defects = len(defects)
    overall = _table(defects, np.zeros(n_defects, np.int64), np.zeros(len(exposure), np.int64), 1)[
        0
    ]

    codes, annotators = _encode(defects.annotator_id, exposure.annotator_id)
    rows = _table(defects, codes[:n_defects], codes[n_defects:], len(annotators))
    by_annotator = [
        {
            "annotator_id": a,
            **({"cohort": cohort_of.get(a, "unassigned")} if cohort_of else {}),
            **row,
        }
        for a, row in zip(annotators, rows)
    ]

    by_cohort: list[dict[str, Any]] = []
    if cohort_of is not None:
        names = sorted({*cohort_of.values(), "unassigned"})
        lookup = {a: names.index(cohort_of.get(a, "unassigned")) for a in annotators}
        cohort = np.array([lookup[a] for a in annotators], dtype=np.int64)  # per annotator
        rows = _table(defects, cohort[codes[:n_defects]], cohort[codes[n_defects:]], len(names))
        by_cohort = [
            {"cohort": name, **row}
            for name, row in zip(names, rows)
            if row["exposure"] or row["defects"]
        ]

    codes, classes = _encode(defects.class_id, exposure.class_id)
    rows = _table(defects, codes[:n_defects], codes[n_defects:], len(classes))
    class_names = (
        taxonomy.names_of(np.asarray(classes, dtype=np.int64))
        if taxonomy is not None
        else [f"?{c}" for c in classes]
    )
    by_class = [
        {"class_id": c, "name": name, **row} for c, name, row in zip(classes, class_names, rows)
    ]

    by_scene: list[dict[str, Any]] = []
    by_density: list[dict[str, Any]] = []
    if images is not None:
        defect_row = images.index_of(defects.image_id)
        exposure_row = images.index_of(exposure.image_id)
        scenes, scene_of_image = np.unique(images.scene_type.astype(str), return_inverse=True)
        scene_of_image = np.append(scene_of_image.reshape(-1), len(scenes))  # -1: outside
        rows = _table(
            defects, scene_of_image[defect_row], scene_of_image[exposure_row], len(scenes) + 1
        )
        by_scene = [
            {"scene_type": name, **row}
            for name, row in zip(scenes.tolist(), rows)
            if row["exposure"] or row["defects"]
        ]
        if objects_per_image is None:
            inside = exposure_row[exposure_row >= 0]
            objects_per_image = np.bincount(inside, minlength=len(images))
        labels = density_bucket_labels()
        bucket = np.append(density_bucket(np.asarray(objects_per_image)), len(labels))
        rows = _table(defects, bucket[defect_row], bucket[exposure_row], len(labels) + 1)
        by_density = [{"bucket": label, **row} for label, row in zip(labels, rows)]
    return DefectRates(
        overall=overall,
        by_annotator=by_annotator,
        by_cohort=by_cohort,
        by_class=by_class,
        by_scene=by_scene,
        by_density=by_density,
    )


# --- root causes ------------------------------------------------------------------------------


def _as_document(value: Any) -> Mapping[str, Any]:
    document: Mapping[str, Any] = value.to_dict() if hasattr(value, "to_dict") else value
    return document


def _pct(value: float) -> str:
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def root_causes(
    comparison: Any,
    *,
    agreement: Any = None,
    agreement_metric: str = "krippendorff_alpha",
    agreement_floor: float = AGREEMENT_FLOOR,
    confusion_share: float = CONFUSION_SHARE,
    bias_limit: float = BIAS_LIMIT,
    density_ratio: float = DENSITY_MISS_RATIO,
    density_gap: float = DENSITY_MISS_GAP,
    min_support: int = MIN_SUPPORT,
) -> list[dict[str, Any]]:
    """Name the guideline to fix, from a comparison and (optionally) per-class agreement.

    Parameters
    ----------
    comparison
        A :class:`~labelgate.core.compare.Comparison` or its ``to_dict()``: ``confusion``,
        ``per_class``, ``by_annotator`` (``bias``) and ``by_density`` are read.
    agreement
        Per-class agreement: a :class:`~labelgate.core.geometry_agreement.GeometryAgreement`
        or its ``to_dict()`` (``agreement_metric`` of each ``per_class`` row), or a mapping
        class name -> value (kappa, alpha...). Default: each class's ``f1`` in the
        comparison (matched objects over the two sets' mean count, the geometric
        agreement of the two sets).
    agreement_metric
        Key read from ``agreement`` rows; default Krippendorff's alpha.
    agreement_floor
        Agreement below this names the class; default 0.70 (the seed).
    confusion_share
        Share of a class's reference objects labelled as one other class that names the
        pair; default 0.05.
    bias_limit
        ``|(log_width_ratio + log_height_ratio) / 2|`` beyond which an annotator is
        consistently loose (+) or tight (-); default 0.05.
    density_ratio, density_gap
        The densest bucket's missed rate must be at least ``density_ratio`` times the
        sparsest's and ``density_gap`` higher; defaults 2.0 and 0.02.
    min_support
        Fewest reference objects (classes, buckets) or matched pairs (annotators) behind
        a hint; default 30.

    Returns
    -------
    list of dict
        One hint each: ``kind`` (``confused_pair``, ``low_agreement_class``,
        ``biased_annotator``, ``density_miss_climb``), ``subject``, ``evidence`` (the
        numbers) and ``guideline`` (a sentence naming what to fix); in that kind order,
        the strongest evidence first within a kind.

    Examples
    --------
    >>> comparison = {
    ...     "confusion": {"labels": ["truck", "bus", "unmatched"],
    ...                   "matrix": [[80, 14, 6], [2, 95, 3], [1, 0, 0]]},
    ...     "per_class": [], "by_annotator": [], "by_density": []}
    >>> [hint] = root_causes(comparison)
    >>> hint["kind"], hint["evidence"]["share"]
    ('confused_pair', 0.14)
    >>> hint["guideline"]
    "Add an edge-case rule separating 'truck' from 'bus': 14% of truck objects were labelled bus."
    """
    document = _as_document(comparison)
    hints: list[dict[str, Any]] = []
    hints += _confused_pairs(document, confusion_share, min_support)
    hints += _low_agreement(document, agreement, agreement_metric, agreement_floor, min_support)
    hints += _biased_annotators(document, bias_limit, min_support)
    hints += _density_climb(document, density_ratio, density_gap, min_support)
    return hints


def _confused_pairs(
    document: Mapping[str, Any], share_limit: float, min_support: int
) -> list[dict[str, Any]]:
    confusion = document.get("confusion") or {}
    labels: list[str] = list(confusion.get("labels", []))
    if len(labels) < 2:
        return []
    matrix = np.asarray(confusion["matrix"], dtype=np.int64)
    k = len(labels) - 1  # the last row and column are "unmatched"
    counts = matrix[:k, :k]
    totals = matrix[:k, :].sum(axis=1)  # every reference object of the class
    share = np.divide(
        counts, totals[:, None], out=np.zeros(counts.shape), where=totals[:, None] > 0
    )
    np.fill_diagonal(share, 0.0)
    named = (share >= share_limit) & (totals[:, None] >= min_support)
    hints = []
    done: set[tuple[int, int]] = set()
    # strongest direction first; the reverse direction joins the same hint
    for flat in np.argsort(-share, axis=None, kind="stable").tolist():
        i, j = divmod(flat, k)
        if not named[i, j] or (min(i, j), max(i, j)) in done:
            continue
        done.add((min(i, j), max(i, j)))
        hints.append(
            {
                "kind": "confused_pair",
                "subject": [labels[i], labels[j]],
                "evidence": {
                    "class": labels[i],
                    "labelled_as": labels[j],
                    "count": int(counts[i, j]),
                    "ref_count": int(totals[i]),
                    "share": round(float(share[i, j]), 6),
                    "reverse_count": int(counts[j, i]),
                    "reverse_share": round(float(share[j, i]), 6),
                },
                "guideline": (
                    f"Add an edge-case rule separating {labels[i]!r} from {labels[j]!r}: "
                    f"{_pct(float(share[i, j]))} of {labels[i]} objects were labelled "
                    f"{labels[j]}."
                ),
            }
        )
    return hints


def _agreement_values(
    document: Mapping[str, Any], agreement: Any, metric: str
) -> tuple[dict[str, float | None], str]:
    if agreement is None:
        return {row["name"]: row.get("f1") for row in document.get("per_class", [])}, "f1"
    source = _as_document(agreement)
    if "per_class" in source:
        return {row["name"]: row.get(metric) for row in source["per_class"]}, metric
    return {str(k): v for k, v in source.items()}, metric


def _low_agreement(
    document: Mapping[str, Any], agreement: Any, metric: str, floor: float, min_support: int
) -> list[dict[str, Any]]:
    values, metric = _agreement_values(document, agreement, metric)
    support = {
        row["name"]: row.get("ref_count", 0) + row.get("other_count", 0)
        for row in document.get("per_class", [])
    }
    rows = {row["name"]: row for row in document.get("per_class", [])}
    hints = []
    for name, value in sorted(values.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0)):
        if value is None or value >= floor or not math.isfinite(value):
            continue
        objects = support.get(name)
        if objects is not None and objects < min_support:
            continue
        iou = rows.get(name, {}).get("iou", {})
        evidence = {
            "metric": metric,
            "value": round(float(value), 6),
            "floor": floor,
            "objects": objects,
            "iou_median": iou.get("median"),
            "iou_p10": iou.get("p10"),
        }
        hints.append(
            {
                "kind": "low_agreement_class",
                "subject": name,
                "evidence": evidence,
                "guideline": (
                    f"Revise the guideline for {name!r} before labelling more: agreement "
                    f"({metric}) is {value:.2f}, below the {floor:.2f} floor; define where its "
                    "boundary lies and when an instance counts, with examples."
                ),
            }
        )
    return hints


def _biased_annotators(
    document: Mapping[str, Any], limit: float, min_support: int
) -> list[dict[str, Any]]:
    found = []
    for row in document.get("by_annotator", []):
        bias = row.get("bias", {})
        log_w, log_h = bias.get("log_width_ratio"), bias.get("log_height_ratio")
        if log_w is None or log_h is None or row.get("matched", 0) < min_support:
            continue
        size = (log_w + log_h) / 2
        if abs(size) < limit:
            continue
        found.append((abs(size), row, size, log_w, log_h))
    hints = []
    for _, row, size, log_w, log_h in sorted(found, key=lambda f: -f[0]):
        direction = "loose" if size > 0 else "tight"
        percent = abs(math.expm1(size))
        larger = "larger" if size > 0 else "smaller"
        hints.append(
            {
                "kind": "biased_annotator",
                "subject": row["annotator_id"],
                "evidence": {
                    "direction": direction,
                    "mean_log_size_ratio": round(size, 6),
                    "log_width_ratio": log_w,
                    "log_height_ratio": log_h,
                    "matched": row["matched"],
                    "limit": limit,
                },
                "guideline": (
                    f"Restate the box-edge rule (edges on the outermost visible pixels) with "
                    f"annotator {row['annotator_id']}: their boxes are consistently {direction}, "
                    f"{percent:.0%} {larger} per side than the reference over "
                    f"{row['matched']:,} matched objects."
                ),
            }
        )
    return hints


def _density_climb(
    document: Mapping[str, Any], ratio: float, gap: float, min_support: int
) -> list[dict[str, Any]]:
    buckets = [
        {
            "bucket": row["bucket"],
            "ref_count": row["ref_count"],
            "missed": row["missed"],
            "missed_rate": round(row["missed"] / row["ref_count"], 6),
        }
        for row in document.get("by_density", [])
        if row.get("ref_count", 0) >= min_support
    ]
    if len(buckets) < 2:
        return []
    sparse, dense = buckets[0], buckets[-1]
    low, high = sparse["missed_rate"], dense["missed_rate"]
    if high < ratio * low or high - low < gap:
        return []
    # the first bucket where the climb has already happened
    start = next(
        b for b in buckets if b["missed_rate"] >= ratio * low and b["missed_rate"] - low >= gap
    )
    return [
        {
            "kind": "density_miss_climb",
            "subject": dense["bucket"],
            "evidence": {
                "sparse_bucket": sparse["bucket"],
                "dense_bucket": dense["bucket"],
                "from_bucket": start["bucket"],
                "ratio": round(high / low, 6) if low > 0 else None,
                "buckets": buckets,
            },
            "guideline": (
                f"Add a dense-scene rule (a systematic sweep of the image; whether a packed "
                f"group is one crowd box or every instance): images with {dense['bucket']} "
                f"objects miss {_pct(high)} of objects vs {_pct(low)} with "
                f"{sparse['bucket']}."
            ),
        }
    ]
