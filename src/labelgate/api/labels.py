"""Labels between JSON objects and :class:`~labelgate.core.annotations.Annotations`.

The API speaks one JSON object per label (what a browser editor holds); the workflow speaks
columns. Parsing builds each column once from the request's list; rendering turns each
column into a Python list once and zips them, so no numpy scalar is touched per object.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelgate.api.schemas import LabelObject
from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.masks import rle_bbox
from labelgate.core.ragged import Ragged

__all__ = ["KIND_NAMES", "SOURCE_NAMES", "from_objects", "to_objects"]

KIND_NAMES = {Kind.TAG: "tag", Kind.BOX: "box", Kind.POLYGON: "polygon", Kind.MASK: "mask"}
KIND_NAMES[Kind.KEYPOINTS] = "keypoints"
_KIND_OF = {name: int(kind) for kind, name in KIND_NAMES.items()}
SOURCE_NAMES = {Source.HUMAN: "human", Source.PRELABEL: "prelabel", Source.MERGED: "merged"}
_SOURCE_OF = {name: int(source) for source, name in SOURCE_NAMES.items()}
_POLYGON, _KEYPOINTS, _MASK = int(Kind.POLYGON), int(Kind.KEYPOINTS), int(Kind.MASK)


def _bbox(obj: LabelObject) -> list[float]:
    """The object's box: as given, derived from its geometry, or NaN for a tag."""
    if obj.kind == "tag":
        return [float("nan")] * 4
    if obj.bbox is not None:
        return [float(v) for v in obj.bbox]
    points: list[list[float]] = []
    if obj.kind == "polygon" and obj.polygon:
        points = [p for ring in obj.polygon for p in ring]
    elif obj.kind == "keypoints" and obj.keypoints:
        points = [k[:2] for k in obj.keypoints if k[2] > 0] or [k[:2] for k in obj.keypoints]
    if not points:
        # Annotations rejects the NaN box with a message naming the object's row
        return [float("nan")] * 4
    xy = np.asarray(points, dtype=np.float64)
    return [*xy.min(axis=0).tolist(), *xy.max(axis=0).tolist()]


def from_objects(objects: Sequence[LabelObject], image_id: int = 0) -> Annotations:
    """Columns of a request's objects (image id is set by the service).

    Raises
    ------
    labelgate.errors.ValidationError
        The objects break the container's contract (duplicate ids, x2 < x1, a polygon
        without rings, ...); the message names the field and the row.
    """
    n = len(objects)
    if n == 0:
        return Annotations.empty()
    kinds = [_KIND_OF[o.kind] for o in objects]
    # a save of boxes and tags (the usual editor payload) builds no geometry columns: the
    # container's defaults (no rings, no keypoints) are what they would hold, without
    # converting an empty array per object
    polygons = _POLYGON in kinds
    rings = [
        np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        for o in objects
        if o.kind == "polygon"
        for ring in (o.polygon or [])
    ]
    ring_offsets = None
    if polygons:
        ring_counts = [len(o.polygon or []) if o.kind == "polygon" else 0 for o in objects]
        ring_offsets = np.concatenate([[0], np.cumsum(ring_counts, dtype=np.int64)])
    keypoints = None
    if _KEYPOINTS in kinds:
        keypoints = Ragged.from_rows(
            [
                np.asarray(o.keypoints or [], dtype=np.float64).reshape(-1, 3)
                if o.kind == "keypoints"
                else np.zeros((0, 3))
                for o in objects
            ],
            dtype=np.float64,
        )
    attributes = {}
    if any(o.attributes for o in objects):
        names = sorted({key for o in objects for key in o.attributes})
        attributes = {
            name: AttributeColumn.from_list([o.attributes.get(name) for o in objects])
            for name in names
        }
    if all(o.kind == "box" and o.bbox is not None for o in objects):
        bbox: Any = [o.bbox for o in objects]  # validated numbers: one conversion below
    else:
        bbox = [_bbox(o) for o in objects]
    rle_counts = rle_size = None
    if _MASK in kinds:
        rle_counts = Ragged.from_rows(
            [
                np.asarray(o.mask.counts if o.kind == "mask" and o.mask else [], dtype=np.int64)
                for o in objects
            ],
            dtype=np.int64,
        )
        rle_size = np.asarray(
            [o.mask.size if o.kind == "mask" and o.mask else [0, 0] for o in objects],
            dtype=np.int64,
        )
        bbox = np.asarray(bbox, dtype=np.float64).reshape(n, 4)
        derive = np.array([o.kind == "mask" and o.bbox is None for o in objects])
        if derive.any():  # the mask's tight box, for all masks at once
            bbox[derive] = rle_bbox(rle_counts, rle_size)[derive]
    return Annotations.create(
        id=[o.id for o in objects],
        image_id=np.full(n, image_id, dtype=np.int64),
        class_id=np.asarray([o.class_id for o in objects], dtype=np.int64),
        kind=np.asarray(kinds, dtype=np.uint8),
        bbox=np.asarray(bbox, dtype=np.float64).reshape(n, 4),
        score=[np.nan if o.score is None else o.score for o in objects],
        source=np.asarray([_SOURCE_OF[o.source] for o in objects], dtype=np.uint8),
        track_id=[-1 if o.track_id is None else o.track_id for o in objects],
        z_order=[o.z_order for o in objects],
        occluded=[o.occluded for o in objects],
        truncated=[o.truncated for o in objects],
        rings=Ragged.from_rows(rings, dtype=np.float64) if rings else None,
        ring_offsets=ring_offsets,
        keypoints=keypoints,
        rle_counts=rle_counts,
        rle_size=rle_size,
        attributes=attributes,
    )


def _ragged_rows(ragged: Ragged) -> list[list[Any]]:
    values = ragged.values.tolist()
    offsets = ragged.offsets.tolist()
    return [values[a:b] for a, b in itertools.pairwise(offsets)]


def to_objects(labels: Annotations) -> list[dict[str, Any]]:
    """One JSON-able dict per object (NaN becomes null; masks carry their RLE)."""
    n = len(labels)
    if n == 0:
        return []
    kind = [KIND_NAMES.get(Kind(k), "box") for k in labels.kind.tolist()]
    bbox = [None if any(v != v for v in row) else row for row in labels.bbox.tolist()]
    score = [None if v != v else v for v in labels.score.tolist()]
    track = [None if t < 0 else t for t in labels.track_id.tolist()]
    source = [SOURCE_NAMES.get(Source(s), "human") for s in labels.source.tolist()]
    ring_rows = _ragged_rows(labels.rings)
    ring_offsets = labels.ring_offsets.tolist()
    polygons = [ring_rows[a:b] or None for a, b in itertools.pairwise(ring_offsets)]
    keypoints = [row or None for row in _ragged_rows(labels.keypoints)]
    counts = [row or None for row in _ragged_rows(labels.rle_counts)]
    sizes = labels.rle_size.tolist()
    columns = {name: col.to_list() for name, col in labels.attributes.items()}
    attributes = [
        {name: values[i] for name, values in columns.items() if values[i] is not None}
        for i in range(n)
    ]
    return [
        {
            "id": object_id,
            "class_id": class_id,
            "kind": kind[i],
            "bbox": bbox[i],
            "polygon": polygons[i],
            "keypoints": keypoints[i],
            "mask": {"size": sizes[i], "counts": counts[i]} if counts[i] else None,
            "occluded": occluded,
            "truncated": truncated,
            "track_id": track[i],
            "z_order": z_order,
            "score": score[i],
            "source": source[i],
            "attributes": attributes[i],
        }
        for i, (object_id, class_id, occluded, truncated, z_order) in enumerate(
            zip(
                labels.id.tolist(),
                labels.class_id.tolist(),
                labels.occluded.tolist(),
                labels.truncated.tolist(),
                labels.z_order.tolist(),
            )
        )
    ]
