"""COCO instances / keypoints JSON and the COCO results list.

Reading is two-speed. The fast path pulls every field of every record into a Python list in
one comprehension, checks the *set* of value types per column, and hands numpy one flat list
per column; 400,000 boxes load in well under a second. Only if that path meets something
odd (a missing key, a string where a number belongs, a bbox of 3 numbers), or when the
caller collects problems, the slow path walks the records one by one to name each bad
record and field exactly.

Extensions beyond the COCO spec, written and read back so that COCO is labelgate's lossless
interchange: per annotation ``score`` (also the results format), ``annotator_id``, ``source``
(``"prelabel"``/``"merged"``), ``z_order`` and an ``attributes`` object (as CVAT and
Datumaro write it; ``occluded``, ``truncated``, ``difficult`` and ``track_id`` inside it map to
the core columns); per image ``scene_type`` and ``tags``; per category ``tier`` and
``iou_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source, rle_area
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.masks import rle_bbox, rle_from_string, rle_to_string
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import ClassInfo, PrecisionTier, Taxonomy
from labelgate.errors import ValidationError
from labelgate.formats._atomic import refuse_existing, write_bytes_atomic
from labelgate.formats._base import (
    ErrorLog,
    WriteReport,
    finish_dataset,
    load_json,
    no_cyclic_gc,
)

__all__ = ["dataset_from_coco", "dataset_to_coco", "read_coco", "sniff_coco", "write_coco"]

_FIELD_NAMES = {"class_id": "category_id", "rings": "segmentation", "rle_counts": "segmentation"}
_SOURCE_NAMES = {Source.HUMAN: "human", Source.PRELABEL: "prelabel", Source.MERGED: "merged"}
_SOURCE_BY_NAME = {v: k for k, v in _SOURCE_NAMES.items()}
_FLAG_ATTRIBUTES = ("occluded", "truncated", "difficult")
_NUMBER = (int, float)


class _SlowPath(Exception):
    """The fast column extraction met something it cannot vouch for."""


def sniff_coco(path: Path) -> bool:
    """True for a ``.json`` file that looks like COCO (dict with images/annotations, or results)."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536).lstrip()
    except OSError:
        return False
    if head.startswith(b"{"):
        return any(key in head for key in (b'"images"', b'"annotations"', b'"categories"'))
    if head.startswith(b"["):
        # a results list: records with image_id and category_id, no Label Studio "data"
        first = head[: head.find(b"}") + 1]
        return b'"image_id"' in first and b'"category_id"' in first and b'"data"' not in first
    return False


def read_coco(
    path: Path | str,
    *,
    errors: ErrorLog | None = None,
    reference: Dataset | None = None,
) -> Dataset:
    """Read a COCO instances / keypoints file, or a COCO results list.

    Parameters
    ----------
    path
        The JSON file.
    errors
        Collect every problem instead of raising the first (``labelgate validate``).
    reference
        For a results list: the ground-truth data set whose images and categories the
        results refer to (sizes, names). Without it, images get unknown sizes and categories
        are named ``class_<id>``.

    Raises
    ------
    FormatError
        Naming the file, the record (``annotations[12] (id=90211)``) and the field.
    """
    path = Path(path)
    log = errors or ErrorLog(path)
    if not log.collect:
        with no_cyclic_gc():
            parts = _fast_parts(path, log)
        if parts is not None:
            ann, images, image_extra, taxonomy, info = parts
            origin = np.arange(len(ann), dtype=np.int64)
            if images is None or taxonomy is None:
                return _results_dataset(ann, origin, log, reference)
            return _instances_dataset(ann, origin, images, image_extra, taxonomy, info, log)
    data = load_json(path, log)
    return dataset_from_coco(data, path=path, errors=log, reference=reference)


_Parts = tuple[Annotations, Images | None, list[dict[str, Any]], Taxonomy | None, dict[str, Any]]


def _fast_parts(path: Path, log: ErrorLog) -> _Parts | None:
    """Decode straight into typed structs and pull whole columns out of them.

    Returns None when something unexpected needs the checked path to be named. The file's
    bytes and the structs are dropped on return, before the checks allocate, which keeps
    the peak memory of a large file below that of ``json.load``.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise log.fatal(f"cannot read: {exc.strerror or exc}") from exc
    try:
        document = _DECODER.decode(raw)
    except msgspec.ValidationError:
        return None
    except msgspec.DecodeError as exc:
        raise log.fatal(f"invalid JSON: {exc}") from exc
    del raw
    try:
        if isinstance(document, list):
            return _columns(_StructColumns(document), results=True), None, [], None, {}
        taxonomy = _read_categories(document.categories, log)
        images, image_extra = _read_images(document.images, log)
        info = {
            key: value
            for key, value in (("info", document.info), ("licenses", document.licenses))
            if value is not None
        }
        ann = _columns(_StructColumns(document.annotations), results=False)
    except _SlowPath:
        return None
    return ann, images, image_extra, taxonomy, info


class _Annotation(msgspec.Struct, gc=False):
    """One annotation (or result) record; defaults equal what ``_columns`` treats as absent."""

    image_id: int
    category_id: int
    id: int | None = None
    bbox: list[float] | None = None
    score: float | None = None
    area: float | None = None
    iscrowd: int | bool = 0
    segmentation: Any = None
    keypoints: list[float] | None = None
    annotator_id: int = -1
    z_order: int = 0
    source: str = "human"
    attributes: dict[str, Any] | None = None


class _Document(msgspec.Struct, gc=False):
    images: list[dict[str, Any]] = []
    annotations: list[_Annotation] = []
    categories: list[dict[str, Any]] = []
    info: Any = None
    licenses: Any = None


_DECODER = msgspec.json.Decoder(_Document | list[_Annotation])


def _instances_dataset(
    ann: Annotations,
    origin: IntArray,
    images: Images,
    image_extra: list[dict[str, Any]],
    taxonomy: Taxonomy,
    info: dict[str, Any],
    log: ErrorLog,
) -> Dataset:
    if image_extra:
        info["image_extra"] = image_extra
    ids = ann.id
    return finish_dataset(
        log,
        ann,
        images,
        taxonomy,
        record_of=lambda row: f"annotations[{origin[row]}] (id={ids[row]})",
        field_names=_FIELD_NAMES,
        info=info,
    )


def dataset_from_coco(
    data: Any,
    *,
    path: Path | str = "<memory>.json",
    errors: ErrorLog | None = None,
    reference: Dataset | None = None,
) -> Dataset:
    """Build a data set from already parsed COCO JSON (a dict, or a results list)."""
    path = Path(path)
    log = errors or ErrorLog(path)
    if isinstance(data, list):
        ann, origin = _read_annotations(data, log, results=True)
        return _results_dataset(ann, origin, log, reference)
    if not isinstance(data, dict):
        raise log.fatal(f"expected a JSON object or a results list, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise log.fatal(f"expected a list, got {type(data[key]).__name__}", field=key)
    taxonomy = _read_categories(data.get("categories", []), log)
    images, image_extra = _read_images(data.get("images", []), log)
    ann, origin = _read_annotations(data.get("annotations", []), log, results=False)
    info = {k: data[k] for k in ("info", "licenses") if k in data}
    return _instances_dataset(ann, origin, images, image_extra, taxonomy, info, log)


def _record_name(records: Sequence[Any], index: int, key: str = "annotations") -> str:
    record = records[index]
    if isinstance(record, dict) and "id" in record:
        return f"{key}[{index}] (id={record['id']})"
    return f"{key}[{index}]"


def _results_dataset(
    ann: Annotations, origin: IntArray, log: ErrorLog, reference: Dataset | None
) -> Dataset:
    if reference is not None:
        images, taxonomy = reference.images, reference.taxonomy
        unknown_class = taxonomy.position(ann.class_id) < 0
        for row in np.flatnonzero(unknown_class).tolist():
            log.fail(
                f"unknown category id {ann.class_id[row]} (not in the reference)",
                record=f"[{origin[row]}]",
                field="category_id",
            )
        keep = ~unknown_class & (images.index_of(ann.image_id) >= 0)
        for row in np.flatnonzero(images.index_of(ann.image_id) < 0).tolist():
            log.fail(
                f"unknown image id {ann.image_id[row]} (not in the reference)",
                record=f"[{origin[row]}]",
                field="image_id",
            )
        ann = ann.take(np.flatnonzero(keep))
        origin = origin[keep]
    else:
        image_ids = np.unique(ann.image_id)
        images = Images.create(id=image_ids)
        class_ids = np.unique(ann.class_id)
        taxonomy = Taxonomy(tuple(ClassInfo(int(c), f"class_{c}") for c in class_ids.tolist()))
    return finish_dataset(
        log,
        ann,
        images,
        taxonomy,
        record_of=lambda row: f"[{origin[row]}]",
        field_names=_FIELD_NAMES,
        info={"coco_results": True},
    )


def _read_categories(records: list[Any], log: ErrorLog) -> Taxonomy:
    classes: list[ClassInfo] = []
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for index, record in enumerate(records):
        name = _record_name(records, index, "categories")
        if not isinstance(record, dict):
            log.fail(f"expected an object, got {type(record).__name__}", record=name)
            continue
        class_id, label = record.get("id"), record.get("name")
        if type(class_id) is not int:
            log.fail(f"expected an integer id, got {class_id!r}", record=name, field="id")
            continue
        if not isinstance(label, str) or not label:
            log.fail(f"expected a non-empty name, got {label!r}", record=name, field="name")
            continue
        if class_id in seen_ids:
            log.fail(f"duplicate category id {class_id}", record=name, field="id")
            continue
        if label in seen_names:
            # COCO allows it, labelgate reports by name: keep both, disambiguated
            label = f"{label} ({class_id})"
        keypoints = record.get("keypoints") or []
        skeleton = record.get("skeleton") or []
        try:
            info = ClassInfo(
                id=class_id,
                name=label,
                supercategory=str(record.get("supercategory") or ""),
                tier=PrecisionTier(record.get("tier", "loose")),
                iou_threshold=record.get("iou_threshold"),
                keypoints=tuple(str(k) for k in keypoints),
                skeleton=tuple((int(a), int(b)) for a, b in skeleton),
            )
        except (ValidationError, ValueError, TypeError) as exc:
            field = getattr(exc, "field", None) or "skeleton"
            log.fail(str(getattr(exc, "reason", exc)), record=name, field=field)
            continue
        seen_ids.add(class_id)
        seen_names.add(label)
        classes.append(info)
    return Taxonomy(tuple(classes))


_IMAGE_KEYS = {"id", "file_name", "width", "height", "scene_type", "tags"}


def _read_images(records: list[Any], log: ErrorLog) -> tuple[Images, list[dict[str, Any]]]:
    ids: list[int] = []
    names: list[str] = []
    widths: list[int] = []
    heights: list[int] = []
    scenes: list[str] = []
    tags: list[tuple[str, ...]] = []
    extra: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, record in enumerate(records):
        name = _record_name(records, index, "images")
        if not isinstance(record, dict):
            log.fail(f"expected an object, got {type(record).__name__}", record=name)
            continue
        image_id = record.get("id")
        if type(image_id) is not int:
            log.fail(f"expected an integer id, got {image_id!r}", record=name, field="id")
            continue
        if image_id in seen:
            log.fail(f"duplicate image id {image_id}", record=name, field="id")
            continue
        ok = True
        size: list[int] = []
        for key in ("width", "height"):
            value = record.get(key, 0)
            if type(value) is float and value.is_integer():
                value = int(value)
            if type(value) is not int or value < 0:
                log.fail(f"expected an integer >= 0, got {value!r}", record=name, field=key)
                ok = False
            size.append(value)
        file_name = record.get("file_name", "")
        if not isinstance(file_name, str):
            log.fail(f"expected a string, got {file_name!r}", record=name, field="file_name")
            ok = False
        if not ok:
            continue
        seen.add(image_id)
        ids.append(image_id)
        names.append(file_name)
        widths.append(size[0])
        heights.append(size[1])
        scenes.append(str(record.get("scene_type") or ""))
        tags.append(tuple(str(t) for t in record.get("tags") or ()))
        rest = {k: v for k, v in record.items() if k not in _IMAGE_KEYS}
        if rest:
            extra.append({"id": image_id, **rest})
    images = Images.create(
        id=np.array(ids, dtype=np.int64),
        file_name=names,
        width=np.array(widths, dtype=np.int64),
        height=np.array(heights, dtype=np.int64),
        scene_type=scenes,
        tags=tags,
    )
    return images, extra


def _ints(values: list[Any]) -> IntArray:
    if not set(map(type, values)) <= {int}:
        raise _SlowPath
    return np.array(values, dtype=np.int64)


def _read_annotations(
    records: list[Any], log: ErrorLog, *, results: bool
) -> tuple[Annotations, IntArray]:
    """Columns of all good records, and for each row the index of its record."""
    origin = np.arange(len(records), dtype=np.int64)
    if log.collect:
        good = _check_records(records, log, results=results)
        origin = origin[good]
        records = [records[i] for i in origin.tolist()]
    try:
        return _columns(_DictColumns(records), results=results), origin
    except _SlowPath:
        pass
    # the fast path met something odd: name the records, then build from the good ones
    good = _check_records(records, log, results=results)
    picked = [records[i] for i in np.flatnonzero(good).tolist()]
    try:
        return _columns(_DictColumns(picked), results=results), origin[good]
    except _SlowPath as exc:  # pragma: no cover - _check_records accepts only what _columns can
        raise log.fatal("records passed the checks but could not be read") from exc


def _check_records(records: list[Any], log: ErrorLog, *, results: bool) -> np.ndarray[Any, Any]:
    """Check every record field by field; report problems; return a mask of good ones."""
    good = np.ones(len(records), dtype=bool)
    for index, record in enumerate(records):
        name = _record_name(records, index)
        problem = _record_problem(record, results=results)
        if problem is not None:
            field, message = problem
            log.fail(message, record=name if not results else f"[{index}]", field=field)
            good[index] = False
    return good


def _record_problem(record: Any, *, results: bool) -> tuple[str | None, str] | None:
    if not isinstance(record, dict):
        return None, f"expected an object, got {type(record).__name__}"
    required = ("image_id", "category_id") if results else ("id", "image_id", "category_id")
    for key in required:
        if key not in record:
            return key, "missing"
        if type(record[key]) is not int:
            return key, f"expected an integer, got {record[key]!r}"
    seg = record.get("segmentation")
    keypoints = record.get("keypoints")
    if "bbox" not in record and not (results and (seg or keypoints)):
        return "bbox", "missing"
    if "bbox" in record:
        bbox = record["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            return "bbox", f"expected [x, y, width, height], got {bbox!r}"
        if not all(type(v) in _NUMBER for v in bbox):
            return "bbox", f"expected 4 numbers, got {bbox!r}"
        if bbox[2] < 0 or bbox[3] < 0:
            return "bbox", f"expected width and height >= 0, got {bbox[2]} x {bbox[3]}"
    for key in ("score", "area"):
        if key in record and type(record[key]) not in _NUMBER:
            return key, f"expected a number, got {record[key]!r}"
    if "iscrowd" in record and record["iscrowd"] not in (0, 1, True, False):
        return "iscrowd", f"expected 0 or 1, got {record['iscrowd']!r}"
    for key in ("annotator_id", "z_order"):
        if key in record and type(record[key]) is not int:
            return key, f"expected an integer, got {record[key]!r}"
    if "source" in record and record["source"] not in _SOURCE_BY_NAME:
        return "source", f"expected one of {sorted(_SOURCE_BY_NAME)}, got {record['source']!r}"
    if seg:
        problem = _segmentation_problem(seg)
        if problem:
            return "segmentation", problem
    if keypoints is not None:
        if not isinstance(keypoints, list) or len(keypoints) % 3:
            return "keypoints", "expected a flat list of x, y, v triples"
        if not all(type(v) in _NUMBER for v in keypoints):
            return "keypoints", "expected numbers"
    attributes = record.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            return "attributes", f"expected an object, got {type(attributes).__name__}"
        for key, value in attributes.items():
            if value is not None and type(value) not in (bool, int, float, str):
                return f"attributes.{key}", f"expected a bool, number or string, got {value!r}"
        if "track_id" in attributes and type(attributes["track_id"]) is not int:
            return "attributes.track_id", f"expected an integer, got {attributes['track_id']!r}"
    return None


def _segmentation_problem(seg: Any) -> str | None:
    if isinstance(seg, list):
        for ring in seg:
            if not isinstance(ring, list) or len(ring) % 2 or len(ring) < 6:
                return "expected polygons of >= 3 x, y pairs"
            if not all(type(v) in _NUMBER for v in ring):
                return "expected numbers in the polygon"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(type(v) is int and v >= 0 for v in size)
        ):
            return f"expected size [height, width], got {size!r}"
        if isinstance(counts, str):
            try:
                decoded = rle_from_string(counts)
            except ValidationError as exc:
                return exc.reason
        elif isinstance(counts, list) and all(type(v) is int and v >= 0 for v in counts):
            decoded = np.array(counts, dtype=np.int64)
        else:
            return "expected RLE counts as a string or a list of non-negative integers"
        if int(decoded.sum()) != size[0] * size[1]:
            return f"RLE runs cover {int(decoded.sum())} pixels, expected {size[0] * size[1]}"
        return None
    return f"expected a polygon list or an RLE object, got {type(seg).__name__}"


class _DictColumns:
    """Column access over parsed JSON objects (``orjson``): nothing is type-checked yet."""

    trusted = False

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def required(self, key: str) -> list[Any]:
        try:
            return [r[key] for r in self.records]
        except (KeyError, TypeError) as exc:
            raise _SlowPath from exc

    def optional(self, key: str, default: Any) -> list[Any]:
        try:
            return [r.get(key, default) for r in self.records]
        except AttributeError as exc:
            raise _SlowPath from exc


class _StructColumns:
    """Column access over ``msgspec`` structs: the decoder already checked every type."""

    trusted = True

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def required(self, key: str) -> list[Any]:
        return [getattr(r, key) for r in self.records]

    def optional(self, key: str, default: Any) -> list[Any]:
        # the struct's own default equals ``default`` (see _Annotation)
        return [getattr(r, key) for r in self.records]


def _columns(records: _DictColumns | _StructColumns, *, results: bool) -> Annotations:
    """The fast path: whole columns at once; raises _SlowPath on anything unexpected."""
    n = len(records)
    if n == 0:
        return Annotations.create(
            image_id=np.zeros(0, np.int64), class_id=[], bbox=np.zeros((0, 4)), check=False
        )
    image_id = _ints(records.required("image_id"))
    class_id = _ints(records.required("category_id"))
    id_list = records.optional("id", None) if results else records.required("id")
    ids = (
        np.arange(1, n + 1, dtype=np.int64)
        if results and all(v is None for v in id_list)
        else _ints(id_list)
    )
    box_list = records.optional("bbox", None)
    has_bbox = np.fromiter((b is not None for b in box_list), dtype=bool, count=n)
    if not has_bbox.all():
        if not results:
            raise _SlowPath
        box_list = [b if b is not None else [0, 0, 0, 0] for b in box_list]
    if not records.trusted and not set(map(type, chain.from_iterable(box_list))) <= {int, float}:
        raise _SlowPath  # numpy would turn "1" into 1.0; the checked path names it instead
    try:
        xywh = np.array(box_list, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise _SlowPath from exc
    del box_list  # each column list is dropped once converted: a large file's peak memory
    if xywh.shape != (n, 4) or (xywh[:, 2:] < 0).any():
        raise _SlowPath
    # COCO.loadRes's area for results with a box: the file's own w * h
    box_area = xywh[:, 2] * xywh[:, 3] if results else None
    bbox = xywh
    bbox[:, 2:] += bbox[:, :2]

    def optional(key: str, default: Any, allowed: set[type], dtype: Any) -> Any:
        """The column as an array (None where absent), or None when no record has it."""
        values = records.optional(key, default)
        if values.count(default) == n:  # list.count runs in C: the common all-absent case
            return None
        if not set(map(type, values)) <= allowed | {type(default)}:
            raise _SlowPath
        if default is None:
            values = [np.nan if v is None else v for v in values]
        return np.array(values, dtype=dtype)

    score = optional("score", None, {int, float}, np.float64)
    area = optional("area", None, {int, float}, np.float64)
    iscrowd = optional("iscrowd", 0, {int, bool}, np.int64)
    if iscrowd is not None and ((iscrowd != 0) & (iscrowd != 1)).any():
        raise _SlowPath
    annotator = optional("annotator_id", -1, {int}, np.int64)
    z_order = optional("z_order", 0, {int}, np.int64)
    source_names = optional("source", "human", {str}, object)
    source = np.zeros(n, np.uint8)
    if source_names is not None:
        try:
            source = np.array([_SOURCE_BY_NAME[s] for s in source_names.tolist()], dtype=np.uint8)
        except KeyError as exc:
            raise _SlowPath from exc

    kind = np.full(n, Kind.BOX, dtype=np.uint8)
    rings, ring_offsets, rle_counts, rle_size = _segmentations(
        records.optional("segmentation", None), kind
    )
    keypoints = _keypoints(records.optional("keypoints", None), kind)
    if not has_bbox.all():
        # results without a bbox: derive it as pycocotools' loadRes does
        missing = ~has_bbox
        from_mask = missing & (rle_counts.lengths > 0)
        bbox[from_mask] = rle_bbox(rle_counts, rle_size)[from_mask]
        from_rings = missing & (np.diff(ring_offsets) > 0) & ~from_mask
        if from_rings.any():
            bbox[from_rings] = _rings_bbox(rings, ring_offsets)[from_rings]
        from_points = missing & (keypoints.lengths > 0) & ~from_mask & ~from_rings
        if from_points.any():
            bbox[from_points] = _keypoints_bbox(keypoints)[from_points]
    if box_area is not None:
        area = _results_area(has_bbox, box_area, bbox, ring_offsets, rle_counts, keypoints)
    columns: dict[str, Any] = {}
    track_id = np.full(n, -1, dtype=np.int64)
    flags = {name: np.zeros(n, dtype=bool) for name in _FLAG_ATTRIBUTES}
    attribute_dicts = records.optional("attributes", None)
    if attribute_dicts.count(None) != n:
        columns = _attribute_columns(attribute_dicts, flags, track_id)
    del attribute_dicts
    return Annotations.create(
        id=ids,
        image_id=image_id,
        class_id=class_id,
        kind=kind,
        bbox=bbox,
        score=score,
        annotator_id=annotator,
        source=source,
        track_id=track_id,
        z_order=z_order,
        occluded=flags["occluded"],
        truncated=flags["truncated"],
        iscrowd=None if iscrowd is None else iscrowd.astype(bool),
        difficult=flags["difficult"],
        area=area,
        rings=rings,
        ring_offsets=ring_offsets,
        rle_counts=rle_counts,
        rle_size=rle_size,
        keypoints=keypoints,
        attributes=columns,
        check=False,
    )


def _results_area(
    has_bbox: np.ndarray[Any, Any],
    box_area: FloatArray,
    bbox: FloatArray,
    ring_offsets: IntArray,
    rle_counts: Ragged,
    keypoints: Ragged,
) -> FloatArray:
    """Each result's area as ``COCO.loadRes`` sets it (NaN: the geometry's, see below).

    ``loadRes`` picks one branch for the whole list from its *first* record, and never
    keeps a result's own ``area``:

    - the first record has a ``bbox``: every area is the box's ``w * h``, whether or not
      the record also has a ``segmentation`` (so segm evaluation uses the box's area too);
    - else it has a ``segmentation``: the mask's pixel count (``maskUtils.area``; a polygon
      is left to the geometry's area: ``loadRes`` supports compressed RLE only here);
    - else it has ``keypoints``: the extent of the keypoints, ``(x1 - x0) * (y1 - y0)``.
    """
    n = len(has_bbox)
    area = np.full(n, np.nan)
    if n == 0:
        return area
    width, height = bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1]
    if has_bbox[0]:
        # a record without a box (loadRes would fail on it) gets its derived box's area
        area = np.where(has_bbox, box_area, width * height)
    elif rle_counts.lengths[0] > 0 or ring_offsets[1] > ring_offsets[0]:
        masks = rle_counts.lengths > 0
        area[masks] = rle_area(rle_counts)[masks]
    elif keypoints.lengths[0] > 0:
        # the box was derived from the keypoints' extent where the record had none
        points = (keypoints.lengths > 0) & ~has_bbox
        area[points] = (width * height)[points]
    return area


def _segmentations(
    segs: list[Any], kind: np.ndarray[Any, Any]
) -> tuple[Ragged, IntArray, Ragged, IntArray]:
    """Polygons and RLE masks of the records that have a segmentation; sets ``kind``."""
    n = len(segs)
    ring_counts = np.zeros(n, dtype=np.int64)
    ring_rows: list[list[Any]] = []
    rle_rows: list[IntArray] = [np.zeros(0, dtype=np.int64)] * n
    rle_size = np.zeros((n, 2), dtype=np.int64)
    with_seg = [i for i, s in enumerate(segs) if s]
    for i in with_seg:
        seg = segs[i]
        if isinstance(seg, list):
            if not all(isinstance(r, list) and len(r) >= 6 and len(r) % 2 == 0 for r in seg):
                raise _SlowPath
            ring_rows.extend(seg)
            ring_counts[i] = len(seg)
            kind[i] = Kind.POLYGON
        elif isinstance(seg, dict):
            counts, size = seg.get("counts"), seg.get("size")
            if not (isinstance(size, list) and len(size) == 2):
                raise _SlowPath
            try:
                decoded = (
                    rle_from_string(counts)
                    if isinstance(counts, str)
                    else np.array(counts, dtype=np.int64)
                )
            except (ValidationError, TypeError, ValueError) as exc:
                raise _SlowPath from exc
            if decoded.ndim != 1 or (decoded < 0).any():
                raise _SlowPath
            rle_rows[i] = decoded
            rle_size[i] = size
            kind[i] = Kind.MASK
        else:
            raise _SlowPath
    if ring_rows:
        lengths = np.fromiter(map(len, ring_rows), dtype=np.int64, count=len(ring_rows))
        flat = list(chain.from_iterable(ring_rows))
        if not set(map(type, flat)) <= {int, float}:
            raise _SlowPath
        points = np.array(flat, dtype=np.float64).reshape(-1, 2)
        point_offsets = np.zeros(len(ring_rows) + 1, dtype=np.int64)
        np.cumsum(lengths // 2, out=point_offsets[1:])
        rings = Ragged(points, point_offsets)
    else:
        rings = Ragged.empty(0, width=2)
    ring_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ring_counts, out=ring_offsets[1:])
    rle = (
        Ragged.from_rows(rle_rows, dtype=np.int64) if with_seg else Ragged.empty(n, dtype=np.int64)
    )
    return rings, ring_offsets, rle, rle_size


def _keypoints(lists: list[Any], kind: np.ndarray[Any, Any]) -> Ragged:
    n = len(lists)
    present = [i for i, k in enumerate(lists) if k is not None]
    if not present:
        return Ragged.empty(n, width=3)
    lengths = np.zeros(n, dtype=np.int64)
    flat: list[Any] = []
    for i in present:
        values = lists[i]
        if not isinstance(values, list) or len(values) % 3:
            raise _SlowPath
        lengths[i] = len(values) // 3
        flat.extend(values)
    if not set(map(type, flat)) <= {int, float}:
        raise _SlowPath
    kind[np.array(present)[lengths[present] > 0]] = Kind.KEYPOINTS
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(np.array(flat, dtype=np.float64).reshape(-1, 3), offsets)


def _rings_bbox(rings: Ragged, ring_offsets: IntArray) -> FloatArray:
    n = len(ring_offsets) - 1
    out = np.zeros((n, 4))
    if len(rings.values) == 0:
        return out
    owner = np.repeat(np.repeat(np.arange(n), np.diff(ring_offsets)), rings.lengths)
    lo = np.full((n, 2), np.inf)
    hi = np.full((n, 2), -np.inf)
    np.minimum.at(lo, owner, rings.values)
    np.maximum.at(hi, owner, rings.values)
    has = np.isfinite(lo[:, 0])
    out[has] = np.concatenate([lo, hi], axis=1)[has]
    return out


def _keypoints_bbox(keypoints: Ragged) -> FloatArray:
    n = len(keypoints)
    out = np.zeros((n, 4))
    if len(keypoints.values) == 0:
        return out
    owner = keypoints.row_index()
    lo = np.full((n, 2), np.inf)
    hi = np.full((n, 2), -np.inf)
    np.minimum.at(lo, owner, keypoints.values[:, :2])
    np.maximum.at(hi, owner, keypoints.values[:, :2])
    has = np.isfinite(lo[:, 0])
    out[has] = np.concatenate([lo, hi], axis=1)[has]
    return out


def _attribute_columns(
    dicts: list[Any], flags: dict[str, np.ndarray[Any, Any]], track_id: IntArray
) -> dict[str, AttributeColumn]:
    """Split ``attributes`` objects into core flag columns, track ids and typed columns."""
    present = [d for d in dicts if d is not None]
    if not set(map(type, present)) <= {dict}:
        raise _SlowPath
    names = set(chain.from_iterable(present))
    columns: dict[str, AttributeColumn] = {}
    for name in sorted(names):
        values = [d.get(name) if d is not None else None for d in dicts]
        kinds = {type(v) for v in values if v is not None}
        if not kinds <= {bool, int, float, str}:
            raise _SlowPath
        if name in flags and kinds <= {bool, int}:
            flags[name][:] = [bool(v) for v in values]
            continue
        if name == "track_id" and kinds <= {int}:
            track_id[:] = [-1 if v is None else v for v in values]
            continue
        columns[name] = AttributeColumn.from_list(values)
    return columns


# --- writing --------------------------------------------------------------------------------


def _numbers(values: FloatArray, *, decimals: int | None = None) -> list[Any]:
    """Floats as JSON values, integral ones as ints; optionally rounded to ``decimals``.

    Box widths are written rounded to 10 decimals: ``x2 - x1`` rarely gives back the exact
    width a file held (0.3 - 0.1 is 0.19999999999999998), and rounding restores it without
    losing anything a pixel coordinate can mean.
    """
    rounded = np.round(values, decimals) if decimals is not None else values
    integral = rounded == np.round(rounded)
    out = rounded.astype(object)
    out[integral] = rounded[integral].astype(np.int64)
    return out.tolist()  # type: ignore[no-any-return]  # object array tolist is list[Any]


def dataset_to_coco(dataset: Dataset, *, results: bool = False) -> Any:
    """Return the COCO JSON document (dict, or a list for ``results``) for a data set."""
    ann = dataset.annotations
    report = WriteReport("coco", Path("."), len(dataset.images), len(ann))
    return _to_coco(dataset, report, results=results)


def _to_coco(dataset: Dataset, report: WriteReport, *, results: bool) -> Any:
    ann = dataset.annotations
    n = len(ann)
    geometric = ann.kind != Kind.TAG
    report.drop(
        "tags",
        int((~geometric).sum()),
        "COCO instances have no image-level labels",
    )
    keep = np.flatnonzero(geometric)
    if len(keep) != n:
        ann = ann.take(keep)
        n = len(ann)
    xywh = ann.bbox.copy()
    xywh[:, 2:] -= xywh[:, :2]
    xywh_values = np.concatenate([xywh[:, :2], np.round(xywh[:, 2:], 10)], axis=1)
    boxes = (
        np.array(_numbers(xywh_values.reshape(-1)), dtype=object).reshape(n, 4).tolist()
        if n
        else []
    )
    ids = ann.id.tolist()
    image_ids = ann.image_id.tolist()
    class_ids = ann.class_id.tolist()
    areas = _numbers(ann.area)
    crowd = ann.iscrowd.astype(np.int64).tolist()
    segmentation = _segmentation_values(ann, compressed=results)
    records: list[dict[str, Any]]
    if results:
        scores = ann.score.tolist()
        records = [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(image_ids, class_ids, boxes, scores)
        ]
        unscored = int(np.isnan(ann.score).sum())
        report.drop("rows without a score (written as null)", unscored)
        for record, seg in zip(records, segmentation):
            if seg is not None:
                record["segmentation"] = seg
    else:
        records = [
            {
                "id": a,
                "image_id": i,
                "category_id": c,
                "bbox": b,
                "area": ar,
                "iscrowd": cr,
                "segmentation": s if s is not None else [],
            }
            for a, i, c, b, ar, cr, s in zip(
                ids, image_ids, class_ids, boxes, areas, crowd, segmentation
            )
        ]
        scored = np.flatnonzero(~np.isnan(ann.score))
        for row, value in zip(scored.tolist(), ann.score[scored].tolist()):
            records[row]["score"] = value
    _write_optional(records, ann)
    _write_keypoints(records, ann)
    _write_attributes(records, ann)
    if results:
        return records
    taxonomy = dataset.taxonomy
    categories = []
    for c in taxonomy.classes:
        category: dict[str, Any] = {"id": c.id, "name": c.name, "supercategory": c.supercategory}
        if c.keypoints or c.skeleton:
            category["keypoints"] = list(c.keypoints)
            category["skeleton"] = [list(pair) for pair in c.skeleton]
        if c.tier != PrecisionTier.LOOSE or c.threshold != 0.5:
            category["tier"] = c.tier.value
            category["iou_threshold"] = c.threshold
        categories.append(category)
    images = dataset.images
    extra = {e["id"]: e for e in dataset.info.get("image_extra", [])}
    image_records = []
    for image_id, name, width, height, scene, tags in zip(
        images.id.tolist(),
        images.file_name.tolist(),
        images.width.tolist(),
        images.height.tolist(),
        images.scene_type.tolist(),
        images.tags.tolist(),
    ):
        record = {"id": image_id, "file_name": name, "width": width, "height": height}
        if scene:
            record["scene_type"] = scene
        if tags:
            record["tags"] = list(tags)
        if image_id in extra:
            record.update({k: v for k, v in extra[image_id].items() if k != "id"})
        image_records.append(record)
    document: dict[str, Any] = {}
    for key in ("info", "licenses"):
        if key in dataset.info:
            document[key] = dataset.info[key]
    document.update({"images": image_records, "annotations": records, "categories": categories})
    return document


def _segmentation_values(ann: Annotations, *, compressed: bool) -> list[Any]:
    n = len(ann)
    out: list[Any] = [None] * n
    ring_counts = np.diff(ann.ring_offsets)
    with_rings = np.flatnonzero(ring_counts > 0)
    if len(with_rings):
        rounded = np.array(_numbers(ann.rings.values.reshape(-1)), dtype=object)
        ring_values = [
            rounded[2 * ann.rings.offsets[r] : 2 * ann.rings.offsets[r + 1]].tolist()
            for r in range(len(ann.rings))
        ]
        for row in with_rings.tolist():
            out[row] = ring_values[ann.ring_offsets[row] : ann.ring_offsets[row + 1]]
    for row in np.flatnonzero(ann.rle_counts.lengths > 0).tolist():
        counts = ann.rle_counts.row(row)
        size = ann.rle_size[row].tolist()
        out[row] = {
            "size": size,
            "counts": rle_to_string(counts) if compressed else counts.tolist(),
        }
    return out


def _write_optional(records: list[dict[str, Any]], ann: Annotations) -> None:
    for row, value in _non_default(ann.annotator_id, -1):
        records[row]["annotator_id"] = value
    for row, value in _non_default(ann.z_order, 0):
        records[row]["z_order"] = value
    for row, value in _non_default(ann.source.astype(np.int64), int(Source.HUMAN)):
        records[row]["source"] = _SOURCE_NAMES[Source(value)]


def _non_default(values: np.ndarray[Any, Any], default: Any) -> list[tuple[int, Any]]:
    rows = np.flatnonzero(values != default)
    return list(zip(rows.tolist(), values[rows].tolist()))


def _write_keypoints(records: list[dict[str, Any]], ann: Annotations) -> None:
    rows = np.flatnonzero(ann.keypoints.lengths > 0)
    if not len(rows):
        return
    flat = np.array(_numbers(ann.keypoints.values.reshape(-1)), dtype=object)
    visible = ann.keypoints.values[:, 2] > 0
    for row in rows.tolist():
        start, stop = ann.keypoints.offsets[row], ann.keypoints.offsets[row + 1]
        records[row]["keypoints"] = flat[3 * start : 3 * stop].tolist()
        records[row]["num_keypoints"] = int(visible[start:stop].sum())


def _write_attributes(records: list[dict[str, Any]], ann: Annotations) -> None:
    columns: dict[str, list[Any]] = {}
    for name in _FLAG_ATTRIBUTES:
        values: np.ndarray[Any, Any] = getattr(ann, name)
        if values.any():
            # only the set flags: an absent flag reads back as False
            columns[name] = [True if v else None for v in values.tolist()]
    if (ann.track_id >= 0).any():
        columns["track_id"] = [v if v >= 0 else None for v in ann.track_id.tolist()]
    for name, column in ann.attributes.items():
        columns[name] = column.to_list()
    if not columns:
        return
    for row, record in enumerate(records):
        attributes = {k: v[row] for k, v in columns.items() if v[row] is not None}
        if attributes:
            record["attributes"] = attributes


def write_coco(
    dataset: Dataset,
    path: Path | str,
    *,
    overwrite: bool = False,
    results: bool = False,
) -> WriteReport:
    """Write a COCO instances file (or, with ``results``, a COCO results list) atomically.

    Raises
    ------
    FileExistsError
        The target exists and ``overwrite`` is False.
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)
    report = WriteReport("coco", path, len(dataset.images), len(dataset.annotations))
    with no_cyclic_gc():  # a dict per annotation: collections would find nothing to free
        document = _to_coco(dataset, report, results=results)
        report.annotations = len(document) if results else len(document["annotations"])
        write_bytes_atomic(path, orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
    return report
