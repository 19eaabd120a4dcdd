"""The columnar annotation container: one numpy array per field over the whole data set."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelgate.core._typing import BoolArray, FloatArray, IntArray, UInt8Array
from labelgate.core.ragged import Ragged, gather_ranges
from labelgate.errors import ValidationError

__all__ = [
    "Annotations",
    "AttributeColumn",
    "Groups",
    "Kind",
    "Problem",
    "Source",
    "polygon_area",
    "rle_area",
]


class Kind(enum.IntEnum):
    """What an annotation is; stored as ``uint8`` in ``Annotations.kind``."""

    TAG = 0  # whole-image label, no geometry, bbox is NaN
    BOX = 1
    POLYGON = 2  # one or more rings in ``rings`` / ``ring_offsets``
    MASK = 3  # COCO RLE in ``rle_counts`` / ``rle_size``
    KEYPOINTS = 4  # (k, 3) rows in ``keypoints``: x, y, visibility


class Source(enum.IntEnum):
    """Who made an annotation; stored as ``uint8`` in ``Annotations.source``."""

    HUMAN = 0
    PRELABEL = 1  # proposed by a model, not yet reviewed
    MERGED = 2  # consensus of several annotators


_LARGEST_FLOAT = np.finfo(np.float64).max
# plain ints of the enums for the row checks: an IntEnum member lookup costs a microsecond,
# and the checks of a 10-object save are dozens of them
_MAX_KIND, _MAX_SOURCE = max(Kind).value, max(Source).value
_TAG, _POLYGON, _MASK, _KEYPOINTS = (
    Kind.TAG.value,
    Kind.POLYGON.value,
    Kind.MASK.value,
    Kind.KEYPOINTS.value,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a container: the field, the row (or None) and what is wrong."""

    field: str
    row: int | None
    message: str

    def error(self) -> ValidationError:
        """Return this problem as a raisable :class:`ValidationError`."""
        return ValidationError(self.message, field=self.field, row=self.row)


@dataclass(frozen=True, slots=True, eq=False)
class AttributeColumn:
    """One free-form attribute over all annotations: typed values plus a presence mask.

    ``values`` is bool, int64, float64 or object (str) with shape (n,); ``present`` (n,)
    says which annotations carry the attribute at all (absent values are placeholders).
    """

    values: NDArray[Any]
    present: BoolArray

    def __post_init__(self) -> None:
        if self.values.dtype.kind not in "bifO":
            raise ValidationError(
                f"expected bool, int, float or str values, got dtype {self.values.dtype}",
                field="attributes",
            )
        if self.values.shape != self.present.shape or self.values.ndim != 1:
            raise ValidationError(
                f"values {self.values.shape} and present {self.present.shape} must be equal (n,)",
                field="attributes",
            )
        self.values.setflags(write=False)
        self.present.setflags(write=False)

    @classmethod
    def from_list(cls, items: Sequence[Any]) -> AttributeColumn:
        """Build from Python values with ``None`` for absent; the dtype follows the values.

        Examples
        --------
        >>> AttributeColumn.from_list([1, None, 3]).values.tolist()
        [1, 0, 3]
        >>> AttributeColumn.from_list([True, "x"]).values.dtype
        dtype('O')
        """
        present = np.fromiter((v is not None for v in items), dtype=bool, count=len(items))
        kinds = {type(v) for v in items if v is not None}
        values: NDArray[Any]
        if kinds <= {bool}:
            values = np.array([bool(v) if v is not None else False for v in items], dtype=bool)
        elif kinds <= {int}:
            values = np.array([v if v is not None else 0 for v in items], dtype=np.int64)
        elif kinds <= {int, float}:
            values = np.array([v if v is not None else np.nan for v in items], dtype=np.float64)
        else:
            values = np.empty(len(items), dtype=object)
            values[:] = [str(v) if v is not None else "" for v in items]
        return cls(values, present)

    def take(self, index: IntArray) -> AttributeColumn:
        """Select rows by index."""
        return AttributeColumn(self.values[index], self.present[index])

    def value(self, row: int) -> Any:
        """The Python value at ``row``, or None when absent."""
        if not self.present[row]:
            return None
        return self.values[row].item() if self.values.dtype.kind != "O" else self.values[row]

    def to_list(self) -> list[Any]:
        """Python values with None for absent ones."""
        vals = self.values.tolist()
        return [v if p else None for v, p in zip(vals, self.present.tolist())]


@dataclass(frozen=True, slots=True, eq=False)
class Groups:
    """Rows grouped by sorting: group ``g`` is ``order[offsets[g]:offsets[g + 1]]``.

    ``keys`` holds each group's key, (k,) for one field or (k, f) for several.
    """

    keys: IntArray
    order: IntArray
    offsets: IntArray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> IntArray:
        """(k,) rows per group."""
        return np.diff(self.offsets)

    def group_of(self) -> IntArray:
        """(n,) the group of each row, in original row order."""
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = np.repeat(np.arange(len(self), dtype=np.int64), self.sizes)
        return out

    def reduce_sum(self, values: NDArray[Any]) -> NDArray[Any]:
        """Sum ``values`` (n, ...) within each group -> (k, ...)."""
        if len(self) == 0:
            return np.zeros((0, *values.shape[1:]), dtype=values.dtype)
        return np.add.reduceat(values[self.order], self.offsets[:-1], axis=0)


_INT_FIELDS = ("id", "image_id", "class_id", "annotator_id", "track_id", "z_order")
_FLOAT_FIELDS = ("score", "area")
_BOOL_FIELDS = ("occluded", "truncated", "iscrowd", "difficult")
_UINT8_FIELDS = ("kind", "source")
# every plain array field (the Ragged ones seal themselves), made read-only by _seal
_ARRAY_FIELDS = (
    *_INT_FIELDS,
    *_FLOAT_FIELDS,
    *_BOOL_FIELDS,
    *_UINT8_FIELDS,
    "bbox",
    "ring_offsets",
    "rle_size",
)


def polygon_area(rings: Ragged, ring_offsets: IntArray) -> FloatArray:
    """Area of each annotation's polygon rings (shoelace, summed over rings) -> (n,).

    Examples
    --------
    >>> rings = Ragged(np.array([[0.0, 0], [2, 0], [2, 2], [0, 2]]), np.array([0, 4]))
    >>> polygon_area(rings, np.array([0, 1, 1])).tolist()
    [4.0, 0.0]
    """
    pts = rings.values
    n = len(ring_offsets) - 1
    if len(pts) == 0:
        return np.zeros(n, dtype=np.float64)
    # next point within the same ring: shift by one, wrapping each ring's last to its first
    nxt = np.arange(1, len(pts) + 1, dtype=np.int64)
    lengths = rings.lengths
    ends = rings.offsets[1:][lengths > 0] - 1
    nxt[ends] = rings.offsets[:-1][lengths > 0]
    cross = pts[:, 0] * pts[nxt, 1] - pts[nxt, 0] * pts[:, 1]
    ring_area = np.zeros(len(rings), dtype=np.float64)
    nonempty = np.flatnonzero(lengths > 0)
    ring_area[nonempty] = np.abs(np.add.reduceat(cross, rings.offsets[:-1][nonempty])) / 2
    out = np.zeros(n, dtype=np.float64)
    ring_owner = np.repeat(np.arange(n), np.diff(ring_offsets))
    np.add.at(out, ring_owner, ring_area)
    return out


def rle_area(rle_counts: Ragged) -> FloatArray:
    """Foreground pixels of each uncompressed COCO RLE (sum of the odd runs) -> (n,).

    Examples
    --------
    >>> rle_area(Ragged(np.array([0, 20, 30, 5, 5]), np.array([0, 3, 5]))).tolist()
    [20.0, 5.0]
    """
    counts = rle_counts.values.astype(np.int64)
    n = len(rle_counts)
    if len(counts) == 0:
        return np.zeros(n, dtype=np.float64)
    position = np.arange(len(counts)) - np.repeat(rle_counts.offsets[:-1], rle_counts.lengths)
    foreground = np.where(position % 2 == 1, counts, 0)
    out = np.zeros(n, dtype=np.float64)
    np.add.at(out, rle_counts.row_index(), foreground)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Annotations:
    """Every annotation of a data set, one immutable numpy array per field.

    Build with :meth:`create` (defaults for every optional field), select with numpy
    indexing (``ann[ann.class_id == 3]``), combine with :meth:`concat`. There is no
    ``__iter__``: library code works on whole columns.

    Attributes
    ----------
    id : (n,) int64
        Annotation ids, unique.
    image_id, class_id : (n,) int64
    kind : (n,) uint8
        :class:`Kind` values.
    bbox : (n, 4) float64
        ``x1, y1, x2, y2`` in pixels, continuous coordinates; NaN for tags.
    score : (n,) float64
        Model confidence; NaN for human labels.
    annotator_id : (n,) int64
        -1 when unknown.
    source : (n,) uint8
        :class:`Source` values.
    track_id : (n,) int64
        -1 when none.
    z_order : (n,) int64
        Drawing order (CVAT), 0 by default.
    occluded, truncated, iscrowd, difficult : (n,) bool
    area : (n,) float64
        Area in pixels as given by the source, else computed from the geometry.
    rings : Ragged
        Polygon rings: values (p, 2) float64 points, one row per ring.
    ring_offsets : (n + 1,) int64
        Annotation ``i`` owns rings ``ring_offsets[i]:ring_offsets[i + 1]``.
    rle_counts : Ragged
        Uncompressed COCO RLE counts (column-major runs), one row per annotation.
    rle_size : (n, 2) int64
        ``height, width`` of each RLE; 0, 0 when none.
    keypoints : Ragged
        Values (k, 3) float64 ``x, y, visibility``, one row per annotation.
    attributes : Mapping[str, AttributeColumn]
        Free-form typed attributes.

    Examples
    --------
    >>> ann = Annotations.create(
    ...     image_id=[1, 1, 2], class_id=[1, 2, 1],
    ...     bbox=[[0, 0, 2, 2], [1, 1, 3, 4], [5, 5, 6, 6]])
    >>> len(ann), ann.area.tolist()
    (3, [4.0, 6.0, 1.0])
    >>> ann[ann.class_id == 1].image_id.tolist()
    [1, 2]
    >>> Annotations.create(image_id=[1], class_id=[1], bbox=[[3, 0, 1, 1]])
    Traceback (most recent call last):
    ...
    labelgate.errors.ValidationError: bbox[0]: expected x2 >= x1, got x1=3.0 x2=1.0
    """

    id: IntArray
    image_id: IntArray
    class_id: IntArray
    kind: UInt8Array
    bbox: FloatArray
    score: FloatArray
    annotator_id: IntArray
    source: UInt8Array
    track_id: IntArray
    z_order: IntArray
    occluded: BoolArray
    truncated: BoolArray
    iscrowd: BoolArray
    difficult: BoolArray
    area: FloatArray
    rings: Ragged
    ring_offsets: IntArray
    rle_counts: Ragged
    rle_size: IntArray
    keypoints: Ragged
    attributes: Mapping[str, AttributeColumn]

    def __post_init__(self) -> None:
        self._coerce()
        problems = self.problems(first_only=True)
        if problems:
            raise problems[0].error()
        self._seal()

    def _seal(self) -> Annotations:
        """Make every array read-only; only for a container whose ``problems()`` is empty.

        Readers build with ``check=False``, list every problem, and seal the container when
        there were none, instead of paying for the same checks twice on a large file.
        """
        for name in _ARRAY_FIELDS:
            getattr(self, name).setflags(write=False)
        return self

    # --- construction -------------------------------------------------------------------

    def _coerce(self) -> None:
        """Convert array-likes to the canonical dtypes; reject lossy conversions."""
        for name in _INT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
                    raise ValidationError(f"expected integers, got dtype {arr.dtype}", field=name)
            elif arr.dtype.kind not in "iub" and arr.size:
                raise ValidationError(f"expected integers, got dtype {arr.dtype}", field=name)
            object.__setattr__(self, name, arr.astype(np.int64, copy=False))
        for name in _FLOAT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "fiub" and arr.size:
                raise ValidationError(f"expected numbers, got dtype {arr.dtype}", field=name)
            object.__setattr__(self, name, arr.astype(np.float64, copy=False))
        for name in _BOOL_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "bui" and arr.size:
                raise ValidationError(f"expected booleans, got dtype {arr.dtype}", field=name)
            object.__setattr__(self, name, arr.astype(bool, copy=False))
        for name in _UINT8_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "ui" and arr.size:
                raise ValidationError(f"expected small integers, got dtype {arr.dtype}", field=name)
            object.__setattr__(self, name, arr.astype(np.uint8, copy=False))
        bbox = np.asarray(self.bbox, dtype=np.float64)
        if bbox.size == 0:
            bbox = bbox.reshape(0, 4)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "ring_offsets", np.asarray(self.ring_offsets, dtype=np.int64))
        rle_size = np.asarray(self.rle_size, dtype=np.int64)
        object.__setattr__(
            self, "rle_size", rle_size.reshape(-1, 2) if rle_size.size == 0 else rle_size
        )

    @classmethod
    def create(
        cls,
        *,
        image_id: Any,
        class_id: Any,
        bbox: Any,
        id: Any = None,
        kind: Any = None,
        score: Any = None,
        annotator_id: Any = None,
        source: Any = None,
        track_id: Any = None,
        z_order: Any = None,
        occluded: Any = None,
        truncated: Any = None,
        iscrowd: Any = None,
        difficult: Any = None,
        area: Any = None,
        rings: Ragged | None = None,
        ring_offsets: Any = None,
        rle_counts: Ragged | None = None,
        rle_size: Any = None,
        keypoints: Ragged | None = None,
        attributes: Mapping[str, AttributeColumn] | None = None,
        check: bool = True,
    ) -> Annotations:
        """Build a container, filling every omitted field with its default.

        Defaults: ids ``1..n``; kind BOX (TAG where the bbox row is all NaN); score NaN;
        annotator -1; source HUMAN; track -1; z_order 0; flags False; no polygons, masks or
        keypoints; area computed from the geometry where not given (NaN entries filled).

        ``check=False`` skips the row checks so that a reader can list *every*
        :meth:`problems` entry and drop the bad rows (``take`` checks the rest); dtypes and
        shapes are still coerced.
        """
        image_id = np.asarray(image_id, dtype=np.int64).reshape(-1)
        n = len(image_id)
        bbox_arr = np.asarray(bbox, dtype=np.float64).reshape(n, 4) if n else np.zeros((0, 4))

        def full(value: Any, fill: Any, dtype: Any) -> NDArray[Any]:
            if value is None:
                return np.full(n, fill, dtype=dtype)
            return np.asarray(value)

        if kind is None:
            kind_arr = np.where(np.isnan(bbox_arr).all(axis=1), Kind.TAG, Kind.BOX).astype(np.uint8)
        else:
            kind_arr = np.asarray(kind)
        rings = rings if rings is not None else Ragged.empty(0, width=2)
        ring_offsets_arr = (
            np.zeros(n + 1, dtype=np.int64) if ring_offsets is None else np.asarray(ring_offsets)
        )
        rle_counts = rle_counts if rle_counts is not None else Ragged.empty(n, dtype=np.int64)
        rle_size_arr = (
            np.zeros((n, 2), dtype=np.int64) if rle_size is None else np.asarray(rle_size)
        )
        keypoints = keypoints if keypoints is not None else Ragged.empty(n, width=3)
        area_arr = full(area, np.nan, np.float64).astype(np.float64)
        if np.isnan(area_arr).any() and len(area_arr) == n:
            area_arr = np.where(
                np.isnan(area_arr),
                _geometry_area(kind_arr, bbox_arr, rings, ring_offsets_arr, rle_counts),
                area_arr,
            )
        build = cls if check else cls._unchecked
        return build(
            id=full(id, 0, np.int64) if id is not None else np.arange(1, n + 1, dtype=np.int64),
            image_id=image_id,
            class_id=np.asarray(class_id).reshape(-1),
            kind=kind_arr,
            bbox=bbox_arr,
            score=full(score, np.nan, np.float64),
            annotator_id=full(annotator_id, -1, np.int64),
            source=full(source, Source.HUMAN, np.uint8),
            track_id=full(track_id, -1, np.int64),
            z_order=full(z_order, 0, np.int64),
            occluded=full(occluded, False, bool),
            truncated=full(truncated, False, bool),
            iscrowd=full(iscrowd, False, bool),
            difficult=full(difficult, False, bool),
            area=area_arr,
            rings=rings,
            ring_offsets=ring_offsets_arr,
            rle_counts=rle_counts,
            rle_size=rle_size_arr,
            keypoints=keypoints,
            attributes=dict(attributes or {}),
        )

    @classmethod
    def _unchecked(cls, **values: Any) -> Annotations:
        """Build without the row checks (see ``create(check=False)``)."""
        self = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._coerce()
        return self

    @classmethod
    def empty(cls) -> Annotations:
        """A container with no annotations."""
        return cls.create(image_id=np.zeros(0, dtype=np.int64), class_id=[], bbox=np.zeros((0, 4)))

    # --- validation ---------------------------------------------------------------------

    def problems(self, *, first_only: bool = False) -> list[Problem]:
        """Every contract violation, vectorized; the constructor raises the first one.

        Parameters
        ----------
        first_only
            Stop at the first violated rule (used by the constructor).
        """
        n = len(self.image_id)
        out: list[Problem] = []

        def add(field: str, bad: BoolArray | None, message: str | Any) -> bool:
            """Record rows where ``bad``; return True to stop early."""
            if bad is None:
                out.append(Problem(field, None, str(message)))
            else:
                if not bad.any():  # the usual case: cheaper than finding no rows
                    return False
                rows = np.flatnonzero(bad)
                take = rows[:1] if first_only else rows
                msg_rows = message(take) if callable(message) else [message] * len(take)
                out.extend(Problem(field, int(r), m) for r, m in zip(take.tolist(), msg_rows))
            return first_only

        for name in (*_INT_FIELDS, *_FLOAT_FIELDS, *_BOOL_FIELDS, *_UINT8_FIELDS):
            arr = getattr(self, name)
            if arr.shape != (n,):
                add(name, None, f"expected shape ({n},), got {arr.shape}")
                return out
        if self.bbox.shape != (n, 4):
            add("bbox", None, f"expected shape ({n}, 4), got {self.bbox.shape}")
            return out
        if self.ring_offsets.shape != (n + 1,) or self.ring_offsets[-1] != len(self.rings):
            add(
                "ring_offsets",
                None,
                f"expected {n + 1} offsets ending at {len(self.rings)} rings, "
                f"got shape {self.ring_offsets.shape}",
            )
            return out
        if (
            self.ring_offsets.any()  # no rings: offsets must all be 0
            if not len(self.rings)
            else (self.ring_offsets[1:] < self.ring_offsets[:-1]).any() or self.ring_offsets[0] != 0
        ):
            add("ring_offsets", None, "expected non-decreasing offsets starting at 0")
            return out
        if self.rings.values.ndim != 2 or self.rings.values.shape[1:] != (2,):
            add("rings", None, f"expected (p, 2) points, got {self.rings.values.shape}")
            return out
        for name, width in (("rle_counts", None), ("keypoints", 3)):
            ragged: Ragged = getattr(self, name)
            if len(ragged) != n:
                add(name, None, f"expected {n} rows, got {len(ragged)}")
                return out
            if width is not None and ragged.values.shape[1:] != (width,):
                add(name, None, f"expected (k, {width}) values, got {ragged.values.shape}")
                return out
        if self.rle_size.shape != (n, 2):
            add("rle_size", None, f"expected shape ({n}, 2), got {self.rle_size.shape}")
            return out
        for key, col in self.attributes.items():
            if col.values.shape != (n,):
                add(f"attributes.{key}", None, f"expected shape ({n},), got {col.values.shape}")
                return out

        # One aggregate test per rule (a microsecond or two each), and the row-by-row test
        # only where it fails: a valid save of ten boxes runs a dozen numpy calls instead
        # of fifty. The rules run in the same order either way, so the first problem
        # reported is the same.
        kinds = self.kind
        present = np.bincount(kinds, minlength=_MAX_KIND + 1) if n else np.zeros(_MAX_KIND + 1)
        if len(present) > _MAX_KIND + 1 and add(
            "kind",
            kinds > _MAX_KIND,
            lambda r: [f"expected one of {[k.value for k in Kind]}, got {kinds[i]}" for i in r],
        ):
            return out
        if add(
            "source",
            self.source > _MAX_SOURCE,
            lambda r: [
                f"expected one of {[s.value for s in Source]}, got {self.source[i]}" for i in r
            ],
        ):
            return out
        if n > 1:
            ids = np.sort(self.id)
            if (ids[1:] == ids[:-1]).any():
                order = np.argsort(self.id, kind="stable")
                dup = np.zeros(n, dtype=bool)
                dup[order[1:]] = self.id[order[1:]] == self.id[order[:-1]]
                if add("id", dup, lambda r: [f"duplicate annotation id {self.id[i]}" for i in r]):
                    return out
        bbox = self.bbox
        with np.errstate(invalid="ignore"):
            boxes_fine = (
                not present[_TAG] and np.isfinite(bbox).all() and (bbox[:, 2:] >= bbox[:, :2]).all()
            )
        if not boxes_fine:
            geometric = kinds != _TAG
            finite = np.isfinite(bbox).all(axis=1)
            if add(
                "bbox",
                geometric & ~finite,
                lambda r: [f"expected finite coordinates, got {bbox[i].tolist()}" for i in r],
            ):
                return out
            if add(
                "bbox",
                ~geometric & ~np.isnan(bbox).all(axis=1),
                lambda r: [f"a tag has no box: expected NaN, got {bbox[i].tolist()}" for i in r],
            ):
                return out
            with np.errstate(invalid="ignore"):
                bad_x = geometric & finite & (bbox[:, 2] < bbox[:, 0])
                bad_y = geometric & finite & (bbox[:, 3] < bbox[:, 1])
            if add(
                "bbox",
                bad_x,
                lambda r: [f"expected x2 >= x1, got x1={bbox[i, 0]} x2={bbox[i, 2]}" for i in r],
            ):
                return out
            if add(
                "bbox",
                bad_y,
                lambda r: [f"expected y2 >= y1, got y1={bbox[i, 1]} y2={bbox[i, 3]}" for i in r],
            ):
                return out
        if add(
            "score",
            np.isinf(self.score),
            lambda r: [f"expected a finite score or NaN, got {self.score[i]}" for i in r],
        ):
            return out
        with np.errstate(invalid="ignore"):
            bad_area = ~(self.area >= 0) & ~np.isnan(self.area)
        if add("area", bad_area, lambda r: [f"expected area >= 0, got {self.area[i]}" for i in r]):
            return out
        # without polygons and rings, the structural checks above left ring_offsets all 0
        if present[_POLYGON] or len(self.rings):
            ring_count = self.ring_offsets[1:] - self.ring_offsets[:-1]
            if add("rings", (kinds == _POLYGON) & (ring_count == 0), "a polygon needs >= 1 ring"):
                return out
        if len(self.rings):
            short_ring = self.rings.lengths < 3
            if short_ring.any():
                owner = np.repeat(np.arange(n), ring_count)
                bad = np.zeros(n, dtype=bool)
                bad[owner[short_ring]] = True
                if add("rings", bad, "expected >= 3 points in every polygon ring"):
                    return out
            if not np.isfinite(self.rings.values).all():
                owner = np.repeat(np.arange(n), ring_count)
                point_ring = self.rings.row_index()
                bad = np.zeros(n, dtype=bool)
                bad[owner[point_ring[~np.isfinite(self.rings.values).all(axis=1)]]] = True
                if add("rings", bad, "expected finite polygon coordinates"):
                    return out
        if present[_MASK] or len(self.rle_counts.values):
            has_rle = self.rle_counts.lengths > 0
            if add("rle_counts", (kinds == _MASK) & ~has_rle, "a mask needs RLE counts"):
                return out
        if len(self.rle_counts.values):
            if (self.rle_counts.values < 0).any():
                bad = np.zeros(n, dtype=bool)
                bad[self.rle_counts.row_index()[self.rle_counts.values < 0]] = True
                if add("rle_counts", bad, "expected non-negative run lengths"):
                    return out
            sums = np.zeros(n, dtype=np.int64)
            np.add.at(sums, self.rle_counts.row_index(), self.rle_counts.values.astype(np.int64))
            pixels = self.rle_size[:, 0] * self.rle_size[:, 1]
            if add(
                "rle_counts",
                has_rle & (sums != pixels),
                lambda r: [
                    f"runs cover {sums[i]} pixels, expected height*width = {pixels[i]}" for i in r
                ],
            ):
                return out
        if present[_KEYPOINTS] and add(
            "keypoints",
            (kinds == _KEYPOINTS) & (self.keypoints.lengths == 0),
            "a keypoints annotation needs >= 1 keypoint",
        ):
            return out
        if len(self.keypoints.values) and not np.isfinite(self.keypoints.values).all():
            bad = np.zeros(n, dtype=bool)
            bad[self.keypoints.row_index()[~np.isfinite(self.keypoints.values).all(axis=1)]] = True
            if add("keypoints", bad, "expected finite keypoint values"):
                return out
        return out

    # --- size, selection, combination ---------------------------------------------------

    def __len__(self) -> int:
        return len(self.image_id)

    def __iter__(self) -> Iterator[Any]:
        """Refuse iteration: work on columns, not objects."""
        raise TypeError("Annotations is columnar: index it with arrays instead of iterating")

    def __getitem__(self, index: Any) -> Annotations:
        """Select rows by a boolean mask, an integer index array or a slice."""
        idx = np.arange(len(self))[index]
        return self.take(np.atleast_1d(idx).astype(np.int64))

    def take(self, index: IntArray) -> Annotations:
        """Select rows by an integer index array (order kept)."""
        index = np.asarray(index, dtype=np.int64)
        ring_starts = self.ring_offsets[:-1][index]
        ring_stops = self.ring_offsets[1:][index]
        ring_index = gather_ranges(ring_starts, ring_stops)
        ring_offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(ring_stops - ring_starts, out=ring_offsets[1:])
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and f.name != "ring_offsets":
                values[f.name] = value[index]
        return Annotations(
            **values,
            rings=self.rings.take(ring_index),
            ring_offsets=ring_offsets,
            rle_counts=self.rle_counts.take(index),
            keypoints=self.keypoints.take(index),
            attributes={k: c.take(index) for k, c in self.attributes.items()},
        )

    @staticmethod
    def concat(parts: Sequence[Annotations]) -> Annotations:
        """Concatenate containers; attribute columns missing from a part become absent there."""
        if not parts:
            return Annotations.empty()
        values: dict[str, Any] = {}
        for f in fields(Annotations):
            first = getattr(parts[0], f.name)
            if isinstance(first, np.ndarray) and f.name != "ring_offsets":
                values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        ring_shift = np.cumsum([0] + [len(p.rings) for p in parts[:-1]])
        ring_offsets = np.concatenate(
            [np.zeros(1, dtype=np.int64)]
            + [p.ring_offsets[1:] + s for p, s in zip(parts, ring_shift)]
        )
        names = sorted({k for p in parts for k in p.attributes})
        attributes: dict[str, AttributeColumn] = {}
        for name in names:
            cols = [p.attributes.get(name) for p in parts]
            present_cols = [c for c in cols if c is not None]
            if len({c.values.dtype.kind for c in present_cols}) > 1:
                merged = AttributeColumn.from_list(
                    [
                        v
                        for p, c in zip(parts, cols)
                        for v in (c.to_list() if c else [None] * len(p))
                    ]
                )
            else:
                dtype = present_cols[0].values.dtype
                filler = {"b": False, "i": 0, "f": np.nan, "O": ""}[dtype.kind]
                merged = AttributeColumn(
                    np.concatenate(
                        [
                            c.values if c is not None else np.full(len(p), filler, dtype=dtype)
                            for p, c in zip(parts, cols)
                        ]
                    ),
                    np.concatenate(
                        [
                            c.present if c is not None else np.zeros(len(p), bool)
                            for p, c in zip(parts, cols)
                        ]
                    ),
                )
            attributes[name] = merged
        return Annotations(
            **values,
            rings=Ragged.concat([p.rings for p in parts]),
            ring_offsets=ring_offsets,
            rle_counts=Ragged.concat([p.rle_counts for p in parts]),
            keypoints=Ragged.concat([p.keypoints for p in parts]),
            attributes=attributes,
        )

    def replace(self, **changes: Any) -> Annotations:
        """Return a copy with some fields replaced (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Annotations(**values)

    def with_attribute(self, name: str, column: AttributeColumn) -> Annotations:
        """Return a copy with one attribute column added or replaced."""
        return self.replace(attributes={**self.attributes, name: column})

    # --- grouping -----------------------------------------------------------------------

    def group_by(self, *names: str) -> Groups:
        """Group rows by one or more integer fields, by sorting once.

        Examples
        --------
        >>> ann = Annotations.create(image_id=[2, 1, 2], class_id=[1, 1, 1],
        ...                          bbox=[[0, 0, 1, 1]] * 3)
        >>> g = ann.group_by("image_id")
        >>> g.keys.tolist(), g.sizes.tolist(), g.group_of().tolist()
        ([1, 2], [1, 2], [1, 0, 1])
        """
        if not names:
            raise ValueError("group_by needs at least one field name")
        columns = [np.asarray(getattr(self, name), dtype=np.int64) for name in names]
        n = len(self)
        order = np.lexsort(columns[::-1]) if n else np.zeros(0, dtype=np.int64)
        stacked = np.stack([c[order] for c in columns], axis=1) if n else np.zeros((0, len(names)))
        if n:
            change = np.ones(n, dtype=bool)
            change[1:] = (stacked[1:] != stacked[:-1]).any(axis=1)
            starts = np.flatnonzero(change)
        else:
            starts = np.zeros(0, dtype=np.int64)
        offsets = np.append(starts, n).astype(np.int64)
        keys = stacked[starts].astype(np.int64)
        return Groups(
            keys=keys[:, 0] if len(names) == 1 else keys,
            order=order.astype(np.int64),
            offsets=offsets,
        )

    def group_by_image(self) -> Groups:
        """Group rows by ``image_id``."""
        return self.group_by("image_id")

    def group_by_image_class(self) -> Groups:
        """Group rows by ``(image_id, class_id)``; ``keys`` is (k, 2)."""
        return self.group_by("image_id", "class_id")

    # --- derived ------------------------------------------------------------------------

    @property
    def is_prediction(self) -> BoolArray:
        """(n,) True where the row carries a model score."""
        return ~np.isnan(self.score)

    def counts_by_class(self) -> tuple[IntArray, IntArray]:
        """Return ``(class_ids, counts)``, both sorted by class id."""
        ids, counts = np.unique(self.class_id, return_counts=True)
        return ids.astype(np.int64), counts.astype(np.int64)

    def keypoints_dense(self, k: int | None = None) -> FloatArray:
        """Keypoints as an (n, k, 3) array; rows with fewer keypoints are padded with zeros.

        Zero padding is COCO's own convention for an unlabelled keypoint (``v = 0``), so
        OKS and visibility masks work on the dense array unchanged.

        Parameters
        ----------
        k
            Keypoints per row; defaults to the longest row. Longer rows are an error.

        Examples
        --------
        >>> ann = Annotations.create(
        ...     image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 4, 4]] * 2,
        ...     kind=[Kind.KEYPOINTS, Kind.BOX],
        ...     keypoints=Ragged(np.array([[1.0, 2, 2], [3, 4, 1]]), np.array([0, 2, 2])))
        >>> ann.keypoints_dense().tolist()
        [[[1.0, 2.0, 2.0], [3.0, 4.0, 1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
        """
        lengths = self.keypoints.lengths
        width = int(lengths.max(initial=0)) if k is None else k
        if (lengths > width).any():
            row = int(np.flatnonzero(lengths > width)[0])
            raise ValidationError(
                f"expected at most {width} keypoints, got {lengths[row]}",
                field="keypoints",
                row=row,
            )
        out = np.zeros((len(self), width, 3), dtype=np.float64)
        owner = self.keypoints.row_index()
        position = np.arange(len(owner)) - self.keypoints.offsets[:-1][owner]
        out[owner, position] = self.keypoints.values
        return out

    def computed_area(self) -> FloatArray:
        """(n,) area from the geometry (RLE pixels, polygon shoelace, else box w*h)."""
        return _geometry_area(self.kind, self.bbox, self.rings, self.ring_offsets, self.rle_counts)


def _geometry_area(
    kind: NDArray[Any], bbox: FloatArray, rings: Ragged, ring_offsets: IntArray, rle: Ragged
) -> FloatArray:
    """Area of each row from its primary geometry (RLE > polygon > box; tags 0)."""
    n = len(kind)
    with np.errstate(invalid="ignore"):
        # a reversed box is reported by problems(); its area must not add a second report.
        # What np.clip(.., 0, None) and np.nan_to_num did, in plain ufuncs: their Python
        # wrappers cost more than the arithmetic of a save's ten boxes
        width = np.maximum(bbox[:, 2] - bbox[:, 0], 0.0)
        height = np.maximum(bbox[:, 3] - bbox[:, 1], 0.0)
        product = width * height
        box = np.where(np.isnan(product), 0.0, np.minimum(product, _LARGEST_FLOAT))
    if len(ring_offsets) != n + 1 or len(rle) != n:
        return box
    area = box
    if len(rings):  # a save of boxes has no polygon and no mask to measure
        area = np.where(np.diff(ring_offsets) > 0, polygon_area(rings, ring_offsets), area)
    if len(rle.values):
        area = np.where(rle.lengths > 0, rle_area(rle), area)
    return np.where(np.asarray(kind) == _TAG, 0.0, area)
