"""YOLO txt labels: one ``<stem>.txt`` per image, normalized ``class cx cy w h`` per line.

Layouts read
------------
- Ultralytics: ``data.yaml`` (``names`` as a list or an ``{index: name}`` mapping),
  ``images/<subset>/*.jpg`` and ``labels/<subset>/*.txt``;
- darknet: ``obj.data`` + ``obj.names`` + ``train.txt`` listing ``data/obj_train_data/*.jpg``
  with each label beside its image;
- loose: ``obj.names`` or ``classes.txt`` with ``labels/`` or ``Annotations/`` and
  ``images/`` or ``Images/``, or labels and images side by side.

A line with ``1 + 2k`` values (``k >= 3``) is a segmentation polygon (Ultralytics).

Conventions
-----------
- Class ids are the YOLO class indices (0-based) as in the names file, so YOLO -> YOLO keeps
  them; the writer maps any taxonomy to ``0..k-1`` in taxonomy order.
- A label's image is the file with the same path once ``labels``/``images``/``Annotations``
  folder names are set aside (``labels/train/1.txt`` <-> ``images/train/1.jpg``), with any
  common image extension. Sizes come from the image header (Pillow, no decoding) or from
  ``image_sizes``. Images without a label file are images without objects (YOLO's
  background images).
- Image ids are ``1..n`` in that path order (case-folded); annotation ids ``1..m`` in image,
  then line order.
- Normalized values may stray :data:`NORMALIZED_TOLERANCE` outside ``[0, 1]``; boxes
  reaching past the image border are then checked in pixels by the data set (1 px).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError
from PIL.Image import DecompressionBombError

from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import ClassInfo, Taxonomy
from labelgate.errors import FormatError
from labelgate.formats._atomic import atomic_dir
from labelgate.formats._base import ErrorLog, WriteReport, finish_dataset

__all__ = ["IMAGE_SUFFIXES", "NORMALIZED_TOLERANCE", "read_yolo", "sniff_yolo", "write_yolo"]

#: Image file extensions looked for beside a label (compared case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: How far a normalized value may lie outside [0, 1]: exporters round to 6 digits.
NORMALIZED_TOLERANCE = 1e-3

_LAYOUT_DIRS = frozenset({"labels", "images", "annotations"})
_YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
_NAMES_FILES = ("obj.names", "classes.txt", "classes.names")
_NOT_LABELS = frozenset(
    {"classes.txt", "train.txt", "val.txt", "valid.txt", "test.txt", "readme.txt", "license.txt"}
)
_BOX_FIELDS = ("class", "cx", "cy", "w", "h")


# --- layout ----------------------------------------------------------------------------------


def _key(relative: PurePosixPath) -> str:
    """Match key of a label or image: path without suffix and layout folders, case-folded."""
    parts = [p for p in relative.parent.parts if p.lower() not in _LAYOUT_DIRS]
    return "/".join([*parts, relative.stem]).casefold()


def _key_path(file_name: str) -> PurePosixPath:
    """Where the writer puts an image's label, under ``labels/`` (case kept)."""
    relative = PurePosixPath(file_name.replace("\\", "/"))
    parts = [p for p in relative.parent.parts if p.lower() not in _LAYOUT_DIRS and p != "/"]
    return PurePosixPath(*parts, relative.stem) if parts else PurePosixPath(relative.stem)


def _resolve(root: Path, value: str) -> Path | None:
    """A path from ``obj.data`` / a list file: darknet writes them under ``data/``."""
    candidate = PurePosixPath(value.strip().replace("\\", "/"))
    options = [root / candidate]
    if len(candidate.parts) > 1:
        options.append(root.joinpath(*candidate.parts[1:]))
    options.append(root / candidate.name)
    return next((p for p in options if p.exists()), None)


@dataclass(slots=True)
class _Layout:
    root: Path
    classes: list[tuple[int, str]]
    label_files: list[Path]
    info: dict[str, Any] = field(default_factory=dict)


def _read_names_yaml(file: Path, log: ErrorLog) -> list[tuple[int, str]] | None:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise log.fatal(f"expected readable YAML, got {exc}", path=file) from exc
    if not isinstance(data, dict) or "names" not in data:
        return None
    names = data["names"]
    if isinstance(names, list):
        return [(i, str(name)) for i, name in enumerate(names)]
    if isinstance(names, dict):
        try:
            return sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError) as exc:
            raise log.fatal(
                f"expected integer class indices, got {list(names)[:5]}", field="names", path=file
            ) from exc
    raise log.fatal(
        f"expected a list or an index -> name mapping, got {type(names).__name__}",
        field="names",
        path=file,
    )


def _read_names_lines(file: Path, log: ErrorLog) -> list[tuple[int, str]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise log.fatal(f"expected a readable UTF-8 file, got {exc}", path=file) from exc
    names = [line.strip() for line in lines if line.strip()]
    return list(enumerate(names))


def _layout(path: Path, log: ErrorLog) -> _Layout:
    """Find the class names and the label files of a YOLO tree."""
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise log.fatal("expected a YOLO folder, got nothing there")
    info: dict[str, Any] = {}
    classes: list[tuple[int, str]] | None = None
    yaml_files = [root / n for n in _YAML_NAMES if (root / n).is_file()]
    yaml_files += sorted(
        p for p in [*root.glob("*.yaml"), *root.glob("*.yml")] if p not in yaml_files
    )
    for file in yaml_files:
        classes = _read_names_yaml(file, log)
        if classes is not None:
            info["yolo_names_file"] = file.name
            break
    list_files: list[Path] = []
    obj_data = root / "obj.data"
    if obj_data.is_file():
        settings: dict[str, str] = {}
        for line in obj_data.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                settings[key.strip()] = value.strip()
        for key in ("train", "valid", "val", "test"):
            if key in settings and (found := _resolve(root, settings[key])) is not None:
                list_files.append(found)
        if classes is None and "names" in settings:
            names_file = _resolve(root, settings["names"])
            if names_file is not None and names_file.is_file():
                classes = _read_names_lines(names_file, log)
    if classes is None:
        for name in _NAMES_FILES:
            if (root / name).is_file():
                classes = _read_names_lines(root / name, log)
                break
    if classes is None:
        found_names = sorted(root.glob("*.names"))
        if found_names:
            classes = _read_names_lines(found_names[0], log)
    if classes is None:
        raise log.fatal("expected class names in data.yaml, obj.names or classes.txt, found none")

    layout_dirs = [
        p for p in root.iterdir() if p.is_dir() and p.name.lower() in ("labels", "annotations")
    ]
    labels: list[Path] = []
    if layout_dirs:
        chosen = min(layout_dirs, key=lambda p: p.name.lower() != "labels")  # labels/ first
        labels = [p for p in chosen.rglob("*.txt") if p.is_file()]
    elif list_files:
        for list_file in list_files:
            for line in list_file.read_text(encoding="utf-8").splitlines():
                if line.strip() and (image := _resolve(root, line)) is not None:
                    label = image.with_suffix(".txt")
                    if label.is_file():
                        labels.append(label)
    if not labels and not layout_dirs:
        labels = [
            p
            for p in root.rglob("*.txt")
            if p.is_file()
            and not (p.parent == root and p.name.lower() in _NOT_LABELS)
            and p not in list_files
        ]
    unique = sorted(set(labels), key=lambda p: p.relative_to(root).as_posix())
    return _Layout(root, classes, unique, info)


def _image_index(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for file in root.rglob("*"):
        if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
            key = _key(PurePosixPath(file.relative_to(root).as_posix()))
            index.setdefault(key, []).append(file)
    return index


# --- reading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Lines:
    """Parsed label lines, one entry per good line, turned into arrays once."""

    image: list[int] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    cls: list[float] = field(default_factory=list)
    box: list[list[float]] = field(default_factory=list)  # cx cy w h, NaN for polygons
    points: list[float] = field(default_factory=list)  # polygon x y ... flat
    point_count: list[int] = field(default_factory=list)  # 0 for boxes


def _parse_label(file: Path, image: int, lines: _Lines, log: ErrorLog) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.fail(f"expected a readable UTF-8 text file, got {exc}", path=file)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        count = len(tokens)
        is_box = count == 5
        if not is_box and (count < 7 or count % 2 == 0):
            log.fail(
                f"expected 5 values (class cx cy w h) or 1 + 2k values with k >= 3 "
                f"(class x1 y1 ... xk yk), got {count}",
                record=f"line {number}",
                field="values",
                path=file,
            )
            continue
        values: list[float] = []
        for position, token in enumerate(tokens):
            try:
                values.append(float(token))
            except ValueError:
                name = _BOX_FIELDS[position] if is_box else _point_field(position)
                log.fail(
                    f"expected a number, got {token!r}",
                    record=f"line {number}",
                    field=name,
                    path=file,
                )
                break
        else:
            lines.image.append(image)
            lines.line.append(number)
            lines.cls.append(values[0])
            if is_box:
                lines.box.append(values[1:])
                lines.point_count.append(0)
            else:
                lines.box.append([math.nan] * 4)
                lines.points.extend(values[1:])
                lines.point_count.append((count - 1) // 2)


def _point_field(position: int) -> str:
    """Field name of token ``position`` on a polygon line: class, x1, y1, x2, ..."""
    if position == 0:
        return "class"
    return f"{'x' if position % 2 else 'y'}{(position + 1) // 2}"


def _image_size(file: Path, log: ErrorLog, label: Path | None) -> tuple[int, int] | None:
    try:
        with Image.open(file) as image:  # reads the header only; no pixel decoding
            width, height = image.size
    except (OSError, UnidentifiedImageError, DecompressionBombError, ValueError) as exc:
        log.fail(
            f"expected a readable image to take its size from, got {exc}",
            record=f"label {label.name}" if label is not None else None,
            field="image",
            path=file,
        )
        return None
    return int(width), int(height)


def _sizes_index(
    image_sizes: Mapping[str, tuple[int, int]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    by_key: dict[str, str] = {}
    by_stem: dict[str, list[str]] = {}
    for name in image_sizes:
        relative = PurePosixPath(name.replace("\\", "/"))
        by_key[_key(relative)] = name
        by_stem.setdefault(relative.stem.casefold(), []).append(name)
    return by_key, by_stem


def read_yolo(
    path: Path | str,
    *,
    errors: ErrorLog | None = None,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    r"""Read YOLO txt labels (boxes and segmentation polygons).

    Parameters
    ----------
    path
        The data set folder (or its ``data.yaml`` / ``obj.data``).
    errors
        ``ErrorLog(path, collect=True)`` lists every problem and skips the bad lines;
        by default the first problem raises.
    image_sizes
        ``{image file name: (width, height)}`` for labels whose image is not on disk, e.g.
        after :func:`write_yolo`, which does not copy images. A name matches a label by its
        path without suffix and layout folders (``images/train/1.jpg`` <-> ``labels/train/1.txt``),
        else by a unique stem; the matched name becomes the image's ``file_name``.
    image_size
        ``(width, height)`` of every image found neither on disk nor in ``image_sizes``
        (a data set of equal frames, ``labelgate --image-size 1920x1080``); its
        ``file_name`` is the label's path with ``.jpg``.

    Returns
    -------
    Dataset
        Class ids are the YOLO indices (0-based); image ids ``1..n`` in path order.

    Raises
    ------
    FormatError
        Naming the label file, the line and the value (``cx``, ``class``, ``x3``...), or the
        label whose image (and so size) cannot be found.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "classes.txt").write_text("car\nbus\n")
    >>> _ = (root / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    >>> ds = read_yolo(root, image_sizes={"a.jpg": (80, 60)})
    >>> ds.taxonomy.ids.tolist(), ds.annotations.class_id.tolist(), ds.annotations.bbox.tolist()
    ([0, 1], [1], [[30.0, 15.0, 50.0, 45.0]])
    """
    path = Path(path)
    log = errors if errors is not None else ErrorLog(path)
    layout = _layout(path, log)
    root = layout.root
    index = _image_index(root)
    sizes_by_key, sizes_by_stem = _sizes_index(image_sizes or {})

    # one entry per image: key -> (file_name, width, height, label file or None)
    entries: dict[str, tuple[str, int, int, Path | None]] = {}
    for label in layout.label_files:
        relative = PurePosixPath(label.relative_to(root).as_posix())
        key = _key(relative)
        found = index.get(key, [])
        if len(found) > 1:
            names = ", ".join(sorted(p.relative_to(root).as_posix() for p in found))
            log.fail(
                f"expected one image for this label, got {names}",
                record="image",
                field="file_name",
                path=label,
            )
            continue
        if found:
            size = _image_size(found[0], log, label)
            if size is None:
                continue
            entries[key] = (found[0].relative_to(root).as_posix(), *size, label)
            continue
        name = sizes_by_key.get(key)
        if (
            name is None
            and len(stem_matches := sizes_by_stem.get(relative.stem.casefold(), [])) == 1
        ):
            name = stem_matches[0]
        if name is None and image_size is not None:
            file_name = f"{_key_path(relative.as_posix()).as_posix()}.jpg"
            entries[key] = (file_name, int(image_size[0]), int(image_size[1]), label)
            continue
        if name is None:
            log.fail(
                f"expected an image named {relative.stem} with one of "
                f"{', '.join(IMAGE_SUFFIXES)} to take its size from, got none "
                "(give the image sizes: --image-size WxH, or image_sizes= in Python)",
                record="image",
                field="size",
                path=label,
            )
            continue
        width, height = image_sizes[name]  # type: ignore[index]  # name came from image_sizes
        entries[key] = (name, int(width), int(height), label)
    for key, files in index.items():
        if key not in entries and len(files) == 1:
            size = _image_size(files[0], log, None)
            if size is not None:
                entries[key] = (files[0].relative_to(root).as_posix(), *size, None)

    keys = sorted(entries)
    lines = _Lines()
    label_of_image: list[Path | None] = []
    for image, key in enumerate(keys):
        label_file = entries[key][3]
        label_of_image.append(label_file)
        if label_file is not None:
            _parse_label(label_file, image, lines, log)
    widths = np.array([entries[k][1] for k in keys], dtype=np.int64)
    heights = np.array([entries[k][2] for k in keys], dtype=np.int64)
    images = Images.create(
        id=np.arange(1, len(keys) + 1, dtype=np.int64),
        file_name=[entries[k][0] for k in keys],
        width=widths,
        height=heights,
    )
    taxonomy = Taxonomy(tuple(ClassInfo(index, name) for index, name in layout.classes))
    annotations, line_of_row, image_of_row = _build(
        lines, taxonomy, widths, heights, label_of_image, log
    )
    return finish_dataset(
        log,
        annotations,
        images,
        taxonomy,
        record_of=lambda row: f"line {line_of_row[row]}",
        field_names={"bbox": "cx cy w h", "class_id": "class", "rings": "x y"},
        path_of=lambda row: label_of_image[int(image_of_row[row])] or root,
        info=layout.info,
    )


def _build(
    lines: _Lines,
    taxonomy: Taxonomy,
    widths: Any,
    heights: Any,
    label_of_image: Sequence[Path | None],
    log: ErrorLog,
) -> tuple[Annotations, Any, Any]:
    """Check the parsed lines as columns and convert them to pixel annotations."""
    n = len(lines.image)
    image = np.array(lines.image, dtype=np.int64)
    line = np.array(lines.line, dtype=np.int64)
    cls = np.array(lines.cls, dtype=np.float64)
    box = np.array(lines.box, dtype=np.float64).reshape(n, 4)
    count = np.array(lines.point_count, dtype=np.int64)
    points = np.array(lines.points, dtype=np.float64).reshape(-1, 2)
    point_owner = np.repeat(np.arange(n), count)
    bad = np.zeros(n, dtype=bool)

    def fail(rows: Any, field_of: Any, message_of: Any) -> None:
        for row in np.flatnonzero(rows).tolist():
            if not bad[row]:
                bad[row] = True
                log.fail(
                    message_of(row),
                    record=f"line {line[row]}",
                    field=field_of(row),
                    path=label_of_image[image[row]],
                )

    known = taxonomy.ids
    span = f"{known.min()}..{known.max()}" if len(known) else "none (no classes)"
    integral = np.isfinite(cls) & (cls == np.round(cls))
    in_taxonomy = np.zeros(n, dtype=bool)
    in_taxonomy[integral] = taxonomy.position(cls[integral].astype(np.int64)) >= 0
    fail(
        ~in_taxonomy,
        lambda r: "class",
        lambda r: f"expected a class index in {span}, got {cls[r]:g}",
    )
    low, high = -NORMALIZED_TOLERANCE, 1 + NORMALIZED_TOLERANCE
    is_box = count == 0
    for column, name in enumerate(_BOX_FIELDS[1:]):
        values = box[:, column]
        with np.errstate(invalid="ignore"):
            outside = is_box & ~((values >= low) & (values <= high))
        fail(
            outside,
            lambda r, name=name: name,
            lambda r, values=values, name=name: f"expected {name} in [0, 1], got {values[r]:g}",
        )
    with np.errstate(invalid="ignore"):
        point_outside = ~((points >= low) & (points <= high))
    if point_outside.any():
        flat = np.flatnonzero(point_outside.reshape(-1))  # ascending: first bad value first
        rows, first = np.unique(point_owner[flat // 2], return_index=True)
        point_start = np.concatenate([[0], np.cumsum(count)])
        local = np.full(n, -1, dtype=np.int64)
        local[rows] = flat[first] - 2 * point_start[rows]
        flat_of_row = np.full(n, -1, dtype=np.int64)
        flat_of_row[rows] = flat[first]

        def point_name(row: int) -> str:
            return f"{'xy'[local[row] % 2]}{local[row] // 2 + 1}"

        fail(
            local >= 0,
            point_name,
            lambda r: (
                f"expected {point_name(r)} in [0, 1], got {points.reshape(-1)[flat_of_row[r]]:g}"
            ),
        )

    width = widths[image].astype(np.float64) if n else np.zeros(0)
    height = heights[image].astype(np.float64) if n else np.zeros(0)
    half_w, half_h = box[:, 2] / 2, box[:, 3] / 2
    bbox = np.stack(
        [
            (box[:, 0] - half_w) * width,
            (box[:, 1] - half_h) * height,
            (box[:, 0] + half_w) * width,
            (box[:, 1] + half_h) * height,
        ],
        axis=1,
    )
    pixel_points = (
        points * np.stack([width[point_owner], height[point_owner]], axis=1)
        if len(points)
        else points
    )
    polygon_rows = np.flatnonzero(~is_box)
    if len(polygon_rows):
        starts = np.concatenate([[0], np.cumsum(count[polygon_rows])])[:-1]
        bbox[polygon_rows, 0] = np.minimum.reduceat(pixel_points[:, 0], starts)
        bbox[polygon_rows, 1] = np.minimum.reduceat(pixel_points[:, 1], starts)
        bbox[polygon_rows, 2] = np.maximum.reduceat(pixel_points[:, 0], starts)
        bbox[polygon_rows, 3] = np.maximum.reduceat(pixel_points[:, 1], starts)

    keep = np.flatnonzero(~bad)
    keep_points = ~bad[point_owner]
    kept_count = count[keep]
    ring_lengths = kept_count[kept_count > 0]
    ring_offsets_values = np.zeros(len(ring_lengths) + 1, dtype=np.int64)
    np.cumsum(ring_lengths, out=ring_offsets_values[1:])
    rings = Ragged(pixel_points[keep_points].reshape(-1, 2), ring_offsets_values)
    ring_offsets = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(kept_count > 0, out=ring_offsets[1:])
    annotations = Annotations.create(
        image_id=image[keep] + 1,
        class_id=np.where(integral, np.nan_to_num(cls), -1).astype(np.int64)[keep],
        bbox=bbox[keep],
        kind=np.where(kept_count > 0, Kind.POLYGON, Kind.BOX).astype(np.uint8),
        rings=rings,
        ring_offsets=ring_offsets,
        check=False,
    )
    return annotations, line[keep], image[keep]


def sniff_yolo(path: Path | str) -> bool:
    """Return True when ``path`` looks like a YOLO folder (a cheap look; never raises)."""
    try:
        path = Path(path)
        root = path.parent if path.is_file() else path
        if path.is_file() and path.name not in (*_YAML_NAMES, "obj.data"):
            return False
        if not root.is_dir():
            return False
        if (root / "obj.data").is_file():
            return True
        for name in _YAML_NAMES:
            file = root / name
            if file.is_file() and "names" in file.read_text(encoding="utf-8", errors="replace"):
                return True
        has_names = any((root / n).is_file() for n in _NAMES_FILES)
        has_labels = any(
            p.is_dir() and p.name.lower() in ("labels", "annotations") for p in root.iterdir()
        )
        return has_names and (
            has_labels or any(p.name.lower() not in _NOT_LABELS for p in root.glob("*.txt"))
        )
    except OSError:
        return False


# --- writing ---------------------------------------------------------------------------------


def _number(value: float) -> str:
    """10 significant digits: sub-pixel exact on images up to 10^6 pixels wide."""
    return f"{value:.10g}"


def write_yolo(dataset: Dataset, path: Path | str, *, overwrite: bool = False) -> WriteReport:
    """Write a data set as an Ultralytics YOLO tree, atomically.

    Writes ``data.yaml`` (``path``, ``train``, ``val``, ``nc``, ``names`` in taxonomy order)
    and ``labels/<name>.txt`` for every image (empty for images without objects), where
    ``<name>`` is the image's file name without suffix and ``images``/``labels`` folders.
    Image files are not copied: put them under ``images/`` with the same relative names.

    Parameters
    ----------
    dataset
        What to write; every image with objects needs a known size.
    path
        The target folder; must not exist or be empty unless ``overwrite``.
    overwrite
        Replace an existing folder, only once the new tree is complete.

    Returns
    -------
    WriteReport
        Class ids become ``0..k-1`` in taxonomy order. Masks, keypoints and multi-ring
        polygons are written as boxes; tags, attributes, flags, scores and the like are
        dropped and counted.

    Raises
    ------
    FormatError
        An image with objects has no known size, or two images map to one label file.
    FileExistsError
        ``path`` is not empty and ``overwrite`` is False.
    """
    path = Path(path)
    ann = dataset.annotations
    images = dataset.images
    taxonomy = dataset.taxonomy
    file_names = [str(name) for name in images.file_name.tolist()]
    label_paths = [_key_path(name) for name in file_names]
    seen: dict[str, int] = {}
    for row, label in enumerate(label_paths):
        key = label.as_posix().casefold()
        if key in seen:
            raise FormatError(
                f"expected unique file names, got {file_names[seen[key]]!r} and "
                f"{file_names[row]!r} both written as labels/{label}.txt",
                path=path,
                record=f"images[{row}]",
                field="file_name",
            )
        seen[key] = row

    image_row = images.index_of(ann.image_id)
    is_tag = ann.kind == Kind.TAG
    rows_written = np.flatnonzero(~is_tag)
    needs_size = np.zeros(len(images), dtype=bool)
    needs_size[image_row[rows_written]] = True
    unknown = np.flatnonzero(needs_size & ~images.has_size)
    if len(unknown):
        row = int(unknown[0])
        raise FormatError(
            f"expected a known image size to normalize coordinates, got "
            f"{images.width[row]}x{images.height[row]} ({len(unknown)} image(s) without a size)",
            path=path,
            record=f"images[{row}] ({file_names[row]})",
            field="width/height",
        )

    ring_count = np.diff(ann.ring_offsets)
    as_polygon = (ann.kind == Kind.POLYGON) & (ring_count == 1)
    report = WriteReport("yolo", path, images=len(images), annotations=len(rows_written))
    _report_drops(report, dataset, rows_written, ring_count)

    class_index = taxonomy.position(ann.class_id)
    width = images.width[np.maximum(image_row, 0)].astype(np.float64)
    height = images.height[np.maximum(image_row, 0)].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (ann.bbox[:, 0] + ann.bbox[:, 2]) / 2 / width
        cy = (ann.bbox[:, 1] + ann.bbox[:, 3]) / 2 / height
        w = (ann.bbox[:, 2] - ann.bbox[:, 0]) / width
        h = (ann.bbox[:, 3] - ann.bbox[:, 1]) / height
    box_text = [
        f"{c} {_number(a)} {_number(b)} {_number(d)} {_number(e)}"
        for c, a, b, d, e in zip(
            class_index.tolist(), cx.tolist(), cy.tolist(), w.tolist(), h.tolist()
        )
    ]
    polygon_rows = np.flatnonzero(as_polygon)
    if len(polygon_rows):
        ring_index = ann.ring_offsets[polygon_rows]
        polygons = ann.rings.take(ring_index)
        owner = np.repeat(polygon_rows, polygons.lengths)
        normalized = polygons.values / np.stack([width[owner], height[owner]], axis=1)
        flat_text = [_number(v) for v in normalized.reshape(-1).tolist()]
        bounds = np.concatenate([[0], np.cumsum(polygons.lengths * 2)]).tolist()
        for k, row in enumerate(polygon_rows.tolist()):
            coords = " ".join(flat_text[bounds[k] : bounds[k + 1]])
            box_text[row] = f"{class_index[row]} {coords}"

    order = rows_written[np.argsort(image_row[rows_written], kind="stable")]
    starts = np.searchsorted(image_row[order], np.arange(len(images) + 1))
    image_order = sorted(range(len(images)), key=lambda i: label_paths[i].as_posix().casefold())
    id_rank = np.empty(len(images), dtype=np.int64)
    id_rank[np.array(image_order, dtype=np.int64)] = np.arange(1, len(images) + 1)
    report.drop("image ids", int((images.id != id_rank).sum()), "renumbered in file name order")
    written_ids = ann.id[
        np.concatenate(
            [np.zeros(0, dtype=np.int64), *(order[starts[i] : starts[i + 1]] for i in image_order)]
        )
    ]
    report.drop(
        "annotation ids",
        int((written_ids != np.arange(1, len(written_ids) + 1)).sum()),
        "renumbered in file and line order",
    )

    subsets = {label.parts[0] for label in label_paths if len(label.parts) > 1}
    split_dirs = (
        subsets
        and subsets <= {"train", "val", "valid", "test"}
        and all(len(label.parts) > 1 for label in label_paths)
    )
    config: dict[str, Any] = {"path": str(path.resolve())}
    if split_dirs:
        for subset in ("train", "val", "valid", "test"):
            if subset in subsets:
                config["val" if subset == "valid" else subset] = f"images/{subset}"
        config.setdefault("train", config.get("val", "images"))
        config.setdefault("val", config["train"])
    else:
        config.update(train="images", val="images")
    config["nc"] = len(taxonomy)
    config["names"] = list(taxonomy.names)

    with atomic_dir(path, overwrite=overwrite) as tmp:
        (tmp / "data.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        for i in range(len(images)):
            target = tmp / "labels" / f"{label_paths[i]}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            rows = order[starts[i] : starts[i + 1]].tolist()
            target.write_text("".join(f"{box_text[r]}\n" for r in rows), encoding="utf-8")
    return report


def _report_drops(
    report: WriteReport, dataset: Dataset, rows_written: Any, ring_count: Any
) -> None:
    """Count what YOLO cannot hold."""
    ann = dataset.annotations
    kind = ann.kind
    report.drop("tags", int((kind == Kind.TAG).sum()), "whole-image labels have no YOLO form")
    report.drop("masks as boxes", int((kind == Kind.MASK).sum()))
    report.drop("keypoints as boxes", int((kind == Kind.KEYPOINTS).sum()))
    report.drop(
        "multi-ring polygons as boxes",
        int(((kind == Kind.POLYGON) & (ring_count != 1)).sum()),
        "a YOLO polygon line holds one ring",
    )
    w = ann[rows_written]
    has_attribute = np.zeros(len(w), dtype=bool)
    for column in w.attributes.values():
        has_attribute |= column.present
    report.drop("attributes", int(has_attribute.sum()), ", ".join(sorted(w.attributes)))
    report.drop("occluded flags", int(w.occluded.sum()))
    report.drop("truncated flags", int(w.truncated.sum()))
    report.drop("difficult flags", int(w.difficult.sum()))
    report.drop("scores", int((~np.isnan(w.score)).sum()))
    report.drop("iscrowd", int(w.iscrowd.sum()))
    report.drop("track ids", int((w.track_id >= 0).sum()))
    report.drop("annotator ids", int((w.annotator_id >= 0).sum()))
    report.drop("sources", int((w.source != Source.HUMAN).sum()), "pre-label / merged marks")
    report.drop("z_order", int((w.z_order != 0).sum()))
    report.drop(
        "area",
        int((~np.isclose(w.area, w.computed_area())).sum()),
        "areas that differ from the geometry are recomputed on reading",
    )
    taxonomy = dataset.taxonomy
    if not np.array_equal(taxonomy.ids, np.arange(len(taxonomy))):
        report.drop("class ids", len(taxonomy), "classes renumbered 0..k-1 in taxonomy order")
    images = dataset.images
    report.drop("scene types", int((images.scene_type != "").sum()))
    report.drop("image tags", int(sum(1 for tags in images.tags.tolist() if tags)))
