"""Classes, precision tiers and the attribute schema of a labeling program."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.errors import ValidationError

__all__ = [
    "TIER_RANGES",
    "AttributeSpec",
    "AttributeType",
    "ClassInfo",
    "PrecisionTier",
    "Taxonomy",
]


class PrecisionTier(enum.StrEnum):
    """How tightly a class's geometry must fit, measured as IoU against a reference.

    The ranges follow the seed documents: loose boxes (0.5-0.65) suffice for
    classification support and amorphous classes (smoke, crowds); tight boxes (0.75-0.9)
    are required for small objects, dense scenes and safety-critical classes.
    """

    LOOSE = "loose"
    STANDARD = "standard"
    TIGHT = "tight"


#: Allowed IoU threshold range of each tier, inclusive, and the default threshold.
TIER_RANGES: dict[PrecisionTier, tuple[float, float, float]] = {
    PrecisionTier.LOOSE: (0.5, 0.65, 0.5),
    PrecisionTier.STANDARD: (0.65, 0.75, 0.7),
    PrecisionTier.TIGHT: (0.75, 0.9, 0.75),
}


class AttributeType(enum.StrEnum):
    """Value type of an annotation attribute."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    SELECT = "select"  # one of ``values``


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """One class of the taxonomy.

    Parameters
    ----------
    id
        The class id used in ``Annotations.class_id`` (COCO category id).
    name
        Display name; unique within the taxonomy.
    supercategory
        COCO supercategory; empty when none.
    tier
        Precision tier; its range bounds ``iou_threshold``.
    iou_threshold
        IoU a geometry must reach against the reference to count as a match; ``None`` takes
        the tier's default.
    keypoints
        Keypoint names for keypoint classes (COCO ``categories[].keypoints``).
    skeleton
        Pairs of 1-based keypoint indices (COCO convention).
    """

    id: int
    name: str
    supercategory: str = ""
    tier: PrecisionTier = PrecisionTier.LOOSE
    iou_threshold: float | None = None
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValidationError("expected a non-empty class name", field="name")
        low, high, default = TIER_RANGES[PrecisionTier(self.tier)]
        if self.iou_threshold is None:
            object.__setattr__(self, "iou_threshold", default)
        elif not low <= self.iou_threshold <= high:
            raise ValidationError(
                f"class {self.name!r}: tier {self.tier.value} allows IoU {low}-{high}, "
                f"got {self.iou_threshold}",
                field="iou_threshold",
            )

    @property
    def threshold(self) -> float:
        """The IoU threshold in force (``iou_threshold`` after defaults)."""
        assert self.iou_threshold is not None  # set in __post_init__
        return self.iou_threshold


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute of the schema, e.g. ``occluded`` or ``vehicle_type``.

    Parameters
    ----------
    name
        Attribute name, as stored in ``Annotations.attributes``.
    type
        Value type.
    values
        Allowed values for ``select`` (and optionally ``text``); empty means any.
    classes
        Class ids the attribute applies to; empty means every class.
    required
        Whether every applicable annotation must carry a value.
    default
        Default value as text (CVAT ``default_value``), empty when none.
    mutable
        CVAT's ``mutable`` flag (may change along a track).
    """

    name: str
    type: AttributeType = AttributeType.TEXT
    values: tuple[str, ...] = ()
    classes: tuple[int, ...] = ()
    required: bool = False
    default: str = ""
    mutable: bool = False


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """The classes and attribute schema of a data set.

    Examples
    --------
    >>> t = Taxonomy.from_names(["car", "person"])
    >>> t.ids.tolist(), t.names
    ([1, 2], ('car', 'person'))
    >>> t.thresholds(np.array([2, 1, 2])).tolist()
    [0.5, 0.5, 0.5]
    """

    classes: tuple[ClassInfo, ...] = ()
    attributes: tuple[AttributeSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        seen: dict[int, int] = {}
        for row, class_id in enumerate(ids):
            if class_id in seen:
                raise ValidationError(
                    f"duplicate class id {class_id} (also at {seen[class_id]})",
                    field="classes.id",
                    row=row,
                )
            seen[class_id] = row
        names: dict[str, int] = {}
        for row, c in enumerate(self.classes):
            if c.name in names:
                raise ValidationError(
                    f"duplicate class name {c.name!r} (also at {names[c.name]})",
                    field="classes.name",
                    row=row,
                )
            names[c.name] = row
        attr_names = [a.name for a in self.attributes]
        if len(set(attr_names)) != len(attr_names):
            raise ValidationError("duplicate attribute names", field="attributes.name")

    @classmethod
    def from_names(cls, names: Iterable[str], *, first_id: int = 1) -> Taxonomy:
        """Build a taxonomy of loose classes numbered from ``first_id``."""
        return cls(tuple(ClassInfo(first_id + i, n) for i, n in enumerate(names)))

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def ids(self) -> IntArray:
        """(k,) class ids in taxonomy order."""
        return np.array([c.id for c in self.classes], dtype=np.int64)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names in taxonomy order."""
        return tuple(c.name for c in self.classes)

    def by_id(self, class_id: int) -> ClassInfo:
        """Return the class with this id; ``KeyError`` when absent."""
        for c in self.classes:
            if c.id == class_id:
                return c
        raise KeyError(class_id)

    def by_name(self, name: str) -> ClassInfo:
        """Return the class with this name; ``KeyError`` when absent."""
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    def attribute(self, name: str) -> AttributeSpec:
        """Return the attribute spec with this name; ``KeyError`` when absent."""
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)

    def position(self, class_ids: IntArray) -> IntArray:
        """(n,) the taxonomy position of each class id; -1 for ids not in the taxonomy."""
        ids = self.ids
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        class_ids = np.asarray(class_ids, dtype=np.int64)
        pos = np.searchsorted(sorted_ids, class_ids)
        pos_clipped = np.minimum(pos, max(len(ids) - 1, 0))
        if len(ids) == 0:
            return np.full(len(class_ids), -1, dtype=np.int64)
        found = sorted_ids[pos_clipped] == class_ids
        return np.where(found, order[pos_clipped], -1).astype(np.int64)

    def names_of(self, class_ids: IntArray) -> list[str]:
        """Names for an array of class ids (``"?<id>"`` for unknown ids)."""
        pos = self.position(class_ids)
        names = self.names
        return [names[p] if p >= 0 else f"?{c}" for p, c in zip(pos.tolist(), class_ids.tolist())]

    def thresholds(self, class_ids: IntArray) -> FloatArray:
        """(n,) the IoU threshold in force for each class id (NaN for unknown ids)."""
        table = np.array([c.threshold for c in self.classes] + [np.nan], dtype=np.float64)
        return table[self.position(class_ids)]

    def with_classes(self, classes: Sequence[ClassInfo]) -> Taxonomy:
        """Return a copy with other classes and the same attribute schema."""
        return Taxonomy(tuple(classes), self.attributes)
