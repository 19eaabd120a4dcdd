"""CVAT for images 1.1 XML: read and write.

Reading parses with ``defusedxml`` (entity bombs and external entities are refused) in one
streaming pass: the ``<meta>`` labels become the taxonomy (class ids ``1..k`` in label order,
since CVAT labels have no ids), every ``<image>`` becomes one row of the image table, and its
shapes become annotation rows. The XML forces a loop per element; the values go into plain
lists and become numpy columns once at the end, where :func:`finish_dataset` runs the
vectorized checks.

How CVAT's shapes map onto :class:`Annotations`:

=================  ==================================================================
CVAT               labelgate
=================  ==================================================================
``<box>``          ``Kind.BOX``; a box with ``rotation`` != 0 becomes a 4-corner
                   ``Kind.POLYGON`` (exact geometry; an axis-aligned box would lie)
``<polygon>``      ``Kind.POLYGON`` with one ring
``<polyline>``     ``Kind.KEYPOINTS`` (visibility 2) with ``cvat_shape = "polyline"``:
                   a line is not an area, so it must not take part in polygon IoU, but
                   every vertex is kept and the writer gives the polyline back
``<points>``       ``Kind.KEYPOINTS``, visibility 2
``<mask>``         ``Kind.MASK``: CVAT's row-major runs over the ``width x height`` crop
                   at ``left, top`` become COCO column-major RLE over the whole image
``<tag>``          ``Kind.TAG`` (bbox NaN)
``<track>``        one row per frame where the object is not ``outside``, with
                   ``track_id``; frames become images (CVAT for video)
=================  ==================================================================

``occluded``, ``z_order`` and ``source`` go to the core columns (``manual`` -> HUMAN,
``auto`` -> PRELABEL, ``consensus`` -> MERGED; ``semi-auto``, a model's shape a person
adjusted, and ``file`` -> HUMAN with the original word kept in ``cvat_source``).
``group_id`` goes to the int attribute ``cvat_group_id``. Checkbox attributes named
``truncated``, ``difficult`` or ``iscrowd`` fill the core flags; every other
``<attribute>`` becomes an attribute column typed by its schema (checkbox -> bool, number ->
int or float, select/radio/text -> str).

A project export numbers frames per task, so image ids repeat across subsets; the images
are then numbered ``0..n-1`` in document order. Subsets, the task name, label colours and
which select attributes are radio buttons go to ``info["cvat"]`` for the writer.

CVAT writes attribute ``<values>`` one per line; files written by Datumaro put them on one
line separated by spaces, so for select, radio, number and checkbox inputs a single line is
split on whitespace. Number ranges are not enforced (real files carry ``min > max``).

Writing produces ``<annotations><version>1.1</version><meta><task>`` with the labels, then
one ``<image>`` per image. Coordinates are written with the shortest text that reads back
to the same float, padded to at least two decimals as CVAT writes them, so CVAT -> CVAT is
lossless. What CVAT cannot hold is listed in the :class:`WriteReport`: scores, annotator
ids, track ids, areas that differ from the geometry, keypoint visibility, the truncated /
difficult / iscrowd flags unless the schema has a checkbox of that name, and polygons with
several rings (written as one ``<polygon>`` per ring sharing a ``group_id``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import AttributeSpec, AttributeType, ClassInfo, Taxonomy
from labelgate.formats._atomic import atomic_file, refuse_existing
from labelgate.formats._base import ErrorLog, WriteReport, finish_dataset

__all__ = ["read_cvat", "sniff_cvat", "write_cvat"]

#: Attribute columns this module reads and writes as CVAT shape attributes, not ``<attribute>``.
GROUP_COLUMN = "cvat_group_id"
SOURCE_COLUMN = "cvat_source"
SHAPE_COLUMN = "cvat_shape"
_RESERVED = (GROUP_COLUMN, SOURCE_COLUMN, SHAPE_COLUMN)
#: Checkbox attributes that fill the core flag columns of the same name.
_FLAGS = ("truncated", "difficult", "iscrowd")

_SOURCE_BY_WORD = {
    "manual": Source.HUMAN,
    "auto": Source.PRELABEL,
    "consensus": Source.MERGED,
    "semi-auto": Source.HUMAN,
    "file": Source.HUMAN,
}
_WORD_BY_SOURCE = {Source.HUMAN: "manual", Source.PRELABEL: "auto", Source.MERGED: "consensus"}
_CANONICAL_WORDS = frozenset(_WORD_BY_SOURCE.values())

_TYPE_BY_INPUT = {
    "checkbox": AttributeType.BOOL,
    "select": AttributeType.SELECT,
    "radio": AttributeType.SELECT,
    "text": AttributeType.TEXT,
}
_SHAPES = ("box", "polygon", "polyline", "points", "mask", "tag")
_UNSUPPORTED = ("ellipse", "cuboid", "skeleton")
_FIELD_NAMES = {
    "class_id": "label",
    "bbox": "xtl/ytl/xbr/ybr",
    "rings": "points",
    "keypoints": "points",
    "rle_counts": "rle",
}
_ROOT = re.compile(rb"^(?:\s|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<annotations[\s/>]", re.DOTALL)
_INT_LITERAL = re.compile(r"^[+-]?\d+$")


# --- sniffing ---------------------------------------------------------------------------


def sniff_cvat(path: Path | str) -> bool:
    """Tell whether ``path`` is CVAT XML, reading at most 4 KiB; never raises.

    True for an ``.xml`` file whose root is ``<annotations>``, or a folder holding such a
    file named ``annotations.xml``.

    Examples
    --------
    >>> sniff_cvat(Path("/no/such/file.xml"))
    False
    """
    try:
        target = _xml_path(Path(path))
        if not target.is_file() or target.suffix.lower() != ".xml":
            return False
        with open(target, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return _ROOT.match(head.removeprefix(b"\xef\xbb\xbf")) is not None


def _xml_path(path: Path) -> Path:
    return path / "annotations.xml" if path.is_dir() else path


# --- reading ----------------------------------------------------------------------------


class _Bad(Exception):
    """One record is unusable: ``field`` names the XML attribute at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(slots=True)
class _Spec:
    """An attribute as CVAT declares it under one or more labels."""

    name: str
    input_type: str
    type: AttributeType
    mutable: bool
    default: str
    values: tuple[str, ...]
    classes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Rows:
    """Annotation columns as Python lists, one entry per kept shape."""

    image_id: list[int] = field(default_factory=list)
    class_id: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    bbox: list[tuple[float, float, float, float]] = field(default_factory=list)
    occluded: list[bool] = field(default_factory=list)
    z_order: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    track_id: list[int] = field(default_factory=list)
    flags: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in _FLAGS})
    rings: list[FloatArray] = field(default_factory=list)
    ring_count: list[int] = field(default_factory=list)
    keypoints: list[FloatArray] = field(default_factory=list)
    rle_counts: list[IntArray] = field(default_factory=list)
    rle_size: list[tuple[int, int]] = field(default_factory=list)
    attributes: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    # where each row came from: (image position, element tag, index among that tag)
    origin: list[tuple[int, str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_id)


@dataclass(slots=True)
class _Shape:
    """One parsed shape, before it is appended to the columns."""

    class_id: int
    kind: Kind
    bbox: tuple[float, float, float, float]
    occluded: bool
    z_order: int
    source: int
    flags: dict[str, bool]
    attributes: dict[str, Any]
    ring: FloatArray | None = None
    keypoints: FloatArray | None = None
    rle: IntArray | None = None
    rle_size: tuple[int, int] = (0, 0)


class _Reader:
    """One streaming pass over a CVAT XML file."""

    def __init__(self, path: Path, log: ErrorLog) -> None:
        self.path = path
        self.log = log
        self.classes: list[ClassInfo] = []
        self.class_by_name: dict[str, int] = {}
        self.specs: dict[str, _Spec] = {}
        self.colors: dict[str, str] = {}
        self.meta_kind = ""
        self.meta_name = ""
        self.version = ""
        self.original_size = (0, 0)
        self.frames: list[int] = []
        self.saw_meta = False
        # image table
        self.image_ids: list[int] = []
        self.names: list[str] = []
        self.widths: list[int] = []
        self.heights: list[int] = []
        self.subsets: list[str] = []
        self.image_count = 0  # <image> elements seen, kept or not
        self.positions: list[int] = []  # document position of each kept image
        self.name_by_position: dict[int, str] = {}
        self.track_count = 0
        self.rows = _Rows()
        self.track_rows: list[tuple[int, int]] = []  # (row, frame) for shapes of tracks

    # --- driver ---------------------------------------------------------------------

    def run(self) -> Dataset:
        depth = 0
        root: Element | None = None
        try:
            events = SafeElementTree.iterparse(str(self.path), events=("start", "end"))
            for event, element in events:
                if event == "start":
                    if depth == 0:
                        if element.tag != "annotations":
                            raise self.log.fatal(
                                f"expected root element <annotations>, got <{element.tag}>"
                            )
                        root = element
                    depth += 1
                    continue
                depth -= 1
                if depth == 1 and root is not None:
                    self._top_level(element)
                    root.clear()  # keep memory flat on large files
        except ParseError as exc:
            raise self.log.fatal(f"malformed XML: {exc}") from exc
        except DefusedXmlException as exc:
            raise self.log.fatal(
                f"refused unsafe XML ({type(exc).__name__}): entity declarations and "
                "external references are not allowed"
            ) from exc
        except OSError as exc:
            raise self.log.fatal(f"cannot read: {exc.strerror or exc}") from exc
        if root is None:  # pragma: no cover - iterparse raises on an empty document
            raise self.log.fatal("empty document")
        return self._finish()

    def _top_level(self, element: Element) -> None:
        tag = element.tag
        if tag == "version":
            self.version = (element.text or "").strip()
        elif tag == "meta":
            self._meta(element)
        elif tag == "image":
            self._need_meta("image")
            self._image(element)
        elif tag == "track":
            self._need_meta("track")
            self._track(element)
        elif tag == "tag":
            raise self.log.fatal("a <tag> outside any <image> has no image to belong to")

    def _need_meta(self, tag: str) -> None:
        if not self.saw_meta:
            raise self.log.fatal(f"expected <meta> with the labels before the first <{tag}>")

    # --- meta -----------------------------------------------------------------------

    def _meta(self, meta: Element) -> None:
        self.saw_meta = True
        holder = None
        for kind in ("task", "project", "job"):
            holder = meta.find(kind)
            if holder is not None:
                self.meta_kind = kind
                break
        if holder is None:
            raise self.log.fatal("expected <task>, <project> or <job>", record="meta")
        self.meta_name = (holder.findtext("name") or "").strip()
        size = holder.find("original_size")
        if size is not None:
            self.original_size = (
                _int_or(size.findtext("width"), 0),
                _int_or(size.findtext("height"), 0),
            )
        self.frames = _frame_numbers(holder)
        labels = holder.find("labels")
        if labels is None:
            # a job export nests its labels one level down
            labels = holder.find("segments/segment/labels")
        for index, label in enumerate(labels.findall("label") if labels is not None else []):
            self._label(index, label)

    def _label(self, index: int, label: Element) -> None:
        record = f"meta: labels.label[{index}]"
        name = label.findtext("name") or ""
        if (label.findtext("parent") or "").strip():
            return  # a skeleton's point; skeletons are refused where they are used
        if not name:
            raise self.log.fatal("expected a non-empty label name", record=record, field="name")
        if name in self.class_by_name:
            raise self.log.fatal(f"duplicate label {name!r}", record=record, field="name")
        class_id = len(self.classes) + 1
        self.classes.append(ClassInfo(class_id, name))
        self.class_by_name[name] = class_id
        color = (label.findtext("color") or "").strip()
        if color:
            self.colors[name] = color
        for j, attribute in enumerate(label.findall("attributes/attribute")):
            where = f"{record} (name={name}): attributes.attribute[{j}]"
            spec = self._spec(attribute, where)
            known = self.specs.get(spec.name)
            if known is None:
                spec.classes.append(class_id)
                self.specs[spec.name] = spec
                continue
            if known.type != spec.type:
                raise self.log.fatal(
                    f"attribute {spec.name!r} is {spec.input_type} here but {known.input_type} "
                    "under an earlier label; labelgate keeps one schema per attribute name",
                    record=where,
                    field="input_type",
                )
            if known.type == AttributeType.SELECT:
                known.values = known.values + tuple(v for v in spec.values if v not in known.values)
            known.classes.append(class_id)

    def _spec(self, attribute: Element, where: str) -> _Spec:
        name = (attribute.findtext("name") or "").strip()
        if not name:
            raise self.log.fatal("expected a non-empty attribute name", record=where, field="name")
        if name in _RESERVED:
            raise self.log.fatal(
                f"attribute name {name!r} is reserved for CVAT's own shape fields",
                record=where,
                field="name",
            )
        input_type = (attribute.findtext("input_type") or "").strip().lower()
        raw_values = attribute.findtext("values") or ""
        values = tuple(v.strip() for v in raw_values.split("\n") if v.strip())
        if len(values) == 1 and input_type != "text" and len(values[0].split()) > 1:
            values = tuple(values[0].split())  # Datumaro writes values on one line
        if input_type == "number":
            numeric = all(_is_number(v) for v in values)
            if not numeric:
                raise self.log.fatal(
                    f"expected numeric min/max/step values, got {list(values)}",
                    record=where,
                    field="values",
                )
            integral = bool(values) and all(_INT_LITERAL.match(v) for v in values)
            kind = AttributeType.INT if integral else AttributeType.FLOAT
        elif input_type in _TYPE_BY_INPUT:
            kind = _TYPE_BY_INPUT[input_type]
        else:
            raise self.log.fatal(
                f"expected input_type select, radio, checkbox, text or number, got {input_type!r}",
                record=where,
                field="input_type",
            )
        mutable = (attribute.findtext("mutable") or "").strip().lower() in ("true", "1")
        default = (attribute.findtext("default_value") or "").strip()
        return _Spec(name, input_type, kind, mutable, default, values)

    # --- images ---------------------------------------------------------------------

    def _image(self, element: Element) -> None:
        position = self.image_count
        self.image_count += 1
        name = element.get("name")
        if name:
            self.name_by_position[position] = name
        record = f"image[{position}] (name={name})" if name else f"image[{position}]"
        try:
            if not name:
                raise _Bad("expected a file name", "name")
            image_id = _int(element.get("id"), "id")
            width = _int(element.get("width", "0"), "width")
            height = _int(element.get("height", "0"), "height")
            for key, value in (("width", width), ("height", height)):
                if value < 0:
                    raise _Bad(f"expected {key} >= 0, got {value}", key)
        except _Bad as bad:
            self.log.fail(bad.message, record=record, field=bad.field)
            return
        self.positions.append(position)
        self.image_ids.append(image_id)
        self.names.append(name)
        self.widths.append(width)
        self.heights.append(height)
        self.subsets.append(element.get("subset", ""))
        counters: dict[str, int] = {}
        for child in element:
            tag = child.tag
            index = counters.get(tag, 0)
            counters[tag] = index + 1
            self._shape(child, position, index, image_id, (height, width))

    def _track(self, element: Element) -> None:
        position = self.track_count
        self.track_count += 1
        record = f"track[{position}] (id={element.get('id')})"
        try:
            track_id = _int(element.get("id"), "id")
        except _Bad as bad:
            self.log.fail(bad.message, record=record, field=bad.field)
            return
        label = element.get("label")
        counters: dict[str, int] = {}
        for child in element:
            tag = child.tag
            index = counters.get(tag, 0)
            counters[tag] = index + 1
            if child.get("outside", "0") in ("1", "true", "True"):
                continue  # the object has left the frame: CVAT keeps the marker only
            if label is not None and "label" not in child.attrib:
                child.set("label", label)
            try:
                frame = _int(child.get("frame"), "frame")
            except _Bad as bad:
                self.log.fail(bad.message, record=f"{record}: {tag}[{index}]", field=bad.field)
                continue
            before = len(self.rows)
            height, width = self.original_size[1], self.original_size[0]
            self._shape(child, -1 - position, index, frame, (height, width), track_id=track_id)
            if len(self.rows) > before:
                self.track_rows.append((before, frame))

    # --- shapes ---------------------------------------------------------------------

    def _shape(
        self,
        element: Element,
        position: int,
        index: int,
        image_id: int,
        image_size: tuple[int, int],
        *,
        track_id: int = -1,
    ) -> None:
        tag = element.tag
        if tag not in _SHAPES and tag not in _UNSUPPORTED:
            return  # unknown child elements carry nothing labelgate reads
        try:
            if tag in _UNSUPPORTED:
                raise _Bad(f"<{tag}> shapes are not supported; convert them in CVAT first", None)
            shape, extra = self._parse_shape(element, image_size)
        except _Bad as bad:
            self.log.fail(bad.message, record=self._record(position, tag, index), field=bad.field)
            return
        rows = self.rows
        row = len(rows)
        rows.image_id.append(image_id)
        rows.class_id.append(shape.class_id)
        rows.kind.append(shape.kind)
        rows.bbox.append(shape.bbox)
        rows.occluded.append(shape.occluded)
        rows.z_order.append(shape.z_order)
        rows.source.append(shape.source)
        rows.track_id.append(track_id)
        for flag in _FLAGS:
            rows.flags[flag].append(shape.flags.get(flag, False))
        if shape.ring is not None:
            rows.rings.append(shape.ring)
            rows.ring_count.append(1)
        else:
            rows.ring_count.append(0)
        rows.keypoints.append(shape.keypoints if shape.keypoints is not None else _NO_KEYPOINTS)
        rows.rle_counts.append(shape.rle if shape.rle is not None else _NO_RLE)
        rows.rle_size.append(shape.rle_size)
        for key, value in {**shape.attributes, **extra}.items():
            rows.attributes.setdefault(key, []).append((row, value))
        rows.origin.append((position, tag, index))

    def _parse_shape(
        self, element: Element, image_size: tuple[int, int]
    ) -> tuple[_Shape, dict[str, Any]]:
        tag = element.tag
        label = element.get("label")
        if not label:
            raise _Bad("expected a label; labelgate keeps only labelled shapes", "label")
        class_id = self.class_by_name.get(label)
        if class_id is None:
            shown = list(self.class_by_name)
            shown_text = shown if len(shown) <= 10 else [*shown[:10], "..."]
            raise _Bad(f"unknown label {label!r} (meta declares {shown_text})", "label")
        occluded = _bool(element.get("occluded", "0"), "occluded")
        z_order = _int(element.get("z_order", "0"), "z_order")
        extra: dict[str, Any] = {}
        word = element.get("source", "manual")
        source = _SOURCE_BY_WORD.get(word, Source.HUMAN)
        if word not in _CANONICAL_WORDS:
            extra[SOURCE_COLUMN] = word
        group = _int(element.get("group_id", "0"), "group_id")
        if group:
            extra[GROUP_COLUMN] = group
        attributes, flags = self._attributes(element)
        shape = _Shape(class_id, Kind.BOX, _NAN_BOX, occluded, z_order, source, flags, attributes)
        if tag == "box":
            self._box(element, shape)
        elif tag in ("polygon", "polyline", "points"):
            points = _points(element.get("points"))
            x1, y1 = points.min(axis=0).tolist()
            x2, y2 = points.max(axis=0).tolist()
            shape.bbox = (x1, y1, x2, y2)
            if tag == "polygon":
                if len(points) < 3:
                    raise _Bad(f"expected a polygon of >= 3 points, got {len(points)}", "points")
                shape.kind = Kind.POLYGON
                shape.ring = points
            else:
                if tag == "polyline":
                    if len(points) < 2:
                        raise _Bad(
                            f"expected a polyline of >= 2 points, got {len(points)}", "points"
                        )
                    extra[SHAPE_COLUMN] = "polyline"
                shape.kind = Kind.KEYPOINTS
                shape.keypoints = np.column_stack([points, np.full(len(points), 2.0)])
        elif tag == "mask":
            self._mask(element, shape, image_size)
        else:  # tag
            shape.kind = Kind.TAG
        return shape, extra

    def _box(self, element: Element, shape: _Shape) -> None:
        xtl, ytl, xbr, ybr = (_float(element.get(k), k) for k in ("xtl", "ytl", "xbr", "ybr"))
        if xbr < xtl:
            raise _Bad(f"expected xbr >= xtl, got xtl={xtl} xbr={xbr}", "xbr")
        if ybr < ytl:
            raise _Bad(f"expected ybr >= ytl, got ytl={ytl} ybr={ybr}", "ybr")
        turned = element.get("rotation")
        rotation = _float(turned, "rotation") if turned is not None else 0.0
        shape.bbox = (xtl, ytl, xbr, ybr)
        if rotation % 360:
            corners = _rotated_corners(xtl, ytl, xbr, ybr, rotation)
            x1, y1 = corners.min(axis=0).tolist()
            x2, y2 = corners.max(axis=0).tolist()
            shape.bbox = (x1, y1, x2, y2)
            shape.kind = Kind.POLYGON
            shape.ring = corners

    def _mask(self, element: Element, shape: _Shape, image_size: tuple[int, int]) -> None:
        height, width = image_size
        if height <= 0 or width <= 0:
            raise _Bad("a mask needs the image's width and height", "width")
        left, top, crop_w, crop_h = (
            _int(element.get(k), k) for k in ("left", "top", "width", "height")
        )
        if left < 0 or top < 0 or crop_w <= 0 or crop_h <= 0:
            raise _Bad(
                f"expected left, top >= 0 and width, height > 0, got "
                f"{left}, {top}, {crop_w}, {crop_h}",
                "left",
            )
        if left + crop_w > width or top + crop_h > height:
            raise _Bad(
                f"mask {crop_w}x{crop_h} at ({left}, {top}) reaches past the "
                f"{width}x{height} image",
                "width",
            )
        text = element.get("rle")
        if text is None:
            raise _Bad("expected run lengths", "rle")
        try:
            runs = np.array([t for t in text.split(",") if t.strip()]).astype(np.int64)
        except ValueError:
            raise _Bad(f"expected comma-separated integers, got {_clip(text)!r}", "rle") from None
        if (runs < 0).any() or int(runs.sum()) != crop_w * crop_h:
            raise _Bad(
                f"runs must be >= 0 and cover width*height = {crop_w * crop_h} pixels, "
                f"got {int(runs.sum())}",
                "rle",
            )
        crop = _decode_runs(runs).reshape(crop_h, crop_w)  # CVAT runs are row-major
        full = np.zeros((height, width), dtype=bool)
        full[top : top + crop_h, left : left + crop_w] = crop
        shape.kind = Kind.MASK
        shape.rle = _encode_runs(full.ravel(order="F"))
        shape.rle_size = (height, width)
        shape.bbox = _mask_box(full)

    def _attributes(self, element: Element) -> tuple[dict[str, Any], dict[str, bool]]:
        attributes: dict[str, Any] = {}
        flags: dict[str, bool] = {}
        for child in element.iter("attribute"):
            name = child.get("name")
            if not name:
                raise _Bad("expected the attribute's name", "attribute")
            value = (child.text or "").strip()
            spec = self.specs.get(name)
            where = f"attribute[name={name}]"
            if spec is None:
                attributes[name] = value  # undeclared: keep it as text rather than lose it
                continue
            typed = _typed(value, spec, where)
            if name in _FLAGS and spec.type == AttributeType.BOOL:
                flags[name] = bool(typed)
            else:
                attributes[name] = typed
        return attributes, flags

    def _record(self, position: int, tag: str, index: int) -> str:
        if position < 0:
            return f"track[{-1 - position}]: {tag}[{index}]"
        name = self._name_at(position)
        where = f"image[{position}] (name={name})" if name else f"image[{position}]"
        return f"{where}: {tag}[{index}]"

    def _name_at(self, position: int) -> str:
        return self.name_by_position.get(position, "")

    # --- assembly -------------------------------------------------------------------

    def _finish(self) -> Dataset:
        taxonomy = self._taxonomy()
        images = self._images()
        rows = self.rows
        n = len(rows)
        ring_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.asarray(rows.ring_count, dtype=np.int64), out=ring_offsets[1:])
        columns: dict[str, AttributeColumn] = {}
        for name, entries in rows.attributes.items():
            items: list[Any] = [None] * n
            for row, value in entries:
                items[row] = value
            columns[name] = AttributeColumn.from_list(items)
        image_id = np.asarray(rows.image_id, dtype=np.int64)
        annotations = Annotations.create(
            image_id=image_id,
            class_id=np.asarray(rows.class_id, dtype=np.int64),
            kind=np.asarray(rows.kind, dtype=np.uint8),
            bbox=np.asarray(rows.bbox, dtype=np.float64).reshape(n, 4),
            occluded=np.asarray(rows.occluded, dtype=bool),
            z_order=np.asarray(rows.z_order, dtype=np.int64),
            source=np.asarray(rows.source, dtype=np.uint8),
            track_id=np.asarray(rows.track_id, dtype=np.int64),
            truncated=np.asarray(rows.flags["truncated"], dtype=bool),
            difficult=np.asarray(rows.flags["difficult"], dtype=bool),
            iscrowd=np.asarray(rows.flags["iscrowd"], dtype=bool),
            rings=_ragged(rows.rings, width=2, dtype=np.float64),
            ring_offsets=ring_offsets,
            keypoints=_ragged(rows.keypoints, width=3, dtype=np.float64),
            rle_counts=_ragged(rows.rle_counts, width=None, dtype=np.int64),
            rle_size=np.asarray(rows.rle_size, dtype=np.int64).reshape(n, 2),
            attributes=columns,
            check=False,
        )
        info: dict[str, Any] = {"version": self.version or "1.1"}
        if self.meta_name:
            info["name"] = self.meta_name
        if self.colors:
            info["label_colors"] = dict(self.colors)
        radios = sorted(s.name for s in self.specs.values() if s.input_type == "radio")
        if radios:
            info["radio_attributes"] = radios
        subsets = {i: s for i, s in zip(images.id.tolist(), self.subsets) if s}
        if subsets:
            info["subsets"] = subsets
        origin = rows.origin
        return finish_dataset(
            self.log,
            annotations,
            images,
            taxonomy,
            record_of=lambda row: self._record(*origin[row]),
            field_names=_FIELD_NAMES,
            info={"cvat": info},
        )

    def _taxonomy(self) -> Taxonomy:
        everyone = len(self.classes)
        specs = tuple(
            AttributeSpec(
                name=s.name,
                type=s.type,
                values=s.values,
                # declared under every label means "every class", as an empty tuple says
                classes=() if len(s.classes) == everyone else tuple(s.classes),
                default=s.default,
                mutable=s.mutable,
            )
            for s in self.specs.values()
        )
        return Taxonomy(tuple(self.classes), specs)

    def _images(self) -> Images:
        ids = self.image_ids
        if not ids and self.track_rows:
            return self._video_frames()
        if len(set(ids)) != len(ids):
            # a project export numbers frames per task, so ids repeat across subsets:
            # number the images 0..n-1 in document order instead
            new_ids = list(range(len(ids)))
            self._remap_rows(new_ids)
            ids = new_ids
        return Images.create(
            id=ids,
            file_name=self.names,
            width=self.widths,
            height=self.heights,
        )

    def _remap_rows(self, new_ids: list[int]) -> None:
        """Point each shape at its image's new id (shapes know their image's position)."""
        lookup = {position: new_ids[k] for k, position in enumerate(self.positions)}
        for row, (position, _tag, _index) in enumerate(self.rows.origin):
            if position >= 0:
                self.rows.image_id[row] = lookup[position]

    def _video_frames(self) -> Images:
        frames = sorted(set(self.frames) | {frame for _, frame in self.track_rows})
        width, height = self.original_size
        return Images.create(
            id=frames,
            file_name=[f"frame_{f:06d}" for f in frames],
            width=[width] * len(frames),
            height=[height] * len(frames),
        )


_NAN_BOX = (float("nan"),) * 4
_NO_KEYPOINTS = np.zeros((0, 3), dtype=np.float64)
_NO_RLE = np.zeros(0, dtype=np.int64)


def read_cvat(path: Path | str, *, errors: ErrorLog | None = None) -> Dataset:
    """Read a CVAT for images 1.1 XML file (or a folder holding ``annotations.xml``).

    Parameters
    ----------
    path
        The XML file, or a CVAT export folder with ``annotations.xml`` in it.
    errors
        ``ErrorLog(path, collect=True)`` collects every problem and skips the bad records;
        by default the first problem raises.

    Returns
    -------
    Dataset
        Classes ``1..k`` in label order; ``info["cvat"]`` keeps the version, task name,
        label colours, radio attributes and per-image subsets for the writer.

    Raises
    ------
    FormatError
        Naming the file, the record (``image[3] (name=a.jpg): box[2]``) and the XML field:
        malformed or unsafe XML, an unknown label, a non-numeric coordinate, a polygon of
        fewer than 3 points, ``xbr < xtl``, a negative image size, an attribute value
        outside its allowed values, an unsupported shape (ellipse, cuboid, skeleton).
    """
    xml_path = _xml_path(Path(path))
    log = errors if errors is not None else ErrorLog(xml_path)
    return _Reader(xml_path, log).run()


# --- value parsing ----------------------------------------------------------------------


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _int(text: str | None, name: str) -> int:
    if text is None:
        raise _Bad("missing", name)
    try:
        return int(text.strip())
    except ValueError:
        raise _Bad(f"expected an integer, got {_clip(text)!r}", name) from None


def _int_or(text: str | None, default: int) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default


def _float(text: str | None, name: str) -> float:
    if text is None:
        raise _Bad("missing", name)
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"expected a number, got {_clip(text)!r}", name) from None
    if not math.isfinite(value):
        raise _Bad(f"expected a finite number, got {text!r}", name)
    return value


def _bool(text: str, name: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true"):
        return True
    if word in ("0", "false"):
        return False
    raise _Bad(f"expected 0/1 or true/false, got {_clip(text)!r}", name)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _points(text: str | None) -> FloatArray:
    """Parse ``"x,y;x,y;..."`` into (p, 2) float64."""
    if text is None or not text.strip():
        raise _Bad("expected points 'x,y;x,y;...'", "points")
    flat = text.replace(";", ",").split(",")
    try:
        values = np.array(flat, dtype=np.float64)
    except ValueError:
        raise _Bad(f"expected numbers 'x,y;x,y;...', got {_clip(text)!r}", "points") from None
    if len(values) % 2:
        raise _Bad(f"expected x,y pairs, got {len(values)} numbers", "points")
    if not np.isfinite(values).all():
        raise _Bad(f"expected finite coordinates, got {_clip(text)!r}", "points")
    return values.reshape(-1, 2)


def _typed(value: str, spec: _Spec, where: str) -> Any:
    """Convert one ``<attribute>`` text to its schema type."""
    if spec.type == AttributeType.BOOL:
        return _bool(value, where)
    if spec.type in (AttributeType.INT, AttributeType.FLOAT):
        number = _float(value, where)
        if spec.type == AttributeType.FLOAT:
            return number
        if not number.is_integer():
            raise _Bad(f"expected an integer, got {value!r}", where)
        return int(number)
    if spec.type == AttributeType.SELECT and spec.values and value not in spec.values:
        raise _Bad(f"expected one of {list(spec.values)}, got {value!r}", where)
    return value


def _frame_numbers(holder: Element) -> list[int]:
    """Frames of a video task: ``start_frame..stop_frame`` by the ``step=`` filter."""
    start = _int_or(holder.findtext("start_frame"), -1)
    stop = _int_or(holder.findtext("stop_frame"), -1)
    if start < 0 or stop < start:
        return []
    match = re.search(r"step\s*=\s*(\d+)", holder.findtext("frame_filter") or "")
    step = max(int(match.group(1)), 1) if match else 1
    return list(range(start, stop + 1, step))


def _rotated_corners(x1: float, y1: float, x2: float, y2: float, degrees: float) -> FloatArray:
    """Corners of a box rotated clockwise (CVAT's sense, y down) about its centre."""
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64) - (cx, cy)
    angle = np.deg2rad(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]])
    return corners @ rotation + (cx, cy)  # type: ignore[no-any-return]  # numpy matmul is Any


def _ragged(rows: list[Any], *, width: int | None, dtype: Any) -> Ragged:
    """Ragged from per-row arrays, keeping the trailing width even when all rows are empty."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows)), out=offsets[1:])
    shape: tuple[int, ...] = (0,) if width is None else (0, width)
    nonempty = [r for r in rows if len(r)]
    values = np.concatenate(nonempty).astype(dtype) if nonempty else np.zeros(shape, dtype=dtype)
    return Ragged(values, offsets)


# --- run-length helpers -----------------------------------------------------------------


def _decode_runs(runs: IntArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Runs that alternate background, foreground, ... -> flat bool pixels."""
    return np.repeat(np.arange(len(runs)) % 2 == 1, runs)


def _encode_runs(flat: np.ndarray[Any, np.dtype[np.bool_]]) -> IntArray:
    """Flat bool pixels -> runs starting with background (0 when the first pixel is set)."""
    if len(flat) == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    runs = np.diff(bounds).astype(np.int64)
    if flat[0]:
        runs = np.concatenate([np.zeros(1, dtype=np.int64), runs])
    return runs


def _mask_box(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> tuple[float, float, float, float]:
    """Tight xyxy box of the set pixels in pixel-edge coordinates (0-area when empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


# --- writing ----------------------------------------------------------------------------


def _number(value: float) -> str:
    """Shortest text that reads back to ``value``, with at least two decimals (CVAT style).

    Examples
    --------
    >>> [_number(v) for v in (58.0, 2.4, 1.23456, 1e-7)]
    ['58.00', '2.40', '1.23456', '0.0000001']
    """
    text = repr(float(value))
    if "e" in text or "n" in text:  # exponent form (or nan/inf): spell it out positionally
        text = np.format_float_positional(value, unique=True, trim="0")
    decimals = len(text) - text.index(".") - 1
    return text + "0" * (2 - decimals) if decimals < 2 else text


@dataclass(slots=True)
class _Declared:
    """An attribute as the writer declares it in ``<meta>``."""

    name: str
    input_type: str
    values: tuple[str, ...]
    default: str
    mutable: bool
    classes: tuple[int, ...]


def _declarations(dataset: Dataset, report: WriteReport) -> list[_Declared]:
    """The schema's attributes plus undeclared attribute columns, as CVAT will see them."""
    taxonomy = dataset.taxonomy
    ann = dataset.annotations
    radios = set(dataset.info.get("cvat", {}).get("radio_attributes", ()))
    out: list[_Declared] = []
    for spec in taxonomy.attributes:
        values = spec.values
        if spec.type == AttributeType.BOOL:
            input_type = "checkbox"
        elif spec.type in (AttributeType.INT, AttributeType.FLOAT):
            input_type = "number"
            values = _number_values(spec, ann.attributes.get(spec.name))
        elif spec.type == AttributeType.SELECT:
            input_type = "radio" if spec.name in radios else "select"
        else:
            input_type = "text"
        out.append(
            _Declared(spec.name, input_type, values, spec.default, spec.mutable, spec.classes)
        )
    report.drop(
        "attribute 'required' flags",
        sum(spec.required for spec in taxonomy.attributes),
        "CVAT has no required attributes",
    )
    declared = {spec.name for spec in taxonomy.attributes}
    for name, column in ann.attributes.items():
        if name in declared or name in _RESERVED:
            continue
        if name in _FLAGS:
            report.drop(
                f"attribute column {name!r}",
                int(column.present.sum()),
                "its name is a core flag; declare it in the schema to write the flag",
            )
            continue
        # an attribute the schema never declared: declare it, typed by its values
        kind = column.values.dtype.kind
        if kind == "b":
            out.append(_Declared(name, "checkbox", ("false", "true"), "false", False, ()))
        elif kind in "if":
            spec = AttributeSpec(name, AttributeType.INT if kind == "i" else AttributeType.FLOAT)
            out.append(_Declared(name, "number", _number_values(spec, column), "", False, ()))
        else:
            out.append(_Declared(name, "text", (), "", False, ()))
    return out


def _number_values(spec: AttributeSpec, column: AttributeColumn | None) -> tuple[str, ...]:
    """CVAT's ``min, max, step`` for a number attribute, typed so it reads back the same."""
    integral = spec.type == AttributeType.INT
    values = spec.values
    if len(values) == 3 and all(_is_number(v) for v in values):
        if all(_INT_LITERAL.match(v) for v in values) == integral:
            return values
        if integral:
            return tuple(str(int(float(v))) for v in values)
        return tuple(_number(float(v)) for v in values)
    present: list[float] = []
    if column is not None and column.present.any():
        present = column.values[column.present].astype(np.float64).tolist()
    low, high = (min(present), max(present)) if present else (0.0, 1.0)
    if integral:
        return (str(int(low)), str(int(high)), "1")
    return (_number(low), _number(high), "0.01")


def _meta_lines(dataset: Dataset, declared: list[_Declared]) -> Iterator[str]:
    info = dataset.info.get("cvat", {})
    colors: dict[str, str] = info.get("label_colors", {})
    yield "  <meta>\n    <task>\n"
    yield f"      <name>{escape(str(info.get('name', 'labelgate')))}</name>\n"
    yield f"      <size>{len(dataset.images)}</size>\n"
    yield "      <mode>annotation</mode>\n      <labels>\n"
    for cls in dataset.taxonomy.classes:
        yield f"        <label>\n          <name>{escape(cls.name)}</name>\n"
        if cls.name in colors:
            yield f"          <color>{escape(colors[cls.name])}</color>\n"
        yield "          <attributes>\n"
        for spec in declared:
            if spec.classes and cls.id not in spec.classes:
                continue
            yield (
                "            <attribute>\n"
                f"              <name>{escape(spec.name)}</name>\n"
                f"              <mutable>{'True' if spec.mutable else 'False'}</mutable>\n"
                f"              <input_type>{spec.input_type}</input_type>\n"
                f"              <default_value>{escape(spec.default)}</default_value>\n"
                f"              <values>{escape(chr(10).join(spec.values))}</values>\n"
                "            </attribute>\n"
            )
        yield "          </attributes>\n        </label>\n"
    yield "      </labels>\n    </task>\n  </meta>\n"


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return np.format_float_positional(float(value), unique=True, trim="-")
    return str(value)


def _render(dataset: Dataset, report: WriteReport) -> Iterator[str]:
    """Yield the document in pieces; the caller streams them into the temporary file."""
    ann = dataset.annotations
    images = dataset.images
    taxonomy = dataset.taxonomy
    n = len(ann)
    declared = _declarations(dataset, report)
    _report_losses(dataset, report)
    names = dict(zip(taxonomy.ids.tolist(), taxonomy.names))
    schema_flags = {
        spec.name: spec
        for spec in taxonomy.attributes
        if spec.name in _FLAGS and spec.type == AttributeType.BOOL
    }
    written_attributes = [
        d.name for d in declared if d.name in ann.attributes and d.name not in schema_flags
    ]
    columns = {name: ann.attributes[name].to_list() for name in written_attributes}
    flag_columns = {name: getattr(ann, name).tolist() for name in schema_flags}
    groups = ann.attributes.get(GROUP_COLUMN)
    group_of: list[Any] = groups.to_list() if groups is not None else [None] * n
    words = ann.attributes.get(SOURCE_COLUMN)
    word_of: list[Any] = words.to_list() if words is not None else [None] * n
    # the original word only where it still means the row's source (it may have changed)
    word_of = [
        w if w is not None and _SOURCE_BY_WORD.get(w, Source.HUMAN) == s else None
        for w, s in zip(word_of, ann.source.tolist())
    ]
    shapes = ann.attributes.get(SHAPE_COLUMN)
    shape_of: list[Any] = shapes.to_list() if shapes is not None else [None] * n
    next_group = max([g for g in group_of if isinstance(g, int)], default=0) + 1

    # rows by image, in the image table's order, keeping row order within an image
    position = images.index_of(ann.image_id)
    order = np.argsort(position, kind="stable")
    starts = np.searchsorted(position[order], np.arange(len(images) + 1))
    subsets: dict[int, str] = dataset.info.get("cvat", {}).get("subsets", {})
    info_version = str(dataset.info.get("cvat", {}).get("version", "1.1"))
    kinds = ann.kind.tolist()
    class_ids = ann.class_id.tolist()
    occluded = ann.occluded.tolist()
    z_orders = ann.z_order.tolist()
    sources = ann.source.tolist()
    bbox = ann.bbox
    multi_ring = 0
    dropped_points = 0
    empty_keypoints = 0
    bad_masks = 0

    yield '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n'
    yield f"  <version>{escape(info_version)}</version>\n"
    yield from _meta_lines(dataset, declared)
    ids = images.id.tolist()
    file_names = images.file_name.tolist()
    widths = images.width.tolist()
    heights = images.height.tolist()
    for i, image_id in enumerate(ids):
        subset = subsets.get(image_id, "")
        subset_attr = f" subset={quoteattr(subset)}" if subset else ""
        yield (
            f'  <image id="{image_id}" name={quoteattr(str(file_names[i]))} '
            f'width="{widths[i]}" height="{heights[i]}"{subset_attr}>\n'
        )
        for row in order[starts[i] : starts[i + 1]].tolist():
            kind = kinds[row]
            group = group_of[row]
            common = (
                f"label={quoteattr(names[class_ids[row]])} "
                f"source={quoteattr(word_of[row] or _WORD_BY_SOURCE[Source(sources[row])])}"
            )
            if kind != Kind.TAG:
                common += f' occluded="{int(occluded[row])}"'
            body = _attribute_lines(row, class_ids[row], columns, flag_columns, schema_flags)
            z_group = f' z_order="{z_orders[row]}"'
            if kind == Kind.TAG:
                yield from _element("tag", common + _group(group), body)
            elif kind == Kind.BOX:
                x1, y1, x2, y2 = (_number(v) for v in bbox[row].tolist())
                coords = f' xtl="{x1}" ytl="{y1}" xbr="{x2}" ybr="{y2}"'
                yield from _element("box", common + coords + z_group + _group(group), body)
            elif kind == Kind.POLYGON:
                rings = ann.ring_offsets[row : row + 2].tolist()
                count = rings[1] - rings[0]
                if count > 1 and group is None:
                    group = next_group
                    next_group += 1
                multi_ring += count > 1
                for ring in range(rings[0], rings[1]):
                    points = _points_text(ann.rings.row(ring))
                    attrs = common + f' points="{points}"' + z_group + _group(group)
                    yield from _element("polygon", attrs, body)
            elif kind == Kind.KEYPOINTS:
                keypoints = ann.keypoints.row(row)
                labelled = keypoints[:, 2] > 0
                dropped_points += int((~labelled).sum())
                if not labelled.any():
                    empty_keypoints += 1
                    continue
                tag = (
                    "polyline" if shape_of[row] == "polyline" and labelled.sum() >= 2 else "points"
                )
                points = _points_text(keypoints[labelled, :2])
                attrs = common + f' points="{points}"' + z_group + _group(group)
                yield from _element(tag, attrs, body)
            elif kind == Kind.MASK:
                mask_attrs = _mask_attributes(ann, row, heights[i], widths[i])
                if mask_attrs is None:
                    bad_masks += 1
                    continue
                yield from _element("mask", common + mask_attrs + z_group + _group(group), body)
        yield "  </image>\n"
    yield "</annotations>\n"
    report.drop(
        "polygons with several rings",
        multi_ring,
        "written as one <polygon> per ring sharing a group_id",
    )
    report.drop("unlabelled keypoints (visibility 0)", dropped_points, "CVAT points have no gaps")
    report.drop("keypoint annotations with no labelled point", empty_keypoints)
    report.drop("masks whose size differs from their image", bad_masks)


def _report_losses(dataset: Dataset, report: WriteReport) -> None:
    """Record every per-annotation field CVAT cannot hold."""
    ann = dataset.annotations
    images = dataset.images
    taxonomy = dataset.taxonomy
    report.drop("scores", int((~np.isnan(ann.score)).sum()), "CVAT shapes have no confidence")
    report.drop("annotator ids", int((ann.annotator_id != -1).sum()))
    report.drop("track ids", int((ann.track_id != -1).sum()), "CVAT for images has no tracks")
    schema = {a.name for a in taxonomy.attributes if a.type == AttributeType.BOOL}
    for flag in _FLAGS:
        if flag not in schema:
            report.drop(
                f"{flag} flags",
                int(getattr(ann, flag).sum()),
                f"declare a checkbox attribute {flag!r} to keep them",
            )
    geometric = ann.kind != Kind.TAG
    with np.errstate(invalid="ignore"):
        custom_area = geometric & ~np.isclose(ann.area, ann.computed_area(), rtol=1e-9, atol=1e-9)
    report.drop("areas that differ from the geometry", int(custom_area.sum()))
    visible = ann.keypoints.values[:, 2] == 1 if len(ann.keypoints.values) else np.zeros(0, bool)
    report.drop("keypoint visibility 1 (labelled, hidden)", int(visible.sum()), "written as points")
    report.drop(
        "class ids",
        int((taxonomy.ids != np.arange(1, len(taxonomy) + 1)).sum()),
        "CVAT labels have no ids; readers number them 1..k in label order",
    )
    report.drop(
        "class metadata (supercategory, tier, IoU threshold, keypoint names)",
        sum(
            bool(c.supercategory or c.keypoints or c.skeleton or c.tier != "loose")
            for c in taxonomy.classes
        ),
    )
    report.drop("scene types", int(sum(bool(s) for s in images.scene_type.tolist())))
    report.drop("image tags", int(sum(bool(t) for t in images.tags.tolist())))
    if len(ann):
        renumbered = not np.array_equal(ann.id, np.arange(1, len(ann) + 1))
        report.drop("annotation ids", len(ann) if renumbered else 0, "readers number shapes 1..n")


def _group(group: Any) -> str:
    return f' group_id="{group}"' if group else ""


def _points_text(points: FloatArray) -> str:
    return ";".join(f"{_number(x)},{_number(y)}" for x, y in points.tolist())


def _element(tag: str, attrs: str, body: list[str]) -> Iterator[str]:
    if body:
        yield f"    <{tag} {attrs}>\n"
        yield from body
        yield f"    </{tag}>\n"
    else:
        yield f"    <{tag} {attrs}>\n    </{tag}>\n"


def _attribute_lines(
    row: int,
    class_id: int,
    columns: dict[str, list[Any]],
    flag_columns: dict[str, list[Any]],
    flag_specs: dict[str, AttributeSpec],
) -> list[str]:
    lines = []
    for name, spec in flag_specs.items():
        if not spec.classes or class_id in spec.classes:
            value = "true" if flag_columns[name][row] else "false"
            lines.append(f"      <attribute name={quoteattr(name)}>{value}</attribute>\n")
    for name, values in columns.items():
        value = values[row]
        if value is not None:
            text = escape(_attribute_text(value))
            lines.append(f"      <attribute name={quoteattr(name)}>{text}</attribute>\n")
    return lines


def _mask_attributes(ann: Annotations, row: int, height: int, width: int) -> str | None:
    """CVAT ``rle``, ``left``, ``top``, ``width``, ``height`` of one COCO RLE mask."""
    mask_h, mask_w = ann.rle_size[row].tolist()
    if (height, width) != (mask_h, mask_w) and height > 0 and width > 0:
        return None
    counts = ann.rle_counts.row(row)
    full = _decode_runs(counts).reshape(mask_w, mask_h).T  # COCO runs are column-major
    x1, y1, x2, y2 = (int(v) for v in _mask_box(full))
    if x2 == x1:  # empty mask: one background pixel keeps the element valid
        x2, y2 = x1 + 1, y1 + 1
    crop = full[y1:y2, x1:x2]
    runs = ", ".join(str(v) for v in _encode_runs(crop.ravel()).tolist())
    return f' rle="{runs}" left="{x1}" top="{y1}" width="{x2 - x1}" height="{y2 - y1}"'


def write_cvat(dataset: Dataset, path: Path | str, *, overwrite: bool = False) -> WriteReport:
    """Write a CVAT for images 1.1 XML file atomically.

    Parameters
    ----------
    dataset
        What to write.
    path
        The target ``.xml`` file.
    overwrite
        Replace an existing file (only once the new one is complete).

    Returns
    -------
    WriteReport
        ``dropped`` lists what CVAT cannot hold (see the module docstring).

    Raises
    ------
    FileExistsError
        The target exists and ``overwrite`` is False.
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)
    report = WriteReport("cvat", path, len(dataset.images), len(dataset.annotations))
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        _stream(handle, _render(dataset, report))
    return report


def _stream(handle: IO[str], pieces: Iterator[str]) -> None:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size > 1 << 20:
            handle.write("".join(buffer))
            buffer.clear()
            size = 0
    handle.write("".join(buffer))
