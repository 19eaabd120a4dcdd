"""Label Studio JSON export: a list of tasks, each an image with annotations and predictions.

Reading
-------
One task is one image (a task without a string ``data.image``, such as a text task, is a
problem of that record): ``Images.id`` is the task ``id`` and ``file_name`` the full
``data.image`` value, upload prefix (``/data/upload/18/``) and URL included, so that writing
restores it byte for byte (take ``PurePosixPath(name).name`` for the bare file name). Tasks
without an ``id`` (import files) get ids after the largest one given. The image size is
``original_width`` / ``original_height`` of the task's results (0 when it has none).

Every region of ``annotations[].result`` and ``predictions[].result`` becomes one row per
label (a region carrying two labels gives two rows with the same geometry):

=================  ==============================================================
result type        row
=================  ==============================================================
rectanglelabels    BOX; ``x, y, width, height`` are percent of the image size. A
                   non-zero ``rotation`` (degrees, clockwise, about the top-left
                   corner, in pixels) gives the axis-aligned box of the rotated
                   rectangle, the angle in the attribute ``rotation`` and the
                   rectangle's corners as one 4-point ring (anchor first, then along
                   its width), so the box can be written back exactly
polygonlabels      POLYGON, one ring from ``points``
keypointlabels     KEYPOINTS with one keypoint ``(x, y, 2)``; bbox is the point (the
                   drawn marker size ``value.width`` is not kept)
brushlabels        MASK: the ``rle`` canvas (see :mod:`labelgate.formats._ls_rle`),
                   alpha > 0, as COCO uncompressed RLE; bbox is its pixel extent
choices            TAG, one per choice
relation           skipped (counted in ``info["label_studio"]["skipped_results"]``)
=================  ==============================================================

Any other result type is a problem of that record. Class ids are ``1..k`` over the label
names sorted by name (code-point order), so two exports of one project agree on ids
whatever order their tasks are in. ``completed_by`` (an int or ``{"id", "email"}``) gives
``annotator_id`` (-1 when absent); prediction rows are ``Source.PRELABEL`` with the region's
``score``, else the prediction's, and the prediction's ``model_version`` in the attribute
``model_version``. ``info["label_studio"]`` keeps the ``from_name``/``to_name`` of every
(type, label) and the annotators' e-mails, which the writer restores.

Writing
-------
One task per image; one annotation per (task, annotator) for human and merged rows and one
prediction per (task, model version) for pre-labels, with their scores. Whatever the format
cannot hold is reported on the :class:`WriteReport`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import Taxonomy
from labelgate.formats._atomic import refuse_existing, write_bytes_atomic
from labelgate.formats._base import (
    ErrorLog,
    WriteReport,
    finish_dataset,
    load_json,
    no_cyclic_gc,
)
from labelgate.formats._ls_rle import coco_to_ls_rle, ls_rle_to_coco

__all__ = ["read_label_studio", "sniff_label_studio", "write_label_studio"]

_SNIFF_BYTES = 64 * 1024
_LABEL_TYPES = ("rectanglelabels", "polygonlabels", "keypointlabels", "brushlabels", "choices")
_SKIPPED_TYPES = frozenset({"relation"})
_ATTRIBUTES_WRITTEN = frozenset({"rotation", "model_version"})
_DEFAULT_FROM_NAME = "label"
_DEFAULT_TO_NAME = "image"


class _BadRecord(Exception):
    """One field of the record being parsed is wrong (caught per record, never escapes)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _describe(value: Any) -> str:
    """Short description of a JSON value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(obj: Mapping[str, Any], key: str, field: str) -> float:
    """A finite, non-negative JSON number at ``obj[key]``."""
    if key not in obj:
        raise _BadRecord(field, "missing")
    value = obj[key]
    if type(value) is not float and type(value) is not int:
        raise _BadRecord(field, f"expected a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise _BadRecord(field, f"expected a finite number, got {value}")
    if value < 0:
        raise _BadRecord(field, f"expected a value >= 0, got {value}")
    return float(value)


def _size(result: Mapping[str, Any], key: str) -> int:
    """``original_width`` / ``original_height``: a positive whole number of pixels."""
    value = _number(result, key, key)
    if value <= 0 or value != int(value):
        raise _BadRecord(key, f"expected a positive whole number of pixels, got {result[key]}")
    return int(value)


def _labels(value: Mapping[str, Any], key: str) -> list[str]:
    labels = value.get(key)
    if not isinstance(labels, list) or not labels:
        raise _BadRecord(
            f"value.{key}", f"expected a non-empty list of labels, got {_describe(labels)}"
        )
    for label in labels:
        if not isinstance(label, str) or not label:
            raise _BadRecord(f"value.{key}", f"expected label names, got {_describe(label)}")
    return labels


def _annotator(annotation: Mapping[str, Any], emails: dict[str, str]) -> int:
    who = annotation.get("completed_by")
    if who is None:
        return -1
    if isinstance(who, dict):
        email = who.get("email")
        who = who.get("id")
        if type(who) is int and isinstance(email, str) and email:
            emails[str(who)] = email
    if type(who) is not int:
        raise _BadRecord("completed_by", f"expected a user id, got {_describe(who)}")
    return who


class _Parsed:
    """Columns collected while walking the tasks; geometry per kind, rows in file order."""

    def __init__(self) -> None:
        self.task: list[int] = []  # task index of each row
        self.label: list[str] = []
        self.kind: list[int] = []
        self.annotator: list[int] = []
        self.source: list[int] = []
        self.score: list[float] = []
        self.model_version: list[str | None] = []
        self.where: list[tuple[int, str, int, int, str]] = []  # task, list, index, result, id
        # geometry in percent, per kind, with the row it belongs to
        self.box_row: list[int] = []
        self.box: list[tuple[float, float, float, float, float, int, int]] = []
        self.poly_row: list[int] = []
        self.poly: list[FloatArray] = []
        self.poly_size: list[tuple[int, int]] = []
        self.point_row: list[int] = []
        self.point: list[tuple[float, float, int, int]] = []
        self.mask_row: list[int] = []
        self.mask_counts: list[IntArray] = []
        self.mask_box: list[FloatArray] = []
        self.mask_size: list[tuple[int, int]] = []


def _parse_region(
    result: Mapping[str, Any],
    rtype: str,
    size: tuple[int, int] | None,
) -> tuple[list[str], Any]:
    """Validate one region; return its labels and its geometry (percent) for the caller."""
    value = result.get("value")
    if not isinstance(value, dict):
        raise _BadRecord("value", f"expected an object, got {_describe(value)}")
    labels = _labels(value, rtype)
    if rtype == "choices":
        return labels, None
    assert size is not None  # the caller reads the size for every geometric type
    if rtype == "rectanglelabels":
        x = _number(value, "x", "value.x")
        y = _number(value, "y", "value.y")
        width = _number(value, "width", "value.width")
        height = _number(value, "height", "value.height")
        rotation = value.get("rotation", 0.0)
        if rotation is None:
            rotation = 0.0
        if type(rotation) not in (float, int) or not math.isfinite(rotation):
            raise _BadRecord("value.rotation", f"expected degrees, got {_describe(rotation)}")
        return labels, (x, y, width, height, float(rotation))
    if rtype == "polygonlabels":
        points = value.get("points")
        if not isinstance(points, list):
            raise _BadRecord("value.points", f"expected a list of [x, y], got {_describe(points)}")
        try:
            array = np.asarray(points)
        except (TypeError, ValueError) as exc:  # ragged lists
            raise _BadRecord("value.points", "expected a list of [x, y] numbers") from exc
        if array.dtype.kind not in "iuf":
            raise _BadRecord("value.points", "expected a list of [x, y] numbers")
        array = array.astype(np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 3:
            raise _BadRecord(
                "value.points", f"expected >= 3 points of [x, y], got shape {array.shape}"
            )
        if not np.isfinite(array).all() or (array < 0).any():
            raise _BadRecord("value.points", "expected finite percentages >= 0")
        return labels, array
    if rtype == "keypointlabels":
        return labels, (_number(value, "x", "value.x"), _number(value, "y", "value.y"))
    # brushlabels
    if value.get("format", "rle") != "rle":
        raise _BadRecord("value.format", f"expected 'rle', got {_describe(value.get('format'))}")
    rle = value.get("rle")
    if not isinstance(rle, list):
        raise _BadRecord("value.rle", f"expected a list of bytes, got {_describe(rle)}")
    width_px, height_px = size
    try:
        counts, bbox = ls_rle_to_coco(rle, height_px, width_px)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _BadRecord("value.rle", str(exc)) from exc
    return labels, (counts, bbox)


def _walk(
    tasks: list[Any],
    log: ErrorLog,
    parsed: _Parsed,
    controls: dict[str, dict[str, list[str]]],
    emails: dict[str, str],
    skipped: dict[str, int],
) -> tuple[list[int | None], list[str], list[tuple[int, int]]]:
    """Parse every task into ``parsed``; return task ids, file names and image sizes."""
    task_ids: list[int | None] = []
    file_names: list[str] = []
    sizes: list[tuple[int, int]] = []
    for t, task in enumerate(tasks):
        task_ids.append(None)
        file_names.append("")
        sizes.append((0, 0))
        record = f"tasks[{t}]"
        if not isinstance(task, dict):
            log.fail(f"expected a task object, got {type(task).__name__}", record=record)
            continue
        tid = task.get("id")
        if tid is not None:
            if type(tid) is not int:
                log.fail(f"expected an integer, got {_describe(tid)}", record=record, field="id")
                continue
            task_ids[t] = tid
            record = f"tasks[{t}] (id={tid})"
        data = task.get("data")
        image = data.get("image") if isinstance(data, dict) else None
        if not isinstance(image, str) or not image:
            log.fail(
                f"expected an image URL or path, got {_describe(image)}",
                record=record,
                field="data.image",
            )
            continue
        file_names[t] = image
        size: tuple[int, int] | None = None
        for list_name, source in (("annotations", Source.HUMAN), ("predictions", Source.PRELABEL)):
            entries = task.get(list_name, [])
            if entries is None:
                continue
            if not isinstance(entries, list):
                log.fail(
                    f"expected a list, got {_describe(entries)}", record=record, field=list_name
                )
                continue
            for a, entry in enumerate(entries):
                entry_record = f"{record}: {list_name}[{a}]"
                if not isinstance(entry, dict):
                    log.fail(f"expected an object, got {_describe(entry)}", record=entry_record)
                    continue
                try:
                    annotator = _annotator(entry, emails) if source == Source.HUMAN else -1
                    entry_score = np.nan
                    model_version: str | None = None
                    if source == Source.PRELABEL:
                        if entry.get("score") is not None:
                            entry_score = _number(entry, "score", "score")
                        version = entry.get("model_version")
                        model_version = None if version is None else str(version)
                except _BadRecord as bad:
                    log.fail(bad.message, record=entry_record, field=bad.field)
                    continue
                results = entry.get("result", [])
                if not isinstance(results, list):
                    log.fail(
                        f"expected a list, got {_describe(results)}",
                        record=entry_record,
                        field="result",
                    )
                    continue
                for r, result in enumerate(results):
                    rid = result.get("id", "") if isinstance(result, dict) else ""
                    rid = rid if isinstance(rid, str) else str(rid)
                    try:
                        if not isinstance(result, dict):
                            raise _BadRecord(
                                "", f"expected a result object, got {_describe(result)}"
                            )
                        rtype = result.get("type")
                        if rtype in _SKIPPED_TYPES:
                            skipped[rtype] = skipped.get(rtype, 0) + 1
                            continue
                        if rtype not in _LABEL_TYPES:
                            raise _BadRecord(
                                "type",
                                f"unsupported result type {_describe(rtype)}; expected one of "
                                f"{', '.join(_LABEL_TYPES)}",
                            )
                        region_size: tuple[int, int] | None = None
                        if rtype != "choices":
                            region_size = (
                                _size(result, "original_width"),
                                _size(result, "original_height"),
                            )
                            if size is not None and region_size != size:
                                raise _BadRecord(
                                    "original_width",
                                    f"image size {region_size[0]}x{region_size[1]} differs from "
                                    f"{size[0]}x{size[1]} in an earlier result",
                                )
                        labels, geometry = _parse_region(result, rtype, region_size)
                        score = entry_score
                        if source == Source.PRELABEL and result.get("score") is not None:
                            score = _number(result, "score", "score")
                    except _BadRecord as bad:
                        rec = f"{entry_record}.result[{r}]" + (f" (id={rid})" if rid else "")
                        log.fail(bad.message, record=rec, field=bad.field or None)
                        continue
                    if region_size is not None:
                        size = region_size
                        sizes[t] = size
                    from_name = result.get("from_name")
                    to_name = result.get("to_name")
                    by_label = controls.setdefault(rtype, {})
                    for label in labels:
                        if (
                            label not in by_label
                            and isinstance(from_name, str)
                            and isinstance(to_name, str)
                        ):
                            by_label[label] = [from_name, to_name]
                        row = len(parsed.task)
                        parsed.task.append(t)
                        parsed.label.append(label)
                        parsed.annotator.append(annotator)
                        parsed.source.append(int(source))
                        parsed.score.append(score)
                        parsed.model_version.append(model_version)
                        parsed.where.append((t, list_name, a, r, rid))
                        _add_geometry(parsed, row, rtype, geometry, region_size)
    return task_ids, file_names, sizes


def _add_geometry(
    parsed: _Parsed, row: int, rtype: str, geometry: Any, size: tuple[int, int] | None
) -> None:
    if rtype == "choices":
        parsed.kind.append(Kind.TAG)
        return
    assert size is not None  # every geometric type carries the image size
    width, height = size
    if rtype == "rectanglelabels":
        parsed.kind.append(Kind.BOX)
        parsed.box_row.append(row)
        parsed.box.append((*geometry, width, height))
    elif rtype == "polygonlabels":
        parsed.kind.append(Kind.POLYGON)
        parsed.poly_row.append(row)
        parsed.poly.append(geometry)
        parsed.poly_size.append(size)
    elif rtype == "keypointlabels":
        parsed.kind.append(Kind.KEYPOINTS)
        parsed.point_row.append(row)
        parsed.point.append((*geometry, width, height))
    else:
        parsed.kind.append(Kind.MASK)
        parsed.mask_row.append(row)
        parsed.mask_counts.append(geometry[0])
        parsed.mask_box.append(geometry[1])
        parsed.mask_size.append((height, width))


def _keep_tasks(parsed: _Parsed, good: list[int]) -> _Parsed:
    """The rows of ``parsed`` whose task is in ``good`` (collect mode only)."""
    keep = set(good)
    rows = [i for i, t in enumerate(parsed.task) if t in keep]
    if len(rows) == len(parsed.task):
        return parsed
    out = _Parsed()
    new_row = {old: new for new, old in enumerate(rows)}
    for name in ("task", "label", "kind", "annotator", "source", "score", "model_version", "where"):
        column = getattr(parsed, name)
        setattr(out, name, [column[i] for i in rows])
    for rows_name, columns in (
        ("box_row", ("box",)),
        ("poly_row", ("poly", "poly_size")),
        ("point_row", ("point",)),
        ("mask_row", ("mask_counts", "mask_box", "mask_size")),
    ):
        owners = getattr(parsed, rows_name)
        picked = [k for k, row in enumerate(owners) if row in new_row]
        setattr(out, rows_name, [new_row[owners[k]] for k in picked])
        for name in columns:
            column = getattr(parsed, name)
            setattr(out, name, [column[k] for k in picked])
    return out


def _rotated_corners(box: FloatArray) -> FloatArray:
    """Corners (m, 4, 2) of rotated rectangles ``x, y, w, h, degrees`` in pixels.

    Label Studio (Konva) rotates clockwise on screen (y points down) about the top-left
    corner: anchor, anchor + w along the rotated x axis, the far corner, anchor + h along
    the rotated y axis.
    """
    x, y, w, h, degrees = box.T
    radians = np.deg2rad(degrees)
    cos, sin = np.cos(radians), np.sin(radians)
    dx = np.stack([np.zeros_like(w), w * cos, w * cos - h * sin, -h * sin], axis=1)
    dy = np.stack([np.zeros_like(w), w * sin, w * sin + h * cos, h * cos], axis=1)
    return np.stack([x[:, None] + dx, y[:, None] + dy], axis=2)


def _build(parsed: _Parsed, class_of: Mapping[str, int], image_ids: IntArray) -> Annotations:
    """Turn the parsed lists into columns, converting percent to pixels in bulk."""
    n = len(parsed.task)
    bbox = np.full((n, 4), np.nan, dtype=np.float64)
    ring_rows: list[IntArray] = []
    ring_parts: list[Ragged] = []
    rotation = np.full(n, np.nan, dtype=np.float64)
    if parsed.box:
        rows = np.asarray(parsed.box_row, dtype=np.int64)
        raw = np.asarray(parsed.box, dtype=np.float64)
        width, height = raw[:, 5], raw[:, 6]
        x1 = raw[:, 0] / 100 * width
        y1 = raw[:, 1] / 100 * height
        w = raw[:, 2] / 100 * width
        h = raw[:, 3] / 100 * height
        bbox[rows] = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
        rotated = raw[:, 4] != 0
        if rotated.any():
            corners = _rotated_corners(np.stack([x1, y1, w, h, raw[:, 4]], axis=1)[rotated])
            bbox[rows[rotated]] = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
            rotation[rows[rotated]] = raw[rotated, 4]
            m = int(rotated.sum())
            ring_rows.append(rows[rotated])
            ring_parts.append(Ragged(corners.reshape(-1, 2), np.arange(0, 4 * m + 1, 4)))
    if parsed.poly:
        rows = np.asarray(parsed.poly_row, dtype=np.int64)
        rings = Ragged.from_rows(parsed.poly, dtype=np.float64)
        scale = np.repeat(
            np.asarray(parsed.poly_size, dtype=np.float64) / 100, rings.lengths, axis=0
        )
        pixels = rings.values * scale
        ring_rows.append(rows)
        ring_parts.append(Ragged(pixels, rings.offsets))
        owner = rings.row_index()
        low = np.full((len(rows), 2), np.inf)
        high = np.full((len(rows), 2), -np.inf)
        np.minimum.at(low, owner, pixels)
        np.maximum.at(high, owner, pixels)
        bbox[rows] = np.concatenate([low, high], axis=1)
    keypoint_lengths = np.zeros(n, dtype=np.int64)
    keypoint_values = np.zeros((0, 3), dtype=np.float64)
    if parsed.point:
        rows = np.asarray(parsed.point_row, dtype=np.int64)
        raw = np.asarray(parsed.point, dtype=np.float64)
        xy = raw[:, :2] / 100 * raw[:, 2:4]
        keypoint_values = np.concatenate([xy, np.full((len(rows), 1), 2.0)], axis=1)
        keypoint_lengths[rows] = 1
        bbox[rows] = np.concatenate([xy, xy], axis=1)
    rle_lengths = np.zeros(n, dtype=np.int64)
    rle_values = np.zeros(0, dtype=np.int64)
    rle_size = np.zeros((n, 2), dtype=np.int64)
    if parsed.mask_counts:
        rows = np.asarray(parsed.mask_row, dtype=np.int64)
        rle_values = np.concatenate(parsed.mask_counts)
        rle_lengths[rows] = [len(c) for c in parsed.mask_counts]
        rle_size[rows] = parsed.mask_size
        bbox[rows] = np.stack(parsed.mask_box)
    if ring_parts:
        all_rings = Ragged.concat(ring_parts)
        owners = np.concatenate(ring_rows)
        order = np.argsort(owners, kind="stable")
        all_rings = all_rings.take(order)
        ring_count = np.bincount(owners, minlength=n)
    else:
        all_rings = Ragged.empty(0, width=2)
        ring_count = np.zeros(n, dtype=np.int64)
    ring_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ring_count, out=ring_offsets[1:])
    attributes: dict[str, AttributeColumn] = {}
    if not np.isnan(rotation).all():
        attributes["rotation"] = AttributeColumn(rotation, ~np.isnan(rotation))
    if any(v is not None for v in parsed.model_version):
        attributes["model_version"] = AttributeColumn.from_list(parsed.model_version)
    return Annotations.create(
        image_id=image_ids[np.asarray(parsed.task, dtype=np.int64)] if n else np.zeros(0, np.int64),
        class_id=np.array([class_of[name] for name in parsed.label], dtype=np.int64),
        kind=np.asarray(parsed.kind, dtype=np.uint8),
        bbox=bbox,
        score=np.asarray(parsed.score, dtype=np.float64),
        annotator_id=np.asarray(parsed.annotator, dtype=np.int64),
        source=np.asarray(parsed.source, dtype=np.uint8),
        rings=all_rings,
        ring_offsets=ring_offsets,
        keypoints=Ragged(keypoint_values, np.concatenate([[0], np.cumsum(keypoint_lengths)])),
        rle_counts=Ragged(rle_values, np.concatenate([[0], np.cumsum(rle_lengths)])),
        rle_size=rle_size,
        attributes=attributes,
        check=False,
    )


def _load(path: Path, log: ErrorLog) -> list[Any]:
    document = load_json(path, log)
    if isinstance(document, dict):
        if "data" not in document:
            raise log.fatal("expected a list of tasks or one task with 'data', got an object")
        return [document]
    if not isinstance(document, list):
        raise log.fatal(f"expected a list of tasks, got {type(document).__name__}")
    return document


def read_label_studio(path: Path | str, *, errors: ErrorLog | None = None) -> Dataset:
    """Read a Label Studio JSON export (a list of tasks, or one task).

    Parameters
    ----------
    path
        The export file.
    errors
        Pass ``ErrorLog(path, collect=True)`` to collect every problem and skip the bad
        records; by default the first problem raises.

    Returns
    -------
    Dataset
        One image per task; rows as the module docstring describes.

    Raises
    ------
    FormatError
        Naming the file, the record (``tasks[3] (id=17): annotations[0].result[2] (id=x)``)
        and the field.

    Examples
    --------
    >>> import tempfile
    >>> task = {"id": 7, "data": {"image": "a.jpg"}, "annotations": [{"completed_by": 3,
    ...     "result": [{"type": "rectanglelabels", "original_width": 200,
    ...     "original_height": 100, "value": {"x": 10, "y": 20, "width": 50, "height": 50,
    ...     "rectanglelabels": ["car"]}}]}]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = Path(tmp) / "export.json"
    ...     _ = file.write_bytes(orjson.dumps([task]))
    ...     ds = read_label_studio(file)
    >>> ds.annotations.bbox.tolist(), ds.annotations.annotator_id.tolist(), ds.taxonomy.names
    ([[20.0, 20.0, 120.0, 70.0]], [3], ('car',))
    """
    path = Path(path)
    log = errors if errors is not None else ErrorLog(path)
    parsed = _Parsed()
    controls: dict[str, dict[str, list[str]]] = {}
    emails: dict[str, str] = {}
    skipped: dict[str, int] = {}
    with no_cyclic_gc():
        tasks = _load(path, log)
        task_ids, file_names, sizes = _walk(tasks, log, parsed, controls, emails, skipped)
        del tasks
    controls = {rtype: by_label for rtype, by_label in controls.items() if by_label}
    # tasks without an id (import files) get ids after the largest one given
    next_id = max((i for i in task_ids if i is not None), default=0) + 1
    filled: list[int] = []
    for tid in task_ids:
        if tid is None:
            tid, next_id = next_id, next_id + 1
        filled.append(tid)
    # keep only tasks that parsed (bad ones were reported; strict mode raised already)
    parsed_tasks = [t for t, name in enumerate(file_names) if name]
    seen: dict[int, int] = {}
    good: list[int] = []
    for t in parsed_tasks:
        first = seen.setdefault(filled[t], t)
        if first != t:
            log.fail(f"duplicate task id (also tasks[{first}])", record=f"tasks[{t}]", field="id")
        else:
            good.append(t)
    if len(good) < len(parsed_tasks):  # drop the rows of the duplicates
        parsed = _keep_tasks(parsed, good)
    image_ids = np.asarray(filled, dtype=np.int64)
    images = Images.create(
        id=image_ids[good],
        file_name=[file_names[t] for t in good],
        width=[sizes[t][0] for t in good],
        height=[sizes[t][1] for t in good],
    )
    names = sorted(set(parsed.label))
    taxonomy = Taxonomy.from_names(names)
    class_of = {name: i + 1 for i, name in enumerate(names)}
    annotations = _build(parsed, class_of, image_ids)
    info: dict[str, Any] = {
        "label_studio": {"controls": controls, "annotators": emails, "skipped_results": skipped}
    }

    def record_of(row: int) -> str:
        t, list_name, a, r, rid = parsed.where[row]
        tid = task_ids[t]
        task = f"tasks[{t}]" + (f" (id={tid})" if tid is not None else "")
        return f"{task}: {list_name}[{a}].result[{r}]" + (f" (id={rid})" if rid else "")

    return finish_dataset(
        log,
        annotations,
        images,
        taxonomy,
        record_of=record_of,
        field_names={
            "bbox": "value",
            "rings": "value.points",
            "rle_counts": "value.rle",
            "keypoints": "value",
            "image_id": "task id",
        },
        info=info,
    )


def sniff_label_studio(path: Path | str) -> bool:
    """Whether ``path`` looks like a Label Studio JSON export; reads at most 64 KB.

    True for a ``.json`` file whose top level is a list of task objects with ``data`` and
    ``annotations`` or ``predictions``, or one such task object. Never raises.
    """
    try:
        path = Path(path)
        if path.suffix.lower() != ".json" or not path.is_file():
            return False
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        complete = len(head) < _SNIFF_BYTES
        text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
        if not text or text[0] not in "[{":
            return False
        first: Any
        if text[0] == "[":
            rest = text[1:].lstrip()
            if rest.startswith("]") or not rest.startswith("{"):
                return False
            try:
                first, _ = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                # the first task is longer than the sniffed prefix: look at its keys
                return '"data"' in rest and ('"annotations"' in rest or '"predictions"' in rest)
        else:
            if not complete:
                return (
                    '"data"' in text
                    and ('"annotations"' in text or '"predictions"' in text)
                    and '"images"' not in text
                )
            first = json.loads(text)
        return (
            isinstance(first, dict)
            and isinstance(first.get("data"), dict)
            and ("annotations" in first or "predictions" in first)
        )
    except (OSError, ValueError, RecursionError):
        return False


# --- writing ------------------------------------------------------------------------------


def _controls(info: Mapping[str, Any]) -> Callable[[str, str], tuple[str, str]]:
    """``(type, label) -> (from_name, to_name)`` from what the reader kept, else defaults."""
    kept = info.get("label_studio", {}) if isinstance(info, Mapping) else {}
    controls = kept.get("controls", {}) if isinstance(kept, Mapping) else {}

    def lookup(rtype: str, label: str) -> tuple[str, str]:
        by_label = controls.get(rtype) if isinstance(controls, Mapping) else None
        if isinstance(by_label, Mapping) and by_label:
            pair = by_label.get(label) or next(iter(by_label.values()))
            if isinstance(pair, list | tuple) and len(pair) == 2:
                return str(pair[0]), str(pair[1])
        return _DEFAULT_FROM_NAME, _DEFAULT_TO_NAME

    return lookup


def _report_drops(dataset: Dataset, report: WriteReport, written: np.ndarray[Any, Any]) -> None:
    """Record everything in ``dataset`` the Label Studio export cannot carry."""
    ann = dataset.annotations
    for flag in ("occluded", "truncated", "difficult", "iscrowd"):
        report.drop(f"{flag} flags", int(getattr(ann, flag)[written].sum()))
    report.drop("track ids", int((ann.track_id[written] != -1).sum()))
    report.drop("z_order", int((ann.z_order[written] != 0).sum()))
    for name, column in sorted(ann.attributes.items()):
        if name not in _ATTRIBUTES_WRITTEN:
            report.drop(f"attribute {name}", int(column.present[written].sum()))
    human = ann.source != Source.PRELABEL
    report.drop("scores of human annotations", int((written & human & ~np.isnan(ann.score)).sum()))
    report.drop(
        "merged annotations (written as human annotations)",
        int((written & (ann.source == Source.MERGED)).sum()),
    )
    rings = np.diff(ann.ring_offsets)
    polygon = ann.kind == Kind.POLYGON
    report.drop(
        "multi-ring polygons (one region per ring)", int((written & polygon & (rings > 1)).sum())
    )
    keypoints = ann.kind == Kind.KEYPOINTS
    lengths = ann.keypoints.lengths
    report.drop(
        "keypoint sets with more than one keypoint (one region per keypoint)",
        int((written & keypoints & (lengths > 1)).sum()),
    )
    visibility = ann.keypoints.values[:, 2] if len(ann.keypoints.values) else np.zeros(0)
    owner = ann.keypoints.row_index()
    on_written = written[owner] & keypoints[owner]
    report.drop(
        "keypoints with visibility 0 (not written)", int((on_written & (visibility == 0)).sum())
    )
    report.drop(
        "keypoint visibility 1 (written as visible)", int((on_written & (visibility == 1)).sum())
    )
    images = dataset.images
    report.drop("scene types", int((images.scene_type != "").sum()))
    report.drop("image tags", int(sum(1 for tags in images.tags.tolist() if tags)))
    used = np.isin(dataset.taxonomy.ids, ann.class_id[written])
    report.drop(
        "classes without annotations",
        int((~used).sum()),
        ", ".join(name for name, u in zip(dataset.taxonomy.names, used.tolist()) if not u),
    )


def _percentages(
    ann: Annotations, scale: FloatArray, report: WriteReport, written: np.ndarray[Any, Any]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Boxes ``x, y, w, h`` and their rotation, ring points and keypoints, in percent."""
    n = len(ann)
    box = ann.bbox
    rotation_column = ann.attributes.get("rotation")
    rotation = np.zeros(n, dtype=np.float64)
    if rotation_column is not None and rotation_column.values.dtype.kind in "fi":
        rotation = np.where(rotation_column.present, rotation_column.values.astype(np.float64), 0.0)
    rings = np.diff(ann.ring_offsets)
    is_box = ann.kind == Kind.BOX
    rotated = is_box & (rotation != 0) & np.isfinite(rotation)
    with_ring = rotated & (rings == 1)
    first_ring = ann.ring_offsets[:-1]
    four_corners = np.zeros(n, dtype=bool)
    four_corners[rings == 1] = ann.rings.lengths[first_ring[rings == 1]] == 4
    with_ring &= four_corners
    report.drop(
        "rotation of boxes without their corner ring (written axis-aligned)",
        int((written & rotated & ~with_ring).sum()),
    )
    rect = np.stack([box[:, 0], box[:, 1], box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], axis=1)
    if with_ring.any():
        corner_index = ann.rings.offsets[first_ring[with_ring]]
        points = ann.rings.values
        anchor = points[corner_index]
        along_width = points[corner_index + 1] - anchor
        along_height = points[corner_index + 3] - anchor
        rect[with_ring] = np.stack(
            [
                anchor[:, 0],
                anchor[:, 1],
                np.hypot(along_width[:, 0], along_width[:, 1]),
                np.hypot(along_height[:, 0], along_height[:, 1]),
            ],
            axis=1,
        )
    rotation = np.where(with_ring, rotation, 0.0)
    # polygon points: each ring's owner row gives its image size
    ring_owner = np.repeat(np.arange(n), rings)
    point_owner = ring_owner[ann.rings.row_index()] if len(ann.rings) else np.zeros(0, np.int64)
    ring_percent = ann.rings.values * scale[point_owner] if len(point_owner) else ann.rings.values
    keypoint_owner = ann.keypoints.row_index()
    keypoint_percent = ann.keypoints.values[:, :2] * scale[keypoint_owner]

    percent = rect * np.concatenate([scale, scale], axis=1)
    return percent, rotation, ring_percent, keypoint_percent


def write_label_studio(
    dataset: Dataset, path: Path | str, *, overwrite: bool = False
) -> WriteReport:
    """Write a data set as a Label Studio JSON export, atomically.

    Parameters
    ----------
    dataset
        What to write.
    path
        The target file.
    overwrite
        Replace an existing file.

    Returns
    -------
    WriteReport
        Counts written and everything dropped: flags, track ids, z-order, attributes other
        than ``rotation`` and ``model_version``, rows on images of unknown size, masks of
        another size than their image, multi-ring polygons and multi-keypoint sets (split
        into regions), unused classes.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile
    >>> ds = Dataset(Annotations.create(image_id=[5], class_id=[1], bbox=[[20, 10, 120, 60]]),
    ...              Images.create(id=[5], file_name=["a.jpg"], width=[200], height=[100]),
    ...              Taxonomy.from_names(["car"]))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = write_label_studio(ds, Path(tmp) / "out.json")
    ...     value = orjson.loads((Path(tmp) / "out.json").read_bytes())[0]["annotations"][0]
    >>> report.annotations, report.lossless
    (1, True)
    >>> {k: value["result"][0]["value"][k] for k in ("x", "y", "width", "height")}
    {'x': 10.0, 'y': 10.0, 'width': 50.0, 'height': 50.0}
    """
    with no_cyclic_gc():
        return _write(dataset, Path(path), overwrite=overwrite)


def _write(dataset: Dataset, path: Path, *, overwrite: bool) -> WriteReport:
    """The body of :func:`write_label_studio`."""
    refuse_existing(path, overwrite=overwrite)
    ann = dataset.annotations
    images = dataset.images
    n = len(ann)
    report = WriteReport("labelstudio", path, images=len(images), annotations=0)
    image_row = images.index_of(ann.image_id)
    width = images.width[image_row].astype(np.float64) if n else np.zeros(0)
    height = images.height[image_row].astype(np.float64) if n else np.zeros(0)
    geometric = ann.kind != Kind.TAG
    no_size = geometric & ((width <= 0) | (height <= 0))
    report.drop("annotations on images of unknown size", int(no_size.sum()))
    is_mask = ann.kind == Kind.MASK
    wrong_mask = (
        is_mask & ~no_size & ((ann.rle_size[:, 0] != height) | (ann.rle_size[:, 1] != width))
    )
    report.drop("masks of another size than their image", int(wrong_mask.sum()))
    written = ~no_size & ~wrong_mask
    _report_drops(dataset, report, written)

    # percentages for every row in bulk; rows of unknown size (inf scale) are never written
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.stack([100 / width, 100 / height], axis=1)
        rect, rotation, ring_percent, keypoint_percent = _percentages(ann, scale, report, written)

    lookup = _controls(dataset.info)
    names = dict(zip(dataset.taxonomy.ids.tolist(), dataset.taxonomy.names))
    kept = dataset.info.get("label_studio", {}) if isinstance(dataset.info, Mapping) else {}
    emails = kept.get("annotators", {}) if isinstance(kept, Mapping) else {}
    model_column = ann.attributes.get("model_version")
    tasks: list[dict[str, Any]] = [
        {"id": image_id, "data": {"image": file_name}, "annotations": [], "predictions": []}
        for image_id, file_name in zip(images.id.tolist(), images.file_name.tolist())
    ]
    # entries per task in first-appearance order: human ones, then predictions
    entries: list[dict[tuple[int, Any], dict[str, Any]]] = [{} for _ in tasks]
    order = np.lexsort((np.arange(n), image_row))
    kinds = ann.kind.tolist()
    source = ann.source.tolist()
    annotator = ann.annotator_id.tolist()
    score = ann.score.tolist()
    row_ids = ann.id.tolist()
    class_ids = ann.class_id.tolist()
    widths = images.width.tolist()
    heights = images.height.tolist()
    image_rows = image_row.tolist()
    next_entry = 1
    written_rows = 0
    for row in order[written[order]].tolist():
        t = image_rows[row]
        prelabel = source[row] == Source.PRELABEL
        version = model_column.value(row) if model_column is not None and prelabel else None
        key = (1, version) if prelabel else (0, annotator[row])
        entry = entries[t].get(key)
        if entry is None:
            entry = {"id": next_entry}
            next_entry += 1
            if prelabel:
                if version is not None:
                    entry["model_version"] = str(version)
                entry["_scores"] = []
            elif annotator[row] != -1:
                email = emails.get(str(annotator[row])) if isinstance(emails, Mapping) else None
                entry["completed_by"] = (
                    {"id": annotator[row], "email": email} if email else annotator[row]
                )
            entry["result"] = []
            entry["_choices"] = {}  # from_name -> the entry's choices region, to merge tags
            entries[t][key] = entry
        label = names[class_ids[row]]
        kind = kinds[row]
        results: list[dict[str, Any]] = entry["result"]
        written_rows += 1
        if kind == Kind.TAG:
            from_name, to_name = lookup("choices", label)
            previous = entry["_choices"].get(from_name)
            if previous is not None and not prelabel:  # one region lists every choice
                previous["value"]["choices"].append(label)
                previous["_rows"].append(row)
                continue
            region: dict[str, Any] = {
                "id": f"lg{row_ids[row]}",
                "type": "choices",
                "from_name": from_name,
                "to_name": to_name,
                "value": {"choices": [label]},
            }
            entry["_choices"].setdefault(from_name, region)
            regions = [region]
        else:
            common = {
                "original_width": widths[t],
                "original_height": heights[t],
                "image_rotation": 0,
            }
            if kind == Kind.BOX:
                x, y, w, h = rect[row].tolist()
                value: dict[str, Any] = {
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "rotation": float(rotation[row]),
                }
                rtype = "rectanglelabels"
                values = [value]
            elif kind == Kind.POLYGON:
                rtype = "polygonlabels"
                start, stop = ann.ring_offsets[row], ann.ring_offsets[row + 1]
                offsets = ann.rings.offsets
                values = [
                    {"points": ring_percent[offsets[i] : offsets[i + 1]].tolist(), "closed": True}
                    for i in range(start, stop)
                ]
            elif kind == Kind.KEYPOINTS:
                rtype = "keypointlabels"
                lo, hi = ann.keypoints.offsets[row], ann.keypoints.offsets[row + 1]
                visible = ann.keypoints.values[lo:hi, 2] > 0
                values = [{"x": x, "y": y} for x, y in keypoint_percent[lo:hi][visible].tolist()]
            else:
                rtype = "brushlabels"
                h_px, w_px = ann.rle_size[row].tolist()
                values = [
                    {"format": "rle", "rle": coco_to_ls_rle(ann.rle_counts.row(row), h_px, w_px)}
                ]
            from_name, to_name = lookup(rtype, label)
            regions = []
            for k, value in enumerate(values):
                value[rtype] = [label]
                suffix = "" if len(values) == 1 else f"_{k}"
                regions.append(
                    {
                        "id": f"lg{row_ids[row]}{suffix}",
                        "type": rtype,
                        "from_name": from_name,
                        "to_name": to_name,
                        **common,
                        "value": value,
                    }
                )
        for region in regions:
            region["_rows"] = [row]
            if prelabel and not math.isnan(score[row]):
                region["score"] = score[row]
                entry["_scores"].append(score[row])
        results.extend(regions)
    file_rows: list[int] = []  # the row behind each region a reader will see, in file order
    for task, task_entries in zip(tasks, entries):
        for (is_prediction, _), entry in sorted(task_entries.items(), key=lambda kv: kv[0][0]):
            del entry["_choices"]
            for region in entry["result"]:
                file_rows.extend(region.pop("_rows"))
            if is_prediction:
                scores = entry.pop("_scores")
                if scores:
                    entry["score"] = sum(scores) / len(scores)
                task["predictions"].append(entry)
            else:
                task["annotations"].append(entry)
    report.annotations = written_rows
    # a reader numbers the regions 1..n in file order
    renumbered = ann.id[np.asarray(file_rows, dtype=np.int64)] != np.arange(1, len(file_rows) + 1)
    report.drop("annotation ids (a reader numbers regions 1..n)", int(renumbered.sum()))
    write_bytes_atomic(path, orjson.dumps(tasks, option=orjson.OPT_INDENT_2))
    return report
